"""The campaign report pages of the admin (figures in ``report_figures.py``; what each
figure means: docs/reports.md).

- ``admin/oscar_journeys/campaign/<id>/report/`` (``admin:oscar_journeys_campaign_report``):
  one campaign, with a date range, its figures, the uplift over its holdout with the
  confidence intervals, and per-day charts.
- ``admin/oscar_journeys/campaign/report/`` (``admin:oscar_journeys_campaign_overview``):
  every campaign's figures in one table, and the global control group's comparison.

Both need the *view campaign* permission."""

import datetime as dt

from django import forms
from django.conf import settings
from django.core.exceptions import PermissionDenied
from django.shortcuts import get_object_or_404
from django.template.response import TemplateResponse
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from ..charts import line_chart
from ..models import Campaign, Decision, Message
from .report_figures import CONFIDENCE, campaign_figures, control_group_figures, daily_series

DEFAULT_DAYS = 30
MAX_DAYS = 366


class RangeForm(forms.Form):
    start = forms.DateField(label=_("From"), required=False, widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(
        label=_("To (included)"), required=False, widget=forms.DateInput(attrs={"type": "date"})
    )

    def clean(self):
        data = super().clean()
        start, end = data.get("start"), data.get("end")
        if start and end:
            if end < start:
                raise forms.ValidationError(_("The end of the range comes before its start."))
            if (end - start).days + 1 > MAX_DAYS:
                raise forms.ValidationError(_("Choose at most %(days)d days.") % {"days": MAX_DAYS})
        return data


def date_range(request, *, today=None):
    """(form, first day, last day, start, end): the days chosen (the last DEFAULT_DAYS by
    default, in the shop's time zone) and the instants [start, end) that cover them."""
    today = today or timezone.localdate()
    form = RangeForm(request.GET if request.GET else None)
    first, last = today - dt.timedelta(days=DEFAULT_DAYS - 1), today
    if form.is_bound and form.is_valid():
        last = form.cleaned_data["end"] or last
        first = form.cleaned_data["start"] or last - dt.timedelta(days=DEFAULT_DAYS - 1)
        if first > last:
            first = last
    tz = timezone.get_current_timezone()
    start = timezone.make_aware(dt.datetime.combine(first, dt.time.min), tz)
    end = timezone.make_aware(dt.datetime.combine(last + dt.timedelta(days=1), dt.time.min), tz)
    if not form.is_bound:
        form = RangeForm(initial={"start": first, "end": last})
    return form, first, last, start, end


def verdict(uplift):
    """"up", "down" or "unclear" from an interval; "none" without one."""
    if not uplift or uplift.get("low") is None:
        return "none"
    if uplift["low"] > 0:
        return "up"
    if uplift["high"] < 0:
        return "down"
    return "unclear"


def percent(value):
    return None if value is None else value * 100


def uplift_row(uplift, *, scale=1):
    """The numbers a template shows for one uplift, scaled (100 for percentage points)."""
    def scaled(key):
        return None if uplift.get(key) is None else uplift[key] * scale

    return {
        "estimate": scaled("estimate"),
        "low": scaled("low"),
        "high": scaled("high"),
        "verdict": verdict(uplift),
    }


def figures_context(figures):
    incremental = figures.incremental_revenue
    return {
        "fig": figures,
        "open_rate": percent(figures.open_rate),
        "click_rate": percent(figures.click_rate),
        "treated_rate": percent(figures.treated.conversion_rate),
        "control_rate": percent(figures.control.conversion_rate),
        "conversion": uplift_row(figures.conversion_uplift, scale=100),
        "revenue": uplift_row(figures.revenue_uplift),
        "incremental": {**incremental, "verdict": verdict(incremental)},
        "statuses": [(label, figures.statuses.get(code, 0)) for code, label in Message.STATUS_CHOICES],
        "skipped": [
            (dict(Decision.REASON_CHOICES).get(reason, reason or "-"), count)
            for reason, count in sorted(figures.skipped.items(), key=lambda item: -item[1])
        ],
    }


def _base_context(model_admin, request, title):
    return {
        **model_admin.admin_site.each_context(request),
        "opts": model_admin.opts,
        "title": title,
        "subtitle": None,
        "confidence": round(CONFIDENCE * 100),
        "currency": getattr(settings, "OSCAR_DEFAULT_CURRENCY", ""),
    }


CHART_SERIES = (("sent", _("Sent")), ("opened", _("Opened")), ("clicked", _("Clicked")), ("converted", _("Converted")))


def report_view(model_admin):
    """The report of one campaign, bound to the campaign admin."""

    def view(request, object_id):
        campaign = get_object_or_404(Campaign, pk=object_id)
        if not model_admin.has_view_permission(request, campaign):
            raise PermissionDenied
        form, first, last, start, end = date_range(request)
        figures = campaign_figures(campaign_ids=[campaign.pk], start=start, end=end)[campaign.pk]
        days, series = daily_series(campaign_id=campaign.pk, start=start, end=end)
        context = {
            **_base_context(model_admin, request, _("Report: %(campaign)s") % {"campaign": campaign}),
            "campaign": campaign,
            "form": form,
            "first_day": first,
            "last_day": last,
            "charts": [line_chart(days, series[key], title=label) for key, label in CHART_SERIES],
            **figures_context(figures),
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "admin/oscar_journeys/campaign/report.html", context)

    return view


def overview_view(model_admin):
    """Every campaign's figures and the global control group, bound to the campaign admin."""

    def view(request):
        if not model_admin.has_view_permission(request):
            raise PermissionDenied
        form, first, last, start, end = date_range(request)
        campaigns = list(Campaign.objects.order_by("-active", "-priority", "name"))
        figures = campaign_figures(campaign_ids=[c.pk for c in campaigns], start=start, end=end)
        control = control_group_figures(start=start, end=end)
        context = {
            **_base_context(model_admin, request, _("Campaign reports")),
            "form": form,
            "first_day": first,
            "last_day": last,
            "rows": [(campaign, figures_context(figures[campaign.pk])) for campaign in campaigns],
            "control": control,
            "control_rate": percent(control.control.conversion_rate),
            "others_rate": percent(control.others.conversion_rate),
            "control_conversion": uplift_row(control.conversion_uplift, scale=100),
            "control_revenue": uplift_row(control.revenue_uplift),
        }
        request.current_app = model_admin.admin_site.name
        return TemplateResponse(request, "admin/oscar_journeys/campaign/overview.html", context)

    return view
