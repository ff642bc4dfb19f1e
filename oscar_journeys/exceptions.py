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
