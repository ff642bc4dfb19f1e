"""Consent per customer and channel type, and the suppression list.

``Consent`` is the current state for one (customer, channel kind); each change is also
recorded on the customer's timeline (``consent_granted`` / ``consent_withdrawn``), which is
the history. ``Suppression`` holds addresses (hashed) that must never be messaged again:
unsubscribed, bounced, complained, texted STOP. It is keyed on the address, not on the
customer, so it holds across merges and survives erasure of the customer."""

import hashlib

from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from .channels import KIND_CHOICES
from .timeline import Customer


def address_hash(kind, address):
    """sha256 of a normalised address (lower-cased email, E.164 phone, push token)."""
    return hashlib.sha256(f"{kind}:{address.strip().lower()}".encode()).hexdigest()


class Consent(models.Model):
    customer = models.ForeignKey(Customer, on_delete=models.CASCADE, related_name="consents", verbose_name=_("customer"))
    channel_kind = models.CharField(_("channel type"), max_length=16, choices=KIND_CHOICES)
    granted = models.BooleanField(_("granted"))
    source = models.CharField(
        _("source"), max_length=64, help_text=_("Where it was given or withdrawn: checkout, preferences, api, admin...")
    )
    wording = models.CharField(
        _("wording"), max_length=255, blank=True, help_text=_("The text or its version that the customer agreed to.")
    )
    changed_at = models.DateTimeField(_("changed"), default=timezone.now)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("consent")
        verbose_name_plural = _("consents")
        constraints = [
            models.UniqueConstraint(fields=["customer", "channel_kind"], name="oscar_journeys_consent_unique")
        ]

    def __str__(self):
        return f"{self.customer_id}:{self.channel_kind}:{'yes' if self.granted else 'no'}"


class Suppression(models.Model):
    UNSUBSCRIBED, BOUNCED, COMPLAINED, STOPPED, MANUAL, ERASED = (
        "unsubscribed",
        "bounced",
        "complained",
        "stopped",
        "manual",
        "erased",
    )
    REASON_CHOICES = [
        (UNSUBSCRIBED, _("Unsubscribed")),
        (BOUNCED, _("Hard bounce")),
        (COMPLAINED, _("Spam complaint")),
        (STOPPED, _("Replied STOP")),
        (MANUAL, _("Added by staff")),
        (ERASED, _("Customer erased")),
    ]

    channel_kind = models.CharField(_("channel type"), max_length=16, choices=KIND_CHOICES)
    address_hash = models.CharField(_("address (hashed)"), max_length=64)
    reason = models.CharField(_("reason"), max_length=16, choices=REASON_CHOICES)
    detail = models.CharField(_("detail"), max_length=255, blank=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("suppressed address")
        verbose_name_plural = _("suppression list")
        constraints = [
            models.UniqueConstraint(fields=["channel_kind", "address_hash"], name="oscar_journeys_suppression_unique")
        ]

    def __str__(self):
        return f"{self.channel_kind}:{self.address_hash[:12]}… ({self.reason})"
