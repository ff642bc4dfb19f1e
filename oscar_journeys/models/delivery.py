"""From trigger to inbox: enrollments (a customer entering a campaign on one trigger
occurrence), decisions (what was chosen at each due step, and why) and the outbox of
messages.

Idempotency rests on unique keys, not on care:
- ``Enrollment`` is unique on (campaign, customer, trigger_key): one trigger occurrence
  (this basket abandoned at this time, this order, this year's birthday) enters once;
- ``Decision`` is unique on (enrollment, step): a step is decided once;
- ``Message`` is one-to-one with its decision and has a unique ``idempotency_key``: a step
  is sent at most once, whatever retries, crashes or concurrent workers do. A message is
  claimed (queued → sending) by a conditional update before the provider is called.

These three tables take 100k rows a round, so their foreign keys have no database
constraints: each checked constraint costs a lookup and a row lock per written row (about
1.5 s at commit for 100k decisions and their messages on PostgreSQL). Integrity is kept by
the code that writes them (a decision, its message and the enrollment's advance in one
transaction, on locked enrollments) and by Django, which applies every ``on_delete`` itself
when a customer, campaign, channel or template is deleted through the ORM (tested).
Enrollments whose customer vanished anyway (deleted while a scan enrolled them) are exited
by the next round."""

import hashlib

from django.core.serializers.json import DjangoJSONEncoder
from django.db import models, transaction
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .campaigns import Campaign, MessageTemplate
from .channels import Channel
from .timeline import Customer


class Enrollment(models.Model):
    ACTIVE, COMPLETED, EXITED = "active", "completed", "exited"
    STATUS_CHOICES = [(ACTIVE, _("Active")), (COMPLETED, _("Completed")), (EXITED, _("Exited"))]

    # Both are covered by the composite indexes below (fewer indexes: faster bulk enrolment).
    # No database constraints (see the module docstring); Django applies on_delete.
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_index=False,
        db_constraint=False,
        verbose_name=_("campaign"),
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="enrollments",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    trigger_key = models.CharField(_("trigger occurrence"), max_length=128)
    triggered_at = models.DateTimeField(_("triggered at"))
    # What the trigger was about: {"basket_id": 7} / {"order_number": "100023"} / ...
    context = models.JSONField(_("context"), default=dict, blank=True, encoder=DjangoJSONEncoder)
    status = models.CharField(_("status"), max_length=16, choices=STATUS_CHOICES, default=ACTIVE)
    exit_reason = models.CharField(_("exit reason"), max_length=64, blank=True)
    held_out = models.BooleanField(_("held out"), null=True, help_text=_("Drawn at the first step; None until then."))
    next_step = models.PositiveSmallIntegerField(_("next step"), default=1)
    next_due_at = models.DateTimeField(_("next step due"), null=True, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("enrollment")
        verbose_name_plural = _("enrollments")
        ordering = ["-triggered_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["campaign", "customer", "trigger_key"], name="oscar_journeys_enrollment_unique"
            )
        ]
        indexes = [
            # What is due is looked up in DueStep, not here: no index covers a column a
            # round changes, so PostgreSQL updates a row in place (a "HOT" update, no new
            # index entries; the table keeps room for it, migration 0008).
            models.Index(fields=["customer", "campaign", "triggered_at"], name="oscar_journeys_enr_cust"),
        ]

    def __str__(self):
        return f"{self.campaign_id}:{self.customer_id}:{self.trigger_key}"

    def save(self, *args, **kwargs):
        """Save, and keep the enrollment's ``DueStep`` in step with it (``update_fields``
        naming neither the status nor the due time leaves it alone)."""
        fields = kwargs.get("update_fields")
        with transaction.atomic(using=kwargs.get("using")):
            super().save(*args, **kwargs)
            if fields is None or {"status", "next_due_at"} & set(fields):
                self.schedule()

    def schedule(self):
        """Write or delete this enrollment's ``DueStep`` after its status or due time changed."""
        if self.status == self.ACTIVE and self.next_due_at is not None:
            DueStep.objects.update_or_create(
                enrollment_id=self.pk, defaults={"customer_id": self.customer_id, "due_at": self.next_due_at}
            )
        else:
            DueStep.objects.filter(enrollment_id=self.pk).delete()


