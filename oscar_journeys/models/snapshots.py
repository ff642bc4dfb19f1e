"""Daily feature snapshots: the timeline approach, one row per customer and day, kept for
every day so that a model can train on features as they were in the past.

The feature columns mirror ``oscar_journeys.ml.schema.FEATURES``; a test checks that the
two agree. The segment and prediction columns hold ``schema.SCORES`` (``next_order_days``
stored as the date ``next_order_date``) and the version of the training run that scored
the row."""

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .segments import RFM_SEGMENT_CHOICES, STAGE_CHOICES
from .timeline import Customer

# ``schema.SCORES`` name -> the Snapshot field that stores it, where the two differ.
STORED_AS = {"next_order_days": "next_order_date"}


class Snapshot(models.Model):
    id = models.BigAutoField(primary_key=True)
    customer = models.ForeignKey(
        Customer, on_delete=models.CASCADE, related_name="snapshots", verbose_name=_("customer")
    )
    as_of = models.DateField(_("as of"))
    computed_at = models.DateTimeField(_("computed at"), default=timezone.now)

    tenure_days = models.FloatField(_("tenure (days)"), null=True)
    frequency = models.IntegerField(_("orders"), default=0)
    monetary = models.FloatField(_("total spent"), default=0)
    avg_order_value = models.FloatField(_("average order value"), null=True)
    recency_days = models.FloatField(_("days since last order"), null=True)
    first_order_days = models.FloatField(_("days since first order"), null=True)
    avg_days_between_orders = models.FloatField(_("average days between orders"), null=True)
    orders_90d = models.IntegerField(_("orders in 90 days"), default=0)
    revenue_90d = models.FloatField(_("spent in 90 days"), default=0)
    days_since_last_engagement = models.FloatField(_("days since last engagement"), null=True)
    product_views_30d = models.IntegerField(_("product views in 30 days"), default=0)
    basket_additions_30d = models.IntegerField(_("basket additions in 30 days"), default=0)
    searches_30d = models.IntegerField(_("searches in 30 days"), default=0)
    logins_30d = models.IntegerField(_("log-ins in 30 days"), default=0)
    open_basket_value = models.FloatField(_("open basket value"), default=0)
    cancellations = models.IntegerField(_("cancelled orders"), default=0)
    returns = models.IntegerField(_("returned lines"), default=0)
    messages_opened_90d = models.IntegerField(_("messages opened in 90 days"), default=0)
    messages_clicked_90d = models.IntegerField(_("messages clicked in 90 days"), default=0)
    favourite_category = models.CharField(_("favourite category"), max_length=255, blank=True)
    favourite_categories = models.JSONField(_("favourite categories"), default=list, blank=True)

    # Segments and predictions (``schema.SCORES``), written by the nightly chain; empty / NULL
    # on rows it has not scored.
    lifecycle_stage = models.CharField(_("lifecycle stage"), max_length=16, blank=True, db_default="", choices=STAGE_CHOICES)
    rfm_score = models.CharField(_("RFM score"), max_length=3, blank=True, db_default="")
    rfm_segment = models.CharField(_("RFM segment"), max_length=24, blank=True, db_default="", choices=RFM_SEGMENT_CHOICES)
    micro_segment = models.PositiveIntegerField(_("micro-segment"), null=True, blank=True)
    churn_probability = models.FloatField(_("churn probability"), null=True, blank=True)
    prob_alive = models.FloatField(_("probability still active"), null=True, blank=True)
    expected_orders = models.FloatField(_("expected orders (CLV horizon)"), null=True, blank=True)
    clv = models.FloatField(_("expected lifetime value"), null=True, blank=True)
    next_order_date = models.DateField(_("expected next order"), null=True, blank=True)
    training_run = models.PositiveIntegerField(_("scored by training run"), null=True, blank=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("snapshot")
        verbose_name_plural = _("snapshots")
        ordering = ["-as_of"]
        constraints = [
            models.UniqueConstraint(fields=["customer", "as_of"], name="oscar_journeys_snapshot_unique_day")
        ]
        indexes = [models.Index(fields=["as_of", "customer"], name="oscar_journeys_snap_day")]

    def __str__(self):
        return f"{self.customer_id} @ {self.as_of}"
