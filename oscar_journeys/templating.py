"""Staff-written message templates in a safe subset of Django's template language.

Django warns that its template system "isn't safe against untrusted template authors", so
message templates never go through the project's template engines. They compile on a
dedicated ``django.template.Engine`` that has no loaders, no template directories, no
``{% load %}``-able libraries and, as its only builtins, this module's ``register``: an
allow-list of Django's own tags and filters. On top of that every compiled template is
walked (through every child node list) and each node type, filter and variable lookup is
checked against the allow-lists, so a tag or filter that slipped in some other way is still
refused. Templates are rendered only against a context of primitives (dicts, lists,
strings, numbers, dates: see ``services/render_context.py``), frozen so that no lookup can reach
a model, a manager, a method with side effects or the settings.

Public functions:

- ``compile_template(source, *, field)``: a compiled ``django.template.base.Template`` or
  ``TemplateSafetyError`` / ``CampaignError`` naming the field and what is wrong;
- ``render_compiled(template, context)``: render with the field's escaping (HTML escaped,
  text and SMS not);
- ``validate_message_template(template)``: what ``MessageTemplate.clean()`` calls;
- ``freeze(value)``: a read-only copy of a context value.
"""

import functools
import re
import types

from django.core.exceptions import ValidationError
from django.template import Context, Engine, Library, TemplateSyntaxError, defaultfilters, defaulttags
from django.template.base import FilterExpression, Node, NodeList, TextNode, Variable, VariableNode
from django.template.smartif import TokenBase
from django.utils.translation import gettext as _

from .exceptions import CampaignError, TemplateSafetyError

# Tags a template may use (with their closing and intermediate tags, which need no entry).
ALLOWED_TAGS = (
    "autoescape",
    "comment",
    "cycle",
    "filter",
    "firstof",
    "for",
    "if",
    "ifchanged",
    "now",
    "regroup",
    "resetcycle",
    "spaceless",
    "templatetag",
    "verbatim",
    "widthratio",
    "with",
)
# Harmless builtin filters. Not allowed: ``safe`` and ``safeseq`` (customer-entered text such
# as a name would then be able to inject HTML into an email: write markup in the template
# itself instead), ``pprint`` (shows Python internals), ``json_script``, ``urlize*``
# (links are the template's job, so that click tracking sees them), ``dictsort*``.
ALLOWED_FILTERS = (
    "add",
    "capfirst",
    "cut",
    "date",
    "default",
    "default_if_none",
    "divisibleby",
    "escape",
    "filesizeformat",
    "first",
    "floatformat",
    "force_escape",
    "join",
    "last",
    "length",
    "linebreaks",
    "linebreaksbr",
    "lower",
    "make_list",
    "pluralize",
    "slice",
    "slugify",
    "stringformat",
    "striptags",
    "time",
    "timesince",
    "timeuntil",
    "title",
    "truncatechars",
    "truncatechars_html",
    "truncatewords",
    "truncatewords_html",
    "upper",
    "urlencode",
    "wordcount",
    "wordwrap",
    "yesno",
)

# The only library the engines know: this allow-list of Django's own tags and filters.
register = Library()
register.tags = {name: defaulttags.register.tags[name] for name in ALLOWED_TAGS}
register.filters = {name: defaultfilters.register.filters[name] for name in ALLOWED_FILTERS}

ALLOWED_NODES = frozenset(
    [
        TextNode,
        VariableNode,
        defaulttags.AutoEscapeControlNode,
        defaulttags.CommentNode,
        defaulttags.CycleNode,
        defaulttags.FilterNode,
        defaulttags.FirstOfNode,
        defaulttags.ForNode,
        defaulttags.IfChangedNode,
        defaulttags.IfNode,
        defaulttags.NowNode,
        defaulttags.RegroupNode,
        defaulttags.ResetCycleNode,
        defaulttags.SpacelessNode,
        defaulttags.TemplateTagNode,
        defaulttags.VerbatimNode,
        defaulttags.WidthRatioNode,
        defaulttags.WithNode,
    ]
)

HTML_FIELDS = frozenset(["body_html"])

_INVALID_TAG = re.compile(r"Invalid block tag on line \d+: '([^']+)'")
_INVALID_FILTER = re.compile(r"Invalid filter: '([^']+)'")


