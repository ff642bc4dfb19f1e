"""Journeys: graphs of campaigns, and the self-optimizing policy's versions.

A journey groups campaigns and the follow-ups between them: receiving campaign A makes
campaign B (a campaign whose trigger is "follow-up in a journey") eligible ``delay_days``
later, optionally only if the customer responded to A, or only if they did not. The owner
chooses the journey's mode: manual priority (the campaign the owner ranked highest is sent)
or self-optimizing (``optimizer.JourneyPolicy`` chooses, per customer, the campaign, or
nothing, worth most, counting the follow-ups each unlocks). See docs/journeys.md."""

from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .campaigns import FOLLOW_UP, Campaign


class Journey(models.Model):
    MANUAL, OPTIMIZED = "manual", "optimized"
    MODE_CHOICES = [
        (MANUAL, _("Manual priority")),
        (OPTIMIZED, _("Self-optimizing")),
    ]

    name = models.CharField(_("name"), max_length=120, unique=True)
    description = models.TextField(_("description"), blank=True)
    active = models.BooleanField(_("active"), default=True)
    mode = models.CharField(
        _("mode"),
        max_length=16,
        choices=MODE_CHOICES,
        default=MANUAL,
        help_text=_(
            "Manual priority sends the eligible campaign you ranked highest. Self-optimizing sends, "
            "to each customer, the campaign (or nothing) with the highest expected incremental value, "
            "counting the follow-ups it leads to, and keeps exploring."
        ),
    )
    campaigns = models.ManyToManyField(
        Campaign,
        related_name="journeys",
        blank=True,
        verbose_name=_("campaigns"),
        help_text=_("The campaigns a customer can enter the journey by; follow-ups join through the follow-up rows."),
    )
    discount = models.FloatField(
        _("follow-up discount"),
        default=0.8,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text=_("How much a follow-up's expected value counts, per step, next to the campaign's own (0 to 1)."),
    )
    depth = models.PositiveSmallIntegerField(
        _("look-ahead"),
        default=2,
        validators=[MinValueValidator(0), MaxValueValidator(5)],
        help_text=_("How many follow-up steps ahead the value of a campaign counts."),
    )
    exploration = models.FloatField(
        _("exploration share"),
        default=0.02,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text=_("Least share of decisions spread at random over the options, so that learning never stops."),
    )
    holdout = models.FloatField(
        _("hold-out share"),
        default=0.02,
        validators=[MinValueValidator(0.0), MaxValueValidator(0.5)],
        help_text=_(
            "Share of this journey's customers chosen for a campaign who are held out at random (sent "
            "nothing): the clean comparison group for measuring uplift and learning."
        ),
    )
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("journey")
        verbose_name_plural = _("journeys")
        ordering = ["name"]

    def __str__(self):
        return self.name


class FollowUp(models.Model):
    ANY, RESPONDED, NOT_RESPONDED = "any", "responded", "not_responded"
    CONDITION_CHOICES = [
        (ANY, _("Always")),
        (RESPONDED, _("Only if the customer responded (clicked or ordered)")),
        (NOT_RESPONDED, _("Only if the customer did not respond")),
    ]

    journey = models.ForeignKey(Journey, on_delete=models.CASCADE, related_name="follow_ups", verbose_name=_("journey"))
    campaign = models.ForeignKey(
        Campaign, on_delete=models.CASCADE, related_name="follow_up_links", verbose_name=_("after campaign")
    )
    follow_up = models.ForeignKey(
        Campaign,
        on_delete=models.CASCADE,
        related_name="preceded_by",
        limit_choices_to={"trigger": FOLLOW_UP},
        verbose_name=_("follow-up campaign"),
    )
    delay_days = models.PositiveSmallIntegerField(
        _("after days"), default=7, help_text=_("Days after the first campaign was sent.")
    )
    condition = models.CharField(_("condition"), max_length=16, choices=CONDITION_CHOICES, default=ANY)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("follow-up")
        verbose_name_plural = _("follow-ups")
        ordering = ["journey", "campaign", "delay_days"]
        constraints = [
            models.UniqueConstraint(fields=["journey", "campaign", "follow_up"], name="oscar_journeys_follow_up_unique")
        ]

    def __str__(self):
        return gettext("%(campaign)s, then %(follow_up)s after %(days)d days") % {
            "campaign": self.campaign, "follow_up": self.follow_up, "days": self.delay_days,
        }

    def clean(self):
        errors = {}
        if self.campaign_id and self.campaign_id == self.follow_up_id:
            errors["follow_up"] = gettext("A campaign cannot be its own follow-up.")
        elif self.follow_up_id and self.follow_up.trigger != FOLLOW_UP:
            errors["follow_up"] = gettext(
                "“%(name)s” is not a follow-up campaign: set its trigger to “Follow-up in a journey”."
            ) % {"name": self.follow_up}
        if errors:
            raise ValidationError(errors)


class PolicyVersion(models.Model):
    """One fit of the self-optimizing policy, kept with what it learned from: the decision
    rounds of self-optimizing journeys use the latest succeeded one."""

    RUNNING, SUCCEEDED, FAILED = "running", "succeeded", "failed"
    STATUS_CHOICES = [(RUNNING, _("Running")), (SUCCEEDED, _("Succeeded")), (FAILED, _("Failed"))]

    version = models.PositiveIntegerField(_("version"), unique=True)
    status = models.CharField(_("status"), max_length=16, choices=STATUS_CHOICES, default=RUNNING)
    started_at = models.DateTimeField(_("started"), default=timezone.now)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    learned_until = models.DateTimeField(
        _("learned from decisions until"), null=True, blank=True,
        help_text=_("Decisions made up to this time, with their attribution window closed, are in this version."),
    )
    outcomes = models.PositiveIntegerField(_("decisions learned from"), default=0)
    # [{"campaign_id", "n_treated", "n_control", "uplift", "uplift_sd", "leaves"}, ...]
    summary = models.JSONField(_("what it learned"), default=list, blank=True)
    artifact = models.BinaryField(_("fitted policy"), null=True, blank=True, editable=False)
    error = models.TextField(_("error"), blank=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("policy version")
        verbose_name_plural = _("policy versions")
        ordering = ["-version"]

    def __str__(self):
        return gettext("Policy version %(version)d") % {"version": self.version}
