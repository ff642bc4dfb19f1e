import hashlib
import secrets

from django.core.exceptions import ValidationError
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext_lazy as _


# Events the shop records itself carry the source "oscar": a source of that name would share
# their idempotency keys.
RESERVED_NAMES = ("oscar",)


def hash_token(token):
    return hashlib.sha256(token.encode()).hexdigest()


class EventSource(models.Model):
    """A system other than the shop that sends events through the API (a POS, an app, a
    marketplace). Its name is stored on each event it sends; only a hash of its token is
    kept, and the token is shown once, when it is created."""

    name = models.SlugField(
        _("name"), max_length=64, unique=True, help_text=_("Stored on each event it sends, e.g. 'pos' or 'app'.")
    )
    token_hash = models.CharField(_("token hash"), max_length=64, unique=True, editable=False)
    token_prefix = models.CharField(_("token starts with"), max_length=8, editable=False)
    is_active = models.BooleanField(_("active"), default=True)
    created_at = models.DateTimeField(_("created"), default=timezone.now)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True)

    class Meta:
        app_label = "oscar_journeys"
        verbose_name = _("event source")
        verbose_name_plural = _("event sources")

    def __str__(self):
        return self.name

    def clean(self):
        if self.name in RESERVED_NAMES:
            raise ValidationError(
                {"name": _("%(name)r is the name of the shop's own events; choose another name.") % {"name": self.name}}
            )

    def set_new_token(self):
        """Give the source a new token and return it (it is not stored in clear)."""
        token = secrets.token_urlsafe(32)
        self.token_hash = hash_token(token)
        self.token_prefix = token[:8]
        return token

    @classmethod
    def for_token(cls, token):
        return cls.objects.filter(token_hash=hash_token(token), is_active=True).first()
