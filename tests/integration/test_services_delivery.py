"""Sending the outbox: once, with retries and back-off, failures, the stuck sweep and the
send-time consent re-check."""

import datetime as dt
import random
from unittest import mock

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from oscar_journeys.channels import locmem
from oscar_journeys.models import Consent, Event, Message, Suppression
from oscar_journeys.models import campaigns as c
from oscar_journeys.services import delivery
from oscar_journeys.services.consent import consent_set, suppress
from oscar_journeys.services.decisions import decision_round
from oscar_journeys.services.delivery import message_retry_delay, messages_relay, messages_send

from .journeys_setup import BACKENDS, consent, enroll, make_campaign, make_channel

NOW = dt.datetime(2025, 6, 2, 12, 0, tzinfo=dt.timezone.utc)


@pytest.fixture(autouse=True)
def _settings(settings):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = BACKENDS
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0
    settings.OSCAR_JOURNEYS_SITE_URL = "https://shop.example.com"
    locmem.reset()
    yield
    locmem.reset()


@pytest.fixture
def email(db):
    return make_channel("Email")


@pytest.fixture
def campaign(email):
    return make_campaign("Birthday", channels=[email], trigger=c.BIRTHDAY)


def queue(campaign, customers, now=NOW):
    for customer in customers:
        enroll(campaign, customer, due=now)
    return decision_round(now=now, enqueue=False).message_ids


@pytest.fixture
def message(campaign, make_customer):
    (pk,) = queue(campaign, [consent(make_customer(first_name="Ana"))])
    return Message.objects.get(pk=pk)


def set_failure(channel, failure):
    channel.options = {"fail_with": failure} if failure else {}
    channel.save()


def test_a_message_is_rendered_and_sent_once(message):
    first = messages_send(message_ids=[message.pk], now=NOW)
    second = messages_send(message_ids=[message.pk], now=NOW)

    assert (first.sent, second.sent, second.skipped) == (1, 0, 1)
    assert len(locmem.outbox) == 1
    out = locmem.outbox[0]
    assert out.to == message.recipient and out.subject == "Birthday step 1"
    assert "Hello Ana" in out.text and out.idempotency_key == message.idempotency_key
    assert "List-Unsubscribe" in out.headers
    message.refresh_from_db()
    assert (message.status, message.sent_at, message.attempts) == ("sent", NOW, 1)
    assert message.provider_id.startswith("locmem-")
    assert message.links == ["https://shop.example.com/offer/"]


def test_one_connection_per_channel_per_batch(campaign, make_customer):
    ids = queue(campaign, [consent(make_customer()) for _ in range(3)])
    stats = messages_send(message_ids=ids, now=NOW)
    assert stats.sent == 3 and locmem.stats == {"opened": 1, "closed": 1}


def test_a_message_not_yet_due_is_left_alone(message):
    stats = messages_send(message_ids=[message.pk], now=NOW - dt.timedelta(seconds=1))
    assert stats.skipped == 1 and not locmem.outbox
    assert Message.objects.get().status == "queued"


def test_transient_errors_back_off_then_succeed(message, email, settings):
    settings.OSCAR_JOURNEYS_SEND_RETRY_BACKOFF_MAX = 600
    set_failure(email, "transient")

    stats = messages_send(message_ids=[message.pk], now=NOW)

    assert stats.retried == 1 and not locmem.outbox
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 1)
    assert NOW + dt.timedelta(seconds=15) <= message.send_after <= NOW + dt.timedelta(seconds=30)
    assert "transient" in message.last_error
    # Not due before the back-off has passed, even if asked.
    assert messages_send(message_ids=[message.pk], now=NOW + dt.timedelta(seconds=10)).skipped == 1

    later = message.send_after
    messages_send(message_ids=[message.pk], now=later)  # fails again: a longer back-off
    message.refresh_from_db()
    assert message.attempts == 2 and message.send_after - later >= dt.timedelta(seconds=30)

    set_failure(email, "")
    # The relay (what the tick runs) finds it once due and sends it.
    result = messages_relay(now=message.send_after, in_process=True)
    assert result["sent"] == 1 and len(locmem.outbox) == 1
    message.refresh_from_db()
    assert (message.status, message.attempts, message.last_error) == ("sent", 3, "")


