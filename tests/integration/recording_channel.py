"""A channel backend for the worker integration test: each send sleeps ``delay`` seconds
(a slow provider, so a worker can be killed mid-batch), then appends one line
``<pid> <idempotency key>`` to the file ``log_path`` and flushes it to disk: the
"provider's" own record of what it received, kept outside the database under test."""

import os
import time

from django import forms

from oscar_journeys.channels.base import BaseChannel, SendResult


class RecordingChannel(BaseChannel):
    kind = "email"
    channel_name = "Recording (tests)"

    @classmethod
    def option_fields(cls):
        return {"log_path": forms.CharField(), "delay": forms.FloatField(required=False)}

    def deliver(self, message, payload):
        time.sleep(float(self.option("delay") or 0))
        with open(self.option("log_path"), "a") as log:
            log.write(f"{os.getpid()} {message.idempotency_key}\n")
            log.flush()
            os.fsync(log.fileno())
        return message.idempotency_key

    def parse_result(self, message, response):
        return SendResult(provider_id=f"rec-{response[:12]}")
