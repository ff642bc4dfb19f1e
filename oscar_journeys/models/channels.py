"""Channels: the ways the shop reaches people, configured as records in the admin.

A channel names a backend (a dotted path from ``OSCAR_JOURNEYS_CHANNEL_BACKENDS``, as Django
names ``EMAIL_BACKEND``) and holds that backend's options, validated by the backend. Secret
options (passwords, API keys, signing secrets) are kept apart and never shown back."""

import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

EMAIL, SMS, PUSH, WEBHOOK = "email", "sms", "push", "webhook"
KIND_CHOICES = [(EMAIL, _("Email")), (SMS, _("SMS")), (PUSH, _("Push notification")), (WEBHOOK, _("Webhook"))]


def new_inbound_token():
    return secrets.token_urlsafe(24)


class Channel(models.Model):
    name = models.CharField(_("name"), max_length=100, unique=True)
    kind = models.CharField(_("type"), max_length=16, choices=KIND_CHOICES)
    backend = models.CharField(
        _("backend"),
        max_length=255,
        help_text=_("Dotted path of the backend class, one of OSCAR_JOURNEYS_CHANNEL_BACKENDS."),
    )
    options = models.JSONField(_("options"), default=dict, blank=True)
    secrets = models.JSONField(_("secret options"), default=dict, blank=True, editable=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    quiet_hours_start = models.TimeField(
        _("quiet hours start"),
        null=True,
        blank=True,
        help_text=_("Local time (the customer's time zone) from which nothing is sent, e.g. 21:00."),
    )
    quiet_hours_end = models.TimeField(
        _("quiet hours end"), null=True, blank=True, help_text=_("Local time at which sending resumes, e.g. 08:00.")
    )
    # Part of the URL of the channel's inbound webhook (SMS replies, bounces): rotate to revoke.
    inbound_token = models.CharField(_("inbound token"), max_length=64, default=new_inbound_token, editable=False)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("channel")
        verbose_name_plural = _("channels")
        ordering = ["name"]

    def __str__(self):
        return self.name

    def backend_class(self):
        """The backend class, or a ValidationError naming the path."""
        from .. import app_settings

        if self.backend not in app_settings.CHANNEL_BACKENDS:
            raise ValidationError(
                {"backend": _("%(path)s is not one of OSCAR_JOURNEYS_CHANNEL_BACKENDS.") % {"path": self.backend}}
            )
        try:
            return import_string(self.backend)
        except ImportError as exc:
            raise ValidationError(
                {"backend": _("Cannot import %(path)s: %(error)s") % {"path": self.backend, "error": exc}}
            ) from exc

    def get_backend(self):
        """An instance of the backend, bound to this channel (options and secrets)."""
        return self.backend_class()(self)

    def clean(self):
        cls = self.backend_class()
        if cls.kind != self.kind:
            raise ValidationError(
                {"backend": _("This backend sends %(kind)s messages, not %(wanted)s.") % {"kind": cls.kind, "wanted": self.kind}}
            )
        self.options, self.secrets = cls.validate_options(self.options, self.secrets)
        if (self.quiet_hours_start is None) != (self.quiet_hours_end is None):
            raise ValidationError(_("Give both the start and the end of the quiet hours, or neither."))
