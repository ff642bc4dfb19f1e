"""EmailChannel: the message it builds (Django's locmem backend), and against a real local
SMTP server: one connection per batch, and SMTP errors mapped to transient/permanent."""

import email
import time

import pytest
from django.core import mail
from django.core.exceptions import ValidationError

from oscar_journeys.channels.base import OutgoingMessage
from oscar_journeys.channels.email import EmailChannel
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import free_port, make_backend

SMTP = "django.core.mail.backends.smtp.EmailBackend"


def outgoing(to="ana@example.com", **kwargs):
    defaults = {
        "subject": "Your basket misses you",
        "text": "Hello Ana, https://shop.example.com/u/tok/",
        "html": "<p>Hello <b>Ana</b></p>",
        "headers": {
            "List-Unsubscribe": "<https://shop.example.com/u/tok/>",
            "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        },
        "idempotency_key": "k" * 40,
    }
    return OutgoingMessage(to=to, **{**defaults, **kwargs})


def smtp_backend(server, **options):
    return make_backend(
        EmailChannel,
        {"from_email": "Shop <news@shop.example.com>", "email_backend": SMTP, "host": "127.0.0.1",
         "port": server.port, "timeout": 5, **options},
    )


# --- message building (locmem) ---------------------------------------------------------------


def test_builds_a_text_email_with_an_html_alternative_and_the_headers():
    backend = make_backend(EmailChannel, {"from_email": "Shop <news@shop.example.com>", "reply_to": "help@shop.example.com"})
    result = backend.send(outgoing())
    [sent] = mail.outbox
    assert sent.to == ["ana@example.com"]
    assert sent.from_email == "Shop <news@shop.example.com>"
    assert sent.reply_to == ["help@shop.example.com"]
    assert sent.subject == "Your basket misses you"
    assert sent.body.startswith("Hello Ana")
    assert sent.alternatives[0][1] == "text/html" and "<b>Ana</b>" in sent.alternatives[0][0]
    parsed = email.message_from_bytes(sent.message().as_bytes())
    assert parsed["List-Unsubscribe"] == "<https://shop.example.com/u/tok/>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"].strip() == f"<{'k' * 40}@shop.example.com>"
    assert result.provider_id == parsed["Message-ID"].strip()


def test_the_same_message_sent_twice_has_the_same_message_id():
    backend = make_backend(EmailChannel, {"from_email": "news@shop.example.com"})
    backend.send(outgoing())
    backend.send(outgoing())
    ids = {m.message()["Message-ID"] for m in mail.outbox}
    assert len(mail.outbox) == 2 and len(ids) == 1


def test_an_html_only_message_is_sent_as_html():
    make_backend(EmailChannel, {"from_email": "news@shop.example.com"}).send(outgoing(text=""))
    [sent] = mail.outbox
    assert sent.content_subtype == "html" and sent.alternatives == []


@pytest.mark.parametrize("to", ["", "not-an-address", "ana@"])
def test_a_malformed_address_is_a_permanent_error_that_suppresses(to):
    with pytest.raises(ChannelPermanentError) as caught:
        make_backend(EmailChannel, {"from_email": "news@shop.example.com"}).send(outgoing(to=to))
    assert caught.value.suppress is True
    assert mail.outbox == []


def test_a_header_with_a_newline_is_a_permanent_error():
    with pytest.raises(ChannelPermanentError):
        make_backend(EmailChannel, {"from_email": "news@shop.example.com"}).send(outgoing(subject="Hi\nBcc: x@evil.com"))


# --- options ---------------------------------------------------------------------------------


def errors_of(options, secrets=None):
    with pytest.raises(ValidationError) as caught:
        EmailChannel.validate_options(options, secrets or {})
    return caught.value.message_dict


def test_from_email_is_required_and_checked():
    assert "from_email" in errors_of({})
    assert "not an email address" in errors_of({"from_email": "Shop <nope>"})["from_email"][0]
    assert "reply_to" in errors_of({"from_email": "a@example.com", "reply_to": "ok@example.com, bad"})


def test_backend_path_and_tls_options_are_checked():
    assert "no.such.Backend" in errors_of({"from_email": "a@example.com", "email_backend": "no.such.Backend"})["email_backend"][0]
    assert "use_ssl" in errors_of({"from_email": "a@example.com", "host": "smtp.example.com", "use_tls": True, "use_ssl": True})
    assert "host" in errors_of({"from_email": "a@example.com", "port": 2525})


def test_unknown_options_are_named():
    assert "colour" in str(errors_of({"from_email": "a@example.com", "colour": "red"})["options"])


def test_the_password_is_kept_with_the_secrets():
    options, secrets = EmailChannel.validate_options(
        {"from_email": "a@example.com", "host": "smtp.example.com", "username": "u"}, {"password": "hunter2"}
    )
    assert secrets == {"password": "hunter2"}
    assert "hunter2" not in str(options)


