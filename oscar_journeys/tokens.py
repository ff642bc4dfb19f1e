"""Signed tokens in the links we send: one salt per purpose, so a click token is not an
unsubscribe token. Rotating SECRET_KEY with the old key in SECRET_KEY_FALLBACKS keeps old
links working (Django's signing does that).

A message carries several tokens, so making one must be cheap: one
``signing.TimestampSigner`` per purpose is kept (rebuilt when SECRET_KEY or
SECRET_KEY_FALLBACKS change, e.g. under ``override_settings``) and tokens are not
compressed (a few ids gain nothing from zlib). ``read_token`` goes through
``signing.loads``, which reads both forms: tokens made before (compressed) still work."""

import datetime
import functools

from django.core import signing
from django.core.signals import setting_changed

CLICK, OPEN, UNSUBSCRIBE, PREFERENCES, RESTORE = "click", "open", "unsubscribe", "preferences", "restore"
PURPOSES = (CLICK, OPEN, UNSUBSCRIBE, PREFERENCES, RESTORE)


def _salt(purpose):
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return f"oscar_journeys.{purpose}"


@functools.cache
def _signer(purpose):
    # Reads SECRET_KEY and SECRET_KEY_FALLBACKS once: cleared by _forget_signers below.
    return signing.TimestampSigner(salt=_salt(purpose))


def make_token(purpose, data):
    """A URL-safe signed token carrying ``data`` (a small dict of ids)."""
    return _signer(purpose).sign_object(data)


def read_token(purpose, token, max_age=None):
    """The data in ``token``; raises signing.BadSignature (or SignatureExpired, a subclass)
    if it was tampered with, made for another purpose, or is older than ``max_age``
    (a timedelta or seconds)."""
    if isinstance(max_age, datetime.timedelta):
        max_age = max_age.total_seconds()
    return signing.loads(token, salt=_salt(purpose), max_age=max_age)


def _forget_signers(*, setting, **kwargs):
    if setting in ("SECRET_KEY", "SECRET_KEY_FALLBACKS"):
        _signer.cache_clear()


setting_changed.connect(_forget_signers, dispatch_uid="oscar_journeys.tokens.signers")
