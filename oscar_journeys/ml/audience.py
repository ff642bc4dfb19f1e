"""Audience rules: who a campaign or a target group is for.

Pure pandas/numpy (no Django). A rule set is a list of rules, all of which must hold (AND);
an empty list is everyone::

    [{"field": "frequency", "op": ">=", "value": 2},
     {"field": "favourite_categories", "op": "contains", "value": "Running shoes"},
     {"field": "has_account", "op": "==", "value": true}]

Fields are named columns of a frame, each with a kind (``int``, ``float``, ``str``,
``list``, ``bool``) that decides which operators and values it takes. The default fields
(``FIELDS``) are the snapshot features of :mod:`oscar_journeys.ml.schema` plus a few
customer fields (``CUSTOMER_FIELDS``, computed by :func:`derive_customer_fields`). Callers
with other columns pass their own ``fields`` mapping: target groups use ``TARGET_FIELDS``,
which adds the segments and predictions (``SCORE_FIELDS``, with the allowed values of
``lifecycle_stage`` and ``rfm_segment``).

Target groups may also hold event conditions (callers allow them with ``events=``, the
known event type codes): the number of the customer's events of a type, optionally in one
product category, within the last days, compared with a whole number::

    {"event": "product_ordered", "category": "Shoes", "within_days": 30, "op": ">=", "value": 1}

Each condition reads a count column named by its :class:`EventCount` (``field.event``
of the fields :func:`rule_fields` returns). The caller supplies those columns, 0 where a
customer had no such event.

Missing values never satisfy a comparison: ``NaN > 3``, ``NaN != 3`` and ``NaN not_in
[1, 2]`` are all False; only ``is_null`` matches them. For text fields the empty string
counts as missing; for list fields so does the empty list.

Errors raise :class:`AudienceError` naming the rule (numbered from 1 in the message, from 0
in ``error.index``), its field and operator, and what is wrong. The message templates are
marked for translation (``gettext_noop``) and kept on the error (``template``,
``params``), so the Django side can show them translated: ``error.translate(gettext)``.
"""

import math
import numbers
from dataclasses import dataclass
from typing import Callable

import numpy as np
import pandas as pd

from . import schema


def gettext_noop(message):
    """Marks a message for the translation catalogue (Django's makemessages picks the name
    up) without importing Django."""
    return message


KINDS = ("int", "float", "str", "list", "bool")
NUMERIC_KINDS = frozenset({"int", "float"})


@dataclass(frozen=True)
class EventCount:
    """How many events of ``type`` (in product ``category``, when not empty) a customer had
    in the ``within_days`` days up to now: what an event condition compares."""

    type: str
    within_days: int
    category: str = ""

    @property
    def column(self):
        return f"events:{self.type}:{self.within_days}:{self.category}"


@dataclass(frozen=True)
class Field:
    """A field rules can name: its kind, the frame column holding it, the values it may
    take (``choices``, text fields; empty: any) and, for an event condition's count, the
    ``EventCount`` it counts."""

    name: str
    kind: str
    column: str
    description: str = ""
    choices: tuple = ()
    event: EventCount = None


# Customer fields besides the snapshot features: name -> (kind, description). The columns
# come from :func:`derive_customer_fields` over the customer rows (``CUSTOMER_COLUMNS``).
CUSTOMER_FIELDS = {
    "has_account": ("bool", "The customer has an account in the shop."),
    "has_email": ("bool", "An email address is known."),
    "has_phone": ("bool", "A phone number is known."),
    "age_years": ("float", "Age in whole years from the date of birth; NaN when unknown."),
    "days_since_signup": ("float", "Days since the customer was first seen."),
    "language": ("str", "Language code chosen by the customer; empty means the shop's."),
}
CUSTOMER_COLUMNS = ("user_id", "email", "phone", "date_of_birth", "created_at", "language")


def make_fields(spec):
    """{name: Field} from a mapping of name -> Field, kind string or (kind, description[,
    choices])."""
    fields = {}
    for name, value in spec.items():
        if isinstance(value, Field):
            field = value
        elif isinstance(value, str):
            field = Field(name, value, name)
        else:
            kind = value[0]
            description = value[1] if len(value) > 1 else ""
            choices = value[2] if len(value) > 2 else ()
            field = Field(name, kind, name, description, tuple(choices))
        if field.kind not in KINDS:
            raise ValueError(f"field {name!r} has unknown kind {field.kind!r}; expected one of {', '.join(KINDS)}")
        fields[name] = field
    return fields


FIELDS = make_fields({**schema.FEATURES, **CUSTOMER_FIELDS})

