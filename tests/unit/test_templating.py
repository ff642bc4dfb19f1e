"""Staff-written templates: the allow-list engine, the frozen context, and what
MessageTemplate.clean() demands (RELIABILITY 4.4 and 3.5)."""

import pytest
from django.core.exceptions import ValidationError
from django.utils import translation

from oscar_journeys.exceptions import CampaignError, TemplateSafetyError
from oscar_journeys.models import Channel, MessageTemplate
from oscar_journeys.templating import (
    ALLOWED_FILTERS,
    compile_template,
    freeze,
    render_compiled,
    used_names,
    validate_message_template,
)


def render(source, context, field="body_text"):
    return render_compiled(compile_template(source, field=field), {k: freeze(v) for k, v in context.items()})


@pytest.mark.parametrize(
    "source, tag",
    [
        ("{% load static %}{% static 'x.css' %}", "load"),
        ("{% include 'admin/base.html' %}", "include"),
        ("{% extends 'admin/base.html' %}", "extends"),
        ("{% block content %}x{% endblock %}", "block"),
        ("{% debug %}", "debug"),
        ("{% url 'admin:index' %}", "url"),
        ("{% csrf_token %}", "csrf_token"),
        ("{% lorem 3 w %}", "lorem"),
        ("{% trans 'Hello' %}", "trans"),
        ("{% if customer %}{% load i18n %}{% endif %}", "load"),
        ("{% for x in products %}{% include 'x.html' %}{% endfor %}", "include"),
        ("{% with a=1 %}{% debug %}{% endwith %}", "debug"),
    ],
)
def test_forbidden_tags_are_rejected_naming_field_and_tag(source, tag):
    with pytest.raises(TemplateSafetyError) as error:
        compile_template(source, field="body_html")
    message = str(error.value)
    assert "{%% %s %%}" % tag in message
    assert message.startswith("HTML:")  # the field's label


@pytest.mark.parametrize("name", ["pprint", "safe", "safeseq", "json_script", "urlize", "dictsort"])
def test_forbidden_filters_are_rejected(name):
    with pytest.raises(TemplateSafetyError, match=r"\|%s" % name):
        compile_template("{{ customer.first_name|%s }}" % name, field="subject")


def test_unknown_tags_and_filters_are_errors_too():
    with pytest.raises(CampaignError, match="unknown tag"):
        compile_template("{% frobnicate %}", field="body_text")
    with pytest.raises(CampaignError, match="unknown filter"):
        compile_template("{{ x|frobnicate }}", field="body_text")
    with pytest.raises(CampaignError, match="template error"):
        compile_template("{% if %}x{% endif %}", field="body_text")


@pytest.mark.parametrize(
    "source",
    [
        "{{ customer.__class__ }}",
        "{{ _private }}",
        "{% if customer._meta %}x{% endif %}",
        "{% for p in products %}{{ p|default:customer.__dict__ }}{% endfor %}",
        "{% with x=customer._state %}{{ x }}{% endwith %}",
    ],
)
def test_names_starting_with_an_underscore_are_rejected(source):
    with pytest.raises(TemplateSafetyError, match="underscore"):
        compile_template(source, field="body_text")


@pytest.mark.parametrize(
    "source",
    [
        "{{ settings.SECRET_KEY }}",
        "{{ user.password }}",
        "{{ customer.orders.all.delete }}",
        "{{ request.session }}",
        "{{ customer.email.password }}",
        "{{ customer.user.password }}",
    ],
)
def test_secrets_and_methods_render_empty(source):
    context = {"customer": {"first_name": "Ana", "email": "ana@example.com"}}
    assert render(source, context) == ""


def test_the_frozen_context_cannot_be_changed_by_a_template():
    context = {
        "customer": {"first_name": "Ana"},
        "basket": {"lines": [{"name": "Shoe"}, {"name": "Sock"}]},
    }
    frozen = {k: freeze(v) for k, v in context.items()}
    template = compile_template(
        "{{ customer.clear }}{{ customer.popitem }}{{ basket.lines.pop }}{{ basket.lines.clear }}"
        "{{ basket.lines.reverse }}{{ basket.setdefault }}",
        field="body_text",
    )
    render_compiled(template, frozen)
    assert frozen["customer"]["first_name"] == "Ana"
    assert [line["name"] for line in frozen["basket"]["lines"]] == ["Shoe", "Sock"]
    with pytest.raises(TypeError):
        frozen["customer"]["first_name"] = "Eve"


def test_html_is_escaped_and_text_is_not():
    context = {"customer": {"first_name": "<b>Ana & Co</b>"}}
    assert render("Hi {{ customer.first_name }}", context, field="body_html") == "Hi &lt;b&gt;Ana &amp; Co&lt;/b&gt;"
    assert render("Hi {{ customer.first_name }}", context, field="body_text") == "Hi <b>Ana & Co</b>"
    assert render("Hi {{ customer.first_name }}", context, field="subject") == "Hi <b>Ana & Co</b>"


def test_autoescape_off_is_refused_in_html_only():
    source = "{% autoescape off %}{{ customer.first_name }}{% endautoescape %}"
    with pytest.raises(TemplateSafetyError, match="autoescape off"):
        compile_template(source, field="body_html")
    assert render(source, {"customer": {"first_name": "<i>"}}) == "<i>"
    compile_template("{% autoescape on %}x{% endautoescape %}", field="body_html")


