"""The development and test backends."""

import io

import pytest
from django.test import RequestFactory

from oscar_journeys.channels import locmem
from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.channels.console import ConsoleChannel, ConsoleSmsChannel
from oscar_journeys.channels.locmem import LocmemChannel, LocmemSmsChannel
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import make_backend


def test_console_prints_the_whole_message(monkeypatch):
    stream = io.StringIO()
    monkeypatch.setattr(ConsoleChannel, "stream", stream)
    result = make_backend(ConsoleChannel).send(
        OutgoingMessage(to="ana@example.com", subject="Hi", text="Body text", html="<p>x</p>",
                        headers={"List-Unsubscribe": "<https://s/u/>"}, idempotency_key="k9")
    )
    printed = stream.getvalue()
    for part in ("To: ana@example.com", "Subject: Hi", "List-Unsubscribe: <https://s/u/>", "Body text", "HTML alternative"):
        assert part in printed
    assert result.provider_id == "console-k9"
    assert ConsoleSmsChannel.kind == "sms"


def test_locmem_records_and_counts_connections():
    backend = make_backend(LocmemChannel)
    with backend:
        first = backend.send(OutgoingMessage(to="a@example.com"))
        second = make_backend(LocmemSmsChannel).send(OutgoingMessage(to="+34600111222", short_text="hi"))
    assert [m.to for m in locmem.outbox] == ["a@example.com", "+34600111222"]
    assert locmem.stats == {"opened": 1, "closed": 1}
    assert first.provider_id != second.provider_id
    locmem.reset()
    assert locmem.outbox == [] and locmem.stats == {"opened": 0, "closed": 0}


@pytest.mark.parametrize(
    "fail_with, error, suppress",
    [("transient", ChannelTransientError, None), ("permanent", ChannelPermanentError, False),
     ("permanent_suppress", ChannelPermanentError, True)],
)
def test_locmem_fails_on_demand(fail_with, error, suppress):
    backend = make_backend(LocmemChannel, {"fail_with": fail_with, "fail_for": "bad@example.com"})
    with pytest.raises(error) as caught:
        backend.send(OutgoingMessage(to="bad@example.com"))
    if suppress is not None:
        assert caught.value.suppress is suppress
    backend.send(OutgoingMessage(to="good@example.com"))
    assert [m.to for m in locmem.outbox] == ["good@example.com"]


def test_locmem_sms_inbound():
    request = RequestFactory().post("/in/", {"from": "+34600111222", "text": "STOP", "id": "x1"})
    [event] = make_backend(LocmemSmsChannel).parse_inbound(request)
    assert (event.kind, event.address, event.provider_id) == ("stop", "+34600111222", "x1")
