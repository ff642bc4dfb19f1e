"""Authentication of event sources: ``Authorization: Token <token>`` (or ``Bearer <token>``)."""

from datetime import timedelta

from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header

from ..models import EventSource
from ..models.sources import hash_token

# last_used_at is written at most this often per source (one UPDATE, not one per request).
LAST_USED_RESOLUTION = timedelta(minutes=1)


class SourceUser:
    """``request.user`` for a request made by an event source (``request.auth`` is the
    EventSource). Authenticated, but no staff member and no shop customer. Its ``pk`` is
    distinct per source so that DRF's per-user throttles count each source apart."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False

    def __init__(self, source):
        self.source = source
        self.pk = self.id = f"journeys-source:{source.pk}"
        self.username = source.name

    def __str__(self):
        return self.username

    def has_perm(self, perm, obj=None):
        return False

    def has_perms(self, perm_list, obj=None):
        return False

    def has_module_perms(self, app_label):
        return False


class EventSourceAuthentication(TokenAuthentication):
    """DRF's token header parsing, checked against the hashed tokens of EventSource rows.
    Both ``Token`` and ``Bearer`` are accepted as the keyword."""

    keyword = "Token"
    keywords = ("Token", "Bearer")
    messages = {
        "invalid": _("Invalid token: no event source has it."),
        "inactive": _("The event source %(name)s is disabled."),
    }

    def authenticate(self, request):
        header = get_authorization_header(request).split()
        if header:
            given = header[0].decode("latin-1").lower()
            for keyword in self.keywords:
                if given == keyword.lower():
                    self.keyword = keyword  # so DRF's parsing below accepts it
        return super().authenticate(request)

    def authenticate_credentials(self, key):
        source = EventSource.objects.filter(token_hash=hash_token(key)).first()
        if source is None:
            raise exceptions.AuthenticationFailed(self.messages["invalid"])
        if not source.is_active:
            raise exceptions.AuthenticationFailed(self.messages["inactive"] % {"name": source.name})
        now = timezone.now()
        if source.last_used_at is None or now - source.last_used_at >= LAST_USED_RESOLUTION:
            EventSource.objects.filter(pk=source.pk).update(last_used_at=now)
            source.last_used_at = now
        return SourceUser(source), source

    def authenticate_header(self, request):
        return f'{self.keywords[0]} realm="journeys"'
