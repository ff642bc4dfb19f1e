"""A webhook: each message is POSTed as JSON to the shop's own URL, signed as the Standard
Webhooks specification says (https://www.standardwebhooks.com/), so the receiver can check
it came from the shop and drop a repeat.

Headers: ``webhook-id`` (the message's idempotency key: the same on every retry),
``webhook-timestamp`` (Unix seconds of this attempt) and ``webhook-signature``
(``v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">``). A secret written ``whsec_<base64>``
is used as the base64-decoded bytes (the specification's format); any other string as its
UTF-8 bytes. ``verify_signature`` checks a request on the receiving side.
"""

import base64
import binascii
import datetime
import hashlib
import hmac
import json
import secrets
import time
import uuid

from django import forms
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext_lazy as _

from ..exceptions import ChannelPermanentError
from .base import SendResult
from .http import HttpChannel, network_option_fields, status_error

EVENT_TYPE = "message.send"
SIGNED_HEADERS = {"webhook-id", "webhook-timestamp", "webhook-signature"}
FORBIDDEN_HEADERS = SIGNED_HEADERS | {"host", "content-type", "content-length", "transfer-encoding", "connection"}


def generate_secret():
    """A new signing secret in the Standard Webhooks format (``whsec_`` + 32 random bytes)."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def _key(secret):
    if secret.startswith("whsec_"):
        return base64.b64decode(secret[len("whsec_"):], validate=True)
    return secret.encode()


def sign(secret, msg_id, timestamp, body):
    """The ``webhook-signature`` value for one request (``body``: bytes or str)."""
    if isinstance(body, str):
        body = body.encode()
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(_key(secret), signed, hashlib.sha256).digest()).decode()


def verify_signature(secret, headers, body, *, tolerance=300, now=None):
    """True when ``headers`` (any mapping; names in any case) carry a valid signature of
    ``body`` (the raw bytes received) with ``secret``, made at most ``tolerance`` seconds
    from ``now`` (Unix seconds; default the current time). Anything else: False."""
    headers = {str(k).lower(): v for k, v in headers.items()}
    msg_id, timestamp = headers.get("webhook-id", ""), headers.get("webhook-timestamp", "")
    try:
        stamp = int(timestamp)
        expected = sign(secret, msg_id, stamp, body)
    except (ValueError, binascii.Error):
        return False
    now = time.time() if now is None else now
    if not msg_id or abs(now - stamp) > tolerance:
        return False
    offered = headers.get("webhook-signature", "").split()
    return any(hmac.compare_digest(expected, candidate) for candidate in offered)


class WebhookChannel(HttpChannel):
    """POSTs each message as signed JSON to ``url``. A 2xx answer means delivered; 3xx, 4xx
    fail the message, 5xx, 429 and timeouts are retried with the same ``webhook-id``."""

    kind = "webhook"
    channel_name = _("Webhook (signed JSON)")
    secret_options = ("secret",)
    #: The clock of webhook-timestamp (replaced in tests).
    clock = staticmethod(time.time)

    @classmethod
    def option_fields(cls):
        return {
            "url": forms.URLField(label=_("URL"), assume_scheme="https", help_text=_("Where each message is POSTed.")),
            "secret": forms.CharField(
                label=_("Signing secret"),
                required=False,
                help_text=_(
                    'Leave empty to have one generated (in the Standard Webhooks format, "whsec_..."); '
                    "the receiver needs the same secret to check signatures."
                ),
            ),
            "extra_headers": forms.JSONField(
                label=_("Extra headers"), required=False, help_text=_("Headers sent with every request, as a JSON object.")
            ),
            **network_option_fields(),
        }

    @classmethod
    def validate_options(cls, options, secrets):
        clean, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        secret = clean_secrets.get("secret")
        if not secret:
            clean_secrets["secret"] = generate_secret()
        else:
            try:
                key = _key(secret)
            except (ValueError, binascii.Error):
                key = None
            if key is None or len(key) < 16:
                errors["secret"] = [
                    _('The secret must be at least 16 characters, or "whsec_" and base64 of at least 16 bytes.')
                ]
        headers = clean.get("extra_headers")
        if headers is not None:
            if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
                errors["extra_headers"] = [_('Give a JSON object of header names and text values, e.g. {"X-Shop": "main"}.')]
            else:
                bad = sorted(h for h in headers if h.lower() in FORBIDDEN_HEADERS)
                if bad:
                    errors["extra_headers"] = [_("These headers cannot be set: %(names)s.") % {"names": ", ".join(bad)}]
        if errors:
            raise ValidationError(errors)
        return clean, clean_secrets

    def payload(self, message, timestamp, msg_id):
        metadata = message.metadata or {}
        return {
            "type": EVENT_TYPE,
            "id": msg_id,
            "timestamp": datetime.datetime.fromtimestamp(timestamp, datetime.timezone.utc).isoformat(),
            "data": {
                "message_id": metadata.get("message_id"),
                "campaign_id": metadata.get("campaign_id"),
                "customer_id": metadata.get("customer_id", message.to),
                "step": metadata.get("step"),
                "to": message.to,
                "subject": message.subject,
                "text": message.text,
                "html": message.html,
                "short_text": message.short_text,
                "headers": message.headers,
                "metadata": metadata,
            },
        }

    def build_payload(self, message):
        if not self.option("secret"):
            raise ChannelPermanentError(
                _("The webhook channel has no signing secret: save it in the admin to generate one."),
                channel=self.channel, recipient=message.to,
            )
        timestamp = int(self.clock())
        msg_id = message.idempotency_key or f"msg_{uuid.uuid4().hex}"
        body = json.dumps(self.payload(message, timestamp, msg_id), cls=DjangoJSONEncoder, separators=(",", ":"))
        headers = {
            **(self.option("extra_headers") or {}),
            "Content-Type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(self.option("secret"), msg_id, timestamp, body),
        }
        return body.encode(), headers

    def deliver(self, message, payload):
        body, headers = payload
        response = self.http_request("POST", self.option("url"), body=body, headers=headers, recipient=message.to)
        error = status_error(response, channel=self.channel, recipient=message.to)
        if error is not None:
            raise error
        return response

    def parse_result(self, message, response):
        return SendResult(provider_id="", detail=str(response)[:300])