def test_transient_errors_give_up_after_the_last_attempt(message, email, settings):
    settings.OSCAR_JOURNEYS_SEND_MAX_ATTEMPTS = 2
    set_failure(email, "transient")
    messages_send(message_ids=[message.pk], now=NOW)
    message.refresh_from_db()
    messages_send(message_ids=[message.pk], now=message.send_after)
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("failed", 2)


def test_a_permanent_error_fails_without_retry(message, email):
    set_failure(email, "permanent")
    stats = messages_send(message_ids=[message.pk], now=NOW)
    assert stats.failed == 1
    message.refresh_from_db()
    assert message.status == "failed" and message.attempts == 1
    assert not Suppression.objects.exists()
    assert messages_relay(now=NOW + dt.timedelta(days=1), in_process=True)["sent"] == 0


def test_a_bad_address_is_suppressed(message, email, campaign):
    set_failure(email, "permanent_suppress")
    messages_send(message_ids=[message.pk], now=NOW)
    suppression = Suppression.objects.get()
    assert (suppression.channel_kind, suppression.reason) == ("email", "bounced")
    # The next decision for that address is skipped.
    set_failure(email, "")
    enroll(campaign, message.customer, due=NOW, key="again")
    result = decision_round(now=NOW, enqueue=False)
    assert result.reasons == {"suppressed": 1} and not result.message_ids


def test_a_backend_that_cannot_open_retries_every_message(message, email):
    with mock.patch.object(locmem.LocmemChannel, "open", side_effect=OSError("connection refused")):
        stats = messages_send(message_ids=[message.pk], now=NOW)
    assert stats.retried == 1
    message.refresh_from_db()
    assert (message.status, message.attempts) == ("queued", 1) and "refused" in message.last_error


def test_a_backend_bug_fails_the_message_and_the_batch_goes_on(campaign, make_customer):
    ids = queue(campaign, [consent(make_customer()) for _ in range(2)])
    calls = {"n": 0}
    real = locmem.LocmemChannel.deliver

    def flaky(self, message, payload):
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("boom")
        return real(self, message, payload)

    with mock.patch.object(locmem.LocmemChannel, "deliver", flaky):
        stats = messages_send(message_ids=ids, now=NOW)
    assert (stats.failed, stats.sent) == (1, 1)


def test_unsubscribed_between_decision_and_send_is_cancelled(message):
    consent_set(customer=message.customer, kind="email", granted=False, source="preferences", now=NOW)
    stats = messages_send(message_ids=[message.pk], now=NOW)
    assert stats.cancelled == 1 and not locmem.outbox
    message.refresh_from_db()
    assert (message.status, message.last_error) == ("cancelled", "no_consent")


def test_suppressed_between_decision_and_send_is_cancelled(message):
    suppress(kind="email", address=message.recipient, reason="unsubscribed")
    messages_send(message_ids=[message.pk], now=NOW)
    message.refresh_from_db()
    assert (message.status, message.last_error) == ("cancelled", "suppressed")


def test_a_disabled_channel_cancels_its_messages(message, email):
    email.enabled = False
    email.save()
    messages_send(message_ids=[message.pk], now=NOW)
    message.refresh_from_db()
    assert message.status == "cancelled" and not locmem.outbox


def test_stuck_in_sending_is_failed_by_the_sweep_and_never_resent(message, settings):
    settings.OSCAR_JOURNEYS_SENDING_TIMEOUT_SECONDS = 900
    # A worker claimed it and died before the provider answered.
    Message.objects.filter(pk=message.pk).update(status="sending", claimed_at=NOW, attempts=1)

    early = messages_relay(now=NOW + dt.timedelta(seconds=899), in_process=True)
    assert early["stuck_failed"] == 0
    assert Message.objects.get().status == "sending"

    late = messages_relay(now=NOW + dt.timedelta(seconds=901), in_process=True)
    assert late["stuck_failed"] == 1
    message.refresh_from_db()
    assert message.status == "failed" and "not resent" in message.last_error
    messages_send(message_ids=[message.pk], now=NOW + dt.timedelta(days=1))
    assert not locmem.outbox


