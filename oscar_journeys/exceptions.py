"""The oscar_journeys exception hierarchy (after django-anymail's)."""

from django.core.exceptions import ImproperlyConfigured


class JourneysError(Exception):
    """Base class of every error the app raises on purpose."""


class JourneysConfigurationError(JourneysError, ImproperlyConfigured):
    """A setting is missing or wrong; the message says which and how to fix it."""


class InvalidEventError(JourneysError, ValueError):
    """An incoming event is malformed. ``errors`` maps field names to messages."""

    def __init__(self, errors):
        self.errors = errors
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors.items()))


class IdempotencyConflictError(JourneysError):
    """The same (source, idempotency key) arrived again with a different body."""

    def __init__(self, source, key):
        self.source, self.key = source, key
        super().__init__(f"event {key!r} from source {source!r} was already recorded with other data")


class MergeError(JourneysError, ValueError):
    """Two customers cannot be merged (or a merge cannot be reverted)."""


class CampaignError(JourneysError, ValueError):
    """A campaign, step or template is not valid."""


class TemplateSafetyError(CampaignError):
    """A staff-written template uses something it may not (``{% load %}``, ``{% include %}``,
    ``{% debug %}``...)."""


class ChannelError(JourneysError):
    """Sending through a channel failed. Carries the channel, the recipient and the
    provider's response, if any."""

    def __init__(self, message, *, channel=None, recipient=None, response=None):
        self.channel, self.recipient, self.response = channel, recipient, response
        super().__init__(message)

    def __str__(self):
        parts = [super().__str__()]
        if self.channel is not None:
            parts.append(f"channel={self.channel}")
        if self.response is not None:
            parts.append(f"response={str(self.response)[:300]}")
        return " ".join(parts)


class ChannelTransientError(ChannelError):
    """Worth retrying later (timeout, connection refused, HTTP 5xx or 429)."""


class ChannelPermanentError(ChannelError):
    """Not worth retrying (HTTP 4xx, invalid address). ``suppress`` says whether the
    address itself is bad (hard bounce, unknown number) and should be suppressed."""

    def __init__(self, message, *, suppress=False, **kwargs):
        self.suppress = suppress
        super().__init__(message, **kwargs)

