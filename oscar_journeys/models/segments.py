"""Segments and predictions: the training runs that fit the nightly models, the
micro-segments they learn, and the target groups the shop owner defines.

The per-customer results (lifecycle stage, RFM, micro-segment, churn probability, CLV, next
order date) are columns of ``Snapshot``, written by the nightly chain
(``services.nightly``)."""

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _
from django.utils.translation import pgettext_lazy

from ..ml import schema

STAGE_LABELS = {
    schema.PROSPECT: _("Prospect (no order yet)"),
    schema.NEW: pgettext_lazy("lifecycle stage", "New"),
    schema.ACTIVE: pgettext_lazy("lifecycle stage", "Active"),
    schema.HIGH_VALUE: _("High value"),
    schema.AT_RISK: _("At risk"),
    schema.CHURNED: _("Churned"),
    schema.REACTIVATED: _("Reactivated"),
}
STAGE_CHOICES = list(STAGE_LABELS.items())

RFM_SEGMENT_LABELS = {
    "champions": _("Champions"),
    "loyal": _("Loyal customers"),
    "potential_loyalist": _("Potential loyalists"),
    "new_customers": _("New customers"),
    "promising": _("Promising"),
    "need_attention": _("Need attention"),
    "about_to_sleep": _("About to sleep"),
    "cannot_lose": _("Can't lose them"),
    "at_risk": _("At risk"),
    "hibernating": _("Hibernating"),
    "lost": _("Lost"),
}
RFM_SEGMENT_CHOICES = list(RFM_SEGMENT_LABELS.items())


class TrainingRun(models.Model):
    """One fit of the nightly models (lifecycle thresholds, RFM bins, micro-segments, churn
    classifier, BG/NBD and gamma-gamma), versioned, with its metrics and the fitted bundle."""

    RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
    STATUS_CHOICES = [(RUNNING, _("Running")), (SUCCEEDED, _("Succeeded")), (FAILED, _("Failed"))]

    version = models.PositiveIntegerField(_("version"), unique=True)
    as_of = models.DateField(_("as of"), help_text=_("The snapshot day the models were fitted on."))
    status = models.CharField(_("status"), max_length=16, choices=STATUS_CHOICES, default=RUNNING)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    customers = models.PositiveIntegerField(_("customers in the training sample"), default=0)
    # {"churn_auc", "churn_brier", "recency_auc", "churn_base_rate", "churn_train_rows",
    #  "churn_test_rows", "clv_orders_mae", "clv_value_mae", "clv_holdout_rows", "segments",
    #  "silhouette", ...}: see docs/segments.md
    metrics = models.JSONField(_("metrics"), default=dict, blank=True)
    # Fitted parameters people read: thresholds, RFM bins, BG/NBD and gamma-gamma parameters.
    params = models.JSONField(_("parameters"), default=dict, blank=True)
    # The fitted bundle (ml.nightly.NightlyModels), pickled: what the scoring shards load.
    artifact = models.BinaryField(_("fitted models"), null=True, blank=True, editable=False)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("training run")
        verbose_name_plural = _("training runs")
        ordering = ["-version"]

    def __str__(self):
        return _("Training run %(version)d (%(as_of)s)") % {"version": self.version, "as_of": self.as_of}


class MicroSegment(models.Model):
    """A learned micro-segment. ``number`` is its stable id: a retrained model that finds a
    cluster close to this one gives it the same number."""

    number = models.PositiveIntegerField(_("number"), unique=True)
    name = models.CharField(
        _("name"), max_length=120, blank=True, help_text=_("Your name for it; empty: the description is shown.")
    )
    # [{"feature": "orders_90d", "level": "high"|"low", "z": 1.8}, ...], most distinctive first
    description = models.JSONField(_("description"), default=list, blank=True)
    centroid = models.JSONField(_("centre"), default=dict, blank=True)  # {feature: value}
    size = models.PositiveIntegerField(_("customers"), default=0)
    active = models.BooleanField(_("in the latest model"), default=True)
    first_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("first found by"),
    )
    last_run = models.ForeignKey(
        TrainingRun, on_delete=models.SET_NULL, null=True, blank=True, related_name="+",
        verbose_name=_("last found by"),
    )

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("micro-segment")
        verbose_name_plural = _("micro-segments")
        ordering = ["number"]

    def __str__(self):
        return self.name or _("Segment %(number)d") % {"number": self.number}


class TargetGroup(models.Model):
    """Customers the shop owner defines by rules on features, segments, predictions and
    events (``ml.audience``), e.g. bought in category X in the last 30 days and churn risk
    above 0.6. A campaign may be limited to one."""

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    rules = models.JSONField(
        _("rules"), default=list, blank=True, help_text=_("Conditions every member meets (all of them).")
    )
    active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    last_count = models.PositiveIntegerField(_("members at the last count"), null=True, blank=True)
    last_counted_at = models.DateTimeField(_("last counted"), null=True, blank=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("target group")
        verbose_name_plural = _("target groups")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def clean(self):
        super().clean()
        from ..events import event_types
        from ..ml.audience import TARGET_FIELDS, AudienceError, validate_rules

        if self.rules is None:  # an emptied form field: no condition
            self.rules = []
        try:
            validate_rules(self.rules, fields=TARGET_FIELDS, events=event_types())
        except AudienceError as exc:
            raise ValidationError({"rules": exc.translate(gettext)}) from exc
