"""SMS backends: the generic HTTP adapter (bodies, auth, mapping, errors, inbound), Twilio
(request, errors, inbound signature) and the STOP/START/HELP keywords."""

import base64
import json
from urllib.parse import parse_qs

import pytest
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.http import QueryDict
from django.test import RequestFactory, override_settings

from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.channels.http import SafeHttpClient
from oscar_journeys.channels.sms import HttpSmsChannel, TwilioSmsChannel, sms_keyword, twilio_signature
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import make_backend

SID = "AC" + "0123456789abcdef" * 2
TOKEN = "twilio-auth-token"


def sms(to="+34600111222", **kwargs):
    return OutgoingMessage(to=to, **{"short_text": "20% off your basket: https://s.example/r", "idempotency_key": "idem-1", **kwargs})


# --- keywords --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, kind",
    [
        ("STOP", "stop"), ("stop", "stop"), (" Stop \n", "stop"), ("STOP.", "stop"), ("StopAll", "stop"),
        ("UNSUBSCRIBE", "stop"), ("cancel", "stop"), ("End", "stop"), ("quit", "stop"), ("REVOKE", "stop"),
        ("opt out", "stop"), ("OPT-OUT", "stop"), ("optout", "stop"), ("ＳＴＯＰ", "stop"),
        ("START", "start"), ("unstop", "start"), ("Yes", "start"),
        ("HELP", "help"), ("info", "help"),
        ("please stop texting me", "other"), ("stop it now", "other"), ("", "other"), ("thanks!", "other"),
        ("STOPP", "other"), ("yes please", "other"),
    ],
)
def test_keywords(text, kind):
    assert sms_keyword(text) == kind


# --- generic HTTP provider -------------------------------------------------------------------


def http_sms(http_server, local_http_options, options=None, secrets=None):
    return make_backend(
        HttpSmsChannel, {"url": http_server.url("/send"), "from_number": "+34900000000", **local_http_options, **(options or {})}, secrets
    )


def test_json_body_with_bearer_auth_and_idempotency_header(http_server, local_http_options):
    backend = http_sms(
        http_server, local_http_options,
        {"auth": "bearer", "idempotency_header": "Idempotency-Key", "extra_fields": {"channel": "sms"}},
        {"token": "tok-123"},
    )
    result = backend.send(sms())
    [request] = http_server.requests
    assert request.headers["Authorization"] == "Bearer tok-123"
    assert request.headers["Idempotency-Key"] == "idem-1"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "channel": "sms", "to": "+34600111222", "from": "+34900000000", "text": "20% off your basket: https://s.example/r"
    }
    assert result.provider_id == "provider-1"


def test_form_body_with_basic_auth_and_mapped_names(http_server, local_http_options):
    backend = http_sms(
        http_server, local_http_options,
        {"auth": "basic", "username": "shop", "body_format": "form", "to_field": "destination", "from_field": "sender",
         "text_field": "message", "id_field": "messages.0.id"},
        {"password": "pw"},
    )
    http_server.responses.append((200, {}, {"messages": [{"id": "m-77"}]}))
    result = backend.send(sms(short_text="", text="long text used when there is no short text"))
    [request] = http_server.requests
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"shop:pw").decode()
    assert parse_qs(request.body.decode()) == {
        "destination": ["+34600111222"], "sender": ["+34900000000"], "message": ["long text used when there is no short text"]
    }
    assert result.provider_id == "m-77"


def test_token_in_a_header_of_choice(http_server, local_http_options):
    backend = http_sms(http_server, local_http_options, {"auth": "header", "auth_header": "X-API-Key"}, {"token": "k"})
    backend.send(sms())
    assert http_server.requests[0].headers["X-API-Key"] == "k"


def test_a_listed_error_code_suppresses_the_number(http_server, local_http_options):
    backend = http_sms(http_server, local_http_options, {"invalid_address_codes": "INVALID_NUMBER, 1001", "error_code_field": "error.code"})
    http_server.responses.append((400, {}, {"error": {"code": "INVALID_NUMBER"}}))
    with pytest.raises(ChannelPermanentError) as caught:
        backend.send(sms())
    assert caught.value.suppress is True
    http_server.responses.append((400, {}, {"error": {"code": "BAD_SENDER"}}))
    with pytest.raises(ChannelPermanentError) as caught:
        backend.send(sms())
    assert caught.value.suppress is False


def test_server_errors_are_transient(http_server, local_http_options):
    http_server.responses.append((502, {}, b"bad gateway"))
    with pytest.raises(ChannelTransientError):
        http_sms(http_server, local_http_options).send(sms())


