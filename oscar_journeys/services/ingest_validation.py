"""Validation of incoming events, shared by the API and the CSV import (no database access).

``event_clean(item, now=...)`` turns one item (a dict with the fields in ``FIELDS``) into a
``CleanEvent`` or raises ``InvalidEventError`` whose ``errors`` map each bad field to a
translated message naming the field and the value. ``services.ingest`` records clean events.
"""

import json
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from datetime import timezone as dt_timezone
from decimal import Decimal, InvalidOperation
from functools import cache, lru_cache

from babel.numbers import list_currencies
from django.core.exceptions import ValidationError
from django.core.validators import DecimalValidator
from django.utils.dateparse import parse_date, parse_datetime
from django.utils.translation import gettext as _

from .. import app_settings, events
from ..exceptions import InvalidEventError
from ..ml import schema
from ..models import CustomerIdentifier
from .customers import normalize_email, normalize_phone

REQUIRED_FIELDS = ("event_id", "type", "occurred_at")
IDENTIFIER_FIELDS = ("email", "phone", "external_id")
PROFILE_FIELDS = ("first_name", "last_name", "date_of_birth")
OPTIONAL_FIELDS = PROFILE_FIELDS + ("value", "currency", "category", "product_id", "properties")
FIELDS = REQUIRED_FIELDS + IDENTIFIER_FIELDS + OPTIONAL_FIELDS

# Length limits follow the model columns (an external id is stored as "<source>:<id>").
MAX_LENGTHS = {"event_id": 255, "external_id": 190, "first_name": 150, "last_name": 150, "category": 255}
VALUE_VALIDATOR = DecimalValidator(max_digits=14, decimal_places=2)
EARLIEST = datetime(1970, 1, 1, tzinfo=dt_timezone.utc)  # also keeps times convertible to UTC


@dataclass
class CleanEvent:
    """A validated, normalised item."""

    event_id: str
    type: str
    occurred_at: datetime
    email: str = ""
    phone: str = ""
    external_id: str = ""
    first_name: str = ""
    last_name: str = ""
    date_of_birth: date | None = None
    value: Decimal | None = None
    currency: str = ""
    category: str = ""
    product_id: int | None = None
    properties: dict = field(default_factory=dict)

    def content(self):
        """What two items with the same key must share to be the same event."""
        return (
            self.type, self.occurred_at, self.email, self.phone, self.external_id, self.value,
            self.currency, self.category, self.product_id, self.properties,
        )  # fmt: skip

    def identifier_keys(self, source_name):
        """(kind, value) pairs as ``customer_identify`` stores them."""
        keys = []
        if self.external_id:
            keys.append((CustomerIdentifier.EXTERNAL, f"{source_name}:{self.external_id}"))
        if self.email:
            keys.append((CustomerIdentifier.EMAIL, self.email))
        if self.phone:
            keys.append((CustomerIdentifier.PHONE, self.phone))
        return keys


class _FieldError(Exception):
    pass


def show_value(value):
    """A short rendering of a bad value for a message."""
    text = repr(value) if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= 60 else text[:57] + "..."


def _text(name, raw):
    if isinstance(raw, bool) or not isinstance(raw, (str, int)):
        raise _FieldError(_("%(field)s must be text, not %(value)s.") % {"field": name, "value": show_value(raw)})
    text = str(raw).strip()
    limit = MAX_LENGTHS.get(name)
    if limit and len(text) > limit:
        raise _FieldError(
            _("%(field)s %(value)s is %(length)d characters long; at most %(limit)d are allowed.")
            % {"field": name, "value": show_value(text), "length": len(text), "limit": limit}
        )
    return text


def _clean_type(raw, rules):
    code = _text("type", raw)
    if code not in rules.known_types:
        raise _FieldError(
            _("type %(value)s is not a known event type; use one of: %(types)s.")
            % {"value": show_value(code), "types": ", ".join(sorted(rules.known_types))}
        )
    return code


def _clean_occurred_at(raw, rules):
    text = raw.strip() if isinstance(raw, str) else None
    try:
        moment = parse_datetime(text) if text else None
    except ValueError:
        moment = None
    if moment is None:
        raise _FieldError(
            _("occurred_at %(value)s is not a date and time in ISO 8601, such as 2024-05-01T14:30:00+02:00.")
            % {"value": show_value(raw)}
        )
    if moment.tzinfo is None:
        raise _FieldError(
            _("occurred_at %(value)s has no UTC offset; add one, such as +02:00 or Z.") % {"value": show_value(raw)}
        )
    if moment < EARLIEST:
        raise _FieldError(_("occurred_at %(value)s is before the year 1970.") % {"value": show_value(raw)})
    if moment > rules.latest:
        raise _FieldError(
            _("occurred_at %(value)s is in the future (more than %(skew)d seconds after %(now)s).")
            % {"value": show_value(raw), "skew": rules.skew, "now": rules.now.isoformat(timespec="seconds")}
        )
    return moment


# The same customer's email and phone come again and again in a file: remember the answers.
@lru_cache(maxsize=65536)
def _normalized_email(text):
    return normalize_email(text)


@lru_cache(maxsize=65536)
def _normalized_phone(text, region):
    return normalize_phone(text, region)


def _clean_email(raw, rules):
    text = _text("email", raw)
    try:
        return _normalized_email(text)
    except InvalidEventError:
        raise _FieldError(_("email %(value)s is not a valid email address.") % {"value": show_value(raw)})


def _clean_phone(raw, rules):
    text = _text("phone", raw)
    try:
        return _normalized_phone(text, rules.phone_region)
    except InvalidEventError:
        raise _FieldError(
            _("phone %(value)s is not a valid phone number; write it with its country code, such as +447911123456.")
            % {"value": show_value(raw)}
        )