# The segments and predictions the nightly chain writes on the snapshots (``schema.SCORES``).
_SCORE_KINDS = {"str": "str", "Int64": "int", "float": "float"}
_SCORE_CHOICES = {"lifecycle_stage": schema.STAGES, "rfm_segment": schema.RFM_SEGMENTS}
SCORE_FIELDS = {
    name: (_SCORE_KINDS[dtype], description, _SCORE_CHOICES.get(name, ()))
    for name, (dtype, description) in schema.SCORES.items()
}
TARGET_FIELDS = make_fields({**schema.FEATURES, **CUSTOMER_FIELDS, **SCORE_FIELDS})

# Event conditions: their keys, the longest window and the operators they take.
EVENT_KEYS = ("event", "category", "within_days", "op", "value")
MAX_EVENT_DAYS = 3650
EVENT_OPERATORS = ("==", "!=", "<", "<=", ">", ">=")


# --- operators ------------------------------------------------------------------------------


def _missing(values, kind):
    """Boolean array: where the column holds no value."""
    if kind in NUMERIC_KINDS:
        return np.isnan(values)
    missing = pd.isna(values)
    if kind == "str":
        missing |= values == ""
    elif kind == "list":
        sizes = pd.Series(values).map(len, na_action="ignore").to_numpy(dtype="float64", na_value=np.nan)
        missing |= sizes == 0
    return np.asarray(missing, dtype=bool)


def _comparison(compare):
    def apply(values, value, kind):
        present = ~_missing(values, kind)
        result = np.zeros(len(values), dtype=bool)
        if kind in NUMERIC_KINDS:
            with np.errstate(invalid="ignore"):
                result[present] = compare(values[present], value)
        else:
            result[present] = compare(values[present], value).astype(bool)
        return result

    return apply


def _membership(negate):
    def apply(values, value, kind):
        present = ~_missing(values, kind)
        if kind in NUMERIC_KINDS:
            found = np.isin(values, np.asarray(value, dtype="float64"))
        else:
            found = pd.Series(values).isin(value).to_numpy()
        return present & (~found if negate else found)

    return apply


def _contains(values, value, kind):
    wanted = [value] if isinstance(value, str) else list(value)
    # One row per list item (vectorised), then back to the rows holding any wanted item.
    items = pd.Series(values, index=np.arange(len(values)), dtype=object).explode()
    hit = items.isin(wanted).to_numpy()
    result = np.zeros(len(values), dtype=bool)
    result[items.index.to_numpy()[hit]] = True
    return result


def _is_null(values, value, kind):
    return _missing(values, kind)


def _not_null(values, value, kind):
    return ~_missing(values, kind)


@dataclass(frozen=True)
class Operator:
    """An operator: the field kinds it applies to, the value it takes (``scalar``, ``list``
    or ``none``) and the vectorised function ``apply(values, value, kind) -> bool array``."""

    code: str
    kinds: frozenset
    takes: str
    apply: Callable


_ORDERED = NUMERIC_KINDS
_EQUATABLE = frozenset({"int", "float", "str", "bool"})
_ANY = frozenset(KINDS)
OPERATORS = {
    op.code: op
    for op in (
        Operator("==", _EQUATABLE, "scalar", _comparison(np.equal)),
        Operator("!=", _EQUATABLE, "scalar", _comparison(np.not_equal)),
        Operator("<", _ORDERED, "scalar", _comparison(np.less)),
        Operator("<=", _ORDERED, "scalar", _comparison(np.less_equal)),
        Operator(">", _ORDERED, "scalar", _comparison(np.greater)),
        Operator(">=", _ORDERED, "scalar", _comparison(np.greater_equal)),
        Operator("in", frozenset({"int", "float", "str"}), "list", _membership(negate=False)),
        Operator("not_in", frozenset({"int", "float", "str"}), "list", _membership(negate=True)),
        Operator("contains", frozenset({"list"}), "scalar", _contains),
        Operator("is_null", _ANY, "none", _is_null),
        Operator("not_null", _ANY, "none", _not_null),
    )
}


# --- errors and validation ------------------------------------------------------------------


class AudienceError(ValueError):
    """A rule set is not valid. ``index`` is the 0-based position of the rule (None when the
    rule set as a whole is wrong), ``field`` and ``op`` what the rule named, ``code`` a stable
    identifier of the problem; ``template`` % ``params`` is the (English) message."""

    def __init__(self, code, template, *, index=None, field=None, op=None, **params):
        self.code, self.template, self.index, self.field, self.op = code, template, index, field, op
        self.params = {"number": None if index is None else index + 1, "field": field, "op": op, **params}
        super().__init__(self.translate())

    def translate(self, gettext=None):
        """The message, through ``gettext`` (e.g. Django's) when given."""
        template = gettext(self.template) if gettext is not None else self.template
        return template % self.params


