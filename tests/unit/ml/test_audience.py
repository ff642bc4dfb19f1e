"""Audience rules on small frames: every operator, missing values, and clear errors."""

import datetime as dt

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.audience import (
    CUSTOMER_FIELDS,
    FIELDS,
    OPERATORS,
    AudienceError,
    Field,
    derive_customer_fields,
    evaluate,
    rule_fields,
    validate_rules,
)


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "frequency": [0, 1, 2, 5],
            "recency_days": [np.nan, 3.5, 40.0, 400.0],
            "favourite_category": ["Shoes", "", None, "Socks"],
            "favourite_categories": [["Shoes", "Socks"], [], None, ["Socks"]],
            "has_account": [True, False, None, True],
        },
        index=[10, 11, 12, 13],  # an index that is not 0..n-1
    )


def rows(rules, frame):
    mask = evaluate(rules, frame)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool and len(mask) == len(frame)
    return list(frame.index[mask])


def rule(field, op, value=None):
    r = {"field": field, "op": op}
    if value is not None:
        r["value"] = value
    return r


@pytest.mark.parametrize(
    "op, value, expected",
    [
        ("==", 1, [11]),
        ("!=", 1, [10, 12, 13]),
        ("<", 2, [10, 11]),
        ("<=", 2, [10, 11, 12]),
        (">", 2, [13]),
        (">=", 2, [12, 13]),
        (">=", 1.5, [12, 13]),
        ("in", [0, 5], [10, 13]),
        ("not_in", [0, 5], [11, 12]),
        ("is_null", None, []),
        ("not_null", None, [10, 11, 12, 13]),
    ],
)
def test_numeric_operators(frame, op, value, expected):
    assert rows([rule("frequency", op, value)], frame) == expected


@pytest.mark.parametrize(
    "op, value, expected",
    [
        ("<", 50, [11, 12]),
        ("!=", 3.5, [12, 13]),  # NaN != 3.5 is not true: a missing value meets no comparison
        ("not_in", [40.0], [11, 13]),
        ("is_null", None, [10]),
        ("not_null", None, [11, 12, 13]),
    ],
)
def test_nan_never_meets_a_comparison(frame, op, value, expected):
    assert rows([rule("recency_days", op, value)], frame) == expected


@pytest.mark.parametrize(
    "op, value, expected",
    [
        ("==", "Shoes", [10]),
        ("!=", "Shoes", [13]),  # "" and None are missing
        ("in", ["Socks", "Hats"], [13]),
        ("not_in", ["Socks"], [10]),
        ("is_null", None, [11, 12]),
        ("not_null", None, [10, 13]),
    ],
)
def test_text_operators(frame, op, value, expected):
    assert rows([rule("favourite_category", op, value)], frame) == expected


@pytest.mark.parametrize(
    "op, value, expected",
    [
        ("contains", "Socks", [10, 13]),
        ("contains", "Shoes", [10]),
        ("contains", ["Hats", "Shoes"], [10]),  # any of them
        ("contains", "Hats", []),
        ("is_null", None, [11, 12]),  # empty list and None
        ("not_null", None, [10, 13]),
    ],
)
def test_list_operators(frame, op, value, expected):
    assert rows([rule("favourite_categories", op, value)], frame) == expected


@pytest.mark.parametrize(
    "op, value, expected",
    [("==", True, [10, 13]), ("==", False, [11]), ("!=", True, [11]), ("is_null", None, [12])],
)
def test_bool_operators(frame, op, value, expected):
    assert rows([rule("has_account", op, value)], frame) == expected


def test_rules_are_anded_and_empty_rules_select_everyone(frame):
    assert rows([], frame) == [10, 11, 12, 13]
    assert rows([rule("frequency", ">=", 1), rule("favourite_categories", "contains", "Socks")], frame) == [13]
    assert rows([rule("frequency", ">", 100), rule("recency_days", "<", 1)], frame) == []


def test_an_empty_frame_gives_an_empty_mask():
    empty = pd.DataFrame({"frequency": pd.Series(dtype="int64")})
    assert evaluate([rule("frequency", ">", 1)], empty).tolist() == []


def test_custom_fields_map_names_to_columns():
    frame = pd.DataFrame({"col_a": [1.0, 7.0], "seg": ["vip", "new"]})
    fields = {"score": Field("score", "float", "col_a"), "segment": ("str", "Segment")}
    fields["segment"] = Field("segment", "str", "seg")
    assert evaluate([rule("score", ">", 5), rule("segment", "==", "new")], frame, fields=fields).tolist() == [
        False,
        True,
    ]
    assert set(rule_fields([rule("score", ">", 5)], fields=fields)) == {"score"}
    with pytest.raises(AudienceError, match="unknown field"):
        validate_rules([rule("frequency", ">", 1)], fields=fields)


def test_default_fields_are_the_features_and_the_customer_fields():
    assert set(FIELDS) == set(schema.FEATURES) | set(CUSTOMER_FIELDS)
    assert FIELDS["favourite_categories"].kind == "list"
    assert FIELDS["has_account"].kind == "bool"


