import datetime as dt

import pytest
from django.contrib.auth import get_user_model

from oscar_journeys.exceptions import InvalidEventError, MergeError
from oscar_journeys.models import Customer, CustomerIdentifier, CustomerMerge, Event
from oscar_journeys.services import customers as svc
from oscar_journeys.services.timeline import timeline_record_event

pytestmark = pytest.mark.django_db


def record(customer, n=1, type="product_viewed"):
    return [timeline_record_event(customer=customer, type=type)[0] for _ in range(n)]


@pytest.mark.parametrize(
    "raw, expected",
    [("  Ana@Example.COM ", "ana@example.com"), ("b@x.io", "b@x.io")],
)
def test_normalize_email(raw, expected):
    assert svc.normalize_email(raw) == expected


@pytest.mark.parametrize("raw", ["", "not-an-email", "a@", "@b.com"])
def test_normalize_email_rejects_with_the_value_named(raw):
    with pytest.raises(InvalidEventError) as err:
        svc.normalize_email(raw)
    assert "email" in err.value.errors and repr(raw) in err.value.errors["email"]


def test_normalize_phone_to_e164(settings):
    assert svc.normalize_phone("+44 7911 123456") == "+447911123456"
    settings.OSCAR_JOURNEYS_DEFAULT_PHONE_REGION = "ES"
    assert svc.normalize_phone("612 34 56 78") == "+34612345678"


def test_normalize_phone_rejects_local_number_without_region():
    with pytest.raises(InvalidEventError) as err:
        svc.normalize_phone("07911 123456")
    assert "phone" in err.value.errors


def test_merge_moves_events_and_revert_gives_them_back(make_customer):
    survivor = make_customer(email="a@example.com")
    merged = make_customer(email="b@example.com", first_name="Bea", date_of_birth=dt.date(1990, 5, 17))
    record(survivor, 2)
    record(merged, 3)

    merge = svc.customer_merge(survivor=survivor, merged=merged, reason=CustomerMerge.ADMIN)

    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert merged.merged_into_id == survivor.pk
    assert Event.objects.filter(customer=survivor).count() == 5
    assert merge.events_moved == 3
    assert (survivor.first_name, survivor.date_of_birth) == ("Bea", dt.date(1990, 5, 17))
    # Identifiers stay and resolve to the survivor.
    assert svc.customer_by_identifier("email", "b@example.com").pk == survivor.pk
    # An event arriving for the merged record lands on the survivor.
    late = record(merged)[0]
    assert late.customer_id == survivor.pk and late.recorded_for_id == merged.pk

    svc.customer_merge_revert(merge)

    survivor.refresh_from_db()
    merged.refresh_from_db()
    assert merged.merged_into_id is None
    assert Event.objects.filter(customer=survivor).count() == 2
    assert Event.objects.filter(customer=merged).count() == 4  # its 3 and the late one
    assert (survivor.first_name, survivor.date_of_birth) == ("", None)
    assert svc.customer_by_identifier("email", "b@example.com").pk == merged.pk
    with pytest.raises(MergeError):
        svc.customer_merge_revert(merge)


def test_merge_flattens_chains_and_revert_restores_them(make_customer):
    a, b, c = make_customer(), make_customer(), make_customer()
    record(a)
    record(b)
    record(c)
    first = svc.customer_merge(survivor=b, merged=a, reason=CustomerMerge.ADMIN)  # a -> b
    second = svc.customer_merge(survivor=c, merged=b, reason=CustomerMerge.ADMIN)  # b (and a) -> c
    a.refresh_from_db()
    assert a.merged_into_id == c.pk  # one hop
    assert Event.objects.filter(customer=c).count() == 3
    assert second.flattened == [a.pk]

    svc.customer_merge_revert(second)
    a.refresh_from_db()
    assert a.merged_into_id == b.pk
    assert Event.objects.filter(customer=b).count() == 2
    assert Event.objects.filter(customer=c).count() == 1
    svc.customer_merge_revert(first)
    assert Event.objects.filter(customer=a).count() == 1


def test_merge_refuses_self_and_already_merged(make_customer):
    a, b = make_customer(), make_customer()
    with pytest.raises(MergeError):
        svc.customer_merge(survivor=a, merged=a, reason=CustomerMerge.ADMIN)
    svc.customer_merge(survivor=a, merged=b, reason=CustomerMerge.ADMIN)
    with pytest.raises(MergeError):
        svc.customer_merge(survivor=a, merged=b, reason=CustomerMerge.ADMIN)


