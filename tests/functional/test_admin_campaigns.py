"""The campaign admin (form, steps and templates, actions), the template preview, the
reports, and the admin of rules, consent, suppression and delivery."""

import datetime as dt
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.contrib.messages import get_messages
from django.urls import reverse

from oscar_journeys.admin.delivery import mask_address
from oscar_journeys.ml.uplift import difference_in_means, difference_in_proportions
from oscar_journeys.models import (
    Campaign,
    CampaignChannel,
    CampaignStep,
    Channel,
    Consent,
    Decision,
    Enrollment,
    ExclusionRule,
    FrequencyCap,
    Message,
    MessageTemplate,
    Suppression,
)
from oscar_journeys.models import campaigns as c
from oscar_journeys.models.consent import address_hash

pytestmark = pytest.mark.django_db

UTC = dt.timezone.utc
DAY = dt.datetime(2025, 3, 10, 12, tzinfo=UTC)
MARCH = {"start": "2025-03-01", "end": "2025-03-31"}
LOCMEM = "oscar_journeys.channels.locmem.LocmemChannel"
GOOD_TEXT = (
    "Hi {{ customer.first_name }}, see {{ basket.restore_url }} — unsubscribe: {{ unsubscribe_url }}\n"
    "{{ shop.postal_address }}"
)


def texts(response):
    return [str(m) for m in get_messages(response.wsgi_request)]


@pytest.fixture
def channel(db):
    return Channel.objects.create(name="Mail", kind="email", backend=LOCMEM)


@pytest.fixture
def campaign(channel):
    campaign = Campaign.objects.create(name="Cart", trigger=c.CART_ABANDONED, holdout_percent=Decimal("10"))
    CampaignChannel.objects.create(campaign=campaign, channel=channel)
    step = CampaignStep.objects.create(campaign=campaign, position=1, delay_value=1)
    MessageTemplate.objects.create(step=step, channel=channel, subject="Your basket", body_text=GOOD_TEXT)
    return campaign


def management_form(prefix, total=0, initial=0):
    return {
        f"{prefix}-TOTAL_FORMS": str(total),
        f"{prefix}-INITIAL_FORMS": str(initial),
        f"{prefix}-MIN_NUM_FORMS": "0",
        f"{prefix}-MAX_NUM_FORMS": "1000",
    }


def campaign_post(**fields):
    data = {
        "name": "Win them back",
        "trigger": c.WIN_BACK,
        "active": "on",
        "priority": "50",
        "holdout_percent": "10",
        "audience": "[]",
        "days_before_birthday": "0",
        "min_past_orders": "1",
        "reentry_days": "7",
        "recurrence": "",
        **management_form("campaignchannel_set"),
        **management_form("steps"),
    }
    data.update(fields)
    return data


# --- every new admin page loads ----------------------------------------------------------


@pytest.fixture
def one_of_each(campaign, channel, make_customer):
    customer = make_customer(email="ann@example.com")
    enrollment = Enrollment.objects.create(campaign=campaign, customer=customer, trigger_key="k", triggered_at=DAY)
    decision = Decision.objects.create(
        customer=customer, campaign=campaign, enrollment=enrollment, step=1, decided_at=DAY, outcome=Decision.SEND
    )
    message = Message.objects.create(
        decision=decision, customer=customer, campaign=campaign, enrollment=enrollment, step=1, channel=channel,
        idempotency_key="key-1", recipient="ann@example.com", send_after=DAY, status=Message.SENT,
    )  # fmt: skip
    return {
        "campaign": campaign,
        "campaignstep": campaign.steps.get(),
        "channel": channel,
        "frequencycap": FrequencyCap.objects.create(channel_kind="email", max_messages=1, period_days=1),
        "exclusionrule": ExclusionRule.objects.create(name="Returns", event_type="order_line_returned", within_days=14),
        "consent": Consent.objects.create(customer=customer, channel_kind="email", granted=True, source="checkout"),
        "suppression": Suppression.objects.create(
            channel_kind="email", address_hash=address_hash("email", "x@example.com"), reason="bounced"
        ),
        "enrollment": enrollment,
        "decision": decision,
        "message": message,
    }