class DueStep(models.Model):
    """What is due: one row per active enrollment with a next step, holding the
    enrollment's ``next_due_at`` (and its customer, for the rounds' customer-id ranges).

    The rounds look up what is due here, in a narrow table, and not on ``Enrollment``: a
    round moves hundreds of thousands of enrollments on, and with no index on the columns it
    changes there, PostgreSQL updates an enrollment in place (measured on 2,000,000
    enrollments: 32 s with an index on the due time, 6.6 s without). Written wherever
    ``next_due_at`` or the status is: ``Enrollment.save``, the triggers' bulk enrolment, the
    round's advance and the exits (a queryset ``update()`` of either column elsewhere must
    do the same)."""

    enrollment = models.OneToOneField(
        Enrollment,
        primary_key=True,
        on_delete=models.CASCADE,
        related_name="due",
        db_constraint=False,
        verbose_name=_("enrollment"),
    )
    # The enrollment's customer, copied: a round claims a customer-id range.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    due_at = models.DateTimeField(_("due at"))

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("due step")
        verbose_name_plural = _("due steps")
        indexes = [models.Index(fields=["due_at", "customer"], name="oscar_journeys_due_at")]

    def __str__(self):
        return f"{self.enrollment_id} @ {self.due_at:%Y-%m-%d %H:%M}"


def message_idempotency_key(*, customer_id, campaign_id, step, trigger_key):
    """Deterministic key of one step sent for one trigger occurrence; also given to providers
    that accept one, so they drop a duplicate too."""
    raw = f"{customer_id}:{campaign_id}:{step}:{trigger_key}"
    return hashlib.sha256(raw.encode()).hexdigest()[:40]


