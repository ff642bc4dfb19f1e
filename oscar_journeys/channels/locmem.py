"""In-memory backends for tests: sent messages are appended to ``outbox`` (a module-level
list of OutgoingMessage, like Django's ``mail.outbox``); ``reset()`` empties it.

The ``fail_with`` option makes sends fail: "transient", "permanent" or
"permanent_suppress" (a permanent error that says the address is bad), for every recipient
or only those listed in ``fail_for``. ``stats`` counts open() and close() calls, so a test
can check that a batch used one connection."""

import itertools

from django import forms
from django.core.exceptions import SuspiciousOperation
from django.utils.translation import gettext_lazy as _

from ..exceptions import ChannelPermanentError, ChannelTransientError
from .base import BaseChannel, InboundEvent, SendResult
from .sms import inbound_data, sms_keyword

outbox = []
stats = {"opened": 0, "closed": 0}
_ids = itertools.count(1)

FAILURES = [
    ("", _("Never")),
    ("transient", _("Always, a temporary error")),
    ("permanent", _("Always, a permanent error")),
    ("permanent_suppress", _("Always, a permanent error that suppresses the address")),
]


def reset():
    """Empty the outbox and the counters."""
    outbox.clear()
    stats.update(opened=0, closed=0)


class LocmemChannel(BaseChannel):
    kind = "email"
    channel_name = _("In memory (emails kept for tests)")

    @classmethod
    def option_fields(cls):
        return {
            "fail_with": forms.ChoiceField(label=_("Fail"), choices=FAILURES, required=False),
            "fail_for": forms.CharField(
                label=_("Fail only for"),
                required=False,
                help_text=_("Addresses that fail, separated by commas; empty: all."),
            ),
        }

    def open(self):
        stats["opened"] += 1

    def close(self):
        stats["closed"] += 1

    def deliver(self, message, payload):
        failure = self.option("fail_with") or ""
        only = {a.strip() for a in (self.option("fail_for") or "").split(",") if a.strip()}
        if failure and (not only or message.to in only):
            kwargs = {"channel": self.channel, "recipient": message.to}
            if failure == "transient":
                raise ChannelTransientError("locmem: transient failure (fail_with)", **kwargs)
            raise ChannelPermanentError(
                "locmem: permanent failure (fail_with)", suppress=failure == "permanent_suppress", **kwargs
            )
        outbox.append(message)
        return message

    def parse_result(self, message, response):
        return SendResult(provider_id=f"locmem-{next(_ids)}")


class LocmemSmsChannel(LocmemChannel):
    """SMS kept in the same ``outbox``. Inbound: a JSON or form body with "from", "text"
    and optionally "id" (no signature: for tests of the inbound view)."""

    kind = "sms"
    channel_name = _("In memory (SMS kept for tests)")

    def parse_inbound(self, request):
        data = inbound_data(request)
        if "from" not in data:
            raise SuspiciousOperation("locmem inbound: no 'from'")
        text = str(data.get("text", ""))
        return [
            InboundEvent(kind=sms_keyword(text), address=str(data["from"]), text=text, provider_id=str(data.get("id", "")))
        ]