class _SafeEngine(Engine):
    # Django's Engine always adds its default builtins (every default tag and filter, and
    # {% include %}/{% extends %}); this one knows only ``register`` below.
    default_builtins = []


@functools.cache
def _engine(autoescape):
    return _SafeEngine(
        dirs=[],
        app_dirs=False,
        loaders=[],
        libraries={},
        builtins=[__name__],
        autoescape=autoescape,
        debug=False,
        string_if_invalid="",
    )


def _label(field):
    from .models import MessageTemplate

    try:
        return str(MessageTemplate._meta.get_field(field).verbose_name)
    except Exception:
        return field


def _unsafe(field, what):
    return TemplateSafetyError(
        _("%(field)s: %(what)s is not allowed in message templates.") % {"field": _label(field), "what": what}
    )


# --- walking a compiled template ---------------------------------------------------------


def iter_nodes(nodelist):
    """Every node of ``nodelist``, depth first, through every child node list (the
    branches of ``if``, the loop and ``empty`` of ``for``...)."""
    for node in nodelist:
        yield node
        if isinstance(node, defaulttags.IfNode):
            children = [child for _condition, child in node.conditions_nodelists]
        else:
            children = [getattr(node, attr, None) for attr in node.child_nodelists]
        for child in children:
            if child:
                yield from iter_nodes(child)


def _expressions(value, depth=0):
    """FilterExpressions and Variables held by a node's attributes (including the parsed
    conditions of ``{% if %}``), without descending into other nodes."""
    if depth > 50 or isinstance(value, (Node, NodeList, str, bytes, int, float, bool, type(None))):
        return
    if isinstance(value, (FilterExpression, Variable)):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _expressions(item, depth + 1)
    elif isinstance(value, (list, tuple, set, frozenset)):
        for item in value:
            yield from _expressions(item, depth + 1)
    elif isinstance(value, TokenBase):
        yield from _expressions([value.value, value.first, value.second], depth + 1)


def _node_expressions(node):
    for value in vars(node).values():
        yield from _expressions(value)


def _variables(expression):
    """The Variables of an expression: its own and its filters' arguments."""
    if isinstance(expression, Variable):
        yield expression
        return
    if isinstance(expression.var, Variable):
        yield expression.var
    for _func, args in expression.filters:
        for is_lookup, arg in args:
            if is_lookup and isinstance(arg, Variable):
                yield arg


def _check(template, field):
    for node in iter_nodes(template.nodelist):
        if type(node) not in ALLOWED_NODES:
            raise _unsafe(field, type(node).__name__)
        if field in HTML_FIELDS and isinstance(node, defaulttags.AutoEscapeControlNode) and not node.setting:
            raise TemplateSafetyError(
                _(
                    "%(field)s: {%% autoescape off %%} is not allowed: it would let text a customer "
                    "typed (a name, an address) inject HTML into the email."
                )
                % {"field": _label(field)}
            )
        for expression in _node_expressions(node):
            if isinstance(expression, FilterExpression):
                for func, _args in expression.filters:
                    name = getattr(func, "_filter_name", getattr(func, "__name__", "?"))
                    if name not in ALLOWED_FILTERS or register.filters.get(name) is not func:
                        raise _unsafe(field, _("the filter |%(name)s") % {"name": name})
            for variable in _variables(expression):
                for bit in variable.lookups or ():
                    if bit.startswith("_"):
                        raise _unsafe(field, _("the name %(name)r") % {"name": variable.var})


def printed_lookups(template):
    """Set of the dotted names a compiled template prints with ``{{ ... }}`` (filters
    aside): ``{{ shop.postal_address|linebreaksbr }}`` gives "shop.postal_address"."""
    printed = set()
    for node in iter_nodes(template.nodelist):
        if isinstance(node, VariableNode) and isinstance(node.filter_expression.var, Variable):
            lookups = node.filter_expression.var.lookups
            if lookups:
                printed.add(".".join(lookups))
    return printed


def used_names(template):
    """Set of the context names a compiled template refers to (first part of each lookup),
    so a renderer builds only what a template shows."""
    names = set()
    for node in iter_nodes(template.nodelist):
        for expression in _node_expressions(node):
            for variable in _variables(expression):
                if variable.lookups:
                    names.add(variable.lookups[0])
    return names


# --- public API ----------------------------------------------------------------------------


