"""journeys_setup_defaults and defaults.setup_defaults: the starter set, idempotent, valid,
in the shop's language."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.template import Context
from django.test import override_settings

from oscar_journeys import defaults
from oscar_journeys.models import (
    Campaign,
    CampaignChannel,
    CampaignStep,
    Channel,
    ExclusionRule,
    FrequencyCap,
    MessageTemplate,
)
from oscar_journeys.models import campaigns as c
from oscar_journeys.templating import compile_template, validate_message_template

pytestmark = pytest.mark.django_db

MODELS = (Channel, FrequencyCap, ExclusionRule, Campaign, CampaignChannel, CampaignStep, MessageTemplate)


def counts():
    return {model.__name__: model.objects.count() for model in MODELS}


def run(*args):
    out = StringIO()
    call_command("journeys_setup_defaults", *args, stdout=out)
    return out.getvalue()


@override_settings(DEFAULT_FROM_EMAIL="Shop <news@shop.example.com>")
def test_creates_the_starter_set_once():
    out = run()
    assert counts() == {
        "Channel": 1,
        "FrequencyCap": 2,
        "ExclusionRule": 1,
        "Campaign": 7,  # the four starter campaigns and the sample journey's three
        "CampaignChannel": 7,
        "CampaignStep": 9,
        "MessageTemplate": 9,
    }
    channel = Channel.objects.get()
    assert (channel.name, channel.kind, channel.backend) == ("Email", "email", defaults.EMAIL_BACKEND)
    assert channel.options["from_email"] == "Shop <news@shop.example.com>" and channel.enabled
    assert "Created the channel “Email”." in out and "Created the campaign “Cart abandonment”." in out

    again = run()
    assert counts()["Campaign"] == 7 and counts() == counts()
    assert "Nothing to create" in again and "Left the campaign “Birthday” alone" in again


def test_campaigns_follow_the_issue():
    defaults.setup_defaults(now=dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc))
    journey_names = [str(spec["name"]) for spec in defaults.JOURNEY["campaigns"]]
    by_trigger = {campaign.trigger: campaign for campaign in Campaign.objects.exclude(name__in=journey_names)}
    assert set(by_trigger) == {c.CART_ABANDONED, c.POST_PURCHASE, c.BIRTHDAY, c.WIN_BACK}
    delays = {
        trigger: [step.delay for step in campaign.steps.order_by("position")] for trigger, campaign in by_trigger.items()
    }
    assert delays[c.CART_ABANDONED] == [dt.timedelta(hours=1), dt.timedelta(hours=24)]
    assert delays[c.POST_PURCHASE] == [dt.timedelta(days=3), dt.timedelta(days=14)]
    assert delays[c.BIRTHDAY] == delays[c.WIN_BACK] == [dt.timedelta(0)]
    assert by_trigger[c.CART_ABANDONED].min_basket_value == 0
    assert by_trigger[c.BIRTHDAY].days_before_birthday == 0
    assert (by_trigger[c.WIN_BACK].days_without_order, by_trigger[c.WIN_BACK].min_past_orders) == (90, 1)
    assert all(campaign.active for campaign in by_trigger.values())
    caps = sorted(FrequencyCap.objects.values_list("channel_kind", "max_messages", "period_days"))
    assert caps == [("email", 1, 1), ("email", 3, 7)]
    rule = ExclusionRule.objects.get()
    assert (rule.event_type, rule.within_days, rule.campaigns.count()) == ("order_line_returned", 14, 0)


def test_templates_are_valid_and_render():
    defaults.setup_defaults()
    context = {
        "customer": {"first_name": "Ann", "email": "ann@example.com"},
        "basket": {
            "lines": [{"name": "Trail runner", "quantity": 2, "price": "45.00", "currency": "GBP", "url": "https://s/p/1/"}],
            "restore_url": "https://s/r/tok/",
        },
        "order": {"number": "100042", "lines": [{"name": "Trail runner", "url": "https://s/p/1/"}]},
        "recommendations": [{"name": "Socks", "url": "https://s/p/2/", "image_url": "", "price": "5.00"}],
        "shop": {"name": "Demo Sports", "url": "https://s/", "postal_address": "1 Example Street"},
        "unsubscribe_url": "https://s/u/tok/",
        "preferences_url": "https://s/p/tok/",
    }
    for template in MessageTemplate.objects.select_related("step__campaign", "channel"):
        validate_message_template(template)  # raises on a problem
        html = compile_template(template.body_html, field="body_html").render(Context(context))
        text = compile_template(template.body_text, field="body_text").render(Context(context, autoescape=False))
        for body in (html, text):
            assert "https://s/u/tok/" in body and "1 Example Street" in body and "Hi Ann," in body
        if template.step.campaign.trigger == c.CART_ABANDONED:
            assert "2 × Trail runner: 45.00 GBP" in text and 'href="https://s/r/tok/"' in html
        if template.step.campaign.trigger in (c.BIRTHDAY, c.WIN_BACK) or template.step.position == 1 and (
            template.step.campaign.trigger == c.POST_PURCHASE
        ):
            assert "Socks" in text and 'href="https://s/p/2/"' in html
    without_name = MessageTemplate.objects.filter(step__campaign__trigger=c.BIRTHDAY).get()
    subject = compile_template(without_name.subject, field="subject").render(Context({"customer": {}}))
    assert subject == "Happy birthday!"


def test_inactive_and_language_options():
    out = run("--inactive", "--language", "es")
    assert not Campaign.objects.filter(active=True).exists()
    assert "(inactive)" in out or "(inactiva)" in out
    # Whatever the catalogue holds, the second run finds the campaigns by trigger.
    run("--language", "pt-br")
    assert Campaign.objects.count() == 7 and Channel.objects.count() == 1


def test_existing_pieces_are_left_alone():
    channel = Channel.objects.create(
        name="Newsletter", kind="email", backend=defaults.EMAIL_BACKEND, options={"from_email": "a@b.example"}
    )
    Campaign.objects.create(name="My cart reminder", trigger=c.CART_ABANDONED)
    FrequencyCap.objects.create(channel_kind="", max_messages=2, period_days=1)
    created = defaults.setup_defaults(active=False)
    assert created["channels"] == [] and created["frequency_caps"] == []
    assert created["skipped_campaigns"] == ["Cart abandonment"] and len(created["campaigns"]) == 3 + 3
    assert set(CampaignChannel.objects.values_list("channel_id", flat=True)) == {channel.pk}
    assert Campaign.objects.filter(trigger=c.CART_ABANDONED).count() == 1


def test_unknown_language_is_refused():
    with pytest.raises(CommandError, match="xx-yy"):
        run("--language", "xx-yy")
    assert Campaign.objects.count() == 0
