"""The customer 360 page: profile, identifiers, account, merges, the timeline of events,
the snapshot features over time and the latest segments and predictions, on one admin page.

Reached at ``admin/oscar_journeys/customer/<id>/360/`` (``CustomerAdmin.get_urls``); the
permission checks happen there. Every query here is bounded: one page of events, the
last ``CHART_SNAPSHOTS`` snapshots.
"""

import math

from django.apps import apps
from django.core.paginator import Paginator
from django.template.response import TemplateResponse
from django.urls import NoReverseMatch, reverse
from django.utils.formats import date_format, number_format
from django.utils.text import capfirst
from django.utils.translation import gettext_lazy as _

from ..charts import line_chart
from ..events import label
from ..ml.schema import FEATURE_NAMES
from ..models import (
    Consent,
    Customer,
    CustomerIdentifier,
    CustomerMerge,
    Decision,
    Enrollment,
    Event,
    Message,
    MicroSegment,
    Snapshot,
    TrainingRun,
)
from .segments import segment_in_words

EVENTS_PER_PAGE = 50
CAMPAIGN_ROWS = 10  # the newest enrollments, decisions and messages shown
CHART_SNAPSHOTS = 180
# The snapshot features drawn as charts, one small chart each (their scales differ).
CHART_FEATURES = (
    "monetary",
    "frequency",
    "recency_days",
    "open_basket_value",
    "days_since_last_engagement",
    "product_views_30d",
)


def user_url(user):
    """The Oscar dashboard page of ``user`` when the dashboard is installed, else its admin page."""
    if apps.is_installed("oscar.apps.dashboard.users"):
        try:
            return reverse("dashboard:user-detail", kwargs={"pk": user.pk})
        except NoReverseMatch:
            pass
    try:
        return reverse(f"admin:{user._meta.app_label}_{user._meta.model_name}_change", args=[user.pk])
    except NoReverseMatch:
        return None


def _verbose_name(name):
    return capfirst(Snapshot._meta.get_field(name).verbose_name)


def scores_context(latest):
    """The segments and predictions of the latest snapshot, as (label, text, link) rows
    (empty when the nightly chain has not scored it)."""
    if latest is None or (latest.training_run is None and not latest.lifecycle_stage):
        return {"scores": [], "scored_by": None}

    def percent(value):
        return "–" if value is None else f"{number_format(value * 100, decimal_pos=0)} %"

    def number(value, decimals=2):
        return "–" if value is None else number_format(value, decimal_pos=decimals, force_grouping=True)

    segment_text, segment_url = "–", None
    if latest.micro_segment is not None:
        segment = MicroSegment.objects.filter(number=latest.micro_segment).first()
        if segment is None:
            segment_text = _("Segment %(number)d") % {"number": latest.micro_segment}
        else:
            segment_text = f"{segment} ({segment_in_words(segment.description)})"
            segment_url = reverse("admin:oscar_journeys_microsegment_change", args=[segment.pk])
    rfm = "–"
    if latest.rfm_segment or latest.rfm_score:
        rfm = f"{latest.get_rfm_segment_display() or '–'} ({latest.rfm_score or '–'})"
    rows = [
        (_verbose_name("lifecycle_stage"), latest.get_lifecycle_stage_display() or "–", None),
        (_("RFM segment (score)"), rfm, None),
        (_verbose_name("micro_segment"), segment_text, segment_url),
        (_verbose_name("churn_probability"), percent(latest.churn_probability), None),
        (_verbose_name("prob_alive"), percent(latest.prob_alive), None),
        (_verbose_name("expected_orders"), number(latest.expected_orders), None),
        (_verbose_name("clv"), number(latest.clv), None),
        (_verbose_name("next_order_date"), date_format(latest.next_order_date) if latest.next_order_date else "–", None),
    ]
    run = None
    if latest.training_run is not None:
        run = TrainingRun.objects.filter(version=latest.training_run).only("pk", "version", "as_of").first()
    scored_by = None
    if run is not None:
        scored_by = (str(run), reverse("admin:oscar_journeys_trainingrun_change", args=[run.pk]))
    return {"scores": rows, "scored_by": scored_by}


