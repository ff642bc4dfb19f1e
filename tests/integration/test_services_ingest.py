"""services.ingest: validation, exactly-once recording, duplicates and conflicts."""

from datetime import datetime, timedelta, timezone as dt_timezone
from decimal import Decimal

import pytest
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from oscar.test.factories import create_product

from oscar_journeys.exceptions import InvalidEventError
from oscar_journeys.models import Customer, CustomerIdentifier, Event, EventSource
from oscar_journeys.services import ingest
from oscar_journeys.services.customers import customer_create
from oscar_journeys.services.ingest import CONFLICT, CREATED, DUPLICATE, REJECTED, event_clean, events_ingest

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=dt_timezone.utc)


def item(event_id="e-1", **fields):
    base = {"event_id": event_id, "type": "order_placed", "occurred_at": "2024-06-01T10:00:00+00:00"}
    return base | {"email": "ana@example.com"} | fields


def statuses(results):
    return [result.status for result in results]


# --- event_clean --------------------------------------------------------------------------


def test_clean_normalises_values():
    clean = event_clean(
        item(
            email=" Ana@Example.COM ",
            phone="+34 612 34 56 78",
            currency="eur",
            value=19.9,
            product_id="12",
            properties='{"till": 4}',
            date_of_birth="1990-04-12",
            occurred_at="2024-06-01T12:00:00+02:00",
        ),
        now=NOW,
    )
    assert clean.email == "ana@example.com"
    assert clean.phone == "+34612345678"
    assert (clean.currency, clean.value, clean.product_id) == ("EUR", Decimal("19.9"), 12)
    assert clean.properties == {"till": 4}
    assert clean.occurred_at == datetime(2024, 6, 1, 10, 0, tzinfo=dt_timezone.utc)


def test_clean_collects_every_error_of_an_item():
    with pytest.raises(InvalidEventError) as caught:
        event_clean({"type": "nope", "occurred_at": "2024-06-01", "value": "1,5"}, now=NOW)
    assert set(caught.value.errors) == {"event_id", "type", "occurred_at", "value", "customer"}


@pytest.mark.parametrize("skew, accepted", [(300, False), (3600, True)])
def test_future_is_judged_against_the_given_now(skew, accepted):
    in_ten_minutes = (NOW + timedelta(minutes=10)).isoformat()
    with override_settings(OSCAR_JOURNEYS_MAX_CLOCK_SKEW_SECONDS=skew):
        if accepted:
            assert event_clean(item(occurred_at=in_ten_minutes), now=NOW)
        else:
            with pytest.raises(InvalidEventError) as caught:
                event_clean(item(occurred_at=in_ten_minutes), now=NOW)
            assert "in the future" in caught.value.errors["occurred_at"]


@override_settings(OSCAR_JOURNEYS_EXTRA_EVENT_TYPES={"store_visit": "Visited a store"})
def test_extra_event_types_are_accepted():
    assert event_clean(item(type="store_visit"), now=NOW).type == "store_visit"


# --- recording ----------------------------------------------------------------------------


def test_records_events_on_the_identified_customer(source):
    results = events_ingest(
        source=source,
        items=[item("e-1", first_name="Ana", value="10.50", properties={"a": 1}), item("e-2", external_id="C-1")],
        now=NOW,
    )
    assert statuses(results) == [CREATED, CREATED]
    event = results[0].event
    assert Event.objects.filter(pk=event.pk).exists()
    stored = Event.objects.get(idempotency_key="e-1")
    assert (stored.source, stored.value, stored.payload, stored.recorded_at) == ("pos", Decimal("10.50"), {"a": 1}, NOW)
    customer = Customer.objects.get()
    assert (customer.email, customer.first_name) == ("ana@example.com", "Ana")
    assert CustomerIdentifier.objects.filter(customer=customer, kind="external", value="pos:C-1").exists()


