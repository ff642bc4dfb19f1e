"""Building blocks for the decision, delivery and attribution tests: channels, campaigns
with steps and templates, enrollments made directly (no trigger scan)."""

import datetime as dt

import pandas as pd

from oscar_journeys.models import (
    Campaign,
    CampaignChannel,
    CampaignStep,
    Channel,
    Consent,
    DueStep,
    Enrollment,
    MessageTemplate,
)
from oscar_journeys.models import campaigns as c
from oscar_journeys.services.triggers.base import insert_enrollments

LOCMEM = "oscar_journeys.channels.locmem.LocmemChannel"
LOCMEM_SMS = "oscar_journeys.channels.locmem.LocmemSmsChannel"
BACKENDS = [LOCMEM, LOCMEM_SMS]

TEXT = "Hello {{ customer.first_name }}, see https://shop.example.com/offer/ - {{ unsubscribe_url }}"
HTML = '<p>Hello {{ customer.first_name }} <a href="https://shop.example.com/offer/">offer</a></p>' \
       '<p><a href="{{ unsubscribe_url }}">unsubscribe</a></p>'


def make_channel(name="Email", *, kind="email", backend=LOCMEM, options=None, **fields):
    return Channel.objects.create(name=name, kind=kind, backend=backend, options=options or {}, **fields)


def make_campaign(name="Cart", *, channels, trigger=c.CART_ABANDONED, steps=((1, "hours"),), priority=50,
                  holdout_percent=0, templates=True, **fields):
    """A campaign with ``steps`` ((delay, unit), ...), ``channels`` in order, and (with
    ``templates``) a template per step and channel."""
    campaign = Campaign.objects.create(
        name=name, trigger=trigger, priority=priority, holdout_percent=holdout_percent, **fields
    )
    for order, channel in enumerate(channels):
        CampaignChannel.objects.create(campaign=campaign, channel=channel, order=order)
    for position, (value, unit) in enumerate(steps, start=1):
        step = CampaignStep.objects.create(campaign=campaign, position=position, delay_value=value, delay_unit=unit)
        if templates:
            for channel in channels:
                MessageTemplate.objects.create(
                    step=step, channel=channel, subject=f"{name} step {position}", body_text=TEXT, body_html=HTML,
                    short_text="{{ campaign.name }}: hi {{ customer.first_name }}",
                )
    return campaign


def enroll(campaign, customer, *, due, triggered_at=None, step=1, key=None, context=None):
    triggered_at = triggered_at or due - dt.timedelta(hours=1)
    return Enrollment.objects.create(
        campaign=campaign, customer=customer, trigger_key=key or f"test:{customer.pk}:{triggered_at.timestamp()}",
        triggered_at=triggered_at, next_step=step, next_due_at=due, context=context or {},
    )


def enroll_all(campaign, customers, *, due, key="k"):
    """Enroll every customer at once, due at ``due``, through the triggers' bulk insert."""
    ids = [customer.pk for customer in customers]
    rows = pd.DataFrame({
        "customer_id": ids, "trigger_key": key, "triggered_at": pd.Timestamp(due), "context": "{}",
        "next_due_at": pd.Timestamp(due),
    })
    return insert_enrollments(rows, campaign_id=campaign.pk, now=due)


def assert_due_steps_follow_enrollments():
    """Every active enrollment with a next step has its due step, at its due time, and no
    other enrollment has one."""
    expected = Enrollment.objects.filter(status=Enrollment.ACTIVE, next_due_at__isnull=False)
    assert set(DueStep.objects.values_list("enrollment_id", "customer_id", "due_at")) == set(
        expected.values_list("id", "customer_id", "next_due_at")
    )


def consent(customer, kind="email", granted=True):
    Consent.objects.update_or_create(
        customer=customer, channel_kind=kind, defaults={"granted": granted, "source": "test"}
    )
    return customer
