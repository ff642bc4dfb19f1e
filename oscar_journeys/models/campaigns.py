"""Campaigns as the shop owner configures them: what triggers them, who gets them, their
steps (a series: reminders, follow-ups), one template per step and channel, and the rules
that hold across campaigns (frequency caps, exclusions)."""

import datetime

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .channels import KIND_CHOICES, Channel
from .segments import STAGE_CHOICES

CART_ABANDONED = "cart_abandoned"
POST_PURCHASE = "post_purchase"
BIRTHDAY = "birthday"
WIN_BACK = "win_back"
BROWSE_ABANDONED = "browse_abandoned"
SCHEDULED = "scheduled"
STAGE_CHANGED = "stage_changed"
FOLLOW_UP = "follow_up"
TRIGGER_CHOICES = [
    (CART_ABANDONED, _("Cart abandoned")),
    (POST_PURCHASE, _("After a purchase")),
    (BIRTHDAY, _("Birthday")),
    (WIN_BACK, _("Win-back (no order for a while)")),
    (BROWSE_ABANDONED, _("Browse abandoned (viewed without buying)")),
    (SCHEDULED, _("Scheduled send to an audience")),
    (STAGE_CHANGED, _("Lifecycle stage changed (e.g. became at risk)")),
    (FOLLOW_UP, _("Follow-up in a journey (after another campaign)")),
]

RECUR_NONE, RECUR_DAILY, RECUR_WEEKLY, RECUR_MONTHLY = "", "daily", "weekly", "monthly"
RECURRENCE_CHOICES = [
    (RECUR_NONE, _("Once")),
    (RECUR_DAILY, _("Every day")),
    (RECUR_WEEKLY, _("Every week")),
    (RECUR_MONTHLY, _("Every month")),
]