def test_allowed_tags_and_filters_work():
    source = (
        "{% comment %}{% load anything %}{% endcomment %}"
        "{% with name=customer.first_name|default:'friend' %}{{ name|upper }}{% endwith %}|"
        "{% for line in basket.lines %}{% cycle 'a' 'b' %}{{ line.name|lower }}x{{ line.quantity }}"
        "{% ifchanged line.name %}!{% endifchanged %}{% empty %}none{% endfor %}|"
        "{% firstof missing basket.total %}|{% widthratio 3 4 100 %}|{% filter title %}big shoe{% endfilter %}|"
        "{% regroup basket.lines by name as groups %}{{ groups|length }}|"
        "{% spaceless %}<b> x </b>  <i>y</i>{% endspaceless %}|{% templatetag openblock %}|"
        "{% verbatim %}{{ raw }}{% endverbatim %}|{{ basket.total|floatformat:2 }}|"
        "{{ basket.lines|length|pluralize:'item,items' }}|{% now 'Y' as year %}{{ year|length }}|"
        "{{ basket.lines|first|yesno:'y,n' }}|{{ customer.first_name|truncatechars:2 }}"
    )
    context = {
        "customer": {"first_name": "Ana"},
        "basket": {"lines": [{"name": "Shoe", "quantity": 2}, {"name": "Sock", "quantity": 1}], "total": 12.5},
    }
    assert render(source, context, field="body_html") == (
        "ANA|ashoex2!bsockx1!|12.5|75|Big Shoe|2|<b> x </b><i>y</i>|{%|{{ raw }}|12.50|items|4|y|A…"
    )
    assert {"add", "date", "default", "floatformat", "join", "linebreaksbr", "urlencode"} <= set(ALLOWED_FILTERS)


def test_used_names_lists_every_root_name():
    template = compile_template(
        "{% if basket.lines %}{% for r in recommendations %}{{ r.name|default:order.number }}{% endfor %}"
        "{% endif %}{% with u=unsubscribe_url %}{{ u }}{% endwith %}",
        field="body_html",
    )
    assert {"basket", "recommendations", "order", "unsubscribe_url"} <= used_names(template)
    assert "products" not in used_names(template)


# --- validate_message_template (MessageTemplate.clean) ------------------------------------------


def make(kind, **fields):
    channel = Channel(pk=1, name="c", kind=kind, backend="x")
    return MessageTemplate(channel=channel, **fields)


def errors_of(template):
    with pytest.raises(ValidationError) as error:
        validate_message_template(template)
    return error.value.message_dict


FOOTER = "{{ unsubscribe_url }} {{ shop.postal_address }}"


def test_a_complete_email_template_is_valid():
    template = make(
        "email",
        subject="Hi {{ customer.first_name }}",
        body_text="Your basket: {{ basket.restore_url }}\nUnsubscribe: {{ unsubscribe_url }}\n"
        "{{ shop.postal_address }}",
        body_html='<a href="{{ basket.restore_url }}">Back</a> <a href="{{ unsubscribe_url }}">Unsubscribe</a>'
        "<p>{{ shop.postal_address|linebreaksbr }}</p>",
    )
    validate_message_template(template)
    template.clean()  # the model hooks it in


def test_email_needs_subject_body_and_an_unsubscribe_link_in_every_body():
    assert set(errors_of(make("email"))) == {"subject", "body_text"}
    errors = errors_of(
        make("email", subject="x", body_text=FOOTER, body_html="<p>no link</p>{{ shop.postal_address }}")
    )
    assert errors == {"body_html": [
        "Every marketing email must carry an unsubscribe link: add {{ unsubscribe_url }} to this body."
    ]}
    errors = errors_of(
        make("email", subject="x", body_html="{% if 0 %}{{ unsubscribe_url }}{% endif %}{{ shop.postal_address }}",
             body_text="x {{ shop.postal_address }}")
    )
    assert list(errors) == ["body_text"]


def test_email_needs_the_postal_address_in_every_body():
    errors = errors_of(make("email", subject="x", body_text="{{ unsubscribe_url }}", body_html=FOOTER))
    assert errors == {"body_text": [
        "Every marketing email must show the shop's postal address: add {{ shop.postal_address }} to this body."
    ]}
    # Printed, not merely tested or named: an {% if %} on it, or another shop field, is not enough.
    for body in ("{% if shop.postal_address %}x{% endif %}", "{{ shop.name }}", "{{ shop }}", "shop.postal_address"):
        errors = errors_of(make("email", subject="x", body_text="{{ unsubscribe_url }} " + body))
        assert list(errors) == ["body_text"], body
    # Both missing: both said.
    assert len(errors_of(make("email", subject="x", body_text="nothing"))["body_text"]) == 2
    # SMS, push and webhooks carry no postal address.
    validate_message_template(make("sms", short_text="hi"))


def test_the_postal_address_error_is_translated():
    with translation.override("es"):
        errors = errors_of(make("email", subject="x", body_text="{{ unsubscribe_url }}"))
    assert "{{ shop.postal_address }}" in errors["body_text"][0]
    assert "must show" not in errors["body_text"][0]


def test_sms_and_push_need_the_short_text():
    assert list(errors_of(make("sms", body_text="ignored"))) == ["short_text"]
    assert list(errors_of(make("push"))) == ["short_text"]
    validate_message_template(make("sms", short_text="Your basket waits: {{ basket.restore_url }}"))
    validate_message_template(make("webhook"))


def test_unsafe_fields_are_reported_per_field():
    errors = errors_of(
        make("email", subject="{% debug %}", body_text=FOOTER, body_html="{{ x|pprint }}" + FOOTER)
    )
    assert set(errors) == {"subject", "body_html"}
    assert "{% debug %}" in errors["subject"][0]
    assert "|pprint" in errors["body_html"][0]
