"""The rule builder: a widget that edits a rule set (``ml.audience``) as rows of field,
operator and value (and, for target groups, event conditions), with the words the admin
shows for fields, operators and whole rule sets.

The widget is a textarea holding the JSON, enhanced by ``rule_builder.js`` (served with the
app's static files, no CDN): without JavaScript the JSON stays editable as it is. What the
script needs (fields with their labels, kinds and allowed values, operators, event types,
its texts) comes from ``builder_spec`` through ``json_script``."""

import numpy as np
import pandas as pd
from django import forms
from django.core.exceptions import FieldDoesNotExist
from django.utils.formats import number_format
from django.utils.text import capfirst
from django.utils.translation import gettext as gettext_now
from django.utils.translation import gettext_lazy as _

from ..events import event_types
from ..ml import audience, schema
from ..models import MicroSegment, Snapshot
from ..models.segments import RFM_SEGMENT_LABELS, STAGE_LABELS

CUSTOMER_FIELD_LABELS = {
    "has_account": _("has a shop account"),
    "has_email": _("email address known"),
    "has_phone": _("phone number known"),
    "age_years": _("age (years)"),
    "days_since_signup": _("days since first seen"),
    "language": _("language"),
}
OTHER_LABELS = {"next_order_days": _("days to the expected next order")}
CHOICE_LABELS = {"lifecycle_stage": STAGE_LABELS, "rfm_segment": RFM_SEGMENT_LABELS}

GROUPS = (
    ("features", _("Behaviour (latest snapshot)"), tuple(schema.FEATURES)),
    ("customer", _("Customer"), tuple(audience.CUSTOMER_FIELDS)),
    ("scores", _("Segments and predictions"), tuple(audience.SCORE_FIELDS)),
)

# Comparisons read as their signs in every language; the others in words.
OPERATOR_LABELS = {
    "==": "=",
    "!=": "≠",
    "<": "<",
    "<=": "≤",
    ">": ">",
    ">=": "≥",
    "in": _("is one of"),
    "not_in": _("is none of"),
    "contains": _("contains"),
    "is_null": _("is unknown"),
    "not_null": _("is known"),
}


def field_words(name):
    """The words for a field, to use inside a sentence (a snapshot column's verbose name,
    a customer field's label)."""
    if name in CUSTOMER_FIELD_LABELS:
        return CUSTOMER_FIELD_LABELS[name]
    if name in OTHER_LABELS:
        return OTHER_LABELS[name]
    try:
        return Snapshot._meta.get_field(name).verbose_name
    except FieldDoesNotExist:  # a field only a caller knows
        return name


def field_label(name):
    """The words for a field, as a label."""
    return capfirst(field_words(name))


def event_count_label(counted):
    """The words for an event condition's count (``audience.EventCount``)."""
    params = {"event": event_types().get(counted.type, counted.type), "days": counted.within_days,
              "category": counted.category}  # fmt: skip
    if counted.category:
        return _("Number of “%(event)s” in %(category)s in the last %(days)s days") % params
    return _("Number of “%(event)s” in the last %(days)s days") % params


def column_label(field):
    """The header of a preview column: the field's or the event count's words."""
    return event_count_label(field.event) if field.event else field_label(field.name)


def micro_segment_choices():
    return [(segment.number, str(segment)) for segment in MicroSegment.objects.order_by("number")]


def value_text(value, labels=None):
    """A value as the admin shows it: choices by their labels, numbers localised (at most
    three decimals), yes / no, lists joined; missing values as a dash."""
    if isinstance(value, (list, tuple, np.ndarray)):
        return ", ".join(value_text(item, labels) for item in value) or "–"
    if value is None or value is pd.NA or (isinstance(value, (float, np.floating)) and np.isnan(value)):
        return "–"
    if isinstance(value, (bool, np.bool_)):
        return gettext_now("yes") if value else gettext_now("no")
    if isinstance(value, np.generic):
        value = value.item()
    if labels and value in labels:
        return str(labels[value])
    if isinstance(value, float):
        return number_format(round(value, 3))
    if isinstance(value, int):
        return number_format(value)
    return str(value)


