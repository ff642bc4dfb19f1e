"""Consent policies, the suppression list and reachability (bulk and per message)."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from oscar_journeys.exceptions import JourneysError
from oscar_journeys.models import Consent, Customer, CustomerIdentifier, Event, Suppression
from oscar_journeys.services import consent as service
from oscar_journeys.services.customers import customer_merge
from oscar_journeys.services.timeline import timeline_record_event

pytestmark = pytest.mark.django_db
NOW = timezone.now()
KINDS = ["email", "sms", "push", "webhook"]


@pytest.fixture
def people(make_customer, django_user_model):
    """registered: an account; buyer: an order; stranger: neither; refused: an account who
    said no to email; texter: said yes to SMS."""
    user = django_user_model.objects.create_user(username="reg", email="reg@example.com", password="x")
    registered = make_customer(email="reg@example.com", user=user)
    buyer = make_customer(email="Buyer@Example.com".lower(), phone="+447700900001")
    timeline_record_event(customer=buyer, type="order_placed", idempotency_key="order:1")
    stranger = make_customer(email="stranger@example.com")
    refused = make_customer(email="refused@example.com", user=django_user_model.objects.create_user(username="r"))
    service.consent_set(customer=refused, kind="email", granted=False, source="checkout", now=NOW)
    texter = make_customer(email="", phone="+447700900002")
    service.consent_set(customer=texter, kind="sms", granted=True, source="checkout", wording="v1", now=NOW)
    CustomerIdentifier.objects.create(customer=texter, kind="push", value="old-token")
    CustomerIdentifier.objects.create(customer=texter, kind="push", value="new-token")
    return {"registered": registered, "buyer": buyer, "stranger": stranger, "refused": refused, "texter": texter}


def frame_for(people, kinds=KINDS):
    ids = [customer.pk for customer in people.values()]
    frame = service.reachability(customer_ids=ids, kinds=kinds)
    return frame.rename(index={customer.pk: name for name, customer in people.items()})


def test_reachability_columns_addresses_and_default_policies(people):
    frame = frame_for(people)
    assert list(frame.columns) == [f"{k}_{c}" for k in KINDS for c in ("address", "consent", "suppressed")]
    assert frame.loc["buyer", "email_address"] == "buyer@example.com"
    assert frame.loc["texter", "email_address"] == "" and frame.loc["texter", "sms_address"] == "+447700900002"
    assert frame.loc["texter", "push_address"] == "new-token"
    assert frame.loc["stranger", "push_address"] == ""
    assert frame.loc["stranger", "webhook_address"] == str(people["stranger"].pk)
    # email is soft opt-in: an account or an order counts, an explicit no wins.
    assert frame["email_consent"].to_dict() == {
        "registered": True, "buyer": True, "stranger": False, "refused": False, "texter": False,
    }
    # sms is opt-in: only the recorded yes.
    assert frame["sms_consent"].to_dict() == {
        "registered": False, "buyer": False, "stranger": False, "refused": False, "texter": True,
    }
    assert frame["webhook_consent"].all()
    assert not frame[[f"{k}_suppressed" for k in KINDS]].any().any()
    assert frame["email_consent"].dtype == bool and frame["email_suppressed"].dtype == bool


def test_policies_follow_the_setting(people, settings):
    settings.OSCAR_JOURNEYS_CONSENT_REQUIRED = {"email": "opt_in", "sms": "none", "push": "soft_opt_in"}
    frame = frame_for(people, ["email", "sms", "push", "webhook"])
    assert not frame["email_consent"].any()  # nobody said yes to email
    assert frame["sms_consent"].all()
    assert frame["push_consent"].to_dict() == {
        "registered": True, "buyer": True, "stranger": False, "refused": True, "texter": False,
    }
    assert not frame["webhook_consent"].any()  # not in the setting: opt-in, the strict default


def test_suppression_is_by_hashed_address_whatever_the_case(people):
    service.suppress(kind="email", address="  BUYER@example.COM ", reason=Suppression.BOUNCED, now=NOW)
    service.suppress(kind="sms", address="+44 7700 900002", reason=Suppression.STOPPED, now=NOW)
    frame = frame_for(people)
    assert frame["email_suppressed"].to_dict() == {
        "registered": False, "buyer": True, "stranger": False, "refused": False, "texter": False,
    }
    assert frame.loc["texter", "sms_suppressed"] and not frame.loc["buyer", "sms_suppressed"]
    assert "buyer" not in "".join(Suppression.objects.values_list("address_hash", flat=True))


def test_unknown_ids_and_empty_kinds(people):
    frame = service.reachability(customer_ids=[people["buyer"].pk, 999999], kinds=["email"])
    assert frame.loc[999999].tolist() == ["", False, False]
    assert list(service.reachability(customer_ids=[1, 2], kinds=[]).index) == [1, 2]
    with pytest.raises(JourneysError, match="fax"):
        service.reachability(customer_ids=[1], kinds=["fax"])


def test_reachability_is_bulk(db):
    Customer.objects.bulk_create([Customer(email=f"c{n}@example.com") for n in range(2000)])
    ids = list(Customer.objects.values_list("pk", flat=True))
    Suppression.objects.create(channel_kind="email", address_hash=service.address_hash("email", "c7@example.com"), reason="manual")
    with CaptureQueriesContext(connection) as queries:
        frame = service.reachability(customer_ids=ids, kinds=KINDS)
    assert len(frame) == 2000
    assert int(frame["email_suppressed"].sum()) == 1
    # Dense ids are read by range: customers, push ids, consents, orders, then per kind a
    # count of the suppression list and one read of it.
    assert len(queries) <= 4 + 2 * len(KINDS)


def test_reachability_of_sparse_ids_matches_one_by_one(db):
    made = Customer.objects.bulk_create([Customer(email=f"s{n}@example.com") for n in range(300)])
    ids = sorted(Customer.objects.values_list("pk", flat=True))[::37]  # spread out: read with IN lists
    ids.append(10**9)  # and one unknown id far away
    service.suppress(kind="email", address="S37@example.com", reason=Suppression.BOUNCED, now=NOW)
    frame = service.reachability(customer_ids=ids, kinds=["email"])
    assert len(made) == 300 and list(frame.index) == ids
    by_id = {c.pk: c for c in Customer.objects.filter(pk__in=ids)}
    for pk in ids[:-1]:
        assert frame.loc[pk, "email_address"] == by_id[pk].email
        assert bool(frame.loc[pk, "email_suppressed"]) == service.is_suppressed(kind="email", address=by_id[pk].email)
    assert frame["email_suppressed"].sum() == 1
    assert frame.loc[10**9].tolist() == ["", False, False]


def test_message_blocks_checks_a_batch_in_a_few_queries(people, make_customer):
    buyer, stranger, texter = people["buyer"], people["stranger"], people["texter"]
    service.suppress(kind="sms", address=texter.phone, reason=Suppression.STOPPED, now=NOW)
    items = [
        (buyer, "email", buyer.email), (stranger, "email", stranger.email), (texter, "email", ""),
        (texter, "sms", texter.phone), (buyer, "email", buyer.email.upper()),
    ]
    with CaptureQueriesContext(connection) as queries:
        reasons = service.message_blocks(items * 20)
    assert reasons[:5] == ["", "no_consent", "unreachable", "suppressed", ""]
    assert reasons == reasons[:5] * 20
    assert reasons[:5] == [service.can_message(customer=c, kind=k, address=a) for c, k, a in items]
    assert len(queries) <= 2 + 2 * 2  # consents, orders; per kind: the list's size and its hashes


def test_can_message_gives_the_decision_reason(people):
    buyer, stranger, texter = people["buyer"], people["stranger"], people["texter"]
    assert service.can_message(customer=buyer, kind="email", address=buyer.email) == ""
    assert service.can_message(customer=stranger, kind="email", address=stranger.email) == "no_consent"
    assert service.can_message(customer=texter, kind="email", address="") == "unreachable"
    assert service.can_message(customer=texter, kind="sms", address=texter.phone) == ""
    service.suppress(kind="email", address=buyer.email, reason=Suppression.UNSUBSCRIBED, now=NOW)
    assert service.can_message(customer=buyer, kind="email", address=buyer.email.upper()) == "suppressed"
    # Withdrawing consent after the decision stops the send (the send-time re-check).
    service.consent_set(customer=texter, kind="sms", granted=False, source="preferences", now=NOW)
    assert service.can_message(customer=texter, kind="sms", address=texter.phone) == "no_consent"


def test_consent_set_records_changes_on_the_timeline_once(make_customer):
    customer = make_customer()
    consent, changed = service.consent_set(customer=customer, kind="email", granted=True, source="checkout", wording="v2", now=NOW)
    assert changed and (consent.granted, consent.source, consent.wording, consent.changed_at) == (True, "checkout", "v2", NOW)
    assert service.consent_set(customer=customer, kind="email", granted=True, source="api", now=NOW)[1] is False
    later = NOW + timedelta(days=1)
    consent, changed = service.consent_set(customer=customer, kind="email", granted=False, source="unsubscribe_link", now=later)
    assert changed and Consent.objects.get(pk=consent.pk).source == "unsubscribe_link"
    events = list(Event.objects.filter(customer=customer).order_by("occurred_at").values_list("type", "occurred_at", "payload"))
    assert events == [
        ("consent_granted", NOW, {"channel_kind": "email", "source": "checkout", "wording": "v2"}),
        ("consent_withdrawn", later, {"channel_kind": "email", "source": "unsubscribe_link", "wording": ""}),
    ]


def test_consent_of_a_merged_customer_lands_on_the_survivor(make_customer):
    survivor, merged = make_customer(), make_customer()
    customer_merge(survivor=survivor, merged=merged, reason="admin")
    merged.refresh_from_db()
    service.consent_set(customer=merged, kind="sms", granted=True, source="api", now=NOW)
    assert Consent.objects.get().customer_id == survivor.pk


def test_suppress_and_unsuppress_by_reason():
    first, created = service.suppress(kind="email", address="A@example.com", reason=Suppression.UNSUBSCRIBED, detail="m1")
    again, created_again = service.suppress(kind="email", address="a@example.com", reason=Suppression.BOUNCED)
    assert created and not created_again and again.pk == first.pk and again.reason == Suppression.UNSUBSCRIBED
    assert service.is_suppressed(kind="email", address=" a@EXAMPLE.com")
    assert not service.is_suppressed(kind="sms", address="a@example.com")
    assert service.unsuppress(kind="email", address="a@example.com", reasons=[Suppression.BOUNCED]) == 0
    assert service.unsuppress(kind="email", address="a@example.com", reasons=[Suppression.UNSUBSCRIBED]) == 1
    assert not Suppression.objects.exists()
    with pytest.raises(JourneysError):
        service.suppress(kind="email", address=" ", reason=Suppression.BOUNCED)
    with pytest.raises(JourneysError):
        service.suppress(kind="email", address="x@example.com", reason="bored")


def test_phone_numbers_are_normalised_before_hashing(settings):
    settings.OSCAR_JOURNEYS_DEFAULT_PHONE_REGION = "GB"
    service.suppress(kind="sms", address="07700 900123", reason=Suppression.STOPPED)
    assert service.is_suppressed(kind="sms", address="+447700900123")
