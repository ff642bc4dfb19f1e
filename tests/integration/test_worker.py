"""The task layer with a real Celery worker on Redis and PostgreSQL (the integration run)."""

import datetime as dt

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from example_shop.celery import app as celery_app
from oscar_journeys.models import CustomerMerge, Event, Snapshot
from oscar_journeys.services.timeline import timeline_record_event
from tests import storefront

from .worker import Worker, integration_services

pytestmark = [pytest.mark.integration, pytest.mark.django_db(transaction=True)]


@pytest.fixture
def worker():
    broker = integration_services()
    celery_app.conf.task_always_eager = False
    celery_app.conf.broker_url = broker
    # Nothing left over from an earlier run may reach this worker.
    celery_app.control.purge()
    w = Worker(broker)
    w.start()
    yield w
    w.stop()
    celery_app.conf.task_always_eager = True


def test_log_in_merge_runs_on_the_worker_after_commit(worker, client, product):
    get_user_model().objects.create_user("ana@example.com", "ana@example.com", "sup3r-s3cret-pass")
    storefront.add_to_basket(client, product)
    storefront.log_in(client, "ana@example.com")  # queues customer_link on commit

    worker.wait_until(lambda: CustomerMerge.objects.filter(reason="login").exists(), what="the merge")
    merge = CustomerMerge.objects.get()
    assert Event.objects.filter(customer=merge.survivor, type="basket_addition").count() == 1
    assert merge.survivor.user.email == "ana@example.com"


def test_nightly_snapshot_shards_run_on_the_worker(worker, make_customer, settings):
    settings.OSCAR_JOURNEYS_SNAPSHOT_SHARD_SIZE = 2
    from oscar_journeys.tasks import snapshot_build_all

    when = timezone.now() - dt.timedelta(days=3)
    customers = [make_customer() for _ in range(5)]
    for c in customers:
        timeline_record_event(customer=c, type="order_placed", occurred_at=when, value=10)
    as_of = timezone.localdate() - dt.timedelta(days=1)

    snapshot_build_all(as_of.isoformat())  # here: splits into 3 shards and publishes them

    worker.wait_until(lambda: Snapshot.objects.filter(as_of=as_of).count() == 5, what="5 snapshot rows")
    assert set(Snapshot.objects.values_list("frequency", flat=True)) == {1}


def test_the_nightly_chain_runs_on_the_worker(worker):
    from oscar_journeys.models import TrainingRun
    from oscar_journeys.services.snapshots import shop_day_end
    from oscar_journeys.tasks import nightly_run

    from .nightly_data import make_shop

    as_of = timezone.localdate() - dt.timedelta(days=1)
    make_shop(end=shop_day_end(as_of))

    nightly_run.delay(as_of.isoformat())  # the worker fits, then publishes the shards to itself

    worker.wait_until(
        lambda: Snapshot.objects.filter(as_of=as_of, training_run__isnull=False).count() == 360,
        what="360 scored snapshot rows",
        timeout=120,
    )
    run = TrainingRun.objects.get()
    assert run.status == TrainingRun.SUCCEEDED and run.metrics["churn_auc"] > 0.7
    assert set(Snapshot.objects.values_list("training_run", flat=True)) == {run.version}
    assert not Snapshot.objects.filter(lifecycle_stage="").exists()