def value_labels(names):
    """{field name: {value: label}} for the fields among ``names`` whose values have labels."""
    labels = {name: CHOICE_LABELS[name] for name in names if name in CHOICE_LABELS}
    if "micro_segment" in names:
        labels["micro_segment"] = dict(micro_segment_choices())
    return labels


def describe_rules(rules, *, fields=None, events=None):
    """A rule set in words, e.g. "Churn probability > 0.6 and Number of “Ordered a
    product” in Shoes in the last 30 days ≥ 1"; raises ``audience.AudienceError``."""
    checked = audience.validate_rules(rules, fields=fields, events=events)
    if not checked:
        return gettext_now("Everyone")
    labels = value_labels({field.name for field, _op, _value in checked})
    parts = []
    for field, op, value in checked:
        words = [str(column_label(field)), str(OPERATOR_LABELS[op.code])]
        if op.takes != "none":
            words.append(value_text(value, labels.get(field.name)))
        parts.append(" ".join(words))
    return gettext_now(" and ").join(parts)


def builder_spec(*, fields, events=False):
    """What the builder's script needs: the fields (by group) with their labels, kinds and
    choices, the operators, the event types (``events``: offer event conditions) and texts."""
    groups = []
    for code, title, names in GROUPS:
        items = []
        for name in names:
            field = fields.get(name)
            if field is None:
                continue
            labels = CHOICE_LABELS.get(name, {})
            choices = [[value, str(labels.get(value, value))] for value in field.choices]
            if name == "micro_segment":
                choices = [[number, text] for number, text in micro_segment_choices()]
            items.append({"name": name, "label": str(field_label(name)), "kind": field.kind, "choices": choices})
        if items:
            groups.append({"code": code, "label": str(title), "fields": items})
    operators = {
        code: {"label": str(OPERATOR_LABELS[code]), "kinds": sorted(op.kinds), "takes": op.takes}
        for code, op in audience.OPERATORS.items()
    }
    spec = {"groups": groups, "operators": operators, "texts": {key: str(text) for key, text in TEXTS.items()}}
    if events:
        types = sorted(event_types().items(), key=lambda item: str(item[1]))
        spec["events"] = [[code, str(label)] for code, label in types]
        spec["event_operators"] = list(audience.EVENT_OPERATORS)
        spec["max_days"] = audience.MAX_EVENT_DAYS
    return spec


TEXTS = {
    "field": _("field"),
    "operator": _("operator"),
    "value": _("value"),
    "event": _("event"),
    "category": _("category"),
    "add_field": _("Add a condition"),
    "add_event": _("Add an event condition"),
    "remove": _("Remove"),
    "edit_json": _("Edit as JSON"),
    "edit_rows": _("Edit as conditions"),
    "bad_json": _("The rules are not valid JSON; edit them as text."),
    "everyone": _("No condition: everyone."),
    "any_category": _("any category"),
    "in_the_last": _("in the last"),
    "days": _("days"),
    "count": _("number of events"),
    "yes": _("yes"),
    "no": _("no"),
    "list_help": _("separate values with commas"),
    "counting": _("Counting…"),
    "count_failed": _("The count failed; try again."),
    "customer": _("Customer"),
    "no_members": _("No customer meets these conditions."),
}


class RuleBuilderWidget(forms.Textarea):
    """A rule-set textarea with the builder on top. ``fields``: the fields offered
    (``audience.FIELDS`` or ``TARGET_FIELDS``); ``events``: offer event conditions;
    ``count_url``: where the live count and preview are asked for (POST, JSON)."""

    template_name = "oscar_journeys/admin/widgets/rule_builder.html"

    class Media:
        css = {"all": ["oscar_journeys/admin/rule_builder.css"]}
        js = ["oscar_journeys/admin/rule_builder.js"]

    def __init__(self, *, fields=None, events=False, count_url=None, attrs=None):
        super().__init__(attrs={"rows": 6, "cols": 80, **(attrs or {})})
        self.fields, self.events, self.count_url = fields or audience.FIELDS, events, count_url

    def get_context(self, name, value, attrs):
        context = super().get_context(name, value, attrs)
        context["builder"] = {
            "spec": builder_spec(fields=self.fields, events=self.events),
            "spec_id": f"{context['widget']['attrs'].get('id') or name}-spec",
            "count_url": self.count_url or "",
        }
        return context