def _clean_date_of_birth(raw, rules):
    try:
        day = parse_date(raw.strip()) if isinstance(raw, str) else None
    except ValueError:
        day = None
    if day is None:
        raise _FieldError(
            _("date_of_birth %(value)s is not a date in ISO 8601 (YYYY-MM-DD).") % {"value": show_value(raw)}
        )
    if day > rules.now.date():
        raise _FieldError(_("date_of_birth %(value)s is in the future.") % {"value": show_value(raw)})
    return day


def _clean_value(raw, rules):
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int, float, Decimal)):
            raise InvalidOperation
        amount = Decimal(str(raw).strip())
        if not amount.is_finite():
            raise InvalidOperation
    except InvalidOperation:
        raise _FieldError(_("value %(value)s is not a number, such as 19.99.") % {"value": show_value(raw)})
    try:
        VALUE_VALIDATOR(amount)
    except ValidationError as error:
        reason = " ".join(error.messages)
        raise _FieldError(_("value %(value)s does not fit: %(reason)s") % {"value": show_value(raw), "reason": reason})
    return amount


@cache
def _currencies():
    return frozenset(list_currencies())


def _clean_currency(raw, rules):
    code = _text("currency", raw).upper()
    if code not in _currencies():
        raise _FieldError(
            _("currency %(value)s is not an ISO 4217 currency code (three letters, such as EUR or USD).")
            % {"value": show_value(raw)}
        )
    return code


def _clean_product_id(raw, rules):
    try:
        if isinstance(raw, bool) or not isinstance(raw, (str, int)):
            raise ValueError
        number = int(str(raw).strip())
    except ValueError:
        raise _FieldError(_("product_id %(value)s is not a whole number.") % {"value": show_value(raw)})
    if number < 1:
        raise _FieldError(_("product_id %(value)s must be a positive number.") % {"value": show_value(raw)})
    return number


def _clean_properties(raw, rules):
    if isinstance(raw, str):  # the CSV column holds the object as JSON text
        try:
            raw = json.loads(raw)
        except ValueError as error:
            raise _FieldError(_("properties is not valid JSON: %(error)s.") % {"error": error})
    if not isinstance(raw, dict):
        raise _FieldError(_("properties must be a JSON object ({...}), not %(value)s.") % {"value": show_value(raw)})
    size = len(json.dumps(raw, separators=(",", ":")).encode())
    if size > rules.payload_limit:
        raise _FieldError(
            _("properties is %(size)d bytes once serialised; at most %(limit)d are allowed.")
            % {"size": size, "limit": rules.payload_limit}
        )
    return raw


def _empty(value):
    return value is None or (isinstance(value, str) and not value.strip())


def _clean_text(name):
    return lambda raw, rules: _text(name, raw)


CLEANERS = {
    "event_id": _clean_text("event_id"),
    "type": _clean_type,
    "occurred_at": _clean_occurred_at,
    "email": _clean_email,
    "phone": _clean_phone,
    "external_id": _clean_text("external_id"),
    "first_name": _clean_text("first_name"),
    "last_name": _clean_text("last_name"),
    "date_of_birth": _clean_date_of_birth,
    "value": _clean_value,
    "currency": _clean_currency,
    "category": _clean_text("category"),
    "product_id": _clean_product_id,
    "properties": _clean_properties,
}
assert tuple(CLEANERS) == FIELDS


@dataclass(frozen=True)
class Rules:
    """What validation depends on besides the item, read once per batch (settings included)."""

    now: datetime
    known_types: frozenset
    skew: int
    payload_limit: int
    phone_region: str | None

    @property
    def latest(self):
        return self.now + timedelta(seconds=self.skew)

    @classmethod
    def at(cls, now):
        return cls(
            now=now,
            known_types=frozenset(events.event_types()) - frozenset(schema.INTERNAL_TYPES),
            skew=app_settings.MAX_CLOCK_SKEW_SECONDS,
            payload_limit=app_settings.MAX_PAYLOAD_BYTES,
            phone_region=app_settings.DEFAULT_PHONE_REGION,
        )


def event_clean(item, *, now=None, rules=None):
    """Validate and normalise one item; return a CleanEvent or raise InvalidEventError whose
    ``errors`` maps each bad field to a translated message naming it and its value.
    Touches no database. Give ``now`` (the time events may not be later than, give or take
    MAX_CLOCK_SKEW_SECONDS), or ``rules`` (``Rules.at(now)``, to validate many items)."""
    rules = rules or Rules.at(now)
    if not isinstance(item, dict):
        raise InvalidEventError(
            {"event": _("Each event must be a JSON object with fields such as event_id and type, not %(value)s.")
             % {"value": show_value(item)}}
        )  # fmt: skip
    errors, clean = {}, {}
    for name, raw in item.items():
        cleaner = CLEANERS.get(name)
        if cleaner is None:
            errors[str(name)] = _("%(field)s is not a known field; the fields are: %(fields)s.") % {
                "field": show_value(name),
                "fields": ", ".join(FIELDS),
            }
        elif not _empty(raw):
            try:
                clean[name] = cleaner(raw, rules)
            except _FieldError as error:
                errors[name] = str(error)
    for name in REQUIRED_FIELDS:
        if name not in clean and name not in errors:
            errors[name] = _("%(field)s is required.") % {"field": name}
    if not any(name in clean or name in errors for name in IDENTIFIER_FIELDS):
        errors["customer"] = _("Give at least one of email, phone or external_id to say who the event is about.")
    if errors:
        raise InvalidEventError(errors)
    return CleanEvent(**clean)
