"""Signed tokens in the links we send: one salt per purpose, so a click token is not an
unsubscribe token. Rotating SECRET_KEY with the old key in SECRET_KEY_FALLBACKS keeps old
links working (Django's signing does that)."""

import datetime

from django.core import signing

CLICK, OPEN, UNSUBSCRIBE, PREFERENCES, RESTORE = "click", "open", "unsubscribe", "preferences", "restore"
PURPOSES = (CLICK, OPEN, UNSUBSCRIBE, PREFERENCES, RESTORE)


def _salt(purpose):
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}")
    return f"oscar_journeys.{purpose}"


def make_token(purpose, data):
    """A URL-safe signed token carrying ``data`` (a small dict of ids)."""
    return signing.dumps(data, salt=_salt(purpose), compress=True)


def read_token(purpose, token, max_age=None):
    """The data in ``token``; raises signing.BadSignature (or SignatureExpired, a subclass)
    if it was tampered with, made for another purpose, or is older than ``max_age``
    (a timedelta or seconds)."""
    if isinstance(max_age, datetime.timedelta):
        max_age = max_age.total_seconds()
    return signing.loads(token, salt=_salt(purpose), max_age=max_age)
