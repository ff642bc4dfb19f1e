"""The figures of the campaign reports, read from decisions and messages with a few
aggregate queries (no row per customer travels to Python). Definitions: docs/reports.md.

- ``campaign_figures(campaign_ids=..., start=..., end=...)``: per campaign, for the
  decisions taken in [start, end): decisions by outcome and reason, their messages by
  status (opened, clicked), and the uplift of the campaign over its holdout, per
  enrollment, from each enrollment's first decision ("send": treated, "holdout": control).
- ``daily_series(campaign_id=..., start=..., end=...)``: sent / opened / clicked /
  converted per day of the shop's time zone.
- ``control_group_figures(start=..., end=...)``: the global control group against the
  messaged customers."""

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field

from django.db.models import Count, F, FloatField, OuterRef, Q, Subquery, Sum
from django.db.models.functions import Cast, TruncDate
from django.utils import timezone

from ..ml.uplift import difference_in_means_from_stats, difference_in_proportions, mean_and_variance
from ..models import Decision, Message

CONFIDENCE = 0.95


@dataclass
class Group:
    """One arm of a comparison: customers (or enrollments), conversions, revenue."""

    n: int = 0
    converted: int = 0
    revenue: float = 0.0
    revenue_sq: float = 0.0
    open_windows: int = 0  # attribution windows still open: the figures may still grow

    @property
    def conversion_rate(self):
        return self.converted / self.n if self.n else None

    @property
    def revenue_per_customer(self):
        return self.revenue / self.n if self.n else None

    @property
    def revenue_variance(self):
        return mean_and_variance(self.n, self.revenue, self.revenue_sq)[1]


def compare(treated, control, *, confidence=CONFIDENCE):
    """(conversion uplift, revenue-per-customer uplift) result dicts of ml.uplift."""
    conversion = difference_in_proportions(treated.converted, treated.n, control.converted, control.n, confidence=confidence)
    revenue = difference_in_means_from_stats(
        treated_mean=treated.revenue_per_customer,
        treated_var=treated.revenue_variance,
        n_treated=treated.n,
        control_mean=control.revenue_per_customer,
        control_var=control.revenue_variance,
        n_control=control.n,
        confidence=confidence,
    )
    return conversion, revenue


@dataclass
class CampaignFigures:
    outcomes: dict = field(default_factory=lambda: defaultdict(int))  # outcome -> decisions
    skipped: dict = field(default_factory=lambda: defaultdict(int))  # reason -> decisions
    statuses: dict = field(default_factory=lambda: defaultdict(int))  # message status -> messages
    opened: int = 0
    clicked: int = 0
    treated: Group = field(default_factory=Group)
    control: Group = field(default_factory=Group)
    conversion_uplift: dict = None
    revenue_uplift: dict = None

    @property
    def sent(self):
        return self.statuses[Message.SENT] + self.statuses[Message.BOUNCED]

    @property
    def held_out(self):
        return self.outcomes[Decision.HOLDOUT]

    @property
    def converted(self):
        return self.treated.converted

    @property
    def revenue(self):
        return self.treated.revenue

    @property
    def open_rate(self):
        return self.opened / self.sent if self.sent else None

    @property
    def click_rate(self):
        return self.clicked / self.sent if self.sent else None

    @property
    def incremental_revenue(self):
        """Revenue-per-customer uplift times the treated enrollments, with its interval."""
        uplift = self.revenue_uplift or {}
        scale = self.treated.n
        return {key: None if uplift.get(key) is None else uplift[key] * scale for key in ("estimate", "low", "high")}

    @property
    def open_windows(self):
        return self.treated.open_windows + self.control.open_windows


def _aggregates(queryset):
    value = Cast("attributed_value", FloatField())
    return queryset.annotate(
        n=Count("id"),
        converted=Count("converted_at"),
        revenue=Sum(value),
        revenue_sq=Sum(value * value),
        open_windows=Count("id", filter=Q(attribution_closed=False)),
    )


def _fill(group, row):
    group.n += row["n"]
    group.converted += row["converted"]
    group.revenue += row["revenue"] or 0.0
    group.revenue_sq += row["revenue_sq"] or 0.0
    group.open_windows += row["open_windows"]


def first_decisions(campaign_ids, start, end):
    """The first decision (lowest step) of each enrollment of ``campaign_ids``, taken in
    [start, end), when it was a send or a holdout."""
    first_step = Decision.objects.filter(enrollment_id=OuterRef("enrollment_id")).order_by("step").values("step")[:1]
    return (
        Decision.objects.filter(
            campaign_id__in=campaign_ids,
            enrollment__isnull=False,
            outcome__in=(Decision.SEND, Decision.HOLDOUT),
            decided_at__gte=start,
            decided_at__lt=end,
        )
        .annotate(first_step=Subquery(first_step))
        .filter(step=F("first_step"))
    )