_PREFIX = gettext_noop("Rule %(number)s (%(field)s %(op)s): ")


def _fail(code, message, index, field=None, op=None, **params):
    field = field if isinstance(field, str) else repr(field)
    op = op if isinstance(op, str) else repr(op)
    raise AudienceError(code, message, index=index, field=field, op=op, **params)


def _is_number(value):
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _check_value(index, field, op, value):
    kind = field.kind
    if op.takes == "none":
        if value is not None:
            _fail("value_not_expected", _PREFIX + gettext_noop("this operator takes no value."),
                  index, field.name, op.code)
        return
    if op.takes == "list" and not (isinstance(value, (list, tuple)) and value):
        _fail("list_expected", _PREFIX + gettext_noop("the value must be a non-empty list, not %(value)s."),
              index, field.name, op.code, value=repr(value))
    items = value if op.takes == "list" else [value]
    if kind == "list":  # contains: one text, or a non-empty list of texts (any of them)
        items = value if isinstance(value, (list, tuple)) and value else [value]
    for item in items:
        if kind in NUMERIC_KINDS and not _is_number(item):
            _fail("number_expected", _PREFIX + gettext_noop("the value must be a number, not %(value)s."),
                  index, field.name, op.code, value=repr(item))
        if kind in ("str", "list") and not isinstance(item, str):
            _fail("text_expected", _PREFIX + gettext_noop("the value must be text, not %(value)s."),
                  index, field.name, op.code, value=repr(item))
        if kind == "bool" and not isinstance(item, bool):
            _fail("bool_expected", _PREFIX + gettext_noop("the value must be true or false, not %(value)s."),
                  index, field.name, op.code, value=repr(item))
        if field.choices and item not in field.choices:
            _fail("unknown_value", _PREFIX + gettext_noop("unknown value %(value)s; use one of %(known)s."),
                  index, field.name, op.code, value=repr(item), known=", ".join(field.choices))


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 0


def _check_event_rule(index, rule, events):
    """An event condition as (Field of its count column, Operator, value)."""
    name, code = rule.get("event"), rule.get("op")
    extra = sorted(set(rule) - set(EVENT_KEYS))
    if extra:
        _fail("unknown_key", _PREFIX + gettext_noop("unknown key(s) %(keys)s."), index, name, code,
              keys=", ".join(map(repr, extra)))
    if events is None:
        _fail("events_not_allowed", _PREFIX + gettext_noop("conditions on events are not available here."),
              index, name, code)
    if not isinstance(name, str) or name not in events:
        _fail("unknown_event", _PREFIX + gettext_noop("unknown event type; known types: %(known)s."), index, name,
              code, known=", ".join(sorted(events)))
    days = rule.get("within_days")
    if not _is_count(days) or not 1 <= days <= MAX_EVENT_DAYS:
        _fail("bad_window",
              _PREFIX + gettext_noop("within_days must be a whole number of days from 1 to %(max)s, not %(value)s."),
              index, name, code, max=MAX_EVENT_DAYS, value=repr(days))
    category = rule.get("category")
    if category is not None and not isinstance(category, str):
        _fail("text_expected", _PREFIX + gettext_noop("the category must be text, not %(value)s."),
              index, name, code, value=repr(category))
    if code not in OPERATORS:
        _fail("unknown_op", _PREFIX + gettext_noop("unknown operator; use one of %(known)s."), index, name, code,
              known=", ".join(EVENT_OPERATORS))
    if code not in EVENT_OPERATORS:
        _fail("op_not_for_events",
              _PREFIX + gettext_noop("this operator does not apply to a count of events; use one of %(known)s."),
              index, name, code, known=", ".join(EVENT_OPERATORS))
    value = rule.get("value")
    if not _is_count(value):
        _fail("count_expected",
              _PREFIX + gettext_noop("the value must be a whole number of events (0 or more), not %(value)s."),
              index, name, code, value=repr(value))
    counted = EventCount(name, int(days), (category or "").strip())
    return Field(counted.column, "int", counted.column, event=counted), OPERATORS[code], value


