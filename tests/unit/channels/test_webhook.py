"""WebhookChannel: the signed request a receiver gets (Standard Webhooks), verify_signature,
retries with the same webhook-id, errors, and option validation (URL rules, secret)."""

import base64
import json
import time
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError

from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.channels.webhook import WebhookChannel, generate_secret, sign, verify_signature
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import make_backend

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
NOW = 1_760_000_000


def outgoing(**kwargs):
    defaults = {
        "to": "42",
        "subject": "Back in stock",
        "text": "Your shoes are back",
        "short_text": "Shoes back!",
        "idempotency_key": "a1b2c3",
        "metadata": {"message_id": 7, "campaign_id": 3, "customer_id": 42, "step": 1},
    }
    return OutgoingMessage(**{**defaults, **kwargs})


@pytest.fixture
def webhook(http_server, local_http_options, monkeypatch):
    monkeypatch.setattr(WebhookChannel, "clock", staticmethod(lambda: NOW))
    return make_backend(
        WebhookChannel,
        {"url": http_server.url("/hooks/journeys"), "extra_headers": {"X-Shop": "main"}, **local_http_options},
        {"secret": SECRET},
    )


def test_posts_signed_json_that_verifies(webhook, http_server):
    webhook.send(outgoing())
    [request] = http_server.requests
    assert (request.method, request.path) == ("POST", "/hooks/journeys")
    headers = request.headers
    assert headers["webhook-id"] == "a1b2c3"
    assert headers["webhook-timestamp"] == str(NOW)
    assert headers["webhook-signature"].startswith("v1,")
    assert headers["Content-Type"] == "application/json"
    assert headers["X-Shop"] == "main"
    assert verify_signature(SECRET, headers, request.body, now=NOW)
    body = json.loads(request.body)
    assert body["type"] == "message.send" and body["id"] == "a1b2c3"
    assert body["timestamp"].startswith("2025-10-09T")
    assert body["data"]["message_id"] == 7 and body["data"]["customer_id"] == 42
    assert body["data"]["campaign_id"] == 3 and body["data"]["step"] == 1
    assert body["data"]["short_text"] == "Shoes back!" and body["data"]["subject"] == "Back in stock"


def test_a_retry_carries_the_same_webhook_id(webhook, http_server):
    http_server.responses.append((503, {}, b"busy"))
    with webhook:
        with pytest.raises(ChannelTransientError):
            webhook.send(outgoing())
        webhook.send(outgoing())
    assert [r.headers["webhook-id"] for r in http_server.requests] == ["a1b2c3", "a1b2c3"]


@pytest.mark.parametrize("status, error", [(410, ChannelPermanentError), (400, ChannelPermanentError), (429, ChannelTransientError), (500, ChannelTransientError), (302, ChannelPermanentError)])
def test_error_answers(webhook, http_server, status, error):
    http_server.responses.append((status, {"Location": "http://127.0.0.1/"}, b""))
    with pytest.raises(error):
        webhook.send(outgoing())


def signed(body=b'{"a":1}', msg_id="m1", stamp=NOW, secret=SECRET):
    return {"webhook-id": msg_id, "webhook-timestamp": str(stamp), "webhook-signature": sign(secret, msg_id, stamp, body)}


def test_signature_roundtrip_and_every_tampering_fails():
    body = b'{"a":1}'
    headers = signed(body)
    assert verify_signature(SECRET, headers, body, now=NOW)
    assert verify_signature(SECRET, {k.upper(): v for k, v in headers.items()}, body, now=NOW)  # any case
    assert not verify_signature(SECRET, headers, b'{"a":2}', now=NOW)
    assert not verify_signature(SECRET, {**headers, "webhook-id": "m2"}, body, now=NOW)
    assert not verify_signature(SECRET, {**headers, "webhook-timestamp": str(NOW + 1)}, body, now=NOW)
    assert not verify_signature(generate_secret(), headers, body, now=NOW)
    sig = headers["webhook-signature"]
    flipped = sig[:-2] + ("A" if sig[-2] != "A" else "B") + sig[-1]
    assert not verify_signature(SECRET, {**headers, "webhook-signature": flipped}, body, now=NOW)
    assert not verify_signature(SECRET, {**headers, "webhook-timestamp": "soon"}, body, now=NOW)
    assert not verify_signature(SECRET, {}, body, now=NOW)