def test_a_late_result_does_not_move_a_status_backwards(campaign, make_customer, caplog):
    swept, other = (Message.objects.get(pk=pk) for pk in queue(campaign, [consent(make_customer()) for _ in range(2)]))
    outbox = delivery._Outbox(delivery.SendStats(), now=NOW)
    assert outbox.claim([swept, other]) == [swept, other]
    Message.objects.filter(pk=swept.pk).update(status="failed")  # the sweep got there first
    outbox.finish(swept, Message.SENT, sent_at=NOW, provider_id="a")
    outbox.finish(other, Message.SENT, sent_at=NOW, provider_id="b")  # written in the same executemany
    with caplog.at_level("WARNING", logger="oscar_journeys.services.delivery"):
        outbox.flush()
    assert dict(Message.objects.values_list("pk", "status")) == {swept.pk: "failed", other.pk: "sent"}
    assert Message.objects.get(pk=other.pk).provider_id == "b"
    assert "1 of messages" in caplog.text and str(swept.pk) in caplog.text


def test_an_outcome_is_written_with_the_next_claim(campaign, make_customer):
    first, second = (Message.objects.get(pk=pk) for pk in queue(campaign, [consent(make_customer()) for _ in range(2)]))
    outbox = delivery._Outbox(delivery.SendStats(), now=NOW)
    outbox.claim([first])
    outbox.finish(first, Message.SENT, sent_at=NOW)
    assert Message.objects.get(pk=first.pk).status == "sending"  # not yet written
    outbox.claim([second])
    assert dict(Message.objects.values_list("pk", "status")) == {first.pk: "sent", second.pk: "sending"}
    outbox.finish(second, Message.FAILED)
    outbox.flush()
    assert Message.objects.get(pk=second.pk).status == "failed"
    assert (outbox.stats.sent, outbox.stats.failed) == (1, 1)


def test_a_group_is_claimed_at_once_and_only_what_is_still_queued(campaign, make_customer):
    messages = [Message.objects.get(pk=pk) for pk in queue(campaign, [consent(make_customer()) for _ in range(4)])]
    Message.objects.filter(pk=messages[1].pk).update(status="sending")  # another worker has it
    outbox = delivery._Outbox(delivery.SendStats(), now=NOW)
    assert outbox.claim(messages[:3]) == [messages[0], messages[2]]
    assert outbox.stats.skipped == 1
    statuses = dict(Message.objects.values_list("pk", "status"))
    assert [statuses[m.pk] for m in messages] == ["sending", "sending", "sending", "queued"]
    assert [m.attempts for m in messages[:3]] == [1, 0, 1]
    # A second worker claiming the same group gets nothing.
    assert delivery._Outbox(delivery.SendStats(), now=NOW).claim(messages[:3]) == []


def test_a_batch_commits_once_per_claim_group(campaign, make_customer, settings):
    settings.OSCAR_JOURNEYS_SEND_CLAIM_SIZE = 3
    ids = queue(campaign, [consent(make_customer()) for _ in range(7)])
    claims = []
    real = delivery._conditional_update

    def spy(pks, **kwargs):
        if kwargs.get("status") == Message.SENDING:
            claims.append(list(pks))
        return real(pks, **kwargs)

    with mock.patch.object(delivery, "_conditional_update", spy):
        stats = messages_send(message_ids=ids, now=NOW)
    assert stats.sent == 7 and len(locmem.outbox) == 7
    assert claims == [ids[:3], ids[3:6], ids[6:]]