@pytest.mark.parametrize(
    "rules, code, index, words",
    [
        ({"field": "frequency"}, "not_a_list", None, ["must be a list of rules"]),
        ([rule("frequency", ">", 1), "frequency > 1"], "not_a_rule", 1, ["Rule 2 must be an object"]),
        ([rule("freqency", ">", 1)], "unknown_field", 0, ["Rule 1 (freqency >)", "unknown field", "frequency"]),
        ([rule("frequency", "=>", 1)], "unknown_op", 0, ["Rule 1 (frequency =>)", "unknown operator", ">="]),
        ([rule("frequency", ">", "3")], "number_expected", 0, ["Rule 1 (frequency >)", "must be a number", "'3'"]),
        ([rule("frequency", ">", True)], "number_expected", 0, ["must be a number, not True"]),
        ([rule("frequency", ">", float("nan"))], "number_expected", 0, ["must be a number"]),
        (
            [rule("frequency", ">=", 1), rule("frequency", "in", 3)],
            "list_expected",
            1,
            ["Rule 2 (frequency in)", "non-empty list"],
        ),
        ([rule("frequency", "in", [])], "list_expected", 0, ["non-empty list"]),
        ([rule("frequency", "in", [1, "2"])], "number_expected", 0, ["not '2'"]),
        ([rule("favourite_category", ">", "A")], "op_not_for_kind", 0, ["does not apply to a str field", "=="]),
        ([rule("favourite_categories", "==", "A")], "op_not_for_kind", 0, ["list field", "contains"]),
        ([rule("frequency", "contains", 1)], "op_not_for_kind", 0, ["int field"]),
        ([rule("favourite_categories", "contains", 3)], "text_expected", 0, ["must be text, not 3"]),
        ([rule("has_account", "==", "yes")], "bool_expected", 0, ["true or false"]),
        ([rule("frequency", "is_null", 0)], "value_not_expected", 0, ["takes no value"]),
        ([{"field": "frequency", "op": ">", "value": 1, "extra": 2}], "unknown_key", 0, ["'extra'"]),
        ([{"op": ">", "value": 1}], "unknown_field", 0, ["Rule 1 (None >)"]),
    ],
)
def test_bad_rules_say_which_rule_and_what_is_wrong(rules, code, index, words):
    with pytest.raises(AudienceError) as raised:
        validate_rules(rules)
    error = raised.value
    assert isinstance(error, ValueError)
    assert (error.code, error.index) == (code, index)
    for word in words:
        assert word in str(error)


def test_errors_can_be_translated():
    with pytest.raises(AudienceError) as raised:
        validate_rules([rule("frequency", ">", "x")])
    spanish = {"Rule %(number)s (%(field)s %(op)s): the value must be a number, not %(value)s.":
               "Regla %(number)s (%(field)s %(op)s): el valor debe ser un número, no %(value)s."}
    translated = raised.value.translate(lambda s: spanish.get(s, s))
    assert translated == "Regla 1 (frequency >): el valor debe ser un número, no 'x'."


def test_a_rule_on_a_missing_column_names_it(frame):
    with pytest.raises(AudienceError, match=r"Rule 1 \(monetary >\): the data has no column 'monetary'"):
        evaluate([rule("monetary", ">", 1)], frame)


def test_validate_returns_the_fields_and_operators():
    (field, op, value), = validate_rules([rule("orders_90d", ">=", 2)])
    assert (field.name, field.kind, op is OPERATORS[">="], value) == ("orders_90d", "int", True, 2)
    assert validate_rules(None) == []


def test_derive_customer_fields():
    now = dt.datetime(2025, 3, 1, 12, tzinfo=dt.timezone.utc)
    customers = pd.DataFrame(
        {
            "user_id": [7, None],
            "email": ["a@example.com", ""],
            "phone": ["", "+447700900123"],
            "date_of_birth": [dt.date(2000, 3, 1), dt.date(2000, 3, 2)],
            "created_at": [now - dt.timedelta(days=10), now - dt.timedelta(hours=12)],
            "language": ["es", None],
        },
        index=[5, 6],
    )
    derived = derive_customer_fields(customers, now=now)
    assert list(derived.index) == [5, 6]
    assert derived["has_account"].tolist() == [True, False]
    assert derived["has_email"].tolist() == [True, False]
    assert derived["has_phone"].tolist() == [False, True]
    assert derived["age_years"].tolist() == [25.0, 24.0]  # the second turns 25 tomorrow
    assert derived["days_since_signup"].tolist() == [10.0, 0.5]
    assert derived["language"].tolist() == ["es", ""]
    no_birthday = customers.assign(date_of_birth=[None, None])
    assert derive_customer_fields(no_birthday, now=now)["age_years"].isna().all()
    # The derived frame is what the customer fields' rules read.
    assert evaluate([rule("age_years", ">=", 25), rule("has_email", "==", True)], derived).tolist() == [True, False]