@pytest.mark.parametrize(
    "model",
    [
        "campaign",
        "campaignstep",
        "channel",
        "frequencycap",
        "exclusionrule",
        "consent",
        "suppression",
        "enrollment",
        "decision",
        "message",
    ],
)
def test_admin_pages_load(admin_client, one_of_each, model):
    obj = one_of_each[model]
    assert admin_client.get(reverse(f"admin:oscar_journeys_{model}_changelist")).status_code == 200
    assert admin_client.get(reverse(f"admin:oscar_journeys_{model}_change", args=[obj.pk])).status_code == 200
    add = admin_client.get(reverse(f"admin:oscar_journeys_{model}_add"))
    read_only = model in ("consent", "enrollment", "decision", "message")
    assert add.status_code == (403 if read_only else 200)


def test_campaign_list_shows_counts_and_report_link(admin_client, one_of_each):
    campaign = one_of_each["campaign"]
    response = admin_client.get(reverse("admin:oscar_journeys_campaign_changelist"))
    row = response.context["cl"].result_list[0]
    assert (row.enrolled_count, row.active_count, row.sent_count, row.held_out_count) == (1, 1, 1, 0)
    assert reverse("admin:oscar_journeys_campaign_report", args=[campaign.pk]) in response.text
    assert reverse("admin:oscar_journeys_campaign_overview") in response.text
    found = admin_client.get(reverse("admin:oscar_journeys_campaign_changelist"), {"q": "nothing"})
    assert list(found.context["cl"].result_list) == []


# --- the campaign form ---------------------------------------------------------------------


def test_campaign_validation_errors_are_clear(admin_client):
    url = reverse("admin:oscar_journeys_campaign_add")
    response = admin_client.post(
        url, campaign_post(starts_at_0="2025-05-02", starts_at_1="10:00", ends_at_0="2025-05-01", ends_at_1="10:00")
    )
    assert response.status_code == 200
    errors = response.context["adminform"].form.errors
    assert errors["days_without_order"] == ["A win-back campaign needs the number of days without an order."]
    assert errors["ends_at"] == ["The end must come after the start."]
    response = admin_client.post(url, campaign_post(days_without_order="90", audience='[{"field": "nope"}]'))
    assert "audience" in response.context["adminform"].form.errors
    assert not Campaign.objects.exists()


def test_campaign_saves_with_channels_and_steps_and_warns_what_is_missing(admin_client, channel):
    data = campaign_post(
        days_without_order="90",
        **management_form("campaignchannel_set", total=1),
        **{"campaignchannel_set-0-channel": str(channel.pk), "campaignchannel_set-0-order": "0"},
        **management_form("steps", total=2),
        **{"steps-0-position": "1", "steps-0-delay_value": "0", "steps-0-delay_unit": "hours"},
        **{"steps-1-position": "2", "steps-1-delay_value": "7", "steps-1-delay_unit": "days"},
    )
    response = admin_client.post(reverse("admin:oscar_journeys_campaign_add"), data, follow=True)
    campaign = Campaign.objects.get()
    assert [s.delay for s in campaign.steps.order_by("position")] == [dt.timedelta(0), dt.timedelta(days=7)]
    assert list(campaign.channels.all()) == [channel]
    warnings = [t for t in texts(response) if "has no template" in t]
    assert warnings == ["Step 1 has no template for Mail: customers reached only there get nothing.",
                        "Step 2 has no template for Mail: customers reached only there get nothing."]  # fmt: skip
    # The step rows link to the page where their templates are written.
    change = admin_client.get(reverse("admin:oscar_journeys_campaign_change", args=[campaign.pk]))
    step = campaign.steps.get(position=1)
    assert reverse("admin:oscar_journeys_campaignstep_change", args=[step.pk]) in change.text
    assert "0 templates: edit" in change.text
    assert reverse("admin:oscar_journeys_campaign_report", args=[campaign.pk]) in change.text


def test_duplicate_step_positions_are_refused(admin_client):
    data = campaign_post(
        days_without_order="90",
        **management_form("steps", total=2),
        **{"steps-0-position": "1", "steps-0-delay_value": "0", "steps-0-delay_unit": "hours"},
        **{"steps-1-position": "1", "steps-1-delay_value": "7", "steps-1-delay_unit": "days"},
    )
    response = admin_client.post(reverse("admin:oscar_journeys_campaign_add"), data)
    assert response.status_code == 200 and not Campaign.objects.exists()
    assert "Please correct the duplicate data for position." in response.text


