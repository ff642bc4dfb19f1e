"""Segments and predictions in the admin: target groups (the rule builder, its live count
and preview), the training runs with their metrics (read-only) and the micro-segments
(named by the shop owner, described in words)."""

import json

from django import forms
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import Count
from django.http import JsonResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.formats import date_format, number_format
from django.utils.html import format_html, format_html_join
from django.utils.text import capfirst
from django.utils.translation import gettext, ngettext
from django.utils.translation import gettext_lazy as _
from django.views.decorators.http import require_POST

from ..events import event_types
from ..ml import audience
from ..ml.audience import AudienceError
from ..models import Customer, MicroSegment, TargetGroup, TrainingRun
from ..services.target_groups import PREVIEW_ROWS, target_fields, target_group_count, target_group_preview
from .common import ReadOnlyAdminMixin, customer_360_url
from .rule_builder import RuleBuilderWidget, column_label, describe_rules, field_words, value_labels, value_text


def segment_in_words(description):
    """A micro-segment's description (``[{"feature", "level"}, ...]``, most distinctive
    first) in words: "High orders in 90 days, low days since last order"."""
    parts = []
    for item in description or []:
        words = field_words(item.get("feature", ""))
        template = _("high %(feature)s") if item.get("level") == "high" else _("low %(feature)s")
        parts.append(str(template % {"feature": words}))
    return capfirst(", ".join(parts)) if parts else gettext("Close to the average customer")


# --- target groups --------------------------------------------------------------------------


def _rules_in_words(rules):
    try:
        return describe_rules(rules, fields=audience.TARGET_FIELDS, events=event_types())
    except AudienceError as error:
        return gettext("Not valid: %(error)s") % {"error": error.translate(gettext)}


