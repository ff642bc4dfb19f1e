"""Delivery with a real Celery worker on Redis and PostgreSQL (the integration run): a worker
child killed in the middle of a batch neither sends a message twice nor loses the rest."""

import datetime as dt
import os
import signal

import pytest
from django.utils import timezone

from example_shop.celery import app as celery_app
from oscar_journeys import app_settings
from oscar_journeys.models import Message
from oscar_journeys.models import campaigns as c
from oscar_journeys.services.decisions import decision_round
from oscar_journeys.services.delivery import messages_relay

from .journeys_setup import consent, enroll, make_campaign, make_channel
from .worker import Worker, integration_services

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]

RECORDING = "tests.integration.recording_channel.RecordingChannel"
N = 40
DELAY = 0.1  # seconds per send in the worker's backend


@pytest.fixture
def broker():
    url = integration_services()
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = url
    celery_app.control.purge()  # nothing left over from an earlier run may reach the worker
    yield url
    celery_app.conf.task_always_eager = True


def read_log(path):
    if not path.exists():
        return []
    return [line.split() for line in path.read_text().splitlines() if line.strip()]


def test_a_worker_killed_mid_batch_sends_each_message_at_most_once(broker, tmp_path, settings, make_customer):
    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = [RECORDING]
    settings.OSCAR_JOURNEYS_GLOBAL_CONTROL_PERCENT = 0
    settings.OSCAR_JOURNEYS_SEND_BATCH_SIZE = N  # one task for the whole batch
    log = tmp_path / "provider.log"
    channel = make_channel("Recorded", backend=RECORDING, options={"log_path": str(log), "delay": DELAY})
    campaign = make_campaign("Birthday", channels=[channel], trigger=c.BIRTHDAY)
    now = timezone.now()
    for i in range(N):
        enroll(campaign, consent(make_customer(first_name=f"C{i}")), due=now)

    worker = Worker(broker, settings_module="tests.integration.worker_settings", pool="prefork",
                    log_name=str(tmp_path / "worker.log"))
    worker.start()
    try:
        result = decision_round(now=now)  # commits, then publishes one messages_send task
        assert result.messages == N

        worker.wait_until(lambda: len(read_log(log)) >= N // 4, what="a quarter of the batch to be sent")
        child = int(read_log(log)[-1][0])
        assert child != worker.process.pid  # the pool's child, not the worker itself
        os.kill(child, signal.SIGKILL)

        # acks_late + reject_on_worker_lost: the batch is delivered again to a new child,
        # which skips what was sent (or was being sent) and sends the rest.
        worker.wait_until(lambda: not Message.objects.filter(status="queued").exists(), timeout=60,
                          what="the redelivered batch to finish")
    finally:
        worker.stop()
    in_flight = list(Message.objects.filter(status="sending"))
    assert len(in_flight) <= app_settings.SEND_CLAIM_SIZE  # at most the group claimed last

    # A new worker, and a relay run past the sending timeout: the stuck message is failed,
    # never sent again; nothing is queued any more.
    worker = Worker(broker, settings_module="tests.integration.worker_settings", pool="prefork",
                    log_name=str(tmp_path / "worker2.log"))
    worker.start()
    try:
        later = timezone.now() + dt.timedelta(seconds=app_settings.SENDING_TIMEOUT_SECONDS + 1)
        relayed = messages_relay(now=later)
        assert relayed["stuck_failed"] == len(in_flight)
        worker.wait_until(lambda: not Message.objects.filter(status__in=["queued", "sending"]).exists(),
                          what="the relay's sends")
    finally:
        worker.stop()

    lines = read_log(log)
    keys = [key for _pid, key in lines]
    assert len(keys) == len(set(keys)), "a message reached the provider twice"
    assert len({pid for pid, _key in lines}) >= 2, "the batch did not go on after the kill"
    sent = set(Message.objects.filter(status="sent").values_list("idempotency_key", flat=True))
    failed = list(Message.objects.filter(status="failed").values_list("idempotency_key", "last_error"))
    assert sent <= set(keys)
    assert len(sent) >= N - app_settings.SEND_CLAIM_SIZE and len(sent) + len(failed) == N
    assert [key for key, _ in failed] == [m.idempotency_key for m in in_flight]
    assert all("not resent" in error for _, error in failed)