def campaign_figures(*, campaign_ids, start, end, confidence=CONFIDENCE):
    """{campaign_id: CampaignFigures} of the decisions taken in [start, end)."""
    figures = {cid: CampaignFigures() for cid in campaign_ids}
    in_range = {"campaign_id__in": campaign_ids, "decided_at__gte": start, "decided_at__lt": end}
    rows = Decision.objects.filter(**in_range).values("campaign_id", "outcome", "reason").annotate(n=Count("id"))
    for row in rows.order_by():
        fig = figures[row["campaign_id"]]
        fig.outcomes[row["outcome"]] += row["n"]
        if row["outcome"] == Decision.SKIPPED:
            fig.skipped[row["reason"]] += row["n"]
    messages = (
        Message.objects.filter(
            campaign_id__in=campaign_ids, decision__decided_at__gte=start, decision__decided_at__lt=end
        )
        .values("campaign_id", "status")
        .annotate(n=Count("id"), opened=Count("opened_at"), clicked=Count("clicked_at"))
    )
    for row in messages.order_by():
        fig = figures[row["campaign_id"]]
        fig.statuses[row["status"]] += row["n"]
        fig.opened += row["opened"]
        fig.clicked += row["clicked"]
    arms = _aggregates(first_decisions(campaign_ids, start, end).values("campaign_id", "outcome"))
    for row in arms.order_by():
        fig = figures[row["campaign_id"]]
        _fill(fig.treated if row["outcome"] == Decision.SEND else fig.control, row)
    for fig in figures.values():
        fig.conversion_uplift, fig.revenue_uplift = compare(fig.treated, fig.control, confidence=confidence)
    return figures


def _per_day(queryset, column, tz):
    rows = (
        queryset.filter(**{f"{column}__isnull": False})
        .annotate(day=TruncDate(column, tzinfo=tz))
        .values("day")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {row["day"]: row["n"] for row in rows}


def daily_series(*, campaign_id, start, end):
    """(days, {"sent": [...], "opened": [...], "clicked": [...], "converted": [...]}) for
    the messages and send decisions of the decisions taken in [start, end), each counted on
    the day (shop's time zone) it happened; days run from start's to end's, with zeros."""
    tz = timezone.get_current_timezone()
    first, last = timezone.localtime(start, tz).date(), timezone.localtime(end - dt.timedelta(microseconds=1), tz).date()
    days = [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]
    messages = Message.objects.filter(
        campaign_id=campaign_id, decision__decided_at__gte=start, decision__decided_at__lt=end
    )
    sends = Decision.objects.filter(
        campaign_id=campaign_id, outcome=Decision.SEND, decided_at__gte=start, decided_at__lt=end
    )
    counts = {
        "sent": _per_day(messages, "sent_at", tz),
        "opened": _per_day(messages, "opened_at", tz),
        "clicked": _per_day(messages, "clicked_at", tz),
        "converted": _per_day(sends, "converted_at", tz),
    }
    return days, {name: [per_day.get(day, 0) for day in days] for name, per_day in counts.items()}


@dataclass
class ControlFigures:
    control: Group
    others: Group
    conversion_uplift: dict
    revenue_uplift: dict


def control_group_figures(*, start, end, confidence=CONFIDENCE):
    """The global control group against the messaged customers, each customer counted once,
    by their first decision in [start, end) that was "control" or "send". The decision round
    draws both only after every rule (audience, exclusions, consent, caps, priority), so the
    two stand for "would have been sent" and differ by chance and the messages.
    See docs/reports.md."""
    eligible = Decision.objects.filter(
        decided_at__gte=start, decided_at__lt=end, outcome__in=(Decision.SEND, Decision.CONTROL)
    )
    first_id = eligible.filter(customer_id=OuterRef("customer_id")).order_by("decided_at", "id").values("id")[:1]
    firsts = eligible.annotate(first_id=Subquery(first_id)).filter(id=F("first_id"))
    control, others = Group(), Group()
    for row in _aggregates(firsts.values("outcome")).order_by():
        _fill(control if row["outcome"] == Decision.CONTROL else others, row)
    conversion, revenue = compare(others, control, confidence=confidence)
    return ControlFigures(control, others, conversion, revenue)