@admin.register(TargetGroup)
class TargetGroupAdmin(admin.ModelAdmin):
    list_display = ("name", "active", "conditions", "last_count", "last_counted_at", "campaign_count")
    list_filter = ("active",)
    search_fields = ("name", "description")
    fields = ("name", "description", "rules", "active", "last_count", "last_counted_at")
    readonly_fields = ("last_count", "last_counted_at")
    actions = ("count_members",)

    def get_queryset(self, request):
        return super().get_queryset(request).annotate(campaigns_count=Count("campaigns"))

    def formfield_for_dbfield(self, db_field, request, **kwargs):
        if db_field.name == "rules":
            kwargs["widget"] = RuleBuilderWidget(
                fields=audience.TARGET_FIELDS, events=True, count_url=reverse("admin:oscar_journeys_targetgroup_count")
            )
        return super().formfield_for_dbfield(db_field, request, **kwargs)

    @admin.display(description=_("conditions (all of them)"))
    def conditions(self, obj):
        return _rules_in_words(obj.rules)

    @admin.display(description=_("campaigns"), ordering="campaigns_count")
    def campaign_count(self, obj):
        return obj.campaigns_count

    @admin.action(description=_("Count the members of the selected target groups"), permissions=["view"])
    def count_members(self, request, queryset):
        now = timezone.now()
        for group in queryset:
            try:
                count = target_group_count(group=group, now=now)
            except AudienceError as error:
                self.message_user(request, f"{group}: {error.translate(gettext)}", messages.ERROR)
                continue
            self.message_user(
                request,
                ngettext("%(group)s: %(count)s member.", "%(group)s: %(count)s members.", count)
                % {"group": group, "count": number_format(count, force_grouping=True)},
                messages.SUCCESS,
            )

    def get_urls(self):
        view = self.admin_site.admin_view(require_POST(self.count_view))
        return [path("count/", view, name="oscar_journeys_targetgroup_count"), *super().get_urls()]

    def count_view(self, request):
        """The live count and preview of the rules posted (``rules``: their JSON; ``group``:
        the group being edited, whose count is kept when these are its saved rules).
        Answers JSON: ``count``, ``summary``, ``columns`` and ``rows`` (the first customers,
        only to staff who may see customers), or ``error`` with status 400."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        try:
            rules = json.loads(request.POST.get("rules") or "[]")
        except ValueError:
            return JsonResponse({"error": gettext("The rules are not valid JSON.")}, status=400)
        try:
            fields = target_fields(rules)
        except AudienceError as error:
            return JsonResponse({"error": error.translate(gettext)}, status=400)
        group = None
        group_id = request.POST.get("group", "")
        if group_id.isdigit() and self.has_change_permission(request):
            group = TargetGroup.objects.filter(pk=int(group_id)).first()
            if group is not None and group.rules != rules:
                group = None
        preview = target_group_preview(rules=rules, now=timezone.now(), limit=PREVIEW_ROWS, group=group)
        summary = ngettext(
            "%(count)s customer meets these conditions now.", "%(count)s customers meet these conditions now.",
            preview.count,
        ) % {"count": number_format(preview.count, force_grouping=True)}
        if preview.snapshot_day is not None:
            summary += " " + gettext("Behaviour, segments and predictions as of the snapshots of %(day)s.") % {
                "day": date_format(preview.snapshot_day)
            }
        answer = {"count": preview.count, "summary": summary, "columns": [], "rows": []}
        if request.user.has_perm(f"{Customer._meta.app_label}.view_customer"):
            answer.update(self._preview_rows(preview.frame, fields))
        return JsonResponse(answer)

    def _preview_rows(self, frame, fields):
        names = list(frame.columns)
        labels = value_labels(set(names))
        customers = Customer.objects.in_bulk([int(pk) for pk in frame.index])
        rows = []
        for pk, values in zip(frame.index, frame.itertuples(index=False, name=None)):
            customer = customers.get(int(pk))
            rows.append({
                "url": customer_360_url(int(pk)),
                "name": str(customer) if customer is not None else f"#{pk}",
                "values": [value_text(value, labels.get(name)) for name, value in zip(names, values)],
            })  # fmt: skip
        return {"columns": [str(column_label(fields[name])) for name in names], "rows": rows}


# --- training runs --------------------------------------------------------------------------

# The metrics of a run as the admin shows them: key, label, decimals.
METRICS = (
    ("churn_auc", _("churn AUC"), 3),
    ("recency_auc", _("AUC of the recency rule (same split)"), 3),
    ("churn_brier", _("churn Brier score"), 4),
    ("churn_base_rate", _("churn base rate"), 3),
    ("churn_train_rows", _("churn training rows"), 0),
    ("churn_test_rows", _("churn test rows"), 0),
    ("clv_orders_mae", _("CLV holdout error: orders per buyer (MAE)"), 3),
    ("clv_value_mae", _("CLV holdout error: value per buyer (MAE)"), 2),
    ("clv_orders_predicted", _("CLV holdout: orders predicted"), 1),
    ("clv_orders_actual", _("CLV holdout: orders that happened"), 1),
    ("clv_holdout_rows", _("CLV holdout: buyers compared"), 0),
    ("segments", _("micro-segments"), 0),
    ("silhouette", _("silhouette"), 3),
    ("customers", _("customers"), 0),
    ("buyers", _("buyers"), 0),
    ("seconds", _("seconds"), 1),
)
METRIC_LABELS = {key: (label, decimals) for key, label, decimals in METRICS}


def metric_text(metrics, key):
    value = (metrics or {}).get(key)
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return "–" if value is None else str(value)
    decimals = METRIC_LABELS.get(key, (None, 3))[1]
    return number_format(value, decimal_pos=decimals, force_grouping=decimals == 0)


def _metric_column(key):
    label = METRIC_LABELS[key][0]

    @admin.display(description=label)
    def column(self, obj):
        return metric_text(obj.metrics, key)

    return column


@admin.register(TrainingRun)
class TrainingRunAdmin(ReadOnlyAdminMixin, admin.ModelAdmin):
    list_display = (
        "version", "as_of", "status", "started_at", "customers",
        "churn_auc", "recency_auc", "churn_brier", "clv_value_mae", "segments", "silhouette",
    )  # fmt: skip
    list_filter = ("status",)
    date_hierarchy = "as_of"
    fields = ("version", "as_of", "status", "started_at", "finished_at", "customers", "metrics_table",
              "parameters", "skipped", "error")  # fmt: skip
    readonly_fields = fields

    churn_auc = _metric_column("churn_auc")
    recency_auc = _metric_column("recency_auc")
    churn_brier = _metric_column("churn_brier")
    clv_value_mae = _metric_column("clv_value_mae")
    segments = _metric_column("segments")
    silhouette = _metric_column("silhouette")

    class Media:
        css = {"all": ["oscar_journeys/admin/rule_builder.css"]}

    def get_queryset(self, request):
        return super().get_queryset(request).defer("artifact")

    @admin.display(description=_("metrics"))
    def metrics_table(self, obj):
        known = [key for key, _label, _decimals in METRICS if key in (obj.metrics or {})]
        others = sorted(set(obj.metrics or {}) - set(known))
        if not known and not others:
            return "–"
        rows = [(METRIC_LABELS[key][0], metric_text(obj.metrics, key)) for key in known]
        rows += [(key, metric_text(obj.metrics, key)) for key in others]
        return format_html(
            '<table class="journeys-metrics"><tbody>{}</tbody></table>',
            format_html_join("", "<tr><th scope='row'>{}</th><td>{}</td></tr>", ((capfirst(k), v) for k, v in rows)),
        )

    @admin.display(description=_("fitted parameters"))
    def parameters(self, obj):
        params = {key: value for key, value in (obj.params or {}).items() if key != "skipped"}
        return format_html("<pre>{}</pre>", json.dumps(params, indent=2, sort_keys=True)) if params else "–"

    @admin.display(description=_("models not fitted (why)"))
    def skipped(self, obj):
        skipped = (obj.params or {}).get("skipped") or {}
        if not skipped:
            return "–"
        return format_html("<ul>{}</ul>", format_html_join("", "<li>{}: {}</li>", sorted(skipped.items())))


# --- micro-segments -------------------------------------------------------------------------


class MicroSegmentForm(forms.ModelForm):
    class Meta:
        model = MicroSegment
        fields = ("name",)


@admin.register(MicroSegment)
class MicroSegmentAdmin(admin.ModelAdmin):
    form = MicroSegmentForm
    list_display = ("number", "name", "in_words", "size", "active", "last_run")
    list_display_links = ("number",)
    list_editable = ("name",)
    list_filter = ("active",)
    search_fields = ("name",)
    fields = ("number", "name", "in_words", "size", "active", "centre", "first_run", "last_run")
    readonly_fields = ("number", "in_words", "size", "active", "centre", "first_run", "last_run")

    def get_queryset(self, request):
        related = ("first_run", "last_run")
        return super().get_queryset(request).select_related(*related).defer(*(f"{r}__artifact" for r in related))

    def has_add_permission(self, request):
        return False  # the nightly training finds them

    def has_delete_permission(self, request, obj=None):
        return False  # their numbers stay stable across trainings

    @admin.display(description=_("in words"))
    def in_words(self, obj):
        return segment_in_words(obj.description)

    @admin.display(description=_("centre (average of its customers)"))
    def centre(self, obj):
        if not obj.centroid:
            return "–"
        return format_html(
            '<table class="journeys-metrics"><tbody>{}</tbody></table>',
            format_html_join(
                "", "<tr><th scope='row'>{}</th><td>{}</td></tr>",
                ((capfirst(field_words(name)), value_text(value)) for name, value in obj.centroid.items()),
            ),
        )  # fmt: skip
