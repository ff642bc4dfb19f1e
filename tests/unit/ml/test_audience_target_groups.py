"""Target-group rules: the segment and prediction fields with their allowed values, event
conditions on count columns, and clear errors for bad rules."""

import numpy as np
import pandas as pd
import pytest

from oscar_journeys.ml import schema
from oscar_journeys.ml.audience import (
    CUSTOMER_FIELDS,
    EVENT_OPERATORS,
    FIELDS,
    MAX_EVENT_DAYS,
    SCORE_FIELDS,
    TARGET_FIELDS,
    AudienceError,
    EventCount,
    evaluate,
    rule_fields,
    validate_rules,
)

EVENTS = set(schema.EVENT_TYPES)
SHOES_30 = EventCount(schema.PRODUCT_ORDERED, 30, "Shoes")


def ordered(op=">=", value=1, **extra):
    return {"event": schema.PRODUCT_ORDERED, "category": "Shoes", "within_days": 30, "op": op, "value": value, **extra}


def rows(rules, frame):
    mask = evaluate(rules, frame, fields=TARGET_FIELDS, events=EVENTS)
    assert isinstance(mask, np.ndarray) and mask.dtype == bool
    return list(frame.index[mask])


@pytest.fixture
def frame():
    return pd.DataFrame(
        {
            "lifecycle_stage": ["active", "at_risk", "", "churned"],
            "rfm_segment": ["champions", "at_risk", "", "lost"],
            "micro_segment": pd.array([1, 2, None, 2], dtype="Int64"),
            "churn_probability": [0.1, 0.7, np.nan, 0.95],
            "clv": [500.0, 80.0, np.nan, 0.0],
            "frequency": [9, 2, 0, 1],
            SHOES_30.column: [3, 1, 0, 0],
        },
        index=[21, 22, 23, 24],
    )


def test_target_fields_are_features_customer_fields_and_scores():
    assert set(TARGET_FIELDS) == set(schema.FEATURES) | set(CUSTOMER_FIELDS) | set(schema.SCORES)
    assert set(FIELDS) < set(TARGET_FIELDS)  # campaign audiences keep their fields
    assert TARGET_FIELDS["lifecycle_stage"].choices == schema.STAGES
    assert TARGET_FIELDS["rfm_segment"].choices == schema.RFM_SEGMENTS
    assert (TARGET_FIELDS["micro_segment"].kind, TARGET_FIELDS["churn_probability"].kind) == ("int", "float")
    assert set(SCORE_FIELDS) == set(schema.SCORES)


def test_the_issue_example_bought_in_a_category_lately_and_churn_risk_above(frame):
    rules = [ordered(">=", 1), {"field": "churn_probability", "op": ">", "value": 0.6}]
    assert rows(rules, frame) == [22]


@pytest.mark.parametrize(
    "rule, expected",
    [
        ({"field": "lifecycle_stage", "op": "==", "value": "at_risk"}, [22]),
        ({"field": "lifecycle_stage", "op": "in", "value": ["active", "churned"]}, [21, 24]),
        ({"field": "lifecycle_stage", "op": "is_null"}, [23]),  # not scored yet
        ({"field": "rfm_segment", "op": "not_in", "value": ["lost"]}, [21, 22]),
        ({"field": "micro_segment", "op": "==", "value": 2}, [22, 24]),
        ({"field": "micro_segment", "op": "is_null"}, [23]),
        ({"field": "clv", "op": ">=", "value": 80}, [21, 22]),
        (ordered("==", 0), [23, 24]),  # "did not buy shoes in the last 30 days"
        (ordered(">", 1), [21]),
        (ordered("!=", 1), [21, 23, 24]),
    ],
)
def test_score_fields_and_event_conditions(frame, rule, expected):
    assert rows([rule], frame) == expected


def test_event_conditions_name_their_count_column():
    fields = rule_fields([ordered(), ordered(value=2), {"field": "clv", "op": ">", "value": 1}],
                         fields=TARGET_FIELDS, events=EVENTS)  # fmt: skip
    counted = [f.event for f in fields.values() if f.event]
    assert counted == [SHOES_30]  # the same window counted once
    assert fields[SHOES_30.column].kind == "int"
    (field, op, value), = validate_rules([{"event": "user_search", "within_days": 7, "op": "<", "value": 3}],
                                         fields=TARGET_FIELDS, events=EVENTS)  # fmt: skip
    assert (field.event, op.code, value) == (EventCount("user_search", 7, ""), "<", 3)
    # A blank category is any category, surrounding spaces are dropped.
    (field, _, _), = validate_rules([ordered(category="  Shoes ")], fields=TARGET_FIELDS, events=EVENTS)
    assert field.event == SHOES_30
    (field, _, _), = validate_rules([ordered(category="")], fields=TARGET_FIELDS, events=EVENTS)
    assert field.event.category == ""