def test_an_empty_text_is_not_sent(http_server, local_http_options):
    with pytest.raises(ChannelPermanentError, match="no text"):
        http_sms(http_server, local_http_options).send(sms(short_text="", text=" "))
    assert http_server.requests == []


@pytest.mark.parametrize(
    "options, secrets, field",
    [
        ({}, {}, "url"),
        ({"url": "https://sms.example.com/", "auth": "bearer"}, {}, "token"),
        ({"url": "https://sms.example.com/", "auth": "header"}, {"token": "t"}, "auth_header"),
        ({"url": "https://sms.example.com/", "auth": "basic"}, {"password": "p"}, "username"),
        ({"url": "https://sms.example.com/", "auth": "magic"}, {}, "auth"),
        ({"url": "https://sms.example.com/", "from_number": "not a number!"}, {}, "from_number"),
        ({"url": "https://sms.example.com/", "extra_headers": {"Host": "evil"}}, {}, "extra_headers"),
        ({"url": "https://sms.example.com/", "extra_fields": [1]}, {}, "extra_fields"),
        ({"url": "https://192.168.0.10/"}, {}, "url"),
        ({"url": "https://sms.example.com/", "body_format": "xml"}, {}, "body_format"),
    ],
)
def test_http_sms_option_errors_name_the_option(options, secrets, field):
    with pytest.raises(ValidationError) as caught:
        HttpSmsChannel.validate_options(options, secrets)
    assert field in caught.value.message_dict


def test_tokens_and_passwords_stay_secret():
    options, secrets = HttpSmsChannel.validate_options(
        {"url": "https://sms.example.com/", "auth": "bearer", "from_number": "Shop"}, {"token": "tok"}
    )
    assert secrets == {"token": "tok"} and "tok" not in json.dumps(options)
    assert set(HttpSmsChannel.secret_options) == {"token", "password"}


def test_http_sms_inbound_reads_json_or_form_with_configured_names():
    backend = make_backend(
        HttpSmsChannel, {"url": "https://sms.example.com/", "inbound_from_field": "msisdn", "inbound_text_field": "body.text",
                         "inbound_id_field": "uuid"}
    )
    factory = RequestFactory()
    request = factory.post("/in/", {"msisdn": "+34600111222", "body": {"text": " stop "}, "uuid": "u1"}, content_type="application/json")
    [event] = backend.parse_inbound(request)
    assert (event.kind, event.address, event.text, event.provider_id) == ("stop", "+34600111222", " stop ", "u1")
    form_backend = make_backend(HttpSmsChannel, {"url": "https://sms.example.com/"})
    [event] = form_backend.parse_inbound(factory.post("/in/", {"from": "+34600111222", "text": "HELP"}))
    assert event.kind == "help"
    assert form_backend.parse_inbound(factory.post("/in/", {"status": "delivered"})) == []
    with pytest.raises(SuspiciousOperation):
        form_backend.parse_inbound(factory.post("/in/", "{nope", content_type="application/json"))


# --- Twilio ----------------------------------------------------------------------------------


class LocalTwilio(TwilioSmsChannel):
    port = None

    @property
    def api_base(self):
        return f"http://127.0.0.1:{self.port}"

    def http_client(self):
        return SafeHttpClient(allow_http=True, allow_private=True, extra_ports=[self.port])


@pytest.fixture
def twilio(http_server):
    LocalTwilio.port = http_server.port
    http_server.default = (201, {}, {"sid": "SM" + "f" * 32, "status": "queued"})
    return make_backend(LocalTwilio, {"account_sid": SID, "from_number": "+15005550006"}, {"auth_token": TOKEN})


def test_twilio_request(twilio, http_server):
    result = twilio.send(sms())
    [request] = http_server.requests
    assert request.path == f"/2010-04-01/Accounts/{SID}/Messages.json"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(f"{SID}:{TOKEN}".encode()).decode()
    assert parse_qs(request.body.decode()) == {
        "To": ["+34600111222"], "From": ["+15005550006"], "Body": ["20% off your basket: https://s.example/r"]
    }
    assert result.provider_id == "SM" + "f" * 32


def test_twilio_messaging_service_replaces_the_sender(http_server):
    LocalTwilio.port = http_server.port
    backend = make_backend(LocalTwilio, {"account_sid": SID, "messaging_service_sid": "MG" + "a" * 32}, {"auth_token": TOKEN})
    backend.send(sms())
    body = parse_qs(http_server.requests[0].body.decode())
    assert body["MessagingServiceSid"] == ["MG" + "a" * 32] and "From" not in body