def validate_rules(rules, *, fields=None, events=None):
    """Check a rule set; return it as a list of (Field, Operator, value). Raises
    AudienceError on the first bad rule. ``fields``: {name: Field | kind | (kind, text)};
    default ``FIELDS``. ``events``: the event type codes event conditions may name (None:
    no event conditions)."""
    fields = FIELDS if fields is None else make_fields(fields)
    if rules is None:
        return []
    if not isinstance(rules, (list, tuple)):
        raise AudienceError(
            "not_a_list",
            gettext_noop("The audience must be a list of rules, not %(value)s."),
            value=type(rules).__name__,
        )
    checked = []
    for index, rule in enumerate(rules):
        if not isinstance(rule, dict):
            raise AudienceError(
                "not_a_rule",
                gettext_noop('Rule %(number)s must be an object with "field", "op" and "value", not %(value)s.'),
                index=index,
                value=repr(rule),
            )
        if "event" in rule:
            checked.append(_check_event_rule(index, rule, events))
            continue
        name, code = rule.get("field"), rule.get("op")
        extra = sorted(set(rule) - {"field", "op", "value"})
        if extra:
            _fail("unknown_key", _PREFIX + gettext_noop("unknown key(s) %(keys)s."), index, name, code,
                  keys=", ".join(map(repr, extra)))
        if name not in fields:
            _fail("unknown_field", _PREFIX + gettext_noop("unknown field; known fields: %(known)s."), index, name, code,
                  known=", ".join(sorted(fields)))
        field = fields[name]
        if code not in OPERATORS:
            _fail("unknown_op", _PREFIX + gettext_noop("unknown operator; use one of %(known)s."), index, name, code,
                  known=", ".join(OPERATORS))
        op = OPERATORS[code]
        if field.kind not in op.kinds:
            usable = [c for c, o in OPERATORS.items() if field.kind in o.kinds]
            _fail("op_not_for_kind",
                  _PREFIX + gettext_noop("this operator does not apply to a %(kind)s field; use one of %(known)s."),
                  index, name, code, kind=field.kind, known=", ".join(usable))
        value = rule.get("value")
        _check_value(index, field, op, value)
        checked.append((field, op, value))
    return checked


def rule_fields(rules, *, fields=None, events=None):
    """The Field objects a (valid) rule set reads, so callers load only those columns
    (those with ``field.event`` are event counts, by their column name)."""
    return {field.name: field for field, _, _ in validate_rules(rules, fields=fields, events=events)}


# --- evaluation -----------------------------------------------------------------------------


def _column_values(frame, field, op, index):
    if field.column not in frame.columns:
        name = field.event.type if field.event else field.name
        _fail("missing_column", _PREFIX + gettext_noop("the data has no column %(column)s."), index, name,
              op.code, column=repr(field.column))
    column = frame[field.column]
    if field.kind in NUMERIC_KINDS:
        return pd.to_numeric(column, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return column.to_numpy(dtype=object)


def evaluate(rules, frame, *, fields=None, events=None):
    """Boolean numpy array, one entry per row of ``frame``: the rows meeting every rule.
    Vectorised per rule; an empty rule set selects every row. ``fields`` and ``events`` as
    for :func:`validate_rules`."""
    checked = validate_rules(rules, fields=fields, events=events)
    result = np.ones(len(frame), dtype=bool)
    for index, (field, op, value) in enumerate(checked):
        if not result.any():
            break
        values = _column_values(frame, field, op, index)
        result &= op.apply(values, value, field.kind)
    return result


def derive_customer_fields(customers, *, now):
    """The ``CUSTOMER_FIELDS`` columns from customer rows.

    ``customers``: a frame with ``CUSTOMER_COLUMNS`` (``user_id`` NaN/None without an
    account, ``email``/``phone``/``language`` text, ``date_of_birth`` dates or None,
    ``created_at`` instants); ``now``: a timezone-aware instant (``age_years`` uses its UTC
    date). Returns a frame with the same index."""
    now = pd.Timestamp(now)
    now = now.tz_localize("UTC") if now.tzinfo is None else now.tz_convert("UTC")
    email = customers["email"].fillna("").astype(str)
    phone = customers["phone"].fillna("").astype(str)
    born = pd.to_datetime(customers["date_of_birth"], errors="coerce")
    years = now.year - born.dt.year
    before_birthday = (born.dt.month > now.month) | ((born.dt.month == now.month) & (born.dt.day > now.day))
    created = pd.to_datetime(customers["created_at"], utc=True)
    return pd.DataFrame(
        {
            "has_account": customers["user_id"].notna().to_numpy(),
            "has_email": (email != "").to_numpy(),
            "has_phone": (phone != "").to_numpy(),
            "age_years": (years - before_birthday.astype("float64")).astype("float64").to_numpy(),
            "days_since_signup": ((now - created).dt.total_seconds() / 86_400).to_numpy(dtype="float64"),
            "language": customers["language"].fillna("").astype(str).to_numpy(dtype=object),
        },
        index=customers.index,
    )