def test_the_relay_queues_due_messages_in_batches_but_not_fresh_ones(campaign, make_customer, settings,
                                                                      django_capture_on_commit_callbacks):
    settings.OSCAR_JOURNEYS_SEND_BATCH_SIZE = 2
    old = queue(campaign, [consent(make_customer()) for _ in range(3)], now=NOW - dt.timedelta(minutes=10))
    queue(campaign, [consent(make_customer())], now=NOW)  # just decided: its task is on its way
    with mock.patch("oscar_journeys.tasks.messages_send.apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            result = messages_relay(now=NOW)
    assert result["due"] == 3 and result["batches"] == 2
    assert sorted(sum((call.args[0][0] for call in publish.call_args_list), [])) == sorted(old)


def test_the_retry_delay_grows_is_capped_and_jittered(settings):
    settings.OSCAR_JOURNEYS_SEND_RETRY_BACKOFF_MAX = 600
    rng = random.Random(1)
    for attempts, ceiling in [(1, 30), (2, 60), (3, 120), (5, 480), (6, 600), (20, 600)]:
        delays = [message_retry_delay(attempts, rng=rng) for _ in range(200)]
        assert ceiling / 2 <= min(delays) and max(delays) <= ceiling
        assert max(delays) - min(delays) > ceiling / 4  # jitter spreads them


def test_the_send_task_is_safe_to_redeliver_and_calls_the_service(message):
    from oscar_journeys import tasks

    assert tasks.messages_send.acks_late and tasks.messages_send.reject_on_worker_lost
    tasks.messages_send.run([message.pk])  # as a worker runs it: now is the real time
    tasks.messages_send.run([message.pk])  # a redelivery
    assert len(locmem.outbox) == 1 and Message.objects.get().status == "sent"


def test_the_relay_task_sweeps_and_requeues(message, settings):
    from oscar_journeys import tasks

    Message.objects.filter(pk=message.pk).update(status="sending", claimed_at=NOW)
    settings.OSCAR_JOURNEYS_SENDING_TIMEOUT_SECONDS = 900
    later = NOW + dt.timedelta(seconds=901)
    tasks.messages_relay.run(later.isoformat())
    assert Message.objects.get().status == "failed"


# --- the send-time consent re-check, once per batch ---------------------------------------------


def test_the_batch_recheck_cancels_only_the_customers_who_withdrew_or_were_suppressed(campaign, make_customer):
    customers = [consent(make_customer(first_name=name)) for name in ("Ana", "Bea", "Cai", "Dan")]
    messages = {m.customer.first_name: m for m in Message.objects.filter(pk__in=queue(campaign, customers))}
    consent_set(customer=messages["Bea"].customer, kind="email", granted=False, source="preferences", now=NOW)
    suppress(kind="email", address=messages["Dan"].recipient.upper(), reason="complained")

    with mock.patch.object(delivery.consent, "message_blocks", wraps=delivery.consent.message_blocks) as blocks:
        stats = messages_send(message_ids=[m.pk for m in messages.values()], now=NOW)

    assert blocks.call_count == 1  # one re-check for the channel's batch
    assert (stats.sent, stats.cancelled) == (2, 2)
    assert sorted(out.to for out in locmem.outbox) == sorted([messages["Ana"].recipient, messages["Cai"].recipient])
    got = {
        m.customer.first_name: (m.status, m.last_error, m.attempts) for m in Message.objects.select_related("customer")
    }
    assert got == {
        "Ana": ("sent", "", 1),
        "Bea": ("cancelled", "no_consent", 1),  # claimed, then cancelled: never left in "sending"
        "Cai": ("sent", "", 1),
        "Dan": ("cancelled", "suppressed", 1),
    }


def test_a_message_claimed_elsewhere_is_not_cancelled_by_the_recheck(message):
    consent_set(customer=message.customer, kind="email", granted=False, source="preferences", now=NOW)
    Message.objects.filter(pk=message.pk).update(status="sent")  # another worker got there first
    stats = messages_send(message_ids=[message.pk], now=NOW)
    assert (stats.cancelled, stats.skipped) == (0, 1)
    assert Message.objects.get().status == "sent"


def _send_capturing(campaign, customers):
    ids = queue(campaign, customers)
    with CaptureQueriesContext(connection) as captured:
        messages_send(message_ids=ids, now=NOW)
    assert Message.objects.filter(pk__in=ids, status="sent").count() == len(ids)
    consent_tables = (Consent._meta.db_table, Suppression._meta.db_table, Event._meta.db_table)
    rechecks = [q for q in captured.captured_queries if any(table in q["sql"] for table in consent_tables)]
    return len(captured.captured_queries), len(rechecks)


def test_the_queries_of_a_batch_do_not_grow_with_its_consent_rechecks(campaign, make_customer):
    small = _send_capturing(campaign, [consent(make_customer()) for _ in range(2)])
    large = _send_capturing(campaign, [consent(make_customer()) for _ in range(6)])
    assert large[1] == small[1] <= 2  # the re-check: the same few queries for 2 or 6 messages
    per_message = (large[0] - small[0]) / 4
    assert per_message <= 4  # the claim and outcome statements (and SQLite's savepoint), no more


@pytest.mark.skipif(connection.vendor != "postgresql", reason="PostgreSQL plans")
def test_the_claim_finds_the_message_by_primary_key_whatever_the_statistics(message):
    sql, params = delivery._update_sql([message.pk], where_status=Message.QUEUED, due_by=NOW, attempt=True,
                                       status=Message.SENDING, claimed_at=NOW)
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("EXPLAIN " + sql, params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    assert Message._meta.db_table + "_pkey" in plan and "msg_due" not in plan