class Decision(models.Model):
    """What was decided for one customer at one due step. Held-out and control customers
    are logged here too (never messaged), and attribution fills in what they bought
    afterwards, so uplift compares like with like.

    When several campaigns are due for a customer in one round, one decision is written: on
    the chosen campaign's step (send, holdout, control), or on one of them when the policy
    chose nothing; ``candidates`` lists them all. (Decisions written before 0007 have a
    "skipped, outranked" row per campaign not chosen, and a "nothing" row per due campaign;
    the reports read both forms.)"""

    SEND, HOLDOUT, CONTROL, NOTHING, SKIPPED = "send", "holdout", "control", "nothing", "skipped"
    OUTCOME_CHOICES = [
        (SEND, _("Send")),
        (HOLDOUT, _("Held out (campaign holdout)")),
        (CONTROL, _("Global control group")),
        (NOTHING, _("Nothing chosen")),
        (SKIPPED, _("Skipped")),
    ]
    # Reasons for SKIPPED.
    OUTRANKED, CAPPED, NO_CONSENT, SUPPRESSED, UNREACHABLE, EXCLUDED, NOT_IN_AUDIENCE, NOT_RUNNING = (
        "outranked",
        "capped",
        "no_consent",
        "suppressed",
        "unreachable",
        "excluded",
        "not_in_audience",
        "not_running",
    )
    REASON_CHOICES = [
        (OUTRANKED, _("Another campaign came first")),
        (CAPPED, _("Frequency cap reached")),
        (NO_CONSENT, _("No consent")),
        (SUPPRESSED, _("Address suppressed")),
        (UNREACHABLE, _("No channel reaches the customer")),
        (EXCLUDED, _("Excluded by a rule")),
        (NOT_IN_AUDIENCE, _("Not in the campaign's audience")),
        (NOT_RUNNING, _("Campaign not running")),
    ]

    # customer, campaign and channel are copies of the enrollment's, for the indexes and reports.
    customer = models.ForeignKey(
        Customer,
        on_delete=models.CASCADE,
        related_name="decisions",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    campaign = models.ForeignKey(
        Campaign,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="decisions",
        db_index=False,
        db_constraint=False,
        verbose_name=_("campaign"),
    )
    enrollment = models.ForeignKey(
        Enrollment,
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="decisions",
        db_index=False,
        db_constraint=False,
        verbose_name=_("enrollment"),
    )
    step = models.PositiveSmallIntegerField(_("step"), null=True, blank=True)
    decided_at = models.DateTimeField(_("decided at"), db_index=True)
    outcome = models.CharField(_("outcome"), max_length=16, choices=OUTCOME_CHOICES)
    reason = models.CharField(_("reason"), max_length=32, choices=REASON_CHOICES, blank=True)
    channel = models.ForeignKey(
        Channel,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("channel"),
    )
    # The campaigns chosen among for this customer in this round (ids, sorted): one decision
    # per customer and round, whatever the number of campaigns due. A campaign not chosen
    # gets no row of its own (its step moves on); it is listed here.
    candidates = models.JSONField(
        _("chosen among"), default=list, blank=True,
        help_text=_("The campaigns due for this customer in this round, among which this decision chose."),
    )
    policy = models.CharField(_("policy"), max_length=32, default="manual")
    model_version = models.CharField(_("model version"), max_length=64, blank=True)
    propensity = models.FloatField(_("propensity"), default=1.0)
    expected_value = models.FloatField(_("expected value"), null=True, blank=True)
    # Filled in by attribution: orders the customer placed within the campaign's window.
    attributed_orders = models.PositiveIntegerField(_("orders attributed"), default=0)
    attributed_value = models.DecimalField(_("value attributed"), max_digits=14, decimal_places=2, default=0)
    converted_at = models.DateTimeField(_("first order at"), null=True, blank=True)
    attribution_closed = models.BooleanField(_("attribution window closed"), default=False)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("decision")
        verbose_name_plural = _("decisions")
        ordering = ["-decided_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["enrollment", "step"], name="oscar_journeys_decision_unique")
        ]
        indexes = [
            models.Index(fields=["campaign", "outcome", "decided_at"], name="oscar_journeys_dec_campaign"),
            models.Index(fields=["customer", "decided_at"], name="oscar_journeys_dec_customer"),
            models.Index(fields=["attribution_closed", "decided_at"], name="oscar_journeys_dec_open"),
        ]

    def __str__(self):
        return f"{self.customer_id}:{self.campaign_id}:{self.step}:{self.outcome}"


class Message(models.Model):
    """The outbox: written in the same transaction as the decision to send, sent by Celery."""

    QUEUED, SENDING, SENT, FAILED, BOUNCED, CANCELLED = "queued", "sending", "sent", "failed", "bounced", "cancelled"
    STATUS_CHOICES = [
        (QUEUED, _("Queued")),
        (SENDING, _("Sending")),
        (SENT, _("Sent")),
        (FAILED, _("Failed")),
        (BOUNCED, _("Bounced")),
        (CANCELLED, _("Cancelled")),
    ]

    # A message goes with its decision (deleting a customer, campaign or enrollment deletes
    # their decisions, and so their messages); customer, campaign and enrollment are the
    # decision's, copied for the indexes and the send path.
    decision = models.OneToOneField(
        Decision, on_delete=models.CASCADE, related_name="message", db_constraint=False, verbose_name=_("decision")
    )
    customer = models.ForeignKey(
        Customer,
        on_delete=models.DO_NOTHING,
        related_name="messages",
        db_index=False,
        db_constraint=False,
        verbose_name=_("customer"),
    )
    campaign = models.ForeignKey(
        Campaign,
        on_delete=models.DO_NOTHING,
        related_name="messages",
        db_index=False,
        db_constraint=False,
        verbose_name=_("campaign"),
    )
    enrollment = models.ForeignKey(
        Enrollment,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        related_name="messages",
        db_index=False,
        db_constraint=False,
        verbose_name=_("enrollment"),
    )
    step = models.PositiveSmallIntegerField(_("step"))
    channel = models.ForeignKey(
        Channel,
        on_delete=models.PROTECT,
        related_name="messages",
        db_index=False,
        db_constraint=False,
        verbose_name=_("channel"),
    )
    template = models.ForeignKey(
        MessageTemplate,
        null=True,
        on_delete=models.SET_NULL,
        related_name="+",
        db_index=False,
        db_constraint=False,
        verbose_name=_("template"),
    )
    # Unique by a constraint, not unique=True: on PostgreSQL that would add a second
    # (text pattern) index to every insert, for LIKE queries nobody makes.
    idempotency_key = models.CharField(_("idempotency key"), max_length=64)
    recipient = models.CharField(_("recipient"), max_length=255)
    status = models.CharField(_("status"), max_length=16, choices=STATUS_CHOICES, default=QUEUED)
    send_after = models.DateTimeField(_("send after"))
    attempts = models.PositiveSmallIntegerField(_("attempts"), default=0)
    claimed_at = models.DateTimeField(_("claimed at"), null=True, blank=True)
    sent_at = models.DateTimeField(_("sent at"), null=True, blank=True)
    last_error = models.TextField(_("last error"), blank=True)
    provider_id = models.CharField(_("provider's id"), max_length=255, blank=True)
    # Tracked links, in the order they appear: [url, ...]; a click URL names the index.
    links = models.JSONField(_("links"), default=list, blank=True)
    opened_at = models.DateTimeField(_("first opened"), null=True, blank=True)
    open_count = models.PositiveIntegerField(_("opens"), default=0)
    clicked_at = models.DateTimeField(_("first clicked"), null=True, blank=True)
    click_count = models.PositiveIntegerField(_("clicks"), default=0)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("message")
        verbose_name_plural = _("messages")
        ordering = ["-created_at", "-id"]
        constraints = [models.UniqueConstraint(fields=["idempotency_key"], name="oscar_journeys_message_key")]
        indexes = [
            models.Index(fields=["status", "send_after"], name="oscar_journeys_msg_due"),
            models.Index(fields=["customer", "created_at"], name="oscar_journeys_msg_customer"),
            models.Index(fields=["campaign", "status"], name="oscar_journeys_msg_campaign"),
            # The provider's webhooks (bounces) name the message by the provider's id; a
            # queued message has none yet, so the insert of the outbox skips this index.
            models.Index(
                fields=["provider_id"], condition=~models.Q(provider_id=""), name="oscar_journeys_msg_provider"
            ),
        ]

    def __str__(self):
        return f"{self.campaign_id}:{self.customer_id}:{self.step} ({self.status})"