def test_a_missing_count_column_is_named_by_its_event(frame):
    with pytest.raises(AudienceError, match=r"Rule 1 \(user_search >\): the data has no column"):
        rows([{"event": "user_search", "within_days": 7, "op": ">", "value": 0}], frame)


@pytest.mark.parametrize(
    "rule, code, words",
    [
        ({"field": "lifecycle_stage", "op": "==", "value": "vip"}, "unknown_value",
         ["Rule 1 (lifecycle_stage ==)", "unknown value 'vip'", "at_risk"]),
        ({"field": "rfm_segment", "op": "in", "value": ["champions", "Champs"]}, "unknown_value", ["'Champs'"]),
        ({"field": "churn_probability", "op": ">", "value": "0.6"}, "number_expected", ["must be a number"]),
        ({"field": "micro_segment", "op": "contains", "value": 1}, "op_not_for_kind", ["int field"]),
        ({"event": "bought", "within_days": 30, "op": ">=", "value": 1}, "unknown_event",
         ["Rule 1 (bought >=)", "unknown event type", "product_ordered"]),
        ({"event": None, "within_days": 30, "op": ">=", "value": 1}, "unknown_event", ["Rule 1 (None >=)"]),
        (ordered(within_days=None), "bad_window", ["within_days must be a whole number of days", "None"]),
        ({"event": "user_search", "op": ">=", "value": 1}, "bad_window", ["from 1 to 3650"]),
        (ordered(within_days=0), "bad_window", ["not 0"]),
        (ordered(within_days=MAX_EVENT_DAYS + 1), "bad_window", ["not 3651"]),
        (ordered(within_days=7.5), "bad_window", ["not 7.5"]),
        (ordered(within_days=True), "bad_window", ["not True"]),
        (ordered(category=5), "text_expected", ["the category must be text, not 5"]),
        (ordered(op="contains"), "op_not_for_events", ["does not apply to a count of events", ">="]),
        (ordered(op="is_null", value=None), "op_not_for_events", ["count of events"]),
        (ordered(op="=>"), "unknown_op", ["unknown operator"]),
        (ordered(value=-1), "count_expected", ["whole number of events (0 or more), not -1"]),
        (ordered(value=1.5), "count_expected", ["not 1.5"]),
        (ordered(value="1"), "count_expected", ["not '1'"]),
        (ordered(value=None), "count_expected", ["not None"]),
        (ordered(field="frequency"), "unknown_key", ["unknown key(s) 'field'"]),
        (ordered(product=3), "unknown_key", ["'product'"]),
    ],
)
def test_bad_target_rules_say_which_rule_and_what_is_wrong(rule, code, words):
    with pytest.raises(AudienceError) as raised:
        validate_rules([{"field": "frequency", "op": ">=", "value": 1}, rule], fields=TARGET_FIELDS, events=EVENTS)
    error = raised.value
    assert (error.code, error.index) == (code, 1)
    message = str(error).replace("Rule 2", "Rule 1")
    for word in words:
        assert word in message


def test_campaign_audiences_take_no_event_conditions():
    with pytest.raises(AudienceError) as raised:
        validate_rules([ordered()])
    assert raised.value.code == "events_not_allowed"
    assert str(raised.value) == "Rule 1 (product_ordered >=): conditions on events are not available here."
    with pytest.raises(AudienceError, match="unknown field"):
        validate_rules([{"field": "churn_probability", "op": ">", "value": 0.5}])  # target-group fields only


def test_event_type_errors_can_be_translated():
    with pytest.raises(AudienceError) as raised:
        validate_rules([ordered(value=-2)], fields=TARGET_FIELDS, events=EVENTS)
    spanish = {
        "Rule %(number)s (%(field)s %(op)s): the value must be a whole number of events (0 or more), not %(value)s.":
        "Regla %(number)s (%(field)s %(op)s): el valor debe ser un número entero de eventos (0 o más), no %(value)s."
    }
    assert raised.value.translate(lambda s: spanish.get(s, s)) == (
        "Regla 1 (product_ordered >=): el valor debe ser un número entero de eventos (0 o más), no -2."
    )


def test_operators_of_event_conditions_are_the_comparisons():
    assert EVENT_OPERATORS == ("==", "!=", "<", "<=", ">", ">=")