def test_without_a_host_the_django_email_settings_apply(settings):
    settings.EMAIL_HOST, settings.EMAIL_USE_TLS = "smtp.shop.example.com", True
    backend = make_backend(EmailChannel, {"from_email": "a@example.com", "email_backend": SMTP})
    connection = backend.get_connection()
    assert (connection.host, connection.use_tls) == ("smtp.shop.example.com", True)


def test_own_server_options_reach_the_connection():
    backend = make_backend(
        EmailChannel,
        {"from_email": "a@example.com", "email_backend": SMTP, "host": "smtp.example.com", "port": 2525,
         "use_ssl": True, "username": "u", "timeout": 7},
        {"password": "p"},
    )
    connection = backend.get_connection()
    assert (connection.host, connection.port, connection.use_ssl, connection.username, connection.password,
            connection.timeout) == ("smtp.example.com", 2525, True, "u", "p", 7)


# --- a real SMTP server ----------------------------------------------------------------------


def test_a_batch_uses_one_connection(smtp_server):
    backend = smtp_backend(smtp_server)
    with backend:
        for i in range(20):
            backend.send(outgoing(to=f"c{i}@example.com", idempotency_key=f"key{i}"))
    assert smtp_server.connections == 1
    assert len(smtp_server.messages) == 20
    parsed = email.message_from_bytes(smtp_server.messages[0]["data"])
    assert parsed["Message-ID"].strip() == "<key0@shop.example.com>"
    assert parsed.get_content_type() == "multipart/alternative"
    assert smtp_server.messages[0]["to"] == ["c0@example.com"]


def test_outside_a_batch_each_send_connects(smtp_server):
    backend = smtp_backend(smtp_server)
    backend.send(outgoing())
    backend.send(outgoing())
    assert smtp_server.connections == 2


def test_a_batch_is_fast(smtp_server):
    backend = smtp_backend(smtp_server)
    start = time.perf_counter()
    with backend:
        for i in range(300):
            backend.send(outgoing(to=f"c{i}@example.com", idempotency_key=f"key{i}"))
    rate = 300 / (time.perf_counter() - start)
    assert len(smtp_server.messages) == 300
    assert rate > 200, f"{rate:.0f} emails/s"


def test_a_refused_recipient_is_permanent_and_suppressed_and_the_batch_goes_on(smtp_server):
    smtp_server.rcpt_replies["gone@example.com"] = "550 5.1.1 no such user"
    backend = smtp_backend(smtp_server)
    with backend:
        with pytest.raises(ChannelPermanentError) as caught:
            backend.send(outgoing(to="gone@example.com"))
        backend.send(outgoing(to="ana@example.com"))
    assert caught.value.suppress is True
    assert [m["to"] for m in smtp_server.messages] == [["ana@example.com"]]
    assert smtp_server.connections == 1


def test_a_deferred_recipient_is_transient(smtp_server):
    smtp_server.rcpt_replies["busy@example.com"] = "450 4.2.1 mailbox busy"
    with pytest.raises(ChannelTransientError):
        smtp_backend(smtp_server).send(outgoing(to="busy@example.com"))


@pytest.mark.parametrize("reply, error", [("554 5.7.1 rejected as spam", ChannelPermanentError), ("451 4.3.0 try later", ChannelTransientError)])
def test_data_replies_map_by_their_code(smtp_server, reply, error):
    smtp_server.data_replies.append(reply)
    with pytest.raises(error) as caught:
        smtp_backend(smtp_server).send(outgoing())
    assert getattr(caught.value, "suppress", False) is False


def test_a_dropped_connection_is_transient_and_the_batch_reconnects(smtp_server):
    smtp_server.drop_on_data = 1
    backend = smtp_backend(smtp_server)
    with backend:
        with pytest.raises(ChannelTransientError):
            backend.send(outgoing(to="first@example.com"))
        backend.send(outgoing(to="second@example.com"))
        backend.send(outgoing(to="third@example.com"))
    assert [m["to"] for m in smtp_server.messages] == [["second@example.com"], ["third@example.com"]]
    assert smtp_server.connections == 2


def test_a_server_that_is_down_fails_the_batch_at_open_and_is_not_retried_per_message():
    backend = make_backend(
        EmailChannel, {"from_email": "a@example.com", "email_backend": SMTP, "host": "127.0.0.1", "port": free_port(), "timeout": 2}
    )
    with pytest.raises(ChannelTransientError, match="Cannot reach"):
        backend.open()
    with pytest.raises(ChannelTransientError, match="earlier in this batch"):
        backend.send(outgoing())
    backend.close()
    with pytest.raises(ChannelTransientError, match="Cannot reach"):  # a new batch tries again
        backend.send(outgoing())


def test_a_timeout_applies_even_when_none_is_configured(settings):
    settings.EMAIL_TIMEOUT = None
    backend = make_backend(EmailChannel, {"from_email": "a@example.com", "email_backend": SMTP})
    assert backend.get_connection().timeout == 30
    settings.EMAIL_TIMEOUT = 5
    assert backend.get_connection().timeout == 5