def snapshot_context(customer):
    snapshots = list(Snapshot.objects.filter(customer=customer).order_by("-as_of")[:CHART_SNAPSHOTS])
    snapshots.reverse()
    dates = [s.as_of for s in snapshots]
    charts = [
        line_chart(dates, [getattr(s, name) for s in snapshots], title=_verbose_name(name))
        for name in CHART_FEATURES
    ]
    latest = snapshots[-1] if snapshots else None
    features = []
    if latest is not None:
        for name in FEATURE_NAMES:
            value = getattr(latest, name)
            if isinstance(value, list):
                value = ", ".join(str(v) for v in value)
            is_number = isinstance(value, (int, float)) and not (isinstance(value, float) and math.isnan(value))
            features.append((_verbose_name(name), value if is_number or isinstance(value, str) else None, is_number))
    return {
        "charts": charts if snapshots else [],
        "latest_snapshot": latest,
        "snapshot_count": len(snapshots),
        "first_snapshot": snapshots[0] if snapshots else None,
        "features": features,
        **scores_context(latest),
    }


def timeline_context(request, customer):
    events = (
        Event.objects.filter(customer=customer)
        .select_related("product")
        .order_by("-occurred_at", "-id")
    )
    page = Paginator(events, EVENTS_PER_PAGE).get_page(request.GET.get("page"))
    return {
        "page_obj": page,
        "page_range": page.paginator.get_elided_page_range(page.number, on_each_side=2, on_ends=1),
        "event_rows": [(event, label(event.type)) for event in page],
    }


def campaigns_context(customer):
    """Consents, and the newest enrollments, decisions and messages of the customer."""
    from .delivery import EXIT_REASONS, mask_address

    messages = list(
        Message.objects.filter(customer=customer).select_related("campaign", "channel").order_by("-created_at", "-id")[
            :CAMPAIGN_ROWS
        ]
    )
    for message in messages:
        message.masked_recipient = mask_address(message.recipient)
    enrollments = list(
        Enrollment.objects.filter(customer=customer).select_related("campaign").order_by("-triggered_at", "-id")[
            :CAMPAIGN_ROWS
        ]
    )
    for enrollment in enrollments:
        enrollment.exit_label = EXIT_REASONS.get(enrollment.exit_reason, enrollment.exit_reason)
    return {
        "consents": Consent.objects.filter(customer=customer).order_by("channel_kind"),
        "enrollments": enrollments,
        "decisions": Decision.objects.filter(customer=customer)
        .select_related("campaign", "channel")
        .order_by("-decided_at", "-id")[:CAMPAIGN_ROWS],
        "campaign_messages": messages,
        "campaign_rows": CAMPAIGN_ROWS,
    }


def render(model_admin, request, customer):
    # Identifiers stay on the records merged into this one and resolve through them.
    records = [customer.pk, *Customer.objects.filter(merged_into=customer).values_list("pk", flat=True)]
    identifiers = CustomerIdentifier.objects.filter(customer_id__in=records).order_by("kind", "value")
    merges = CustomerMerge.objects.select_related("actor", "reverted_by")
    opts = model_admin.opts
    context = {
        **model_admin.admin_site.each_context(request),
        "opts": opts,
        "title": _("Customer journey: %(customer)s") % {"customer": customer},
        "subtitle": None,
        "customer": customer,
        "identifiers": identifiers,
        "user_url": user_url(customer.user) if customer.user_id else None,
        "merges_in": merges.filter(survivor=customer).select_related("merged"),
        "merges_out": merges.filter(merged=customer).select_related("survivor"),
        "can_change": model_admin.has_change_permission(request, customer),
        "events_changelist_url": reverse("admin:oscar_journeys_event_changelist"),
        **timeline_context(request, customer),
        **snapshot_context(customer),
        **campaigns_context(customer),
    }
    request.current_app = model_admin.admin_site.name
    return TemplateResponse(request, "oscar_journeys/admin/customer_360.html", context)
