"""journeys_run: parses --now, runs one round of services.loop.journeys_run, prints counts."""

import datetime as dt
from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from oscar_journeys.models import Campaign, CampaignChannel, CampaignStep, Channel, Decision, Enrollment, MessageTemplate
from oscar_journeys.models import campaigns as c

LOOP = "oscar_journeys.services.loop.journeys_run"


def run(*args):
    out = StringIO()
    call_command("journeys_run", *args, stdout=out)
    return out.getvalue()


def test_passes_the_time_and_prints_translated_counts():
    counts = {"enrolled": 3, "decisions": 2, "decisions_send": 1, "skipped_capped": 1, "sent": 1, "seconds": 0.01}
    with mock.patch(LOOP, return_value=counts) as loop:
        out = run("--now", "2025-06-30T18:00:00+00:00")
    loop.assert_called_once_with(now=dt.datetime(2025, 6, 30, 18, tzinfo=dt.timezone.utc))
    assert "New enrollments: 3" in out and "Messages sent: 1" in out
    assert "decisions: Send: 1" in out and "skipped: Frequency cap reached: 1" in out


def test_a_time_without_zone_is_local():
    with mock.patch(LOOP, return_value={}) as loop:
        run("--now", "2025-01-15T09:30")
    now = loop.call_args.kwargs["now"]
    # Europe/London in winter is UTC.
    assert now == dt.datetime(2025, 1, 15, 9, 30, tzinfo=dt.timezone.utc)


def test_a_bad_time_is_refused():
    with mock.patch(LOOP) as loop, pytest.raises(CommandError, match="--now"):
        run("--now", "tomorrow")
    loop.assert_not_called()


@pytest.mark.django_db
def test_a_real_round_with_nothing_to_do():
    out = run("--now", "2025-06-30T18:00:00+00:00")
    assert "Round at 2025-06-30T19:00:00+01:00:" in out and "New enrollments: 0" in out
    # Every count the loop returns has a label: no bare key such as "busy_shards".
    labels = [line.split(":")[0].strip() for line in out.splitlines()[1:]]
    assert labels and not [name for name in labels if "_" in name]


@pytest.mark.django_db
def test_a_real_round_sends_a_birthday_email(make_customer, settings):
    from oscar_journeys.channels import locmem
    from oscar_journeys.services.consent import consent_set

    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0
    locmem.reset()
    channel = Channel.objects.create(name="Mem", kind="email", backend="oscar_journeys.channels.locmem.LocmemChannel")
    campaign = Campaign.objects.create(
        name="Birthday", trigger=c.BIRTHDAY, holdout_percent=0, created_at=dt.datetime(2025, 6, 1, tzinfo=dt.timezone.utc)
    )
    CampaignChannel.objects.create(campaign=campaign, channel=channel)
    step = CampaignStep.objects.create(campaign=campaign, position=1, delay_value=0)
    MessageTemplate.objects.create(
        step=step, channel=channel, subject="Happy birthday {{ customer.first_name }}",
        body_text="Hi {{ customer.first_name }} {{ unsubscribe_url }}",
    )
    ann = make_customer(email="ann@example.com", first_name="Ann", date_of_birth=dt.date(1990, 6, 30))
    consent_set(customer=ann, kind="email", granted=True, source="test")

    out = run("--now", "2025-06-30T10:00:00+00:00")

    assert Enrollment.objects.filter(campaign=campaign, customer=ann).count() == 1
    assert Decision.objects.filter(campaign=campaign, outcome=Decision.SEND).count() == 1
    assert [m.to for m in locmem.outbox] == ["ann@example.com"]
    assert "New enrollments: 1" in out and "Messages sent: 1" in out
    # A second round at the same time finds nothing new and sends nothing again.
    again = run("--now", "2025-06-30T10:00:00+00:00")
    assert "New enrollments: 0" in again and len(locmem.outbox) == 1
