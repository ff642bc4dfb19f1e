"""Building blocks for the decision, delivery and attribution tests: channels, campaigns
with steps and templates, enrollments made directly (no trigger scan)."""

import datetime as dt

from oscar_journeys.models import (
    Campaign,
    CampaignChannel,
    CampaignStep,
    Channel,
    Consent,
    Enrollment,
    MessageTemplate,
)
from oscar_journeys.models import campaigns as c

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


def consent(customer, kind="email", granted=True):
    Consent.objects.update_or_create(
        customer=customer, channel_kind=kind, defaults={"granted": granted, "source": "test"}
    )
    return customer