def test_old_signatures_are_refused_and_several_signatures_are_accepted():
    body = b"{}"
    headers = signed(body, stamp=NOW - 600)
    assert not verify_signature(SECRET, headers, body, now=NOW)
    assert verify_signature(SECRET, headers, body, now=NOW, tolerance=900)
    rotated = {**signed(body), "webhook-signature": "v1,bm9wZQ== " + signed(body)["webhook-signature"]}
    assert verify_signature(SECRET, rotated, body, now=NOW)


def test_the_signature_matches_the_standard_webhooks_reference():
    # Example from the Standard Webhooks specification's reference libraries.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    body = '{"test": 2432232314}'
    assert sign(secret, "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body) == "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


# --- options ---------------------------------------------------------------------------------


def test_a_secret_is_generated_and_kept_with_the_secrets():
    options, secrets = WebhookChannel.validate_options({"url": "https://hooks.example.com/x"}, {})
    assert secrets["secret"].startswith("whsec_") and len(base64.b64decode(secrets["secret"][6:])) == 32
    assert "secret" not in options
    again = WebhookChannel.validate_options(options, secrets)[1]
    assert again["secret"] == secrets["secret"]  # saving again keeps it


@pytest.mark.parametrize(
    "options, secrets, field, message",
    [
        ({"url": "http://hooks.example.com/"}, {}, "url", "https://"),
        ({"url": "https://127.0.0.1/"}, {}, "url", "private"),
        ({"url": "https://169.254.169.254/"}, {}, "url", "private"),
        ({"url": "https://hooks.example.com:8080/"}, {}, "url", "8080"),
        ({"url": "https://hooks.example.com/"}, {"secret": "short"}, "secret", "16"),
        ({"url": "https://hooks.example.com/"}, {"secret": "whsec_!!!"}, "secret", "16"),
        ({"url": "https://hooks.example.com/", "extra_headers": {"webhook-id": "x"}}, {}, "extra_headers", "webhook-id"),
        ({"url": "https://hooks.example.com/", "extra_headers": ["x"]}, {}, "extra_headers", "JSON object"),
        ({"url": "https://hooks.example.com/", "extra_ports": "80, http"}, {}, "extra_ports", "port"),
        ({}, {}, "url", "required"),
    ],
)
def test_option_errors_name_the_option(options, secrets, field, message):
    with pytest.raises(ValidationError) as caught:
        WebhookChannel.validate_options(options, secrets)
    assert message in " ".join(caught.value.message_dict[field])


def test_private_urls_are_accepted_with_the_option():
    options, _secrets = WebhookChannel.validate_options(
        {"url": "http://10.0.0.5:8080/hook", "allow_http": True, "allow_private_addresses": True, "extra_ports": "8080"}, {}
    )
    assert options["extra_ports"] == [8080]
    assert WebhookChannel.validate_options(options, _secrets)[0] == options  # cleans to itself


def test_a_channel_without_a_secret_does_not_send(http_server, local_http_options):
    backend = make_backend(WebhookChannel, {"url": http_server.url(), **local_http_options}, validate=False)
    with pytest.raises(ChannelPermanentError, match="secret"):
        backend.send(outgoing())
    assert http_server.requests == []


def test_the_standalone_verifier_in_the_docs_accepts_our_signatures():
    doc = (Path(__file__).resolve().parents[3] / "docs" / "channels.md").read_text()
    start = doc.index("import base64, hashlib, hmac, time")
    namespace = {}
    exec(doc[start:doc.index("```", start)], namespace)
    verify = namespace["verify"]
    for secret in (SECRET, "a-plain-secret-of-some-length"):
        stamp = int(time.time())
        headers = signed(b"{}", stamp=stamp, secret=secret)
        assert verify(secret, headers, b"{}")
        assert not verify(secret, headers, b"{ }")