def test_revert_refused_while_merged_customer_was_merged_again(make_customer):
    a, b, c = make_customer(), make_customer(), make_customer()
    first = svc.customer_merge(survivor=b, merged=a, reason=CustomerMerge.ADMIN)
    svc.customer_merge(survivor=c, merged=b, reason=CustomerMerge.ADMIN)
    # a now points at c, not at first.survivor (b): revert the later merge first.
    with pytest.raises(MergeError):
        svc.customer_merge_revert(first)


def test_identify_merges_customers_that_two_identifiers_prove_to_be_one(make_customer):
    by_email = make_customer(email="x@example.com")
    by_phone = svc.customer_identify(source="pos", phone="+447911123456")
    record(by_phone, 2)

    found = svc.customer_identify(source="pos", email="X@example.com", phone="+44 7911 123456", external_id="77")

    assert found.pk == by_email.pk
    assert Event.objects.filter(customer=found).count() == 2
    assert CustomerMerge.objects.get().reason == "api"
    assert svc.customer_by_identifier("external", "pos:77").pk == found.pk
    assert found.phone == "+447911123456"


def test_identify_requires_an_identifier():
    with pytest.raises(InvalidEventError) as err:
        svc.customer_identify(source="pos")
    assert "customer" in err.value.errors


def test_account_claims_guest_customer_with_its_email(make_customer):
    guest = make_customer(email="guest@example.com")
    user = get_user_model().objects.create_user("guest", "Guest@example.com", "pw")
    assert svc.customer_for_user(user).pk == guest.pk
    guest.refresh_from_db()
    assert guest.user_id == user.pk


def test_link_visitor_to_an_email_nobody_holds_gives_it_the_email():
    visitor = Customer.objects.create()
    assert svc.customer_link(customer_id=visitor.pk, email="New@Example.com", reason="guest_checkout").pk == visitor.pk
    visitor.refresh_from_db()
    assert visitor.email == "new@example.com"
    assert CustomerIdentifier.objects.get(kind="email").customer_id == visitor.pk


def test_link_never_merges_two_accounts(make_customer):
    User = get_user_model()
    one = svc.customer_for_user(User.objects.create_user("one", "one@example.com", "pw"))
    two = svc.customer_for_user(User.objects.create_user("two", "two@example.com", "pw"))
    result = svc.customer_link(customer_id=one.pk, email="two@example.com", reason="guest_checkout")
    assert result.pk == one.pk
    assert not CustomerMerge.objects.exists()
    assert Customer.objects.get(pk=two.pk).merged_into_id is None


def test_events_are_append_only(make_customer):
    event = record(make_customer())[0]
    event.type = "order_placed"
    with pytest.raises(TypeError):
        event.save()
    with pytest.raises(TypeError):
        Event.objects.filter(pk=event.pk).update(type="order_placed")


def test_same_idempotency_key_is_stored_once(make_customer):
    customer = make_customer()
    first, created = timeline_record_event(customer=customer, type="order_placed", idempotency_key="order:1")
    again, created_again = timeline_record_event(customer=customer, type="order_placed", idempotency_key="order:1")
    assert created and not created_again and first.pk == again.pk
    assert Event.objects.count() == 1


def test_events_recorded_for_a_merged_customer_reach_the_survivors_snapshot(make_customer):
    import datetime as dt

    from django.utils import timezone

    from oscar_journeys.models import Snapshot
    from oscar_journeys.services.snapshots import snapshot_build

    survivor, merged = make_customer(), make_customer()
    svc.customer_merge(survivor=survivor, merged=merged, reason=CustomerMerge.ADMIN)
    # A browser session still names the merged record (the receivers trust the session):
    when = timezone.now() - dt.timedelta(days=2)
    stale = Customer(pk=merged.pk)  # merged_into unknown to the caller
    timeline_record_event(customer=stale, type="order_placed", occurred_at=when, value=30)
    assert Event.objects.get().customer_id == merged.pk

    snapshot_build(as_of=timezone.localdate() - dt.timedelta(days=1))

    event = Event.objects.get()
    assert (event.customer_id, event.recorded_for_id) == (survivor.pk, merged.pk)
    row = Snapshot.objects.get()
    assert (row.customer_id, row.frequency, row.monetary) == (survivor.pk, 1, 30.0)


def test_cached_customer_ids_follow_merges_and_reverts(make_customer):
    a, b = make_customer(email="a@example.com"), make_customer(email="b@example.com")
    assert svc.cached_customer_id("email", "b@example.com") == b.pk  # now cached
    merge = svc.customer_merge(survivor=a, merged=b, reason=CustomerMerge.ADMIN)
    assert svc.cached_customer_id("email", "b@example.com") == a.pk
    svc.customer_merge_revert(merge)
    assert svc.cached_customer_id("email", "b@example.com") == b.pk
    assert svc.cached_customer_id("email", "nobody@example.com") is None