def step_post(step, channel, **template):
    data = {"position": str(step.position), "delay_value": str(step.delay_value), "delay_unit": step.delay_unit}
    data.update(management_form("templates", total=1, initial=step.templates.count()))
    existing = step.templates.first()
    fields = {"channel": str(channel.pk), "subject": "", "body_text": "", "body_html": "", "short_text": ""}
    fields.update(template)
    if existing is not None:
        fields["id"] = str(existing.pk)
        fields["step"] = str(step.pk)
    data.update({f"templates-0-{name}": value for name, value in fields.items()})
    return data


def test_templates_are_validated_on_the_step_page(admin_client, campaign, channel):
    step = campaign.steps.get()
    url = reverse("admin:oscar_journeys_campaignstep_change", args=[step.pk])
    page = admin_client.get(url)
    assert page.status_code == 200 and "{{ unsubscribe_url }}" in page.text
    assert reverse("admin:oscar_journeys_campaign_preview") + "?template=" in page.text

    response = admin_client.post(url, step_post(step, channel, subject="Hi", body_text="No link here"))
    assert response.status_code == 200
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert "unsubscribe" in " ".join(errors["body_text"])
    assert "{{ shop.postal_address }}" in " ".join(errors["body_text"])

    response = admin_client.post(
        url, step_post(step, channel, subject="Hi", body_text="{% load static %}{{ unsubscribe_url }}")
    )
    errors = response.context["inline_admin_formsets"][0].formset.errors[0]
    assert "load" in " ".join(errors["body_text"])
    assert MessageTemplate.objects.get().body_text == GOOD_TEXT

    response = admin_client.post(url, step_post(step, channel, subject="New", body_text=GOOD_TEXT))
    assert response.status_code == 302
    assert response["Location"] == reverse("admin:oscar_journeys_campaign_change", args=[campaign.pk])
    assert MessageTemplate.objects.get().subject == "New"