class Campaign(models.Model):
    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    trigger = models.CharField(_("trigger"), max_length=32, choices=TRIGGER_CHOICES)
    active = models.BooleanField(_("active"), default=True)
    priority = models.PositiveSmallIntegerField(
        _("priority"),
        default=50,
        help_text=_("When several campaigns are due for one customer at once, the highest priority is sent."),
    )
    holdout_percent = models.DecimalField(
        _("holdout (%)"),
        max_digits=5,
        decimal_places=2,
        default=10,
        validators=[MinValueValidator(0), MaxValueValidator(100)],
        help_text=_("Share of the customers it triggers for who, at random, get nothing: the baseline for uplift."),
    )
    audience = models.JSONField(
        _("audience"),
        default=list,
        blank=True,
        help_text=_(
            'Conditions every recipient meets, on the snapshot features, e.g. '
            '[{"field": "frequency", "op": ">=", "value": 1}]. Empty: everyone.'
        ),
    )
    target_group = models.ForeignKey(
        "oscar_journeys.TargetGroup",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="campaigns",
        verbose_name=_("target group"),
        help_text=_("Only members of this target group receive it (besides the audience conditions)."),
    )
    channels = models.ManyToManyField(
        Channel,
        through="CampaignChannel",
        related_name="campaigns",
        verbose_name=_("channels"),
        blank=True,
    )
    send_window_start = models.TimeField(
        _("send from"), null=True, blank=True, help_text=_("Customer's local time; messages due earlier wait.")
    )
    send_window_end = models.TimeField(
        _("send until"), null=True, blank=True, help_text=_("Customer's local time; messages due later wait until the next day.")
    )
    starts_at = models.DateTimeField(_("starts"), null=True, blank=True)
    ends_at = models.DateTimeField(_("ends"), null=True, blank=True)
    attribution_days = models.PositiveSmallIntegerField(
        _("attribution window (days)"),
        null=True,
        blank=True,
        help_text=_("Orders within this many days of a message count for it. Empty: OSCAR_JOURNEYS_ATTRIBUTION_DAYS."),
    )
    reentry_days = models.PositiveSmallIntegerField(
        _("re-entry after (days)"),
        default=7,
        help_text=_("A customer enters this campaign again only this many days after their last entry."),
    )

    # --- trigger options (each applies to the triggers its help text names) ---
    min_basket_value = models.DecimalField(
        _("minimum basket value"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("Cart abandoned: only baskets worth at least this much."),
    )
    min_order_value = models.DecimalField(
        _("minimum order value"),
        max_digits=12,
        decimal_places=2,
        null=True,
        blank=True,
        help_text=_("After a purchase: only orders worth at least this much."),
    )
    products = models.ManyToManyField(
        "catalogue.Product",
        blank=True,
        related_name="+",
        verbose_name=_("products"),
        help_text=_("After a purchase / browse abandoned: only when one of these products was bought or viewed."),
    )
    categories = models.ManyToManyField(
        "catalogue.Category",
        blank=True,
        related_name="+",
        verbose_name=_("categories"),
        help_text=_("After a purchase / browse abandoned: only when a product of these categories was bought or viewed."),
    )
    days_before_birthday = models.PositiveSmallIntegerField(
        _("days before the birthday"), default=0, help_text=_("Birthday: how many days before it to send.")
    )
    days_without_order = models.PositiveSmallIntegerField(
        _("days without an order"), null=True, blank=True, help_text=_("Win-back: days since the last order.")
    )
    min_past_orders = models.PositiveSmallIntegerField(
        _("minimum past orders"), default=1, help_text=_("Win-back: only customers with at least this many orders.")
    )
    lifecycle_stage = models.CharField(
        _("lifecycle stage"),
        max_length=16,
        blank=True,
        choices=STAGE_CHOICES,
        help_text=_("Lifecycle stage changed: the stage the customer enters."),
    )
    send_at = models.DateTimeField(
        _("send at"), null=True, blank=True, help_text=_("Scheduled: the first (or only) send.")
    )
    recurrence = models.CharField(
        _("repeat"), max_length=16, choices=RECURRENCE_CHOICES, blank=True, default=RECUR_NONE
    )

    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("campaign")
        verbose_name_plural = _("campaigns")
        ordering = ["-priority", "name"]

    def __str__(self):
        return self.name

    def clean(self):
        errors = {}
        if self.starts_at and self.ends_at and self.ends_at <= self.starts_at:
            errors["ends_at"] = _("The end must come after the start.")
        if (self.send_window_start is None) != (self.send_window_end is None):
            errors["send_window_end"] = _("Give both ends of the send window, or neither.")
        elif self.send_window_start is not None and self.send_window_start == self.send_window_end:
            errors["send_window_end"] = _("The send window cannot start and end at the same time.")
        if self.trigger == WIN_BACK and not self.days_without_order:
            errors["days_without_order"] = _("A win-back campaign needs the number of days without an order.")
        if self.trigger == SCHEDULED and not self.send_at:
            errors["send_at"] = _("A scheduled campaign needs the time of its first send.")
        if self.trigger == STAGE_CHANGED and not self.lifecycle_stage:
            errors["lifecycle_stage"] = _("A lifecycle-stage campaign needs the stage customers enter.")
        if self.trigger != SCHEDULED and self.recurrence:
            errors["recurrence"] = _("Only scheduled campaigns repeat.")
        if self.audience:
            from ..ml.audience import AudienceError, validate_rules

            try:
                validate_rules(self.audience)
            except AudienceError as exc:
                errors["audience"] = exc.translate(gettext)
        if errors:
            raise ValidationError(errors)

    @property
    def attribution_window(self):
        from .. import app_settings

        return datetime.timedelta(days=self.attribution_days or app_settings.ATTRIBUTION_DAYS)

    def is_running(self, now):
        return self.active and (self.starts_at is None or self.starts_at <= now) and (
            self.ends_at is None or now < self.ends_at
        )


class CampaignChannel(models.Model):
    """A channel a campaign may use; the first one the customer can be reached on is used."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, verbose_name=_("campaign"))
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, verbose_name=_("channel"))
    order = models.PositiveSmallIntegerField(_("order"), default=0)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("campaign channel")
        verbose_name_plural = _("campaign channels")
        ordering = ["order", "id"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "channel"], name="oscar_journeys_campaign_channel_unique")
        ]

    def __str__(self):
        return f"{self.campaign} → {self.channel}"


MINUTES, HOURS, DAYS = "minutes", "hours", "days"
UNIT_CHOICES = [(MINUTES, _("minutes")), (HOURS, _("hours")), (DAYS, _("days"))]


class CampaignStep(models.Model):
    """One message of a campaign, sent ``delay`` after the trigger (reminders and series are
    several steps)."""

    campaign = models.ForeignKey(Campaign, on_delete=models.CASCADE, related_name="steps", verbose_name=_("campaign"))
    position = models.PositiveSmallIntegerField(_("step"), default=1, validators=[MinValueValidator(1)])
    delay_value = models.PositiveIntegerField(_("delay"), default=0)
    delay_unit = models.CharField(_("unit"), max_length=8, choices=UNIT_CHOICES, default=HOURS)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("campaign step")
        verbose_name_plural = _("campaign steps")
        ordering = ["campaign", "position"]
        constraints = [
            models.UniqueConstraint(fields=["campaign", "position"], name="oscar_journeys_step_unique")
        ]

    def __str__(self):
        return _("%(campaign)s, step %(position)s") % {"campaign": self.campaign, "position": self.position}

    @property
    def delay(self):
        return datetime.timedelta(**{self.delay_unit: self.delay_value})


class MessageTemplate(models.Model):
    """What one step sends on one channel, in Django's template language (a safe subset)."""

    step = models.ForeignKey(CampaignStep, on_delete=models.CASCADE, related_name="templates", verbose_name=_("step"))
    channel = models.ForeignKey(Channel, on_delete=models.PROTECT, related_name="+", verbose_name=_("channel"))
    subject = models.CharField(_("subject / title"), max_length=255, blank=True)
    body_text = models.TextField(_("text"), blank=True)
    body_html = models.TextField(_("HTML"), blank=True)
    short_text = models.CharField(_("short text (SMS, push)"), max_length=640, blank=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("message template")
        verbose_name_plural = _("message templates")
        constraints = [
            models.UniqueConstraint(fields=["step", "channel"], name="oscar_journeys_template_unique")
        ]

    def __str__(self):
        return f"{self.step} · {self.channel}"

    def clean(self):
        from ..templating import validate_message_template

        validate_message_template(self)


class FrequencyCap(models.Model):
    """At most ``max_messages`` marketing messages in ``period_days`` per customer, on one
    channel type or (blank) on all of them together."""

    channel_kind = models.CharField(_("channel type"), max_length=16, choices=KIND_CHOICES, blank=True)
    max_messages = models.PositiveSmallIntegerField(_("at most"), validators=[MinValueValidator(1)])
    period_days = models.PositiveSmallIntegerField(_("per days"), validators=[MinValueValidator(1)])
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("frequency cap")
        verbose_name_plural = _("frequency caps")

    def __str__(self):
        kind = self.get_channel_kind_display() or _("all channels")
        return _("%(kind)s: at most %(n)s in %(days)s days") % {"kind": kind, "n": self.max_messages, "days": self.period_days}


class ExclusionRule(models.Model):
    """Nothing from the chosen campaigns (all when none are chosen) to a customer who had an
    event of ``event_type`` in the last ``within_days`` days (e.g. no promotion within 14
    days of a return)."""

    name = models.CharField(_("name"), max_length=120)
    event_type = models.CharField(_("event type"), max_length=64)
    within_days = models.PositiveSmallIntegerField(_("within days"), validators=[MinValueValidator(1)])
    campaigns = models.ManyToManyField(
        Campaign, blank=True, related_name="exclusion_rules", verbose_name=_("campaigns"),
        help_text=_("Empty: every campaign."),
    )
    active = models.BooleanField(_("active"), default=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("exclusion rule")
        verbose_name_plural = _("exclusion rules")

    def __str__(self):
        return self.name

    def clean(self):
        from ..events import event_types

        if self.event_type not in event_types():
            raise ValidationError({"event_type": _("Unknown event type %(type)r.") % {"type": self.event_type}})
