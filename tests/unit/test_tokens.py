"""Signed link tokens: one cached signer per purpose, uncompressed, and still readable:
tokens made before (compressed, by ``signing.dumps``), after a key rotation, and under
``override_settings``."""

import pytest
from django.core import signing
from django.test import override_settings

from oscar_journeys import tokens

DATA = {"c": 12345, "k": "email", "m": 67890}


def test_a_token_reads_back_for_its_purpose_only():
    token = tokens.make_token(tokens.UNSUBSCRIBE, DATA)
    assert tokens.read_token(tokens.UNSUBSCRIBE, token) == DATA
    with pytest.raises(signing.BadSignature):
        tokens.read_token(tokens.CLICK, token)
    with pytest.raises(ValueError):
        tokens.make_token("nope", DATA)


def test_tokens_are_not_compressed():
    token = tokens.make_token(tokens.CLICK, {"m": 1, "l": 0})
    assert not token.startswith(".")  # signing marks a compressed payload with a leading dot
    assert signing.loads(token, salt="oscar_journeys.click") == {"m": 1, "l": 0}


def test_tokens_made_before_still_read():
    # What make_token gave before: signing.dumps(..., compress=True). A payload long enough
    # to be worth compressing comes out compressed.
    long = {"ids": list(range(60))}
    old = signing.dumps(long, salt="oscar_journeys.unsubscribe", compress=True)
    assert old.startswith(".")
    assert tokens.read_token(tokens.UNSUBSCRIBE, old) == long
    short = signing.dumps(DATA, salt="oscar_journeys.unsubscribe", compress=True)
    assert tokens.read_token(tokens.UNSUBSCRIBE, short) == DATA


def test_the_current_secret_key_is_used_and_old_keys_still_read():
    with override_settings(SECRET_KEY="old-key-" + "x" * 50, SECRET_KEY_FALLBACKS=[]):
        old = tokens.make_token(tokens.PREFERENCES, {"c": 1})
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=[]):
        new = tokens.make_token(tokens.PREFERENCES, {"c": 1})
        assert new != old  # not a signer cached with the old key
        with pytest.raises(signing.BadSignature):
            tokens.read_token(tokens.PREFERENCES, old)
    with override_settings(SECRET_KEY="new-key-" + "y" * 50, SECRET_KEY_FALLBACKS=["old-key-" + "x" * 50]):
        assert tokens.read_token(tokens.PREFERENCES, old) == {"c": 1}
        assert tokens.read_token(tokens.PREFERENCES, new) == {"c": 1}
    with pytest.raises(signing.BadSignature):  # back on the test key: neither
        tokens.read_token(tokens.PREFERENCES, new)


def test_tokens_expire():
    token = tokens.make_token(tokens.RESTORE, {"b": 1, "c": 2})
    assert tokens.read_token(tokens.RESTORE, token, max_age=60) == {"b": 1, "c": 2}
    with pytest.raises(signing.SignatureExpired):
        tokens.read_token(tokens.RESTORE, token, max_age=-1)