@functools.lru_cache(maxsize=1024)
def _compile(source, field):
    html = field in HTML_FIELDS
    try:
        template = _engine(html).from_string(source)
    except TemplateSyntaxError as exc:
        message = str(exc)
        tag = _INVALID_TAG.search(message)
        if tag:
            name = tag.group(1)
            if name in defaulttags.register.tags or name in ("block", "extends", "include", "trans", "translate"):
                raise _unsafe(field, "{%% %s %%}" % name) from exc
            raise CampaignError(
                _("%(field)s: unknown tag {%% %(tag)s %%}.") % {"field": _label(field), "tag": name}
            ) from exc
        filter_name = _INVALID_FILTER.search(message)
        if filter_name:
            name = filter_name.group(1)
            if name in defaultfilters.register.filters:
                raise _unsafe(field, _("the filter |%(name)s") % {"name": name}) from exc
            raise CampaignError(
                _("%(field)s: unknown filter |%(name)s.") % {"field": _label(field), "name": name}
            ) from exc
        if "may not begin with underscores" in message:
            raise _unsafe(field, _("a name starting with an underscore")) from exc
        raise CampaignError(
            _("%(field)s: template error: %(error)s") % {"field": _label(field), "error": message}
        ) from exc
    _check(template, field)
    template.journeys_autoescape = html
    template.journeys_names = frozenset(used_names(template))
    template.journeys_printed = frozenset(printed_lookups(template))
    return template


def compile_template(source, *, field):
    """Compile ``source`` (the value of MessageTemplate field ``field``) safely.

    ``body_html`` is escaped when rendered, every other field is plain text. Raises
    TemplateSafetyError for a forbidden tag, filter or name, CampaignError for any other
    template error; both name the field. Compiled templates are cached by source."""
    return _compile(source or "", field)


def render_compiled(template, context):
    """Render a template from ``compile_template`` against a dict of primitives."""
    return template.render(Context(context, autoescape=template.journeys_autoescape))


def freeze(value):
    """A read-only copy of a context value: dicts become mapping proxies and lists tuples,
    so no template lookup can change the context or call a mutating method."""
    if isinstance(value, dict):
        return types.MappingProxyType({key: freeze(item) for key, item in value.items()})
    if isinstance(value, (list, tuple)):
        return tuple(freeze(item) for item in value)
    return value


TEXT_FIELDS = ("subject", "body_text", "body_html", "short_text")


def _missing_in_email_body(template):
    """What a compiled email body lacks of what every marketing email must carry: an
    unsubscribe link and the sender's postal address (CAN-SPAM; the EU's ePrivacy rules
    want the sender identifiable). A list of error messages, empty when nothing is missing."""
    missing = []
    if "unsubscribe_url" not in template.journeys_names:
        missing.append(
            _("Every marketing email must carry an unsubscribe link: add {{ unsubscribe_url }} to this body.")
        )
    if "shop.postal_address" not in template.journeys_printed:
        missing.append(
            _(
                "Every marketing email must show the shop's postal address: add {{ shop.postal_address }} "
                "to this body."
            )
        )
    return missing


def validate_message_template(template):
    """Check a MessageTemplate: each field compiles safely, and the fields its channel's kind
    needs are there (email: a subject, a text or HTML body, and in every body given
    ``{{ unsubscribe_url }}`` and the shop's postal address, ``{{ shop.postal_address }}``;
    SMS and push: the short text). Raises ValidationError by field."""
    errors = {}
    compiled = {}
    for field in TEXT_FIELDS:
        source = getattr(template, field, "") or ""
        if not source.strip():
            continue
        try:
            compiled[field] = compile_template(source, field=field)
        except CampaignError as exc:
            errors[field] = [str(exc)]
    kind = template.channel.kind if template.channel_id else None
    if kind == "email":
        if not (template.subject or "").strip():
            errors.setdefault("subject", [_("An email needs a subject.")])
        if not (template.body_text or "").strip() and not (template.body_html or "").strip():
            errors.setdefault("body_text", [_("An email needs a text or an HTML body (better both).")])
        for field in ("body_text", "body_html"):
            missing = _missing_in_email_body(compiled[field]) if field in compiled else []
            if missing:
                errors[field] = missing
    elif kind in ("sms", "push") and not (template.short_text or "").strip():
        errors.setdefault("short_text", [_("SMS and push messages need the short text.")])
    if errors:
        raise ValidationError(errors)
