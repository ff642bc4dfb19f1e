"""POST /journeys/api/events/: authentication, limits, per-item results, idempotency, throttling."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.cache import cache
from django.test import override_settings
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from oscar_journeys.models import Customer, Event, EventSource

URL = "/journeys/api/events/"


@pytest.fixture
def client(source):
    cache.clear()  # throttle history lives in the cache
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {source.token}")
    return api


AN_HOUR_AGO = (timezone.now() - timedelta(hours=1)).isoformat()


def item(event_id="e-1", **fields):
    base = {"event_id": event_id, "type": "order_placed", "occurred_at": AN_HOUR_AGO, "email": "ana@example.com"}
    return base | fields


def post(client, *items, **kwargs):
    return client.post(URL, {"events": list(items)}, format="json", **kwargs)


def test_url_name():
    assert reverse("oscar_journeys:api-events") == URL


# --- authentication -----------------------------------------------------------------------


def test_no_credentials_is_401_with_challenge(db):
    response = APIClient().post(URL, {"events": [item()]}, format="json")
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Token")
    assert not Event.objects.exists()


def test_wrong_token_is_401(source):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token not-the-token")
    response = post(api, item())
    assert response.status_code == 401
    assert "WWW-Authenticate" in response
    assert not Event.objects.exists()


def test_inactive_source_is_401(source, client):
    EventSource.objects.filter(pk=source.pk).update(is_active=False)
    response = post(client, item())
    assert response.status_code == 401
    assert "disabled" in response.json()["detail"]
    assert not Event.objects.exists()


def test_bearer_keyword_is_accepted(source):
    cache.clear()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {source.token}")
    assert post(api, item()).status_code == 200


def test_keyword_without_token_is_401(source):
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION="Token")
    assert post(api, item()).status_code == 401


@override_settings(
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": ["rest_framework.authentication.SessionAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAdminUser"],
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.TemplateHTMLRenderer"],
        "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.FormParser"],
        "DEFAULT_VERSIONING_CLASS": "rest_framework.versioning.URLPathVersioning",
        "ALLOWED_VERSIONS": ["v2"],
        "DEFAULT_THROTTLE_RATES": {"journeys-events": "100/min"},
    }
)
def test_project_drf_defaults_do_not_change_the_endpoint(client, admin_user):
    assert post(client, item()).status_code == 200
    staff = APIClient()
    staff.force_login(admin_user)  # a staff session is no event source
    response = post(staff, item("e-2"))
    assert response.status_code == 401
    assert response["Content-Type"] == "application/json"


@override_settings(REST_FRAMEWORK={})
def test_scope_without_a_rate_is_not_throttled(client):
    for n in range(3):
        assert post(client, item(f"e-{n}")).status_code == 200


def test_last_used_at_is_written_at_most_once_a_minute(source, client):
    recent = timezone.now() - timedelta(seconds=30)
    EventSource.objects.filter(pk=source.pk).update(last_used_at=recent)
    post(client, item("e-1"))
    source.refresh_from_db()
    assert source.last_used_at == recent

    older = timezone.now() - timedelta(minutes=2)
    EventSource.objects.filter(pk=source.pk).update(last_used_at=older)
    post(client, item("e-2"))
    source.refresh_from_db()
    assert source.last_used_at > older + timedelta(minutes=1)


# --- the request body ---------------------------------------------------------------------


@override_settings(OSCAR_JOURNEYS_API_MAX_BATCH=2)
def test_oversized_batch_is_400_naming_the_limit(client):
    response = post(client, item("a"), item("b"), item("c"))
    assert response.status_code == 400
    message = response.json()["events"][0]
    assert "at most 2 events" in message and "has 3" in message
    assert not Event.objects.exists()


@pytest.mark.parametrize(
    "body, fragment",
    [
        ({"evnts": []}, 'no "events"'),
        ({"events": {"event_id": "x"}}, "must be a list"),
        ({"events": None}, "not null"),
        ({"events": []}, "empty"),
    ],
)
def test_bad_envelope_is_400(client, body, fragment):
    response = client.post(URL, body, format="json")
    assert response.status_code == 400
    assert fragment in response.json()["events"][0]


def test_body_that_is_not_an_object_is_400(client):
    response = client.post(URL, [item()], format="json")
    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["non_field_errors"][0]


def test_body_that_is_not_json_is_400(client):
    response = client.post(URL, "events: [1, 2", content_type="application/json")
    assert response.status_code == 400
    assert "JSON parse error" in response.json()["detail"]


def test_form_encoded_body_is_refused(client):
    response = client.post(URL, {"events": "x"})  # multipart form, not JSON
    assert response.status_code == 415
    assert not Event.objects.exists()


# --- items --------------------------------------------------------------------------------


def test_valid_batch_is_200_and_stored(client, source):
    response = post(
        client,
        item("e-1", value="59.90", currency="eur", category="Shoes", properties={"store": "Madrid"}, first_name="Ana"),
        item("e-2", type="product_viewed", email="ANA@example.com"),
    )
    assert response.status_code == 200
    body = response.json()
    assert body["results"] == [
        {"index": 0, "event_id": "e-1", "status": "created"},
        {"index": 1, "event_id": "e-2", "status": "created"},
    ]
    assert body["counts"] == {"created": 2, "duplicate": 0, "rejected": 0, "conflict": 0}
    order = Event.objects.get(idempotency_key="e-1")
    assert (order.source, order.value, order.currency, order.category) == ("pos", Decimal("59.90"), "EUR", "Shoes")
    assert order.payload == {"store": "Madrid"}
    assert order.customer.email == "ana@example.com" and order.customer.first_name == "Ana"
    assert Event.objects.get(idempotency_key="e-2").customer_id == order.customer_id


@pytest.mark.parametrize(
    "fields, field, fragments",
    [
        ({"type": "order_sent"}, "type", ["type", "'order_sent'", "order_placed"]),
        ({"occurred_at": "yesterday"}, "occurred_at", ["occurred_at", "'yesterday'", "ISO 8601"]),
        ({"occurred_at": "2024-05-01T14:30:00"}, "occurred_at", ["occurred_at", "no UTC offset"]),
        ({"occurred_at": "2999-01-01T00:00:00Z"}, "occurred_at", ["occurred_at", "in the future"]),
        ({"occurred_at": "9999-12-31T23:59:59-01:00"}, "occurred_at", ["occurred_at", "in the future"]),
        ({"occurred_at": "0001-01-01T00:00:00+01:00"}, "occurred_at", ["occurred_at", "before the year 1970"]),
        ({"email": "ana@"}, "email", ["email", "'ana@'"]),
        ({"email": None, "phone": "12"}, "phone", ["phone", "'12'"]),
        ({"email": None}, "customer", ["email, phone or external_id"]),
        ({"value": "ten"}, "value", ["value", "'ten'", "not a number"]),
        ({"value": "1.234"}, "value", ["value", "'1.234'", "2 decimal places"]),
        ({"currency": "EURO"}, "currency", ["currency", "'EURO'", "ISO 4217"]),
        ({"product_id": "abc"}, "product_id", ["product_id", "'abc'"]),
        ({"product_id": 987654}, "product_id", ["product_id", "987654", "not a product"]),
        ({"properties": [1, 2]}, "properties", ["properties", "JSON object", "[1, 2]"]),
        ({"date_of_birth": "12/04/1990"}, "date_of_birth", ["date_of_birth", "'12/04/1990'"]),
        ({"emial": "x@example.com"}, "emial", ["'emial'", "not a known field"]),
        ({"event_id": ""}, "event_id", ["event_id", "required"]),
        ({"first_name": "x" * 151}, "first_name", ["first_name", "at most 150"]),
    ],
)
def test_bad_item_is_rejected_naming_field_and_value(client, fields, field, fragments):
    response = post(client, item(**fields))
    assert response.status_code == 400
    result = response.json()["results"][0]
    assert result["status"] == "rejected"
    message = result["errors"][field]
    for fragment in fragments:
        assert fragment in message
    assert not Event.objects.exists()


@override_settings(OSCAR_JOURNEYS_MAX_PAYLOAD_BYTES=50)
def test_oversized_properties_are_rejected(client):
    result = post(client, item(properties={"note": "x" * 100})).json()["results"][0]
    assert result["status"] == "rejected"
    assert "at most 50" in result["errors"]["properties"]


def test_item_that_is_not_an_object_is_rejected(client):
    response = post(client, "e-1")
    assert response.status_code == 400
    assert "must be a JSON object" in response.json()["results"][0]["errors"]["event"]


def test_mixed_batch_is_207_and_keeps_the_good_items(client):
    response = post(client, item("good-1"), item("bad", type="nope"), item("good-2", email="bea@example.com"))
    assert response.status_code == 207
    body = response.json()
    assert [r["status"] for r in body["results"]] == ["created", "rejected", "created"]
    assert body["counts"] == {"created": 2, "duplicate": 0, "rejected": 1, "conflict": 0}
    assert set(Event.objects.values_list("idempotency_key", flat=True)) == {"good-1", "good-2"}


def test_identical_replay_answers_duplicate_and_writes_nothing(client):
    batch = [item("e-1"), item("e-2", type="nope"), item("e-3", phone="+447911123456")]
    first = post(client, *batch)
    customers = Customer.objects.count()
    second = post(client, *batch)
    assert first.status_code == second.status_code == 207
    assert [r["status"] for r in first.json()["results"]] == ["created", "rejected", "created"]
    assert [r["status"] for r in second.json()["results"]] == ["duplicate", "rejected", "duplicate"]
    assert second.json()["results"][1]["errors"] == first.json()["results"][1]["errors"]
    assert Event.objects.count() == 2
    assert Customer.objects.count() == customers


def test_same_key_with_other_content_is_409_conflict(client):
    original = item("e-1", value="10.00")
    assert post(client, original).status_code == 200
    response = post(client, {**original, "value": "12.00"})
    assert response.status_code == 409
    result = response.json()["results"][0]
    assert result["status"] == "conflict"
    assert "'e-1'" in result["errors"]["event_id"]
    assert Event.objects.get().value == Decimal("10.00")


def test_conflict_within_one_batch_keeps_the_first(client):
    response = post(client, item("e-1", value="10.00"), item("e-1", value="10.00"), item("e-1", value="99.00"))
    assert response.status_code == 207
    assert [r["status"] for r in response.json()["results"]] == ["created", "duplicate", "conflict"]
    assert Event.objects.get().value == Decimal("10.00")


# --- throttling ---------------------------------------------------------------------------


@override_settings(REST_FRAMEWORK={"DEFAULT_THROTTLE_RATES": {"journeys-events": "2/min"}})
def test_throttle_is_429_per_source(client):
    assert post(client, item("e-1")).status_code == 200
    assert post(client, item("e-2")).status_code == 200
    response = post(client, item("e-3"))
    assert response.status_code == 429
    assert int(response["Retry-After"]) > 0
    assert not Event.objects.filter(idempotency_key="e-3").exists()

    other = EventSource(name="app")
    token = other.set_new_token()
    other.save()
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Token {token}")
    assert post(api, item("e-3")).status_code == 200