@pytest.mark.parametrize(
    "status, code, error, suppress",
    [
        (400, 21211, ChannelPermanentError, True),
        (400, 21610, ChannelPermanentError, True),
        (400, 21614, ChannelPermanentError, True),
        (400, 21408, ChannelPermanentError, False),
        (401, 20003, ChannelPermanentError, False),
        (429, 20429, ChannelTransientError, None),
        (500, 20500, ChannelTransientError, None),
    ],
)
def test_twilio_errors(twilio, http_server, status, code, error, suppress):
    http_server.responses.append((status, {}, {"code": code, "message": "x", "status": status}))
    with pytest.raises(error) as caught:
        twilio.send(sms())
    if suppress is not None:
        assert caught.value.suppress is suppress


def test_the_real_twilio_api_is_https_only():
    backend = make_backend(TwilioSmsChannel, {"account_sid": SID, "from_number": "+15005550006"}, {"auth_token": TOKEN})
    assert backend.http_client().allow_http is False
    with pytest.raises(ValidationError) as caught:
        TwilioSmsChannel.validate_options({"account_sid": SID, "from_number": "+15005550006", "allow_http": True}, {"auth_token": "t"})
    assert "allow_http" in str(caught.value.message_dict["options"])


@pytest.mark.parametrize(
    "options, secrets, field",
    [
        ({"account_sid": "XX123", "from_number": "+15005550006"}, {"auth_token": TOKEN}, "account_sid"),
        ({"account_sid": SID}, {"auth_token": TOKEN}, "from_number"),
        ({"account_sid": SID, "from_number": "+15005550006"}, {}, "auth_token"),
        ({"account_sid": SID, "messaging_service_sid": "MGnope"}, {"auth_token": TOKEN}, "messaging_service_sid"),
    ],
)
def test_twilio_option_errors_name_the_option(options, secrets, field):
    with pytest.raises(ValidationError) as caught:
        TwilioSmsChannel.validate_options(options, secrets)
    assert field in caught.value.message_dict


def test_twilio_signature_matches_twilios_published_vectors():
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    params = {"CallSid": "CA1234567890ABCDE", "Caller": "+14158675309", "Digits": "1234", "From": "+14158675309", "To": "+18005551212"}
    assert twilio_signature("12345", url, params) == "RSOYDt4T1cUTdK1PDd93/VVr8B8="
    repeated = QueryDict(mutable=True)
    for name, value in [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234"), ("Digits", "1234")]:
        repeated.appendlist(name, value)
    assert twilio_signature("12345", url, repeated) == "IK+Dwps556ElfBT0I3Rgjkr1wJU="


def inbound(params, url="http://testserver/journeys/sms/in/tok/", signature=None, token=TOKEN, **extra):
    signature = signature if signature is not None else twilio_signature(token, url, params)
    return RequestFactory().post("/journeys/sms/in/tok/", params, HTTP_X_TWILIO_SIGNATURE=signature, **extra)


REPLY = {"From": "+34600111222", "To": "+15005550006", "Body": "Stop", "MessageSid": "SM1", "AccountSid": SID}


def twilio_backend():
    return make_backend(TwilioSmsChannel, {"account_sid": SID, "from_number": "+15005550006"}, {"auth_token": TOKEN})


def test_twilio_inbound_with_a_valid_signature():
    [event] = twilio_backend().parse_inbound(inbound(REPLY))
    assert (event.kind, event.address, event.text, event.provider_id) == ("stop", "+34600111222", "Stop", "SM1")


def test_twilio_inbound_signed_for_the_public_url_behind_a_proxy():
    with override_settings(OSCAR_JOURNEYS_SITE_URL="https://shop.example.com"):
        [event] = twilio_backend().parse_inbound(inbound(REPLY, url="https://shop.example.com/journeys/sms/in/tok/"))
    assert event.kind == "stop"


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"signature": ""},
        {"signature": "bm9wZQ=="},
        {"token": "another-token"},
        {"url": "http://testserver/other/"},
    ],
)
def test_twilio_inbound_with_a_wrong_signature_is_refused(request_kwargs):
    with pytest.raises(SuspiciousOperation):
        twilio_backend().parse_inbound(inbound(REPLY, **request_kwargs))


def test_twilio_inbound_tampered_body_is_refused():
    url = "http://testserver/journeys/sms/in/tok/"
    signature = twilio_signature(TOKEN, url, REPLY)
    with pytest.raises(SuspiciousOperation):
        twilio_backend().parse_inbound(inbound({**REPLY, "Body": "START"}, signature=signature))


def test_twilio_advanced_opt_out_type_wins():
    [event] = twilio_backend().parse_inbound(inbound({**REPLY, "Body": "Arrêter", "OptOutType": "STOP"}))
    assert event.kind == "stop"
