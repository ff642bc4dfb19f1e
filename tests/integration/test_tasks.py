"""Tasks are queued after commit, carry ids only, and call one service."""

from unittest import mock

import pytest
from django.db import transaction

from oscar_journeys import tasks, visitors


@pytest.mark.django_db
def test_link_is_queued_once_and_only_after_commit(django_capture_on_commit_callbacks):
    with mock.patch.object(tasks.customer_link, "apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            visitors.link_on_commit(11, user_id=22, reason="login")
            assert not publish.called
        publish.assert_called_once_with((11, 22, "login"), {})


@pytest.mark.django_db(transaction=True)
def test_nothing_is_queued_when_the_transaction_rolls_back():
    with mock.patch.object(tasks.customer_link, "apply_async") as publish:
        with pytest.raises(RuntimeError):
            with transaction.atomic():
                visitors.link_on_commit(11, user_id=22, reason="login")
                raise RuntimeError("checkout failed")
        assert not publish.called


def test_customer_link_task_calls_the_service_with_ids():
    with mock.patch("oscar_journeys.services.customers.customer_link") as link:
        tasks.customer_link.run(5, 6, "registration")
    link.assert_called_once_with(customer_id=5, user_id=6, reason="registration")


@pytest.mark.django_db
def test_broker_outage_runs_the_task_in_process(django_capture_on_commit_callbacks, caplog):
    with mock.patch.object(tasks.customer_link, "apply_async", side_effect=OSError("Connection refused")):
        with mock.patch("oscar_journeys.services.customers.customer_link") as link:
            with django_capture_on_commit_callbacks(execute=True):
                visitors.link_on_commit(11, user_id=22, reason="login")
    link.assert_called_once_with(customer_id=11, user_id=22, reason="login")
    assert "could not queue" in caplog.text


@pytest.mark.django_db
def test_a_batch_of_ids_is_published_with_a_short_repr(django_capture_on_commit_callbacks):
    with mock.patch.object(tasks.messages_send, "apply_async") as publish:
        with django_capture_on_commit_callbacks(execute=True):
            tasks.enqueue_on_commit(tasks.messages_send, list(range(200)))
    args, kwargs = publish.call_args
    assert args == ((list(range(200)),), {})  # the ids themselves travel whole
    assert kwargs == {"argsrepr": "('[200 ids]',)", "kwargsrepr": "{}"}