def test_replay_is_duplicate_and_uses_constant_queries(source):
    small = [item(f"s-{n}") for n in range(3)]
    large = [item(f"l-{n}", email=f"c{n}@example.com") for n in range(60)]
    events_ingest(source=source, items=small + large, now=NOW)
    with CaptureQueriesContext(connection) as replay_small:
        assert set(statuses(events_ingest(source=source, items=small, now=NOW))) == {DUPLICATE}
    with CaptureQueriesContext(connection) as replay_large:
        assert set(statuses(events_ingest(source=source, items=large, now=NOW))) == {DUPLICATE}
    for replay in (replay_small, replay_large):
        # One look-up of the stored keys, one of the identifiers; no write.
        kinds = [query["sql"].split()[0] for query in replay.captured_queries]
        assert [kind for kind in kinds if kind not in ("SAVEPOINT", "RELEASE")] == ["SELECT", "SELECT"]
    assert Event.objects.count() == 63


def test_keys_are_per_source(source):
    other = EventSource(name="app")
    other.set_new_token()
    other.save()
    events_ingest(source=source, items=[item("e-1")], now=NOW)
    assert statuses(events_ingest(source=other, items=[item("e-1")], now=NOW)) == [CREATED]
    assert Event.objects.filter(idempotency_key="e-1").count() == 2


@pytest.mark.parametrize(
    "change",
    [
        {"value": "11.00"},
        {"type": "order_cancelled"},
        {"occurred_at": "2024-06-01T10:00:01+00:00"},
        {"properties": {"a": 2}},
        {"email": "someone.else@example.com"},
        {"external_id": "C-9"},
    ],
)
def test_same_key_other_content_is_conflict(source, change):
    original = item("e-1", value="10.00", properties={"a": 1})
    events_ingest(source=source, items=[original], now=NOW)
    result = events_ingest(source=source, items=[original | change], now=NOW)[0]
    assert result.status == CONFLICT
    assert "'e-1'" in result.errors["event_id"]
    assert Event.objects.get().value == Decimal("10.00")


def test_same_time_in_another_offset_and_profile_hints_are_not_content(source):
    events_ingest(source=source, items=[item("e-1", first_name="Ana")], now=NOW)
    replay = item("e-1", occurred_at="2024-06-01T12:00:00+02:00", first_name="Anna", email="ANA@example.com")
    assert statuses(events_ingest(source=source, items=[replay], now=NOW)) == [DUPLICATE]


def test_replay_after_the_customer_was_merged_is_still_duplicate(source):
    events_ingest(source=source, items=[item("e-1", phone="+34612345678", email=None)], now=NOW)
    account = customer_create(email="ana@example.com")
    # An event naming both identifiers proves they are one person: the customers merge.
    events_ingest(source=source, items=[item("e-2", phone="+34612345678")], now=NOW)
    assert Customer.objects.canonical().count() == 1
    replay = events_ingest(source=source, items=[item("e-1", phone="+34612345678", email=None)], now=NOW)
    assert statuses(replay) == [DUPLICATE]
    assert set(Event.objects.values_list("customer_id", flat=True)) == {account.pk}


def test_events_of_a_customer_merged_within_the_batch_land_on_the_survivor(source):
    email_holder = customer_create(email="ana@example.com")
    phone_holder = customer_create(phone="+34612345678", email="")
    results = events_ingest(
        source=source,
        items=[
            item("e-1", email=None, phone="+34612345678"),
            item("e-2", phone="+34612345678"),  # both identifiers: merges the two customers
            item("e-3", email=None, phone="+34612345678"),
        ],
        now=NOW,
    )
    assert statuses(results) == [CREATED] * 3
    assert Customer.objects.get(pk=phone_holder.pk).merged_into_id == email_holder.pk
    events = Event.objects.order_by("idempotency_key")
    assert [event.customer_id for event in events] == [email_holder.pk] * 3
    assert [event.recorded_for_id for event in events] == [phone_holder.pk, email_holder.pk, phone_holder.pk]


