"""HttpPushChannel: the default (Expo-style) body, nested provider fields (OneSignal-style),
and a provider that reports a dead token inside a 200 answer."""

import json

import pytest
from django.core.exceptions import ValidationError

from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.channels.push import HttpPushChannel
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import make_backend


def push(**kwargs):
    defaults = {
        "to": "ExponentPushToken[abc]",
        "subject": "Still thinking?",
        "short_text": "Your basket is waiting",
        "idempotency_key": "k1",
        "metadata": {"message_id": 9, "campaign_id": 2, "customer_id": 5, "step": 1, "url": "https://shop.example.com/basket/"},
    }
    return OutgoingMessage(**{**defaults, **kwargs})


def test_default_fields(http_server, local_http_options):
    http_server.default = (200, {}, {"data": {"status": "ok", "id": "r-1"}})
    backend = make_backend(
        HttpPushChannel, {"url": http_server.url("/push"), "auth": "bearer", "id_field": "data.id", **local_http_options}, {"token": "t"}
    )
    result = backend.send(push())
    [request] = http_server.requests
    assert request.headers["Authorization"] == "Bearer t"
    assert json.loads(request.body) == {
        "to": "ExponentPushToken[abc]",
        "title": "Still thinking?",
        "body": "Your basket is waiting",
        "url": "https://shop.example.com/basket/",
        "data": {"message_id": "9", "campaign_id": "2", "customer_id": "5", "step": "1"},
    }
    assert result.provider_id == "r-1"


def test_nested_and_list_fields_with_fixed_fields(http_server, local_http_options):
    backend = make_backend(
        HttpPushChannel,
        {
            "url": http_server.url("/notifications"),
            "auth": "header", "auth_header": "Authorization",
            "to_field": "include_subscription_ids[]", "title_field": "headings.en", "body_field": "contents.en",
            "url_field": "web_url", "data_field": "data", "extra_fields": {"app_id": "app-1", "target_channel": "push"},
            **local_http_options,
        },
        {"token": "Key rest-key"},
    )
    backend.send(push(to="sub-1"))
    [request] = http_server.requests
    assert request.headers["Authorization"] == "Key rest-key"
    body = json.loads(request.body)
    assert body["include_subscription_ids"] == ["sub-1"]
    assert body["headings"] == {"en": "Still thinking?"} and body["contents"] == {"en": "Your basket is waiting"}
    assert body["app_id"] == "app-1" and body["web_url"] == "https://shop.example.com/basket/"


def test_a_dead_token_reported_in_a_200_answer_is_suppressed(http_server, local_http_options):
    backend = make_backend(
        HttpPushChannel,
        {"url": http_server.url("/push"), "error_code_field": "data.details.error", "invalid_address_codes": "DeviceNotRegistered",
         **local_http_options},
    )
    http_server.responses.append((200, {}, {"data": {"status": "error", "details": {"error": "DeviceNotRegistered"}}}))
    with pytest.raises(ChannelPermanentError) as caught:
        backend.send(push())
    assert caught.value.suppress is True
    http_server.responses.append((503, {}, b""))
    with pytest.raises(ChannelTransientError):
        backend.send(push())


def test_push_url_is_checked():
    with pytest.raises(ValidationError) as caught:
        HttpPushChannel.validate_options({"url": "https://[::1]/push"}, {})
    assert "url" in caught.value.message_dict
