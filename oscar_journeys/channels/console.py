"""Print messages instead of sending them: for the demo shop and development.

``ConsoleChannel`` takes email channels, ``ConsoleSmsChannel`` SMS ones. Each message is
written whole (one lock, so messages sent from threads do not interleave) to ``stream``,
standard output unless a subclass or test sets another."""

import sys
import threading

from django.utils.translation import gettext_lazy as _

from .base import BaseChannel, SendResult

_lock = threading.Lock()


class ConsoleChannel(BaseChannel):
    kind = "email"
    channel_name = _("Console (prints emails; for development)")
    stream = None  # None: sys.stdout at the time of sending

    def deliver(self, message, payload):
        lines = [f"To: {message.to}"]
        if message.subject:
            lines.append(f"Subject: {message.subject}")
        lines += [f"{name}: {value}" for name, value in (message.headers or {}).items()]
        if message.idempotency_key:
            lines.append(f"Idempotency-Key: {message.idempotency_key}")
        lines.append("")
        lines.append(message.text or message.short_text)
        if message.html:
            lines += ["", f"[HTML alternative, {len(message.html)} characters]"]
        text = "\n".join(lines) + "\n" + "-" * 79 + "\n"
        stream = self.stream or sys.stdout
        with _lock:
            stream.write(text)
            stream.flush()
        return message

    def parse_result(self, message, response):
        return SendResult(provider_id=f"console-{message.idempotency_key}" if message.idempotency_key else "")


class ConsoleSmsChannel(ConsoleChannel):
    kind = "sms"
    channel_name = _("Console (prints SMS; for development)")