def test_repeats_within_a_batch(source):
    results = events_ingest(
        source=source,
        items=[item("e-1"), item("e-1"), item("e-1", value="5.00"), item("x", type="nope"), item("x")],
        now=NOW,
    )
    assert statuses(results) == [CREATED, DUPLICATE, CONFLICT, REJECTED, CREATED]
    assert "item 0" in results[2].errors["event_id"]
    assert Event.objects.count() == 2


def test_unknown_product_is_rejected_and_its_repeat_too(source):
    product = create_product()
    missing = product.pk + 1000
    items = [item("e-1", product_id=product.pk), item("e-2", product_id=missing), item("e-2", product_id=missing)]
    results = events_ingest(source=source, items=items, now=NOW)
    assert statuses(results) == [CREATED, REJECTED, REJECTED]
    assert "not a product" in results[2].errors["product_id"]
    assert Event.objects.get().product_id == product.pk


def test_rejected_items_create_no_customer(source):
    events_ingest(source=source, items=[item("e-1", type="nope"), item("e-2", email="bad@")], now=NOW)
    assert not Customer.objects.exists()


def test_key_stored_concurrently_is_looked_up_again(source, monkeypatch):
    real_classify, real_record = ingest._classify, ingest.timeline_record_events
    inserts = []

    def racing_classify(source_name, todo, results):
        found = real_classify(source_name, todo, results)
        if not inserts:  # another request stores e-1 between our look-up and our insert
            customer = customer_create(email="ana@example.com")
            Event.objects.create(
                customer=customer, recorded_for=customer, type="order_placed", source="pos", idempotency_key="e-1",
                occurred_at=datetime(2024, 6, 1, 10, 0, tzinfo=dt_timezone.utc),
            )  # fmt: skip
        return found

    def counting_record(new_events):
        inserts.append(len(new_events))
        return real_record(new_events)

    monkeypatch.setattr(ingest, "_classify", racing_classify)
    monkeypatch.setattr(ingest, "timeline_record_events", counting_record)
    results = events_ingest(source=source, items=[item("e-1"), item("e-2")], now=NOW)
    assert statuses(results) == [DUPLICATE, CREATED]
    assert inserts == [2, 1]
    assert Event.objects.count() == 2


def test_new_customers_are_created_in_bulk_as_identify_would(source, monkeypatch):
    def refuse(**kwargs):
        raise AssertionError("customer_identify should not be needed for new customers")

    monkeypatch.setattr(ingest, "customer_identify", refuse)
    items = [
        item("e-1", phone="+34612345678", first_name="Ana"),
        item("e-2", email=None, phone="+34612345678", external_id="C-1", last_name="Gil"),
        item("e-3", email="bea@example.com"),
    ]
    assert statuses(events_ingest(source=source, items=items, now=NOW)) == [CREATED] * 3
    ana, bea = Customer.objects.order_by("pk")
    assert (ana.email, ana.phone, ana.first_name, ana.last_name) == ("ana@example.com", "+34612345678", "Ana", "Gil")
    assert set(ana.identifiers.values_list("kind", "value", "source")) == {
        ("email", "ana@example.com", "pos"),
        ("phone", "+34612345678", "pos"),
        ("external", "pos:C-1", "pos"),
    }
    assert bea.email == "bea@example.com"
    assert list(Event.objects.order_by("idempotency_key").values_list("customer_id", flat=True)) == [ana.pk] * 2 + [
        bea.pk
    ]


def test_known_customers_are_identified_only_to_fill_their_profile(source, monkeypatch):
    calls = []
    real = ingest.customer_identify
    monkeypatch.setattr(ingest, "customer_identify", lambda **kwargs: calls.append(kwargs) or real(**kwargs))
    customers = {}
    events_ingest(source=source, items=[item("e-1"), item("e-2")], now=NOW, customers=customers)
    events_ingest(source=source, items=[item("e-3"), item("e-4", first_name="Ana")], now=NOW, customers=customers)
    events_ingest(source=source, items=[item("e-5", first_name="Ana")], now=NOW)
    assert [call.get("first_name") for call in calls] == ["Ana"]
    assert Customer.objects.get().first_name == "Ana"
    assert Event.objects.count() == 5