def test_activate_deactivate_and_run_now(admin_client, campaign, django_capture_on_commit_callbacks):
    url = reverse("admin:oscar_journeys_campaign_changelist")
    admin_client.post(url, {"action": "deactivate", "_selected_action": [campaign.pk]})
    assert not Campaign.objects.get().active
    with mock.patch("oscar_journeys.tasks.journeys_tick.apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = admin_client.post(url, {"action": "run_now", "_selected_action": [campaign.pk]}, follow=True)
    assert len(callbacks) == 1 and apply_async.call_count == 1
    messages = texts(response)
    assert any("Queued one round" in m for m in messages) and any("inactive" in m and "Cart" in m for m in messages)
    admin_client.post(url, {"action": "activate", "_selected_action": [campaign.pk]})
    assert Campaign.objects.get().active


# --- the template preview --------------------------------------------------------------------


def test_preview_renders_subject_text_and_sandboxed_html(admin_client, campaign, channel, make_customer):
    ann = make_customer(email="ann@example.com", first_name="Ann", last_name="<script>alert(1)</script>")
    template = MessageTemplate.objects.get()
    template.subject = "For {{ customer.full_name }}"
    template.body_html = '<p>Hello {{ customer.first_name }} <a href="{{ unsubscribe_url }}">bye</a></p>'
    template.save()
    url = reverse("admin:oscar_journeys_campaign_preview")
    assert admin_client.get(url).status_code == 200
    chosen = admin_client.get(url, {"template": template.pk})
    assert chosen.context["form"].initial["template"] == str(template.pk) and not chosen.context["form"].errors

    response = admin_client.get(url, {"template": template.pk, "customer": "ANN@example.com"})
    assert response.status_code == 200
    outgoing = response.context["outgoing"]
    assert outgoing.subject.startswith("For Ann") and outgoing.text.startswith("Hi Ann, see ")
    assert outgoing.to == "ann@example.com" and response.context["preview_customer"] == ann
    html = response.text
    assert '<iframe class="journeys-preview-html" sandbox=""' in html
    # The HTML travels escaped inside srcdoc, never as markup of the admin page.
    assert "srcdoc=\"&lt;p&gt;Hello Ann" in html and "<p>Hello Ann" not in html
    # A customer's name is text wherever it shows (subject, text), never markup.
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html

    response = admin_client.get(url, {"template": template.pk, "customer": "nobody@example.com"})
    assert response.context["outgoing"] is None
    assert "No customer has the email, phone or id nobody@example.com." in response.text


def test_preview_needs_the_customer_permission(client, campaign):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    user.user_permissions.add(Permission.objects.get(codename="view_campaign"))
    client.force_login(user)
    url = reverse("admin:oscar_journeys_campaign_preview")
    assert client.get(url).status_code == 403
    user.user_permissions.add(Permission.objects.get(codename="view_customer"))
    user = get_user_model().objects.get(pk=user.pk)
    client.force_login(user)
    assert client.get(url).status_code == 200


# --- the reports -------------------------------------------------------------------------------


@pytest.fixture
def measured(campaign, channel, make_customer):
    """Hand-made decisions and messages with known figures (see the assertions)."""
    serial = iter(range(1, 1000))

    def decide(customer, outcome, *, step=1, enrollment=None, value="0", converted=None, when=DAY, reason=""):
        enrollment = enrollment or Enrollment.objects.create(
            campaign=campaign, customer=customer, trigger_key=f"k{next(serial)}", triggered_at=when
        )
        decision = Decision.objects.create(
            customer=customer, campaign=campaign, enrollment=enrollment, step=step, decided_at=when, outcome=outcome,
            reason=reason, attributed_value=Decimal(value), converted_at=converted, attribution_closed=True,
        )  # fmt: skip
        return enrollment, decision

    def message(decision, status=Message.SENT, sent=None, opened=None, clicked=None):
        return Message.objects.create(
            decision=decision, customer=decision.customer, campaign=campaign, enrollment=decision.enrollment,
            step=decision.step, channel=channel, idempotency_key=f"m{next(serial)}", recipient="x@example.com",
            send_after=decision.decided_at, status=status, sent_at=sent, opened_at=opened, clicked_at=clicked,
        )  # fmt: skip

    day = lambda d, h=12: dt.datetime(2025, 3, d, h, tzinfo=UTC)  # noqa: E731
    people = [make_customer() for _ in range(12)]
    # Messaged: two convert (50 and 30), two do not; one message fails.
    e1, d = decide(people[0], Decision.SEND, value="50", converted=day(11))
    message(d, sent=day(10), opened=day(10, 13), clicked=day(10, 14))
    _e, d = decide(people[1], Decision.SEND, value="30", converted=day(12))
    message(d, sent=day(10), opened=day(11))
    _e, d = decide(people[2], Decision.SEND)
    message(d, sent=day(10))
    _e, d = decide(people[3], Decision.SEND)
    message(d, status=Message.FAILED)
    # The second step of the first enrollment: a message, but not the enrollment's first decision.
    _e, d = decide(people[0], Decision.SEND, step=2, enrollment=e1, when=day(11))
    message(d, sent=day(11), opened=day(12))
    # Held out: one converts (20), two do not.
    decide(people[4], Decision.HOLDOUT, value="20", converted=day(13))
    decide(people[5], Decision.HOLDOUT)
    decide(people[6], Decision.HOLDOUT)
    # Skipped: capped (after the control draw) and outside the audience (before it).
    decide(people[7], Decision.SKIPPED, reason=Decision.CAPPED)
    decide(people[8], Decision.SKIPPED, reason=Decision.NOT_IN_AUDIENCE)
    # The global control group: one converts (10), one does not.
    decide(people[9], Decision.CONTROL, value="10", converted=day(12))
    decide(people[10], Decision.CONTROL)
    # In February: outside the range.
    _e, d = decide(people[11], Decision.SEND, value="99", converted=day(1), when=dt.datetime(2025, 2, 20, tzinfo=UTC))
    message(d, sent=dt.datetime(2025, 2, 20, tzinfo=UTC))
    return campaign


def test_campaign_report_figures(admin_client, measured):
    response = admin_client.get(reverse("admin:oscar_journeys_campaign_report", args=[measured.pk]), MARCH)
    assert response.status_code == 200
    fig = response.context["fig"]
    assert (fig.sent, fig.held_out, fig.opened, fig.clicked, fig.converted, fig.revenue) == (4, 3, 3, 1, 2, 80.0)
    assert fig.statuses[Message.FAILED] == 1 and dict(fig.skipped) == {"capped": 1, "not_in_audience": 1}
    assert (fig.treated.n, fig.treated.converted, fig.control.n, fig.control.converted) == (4, 2, 3, 1)
    assert response.context["treated_rate"] == 50.0
    assert response.context["control_rate"] == pytest.approx(100 / 3)
    assert fig.treated.revenue_per_customer == 20.0 and fig.control.revenue_per_customer == pytest.approx(20 / 3)

    expected = difference_in_proportions(2, 4, 1, 3)
    conversion = response.context["conversion"]
    assert conversion["estimate"] == pytest.approx(100 * (0.5 - 1 / 3))
    assert (conversion["low"], conversion["high"]) == pytest.approx((100 * expected["low"], 100 * expected["high"]))
    expected = difference_in_means([50, 30, 0, 0], [20, 0, 0])
    revenue = response.context["revenue"]
    assert (revenue["estimate"], revenue["low"], revenue["high"]) == pytest.approx(
        (expected["estimate"], expected["low"], expected["high"])
    )
    assert revenue["verdict"] == "unclear"  # seven customers prove nothing
    assert response.context["incremental"]["estimate"] == pytest.approx(4 * (20 - 20 / 3))

    charts = {chart.title: chart for chart in response.context["charts"]}
    assert len(response.context["charts"]) == 4 and charts["Sent"].count == 31  # a point per day of March
    html = response.text
    assert "not clear yet" in html and "<svg" in html and "Frequency cap reached" in html


def test_report_daily_series_count_each_day(measured):
    from oscar_journeys.admin.report_figures import daily_series

    start, end = dt.datetime(2025, 3, 9, 0, tzinfo=UTC), dt.datetime(2025, 3, 14, 0, tzinfo=UTC)
    days, series = daily_series(campaign_id=measured.pk, start=start, end=end)
    assert days == [dt.date(2025, 3, d) for d in range(9, 14)]
    assert series["sent"] == [0, 3, 1, 0, 0]
    assert series["opened"] == [0, 1, 1, 1, 0]
    assert series["clicked"] == [0, 1, 0, 0, 0]
    assert series["converted"] == [0, 0, 1, 1, 0]


def test_report_range_filter(admin_client, measured):
    url = reverse("admin:oscar_journeys_campaign_report", args=[measured.pk])
    fig = admin_client.get(url, {"start": "2025-02-01", "end": "2025-02-28"}).context["fig"]
    assert (fig.sent, fig.treated.n, fig.converted, fig.revenue) == (1, 1, 1, 99.0)
    assert fig.conversion_uplift["estimate"] is None  # nobody held out in February
    response = admin_client.get(url, {"start": "2025-03-10", "end": "2025-03-01"})
    assert "The end of the range comes before its start." in response.text


def test_overview_and_global_control_group(admin_client, measured):
    response = admin_client.get(reverse("admin:oscar_journeys_campaign_overview"), MARCH)
    assert response.status_code == 200
    [(campaign, row)] = response.context["rows"]
    assert campaign == measured and row["fig"].sent == 4 and row["fig"].treated.n == 4
    control = response.context["control"]
    # Each customer once, by their first "send" or "control" decision of the period.
    assert (control.control.n, control.control.converted, control.control.revenue) == (2, 1, 10.0)
    assert (control.others.n, control.others.converted, control.others.revenue) == (4, 2, 80.0)
    expected = difference_in_means([50, 30, 0, 0], [10, 0])
    assert response.context["control_revenue"]["low"] == pytest.approx(expected["low"])
    assert "What it measures" in response.text


def test_report_needs_the_view_permission(client, measured):
    user = get_user_model().objects.create_user("staff", password="pw", is_staff=True)
    client.force_login(user)
    assert client.get(reverse("admin:oscar_journeys_campaign_report", args=[measured.pk])).status_code == 403
    assert client.get(reverse("admin:oscar_journeys_campaign_overview")).status_code == 403


# --- rules, consent, suppression, delivery -----------------------------------------------------------


def test_exclusion_rule_offers_the_event_types(admin_client, campaign):
    url = reverse("admin:oscar_journeys_exclusionrule_add")
    page = admin_client.get(url)
    assert '<option value="order_line_returned">Returned a product</option>' in page.text
    response = admin_client.post(url, {"name": "R", "event_type": "nonsense", "within_days": "14"})
    assert "event_type" in response.context["adminform"].form.errors
    admin_client.post(url, {"name": "R", "event_type": "order_line_returned", "within_days": "14", "active": "on"})
    assert ExclusionRule.objects.get().event_type == "order_line_returned"


def test_suppression_is_added_by_address_and_stores_only_the_hash(admin_client):
    url = reverse("admin:oscar_journeys_suppression_add")
    response = admin_client.post(
        url, {"channel_kind": "email", "address": " Bounce@Example.com ", "reason": "manual", "detail": "asked by phone"}
    )
    assert response.status_code == 302
    suppression = Suppression.objects.get()
    assert suppression.address_hash == address_hash("email", "bounce@example.com")
    listing = admin_client.get(reverse("admin:oscar_journeys_suppression_changelist"))
    assert suppression.address_hash[:12] in listing.text and "bounce@example.com" not in listing.text.lower()
    found = admin_client.get(reverse("admin:oscar_journeys_suppression_changelist"), {"q": "BOUNCE@example.com"})
    assert list(found.context["cl"].result_list) == [suppression]
    again = admin_client.post(url, {"channel_kind": "email", "address": "bounce@example.com", "reason": "manual"})
    assert "This address is already suppressed" in again.text and Suppression.objects.count() == 1
    sms = admin_client.post(url, {"channel_kind": "sms", "address": "+44 7911 123456", "reason": "stopped"})
    assert sms.status_code == 302
    assert Suppression.objects.filter(address_hash=address_hash("sms", "+447911123456")).exists()


def test_consent_is_read_only_with_a_withdraw_action(admin_client, make_customer):
    ann = make_customer(email="ann@example.com")
    consent = Consent.objects.create(customer=ann, channel_kind="email", granted=True, source="checkout")
    url = reverse("admin:oscar_journeys_consent_changelist")
    assert [c.pk for c in admin_client.get(url, {"granted__exact": "1"}).context["cl"].result_list] == [consent.pk]
    admin_client.post(url, {"action": "withdraw", "_selected_action": [consent.pk]})
    consent.refresh_from_db()
    assert not consent.granted and consent.source == "admin"


def test_messages_show_the_recipient_masked(admin_client, one_of_each):
    message = one_of_each["message"]
    listing = admin_client.get(reverse("admin:oscar_journeys_message_changelist"), {"status__exact": "sent"})
    assert [m.pk for m in listing.context["cl"].result_list] == [message.pk]
    assert "a***@example.com" in listing.text
    page = admin_client.get(reverse("admin:oscar_journeys_message_change", args=[message.pk]))
    assert "a***@example.com" in page.text and "value=\"ann@example.com\"" not in page.text


def test_mask_address():
    assert mask_address("john@example.com") == "j***@example.com"
    assert mask_address("+447911123456") == "+44********56"
    assert mask_address("tok_abcdef") == "tok_…" and mask_address("") == ""


def test_customer_360_shows_consent_enrollments_decisions_and_messages(admin_client, one_of_each):
    message = one_of_each["message"]
    page = admin_client.get(reverse("admin:oscar_journeys_customer_360", args=[message.customer_id]))
    assert page.status_code == 200
    html = page.text
    assert "Consent and campaigns" in html and "checkout" in html  # the consent's source
    assert [e.pk for e in page.context["enrollments"]] == [one_of_each["enrollment"].pk]
    assert [d.pk for d in page.context["decisions"]] == [one_of_each["decision"].pk]
    assert reverse("admin:oscar_journeys_message_change", args=[message.pk]) in html
    assert "a***@example.com" in html
