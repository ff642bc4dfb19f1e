"""EmailChannel's MIME build: the text/HTML boundary is chosen when the message is built
(so the generator does not search the bodies for one), and the result is the same message
Django would build: two alternatives, every header kept."""

import email
import email.policy
import itertools
from unittest import mock

from django.core import mail

from oscar_journeys.channels import email as email_channel
from oscar_journeys.channels.email import EmailChannel, MarketingEmail

from .conftest import make_backend
from .test_email import outgoing


def sent_message():
    backend = make_backend(EmailChannel, {"from_email": "Shop <news@shop.example.com>"})
    backend.send(outgoing(text="Hello Ana, ünïcode", html="<p>Hello <b>Ana</b> ünïcode</p>"))
    return mail.outbox[-1]


def test_the_boundary_is_set_when_built_and_the_message_reads_back():
    sent = sent_message()
    assert isinstance(sent, MarketingEmail)
    message = sent.message()
    boundary = message.get_boundary()
    assert boundary and boundary.startswith("=" * 15)
    raw = message.as_bytes(linesep="\r\n")
    assert raw.count(f"--{boundary}".encode()) == 3  # two parts and the closing line
    parsed = email.message_from_bytes(raw)
    assert parsed.get_content_type() == "multipart/alternative"
    text, html = parsed.get_payload()
    assert text.get_content_type() == "text/plain" and "ünïcode" in text.get_payload(decode=True).decode()
    assert html.get_content_type() == "text/html" and "<b>Ana</b>" in html.get_payload(decode=True).decode()
    assert parsed["List-Unsubscribe"] == "<https://shop.example.com/u/tok/>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["Message-ID"].strip() == f"<{'k' * 40}@shop.example.com>"
    assert parsed["Subject"] == "Your basket misses you"


def test_each_message_gets_its_own_boundary():
    assert sent_message().message().get_boundary() != sent_message().message().get_boundary()


def test_a_boundary_found_in_a_body_is_not_used():
    taken = "=" * 15 + "0" * 19 + "=="
    backend = make_backend(EmailChannel, {"from_email": "news@shop.example.com"})
    picks = itertools.chain([taken], itertools.repeat(taken + "x"))  # first pick: found in the text
    with mock.patch.object(email_channel, "_boundary", side_effect=lambda: next(picks)):
        backend.send(outgoing(text=f"--{taken}\nnot a boundary", html="<p>x</p>"))
        message = mail.outbox[0].message()
    assert message.get_boundary() == taken + "x"
    assert len(email.message_from_bytes(message.as_bytes()).get_payload()) == 2


def test_html_only_and_text_only_messages_are_single_part():
    backend = make_backend(EmailChannel, {"from_email": "news@shop.example.com"})
    backend.send(outgoing(text=""))
    backend.send(outgoing(html=""))
    html_only, text_only = (sent.message() for sent in mail.outbox)
    assert html_only.get_content_type() == "text/html" and not html_only.is_multipart()
    assert text_only.get_content_type() == "text/plain" and not text_only.is_multipart()


def test_the_headers_policy_writes_the_same_bytes_as_the_stock_policy():
    backend = make_backend(EmailChannel, {"from_email": "Tienda Ñandú <news@shop.example.com>"})
    long_url = "https://shop.example.com/u/" + "t" * 120 + "/"
    backend.send(outgoing(text="Hola", html="<p>Hola</p>", subject="Tu cesta te echa de menos: zapatillas, ünïcode y más"))
    backend.send(outgoing(text="Hi", subject="Short  subject\twith  spaces "))
    built = [sent.message() for sent in mail.outbox]
    built[1]["List-Unsubscribe"] = f"<{long_url}>"  # longer than a line: folded as before
    built[1]["X-Long"] = "word " * 30
    written = []
    for message in built:
        assert message.policy is email_channel.HEADERS_POLICY
        written.append(message.as_bytes(linesep="\r\n"))
        message.policy = email.policy.compat32
        assert written[-1] == message.as_bytes(linesep="\r\n")
    assert b"\r\nSubject: \r\n =?utf-8?q?Tu_cesta" in written[0] and b"From: =?utf-8?b?" in written[0]
    assert b"\r\nSubject: Short  subject\twith  spaces \r\n" in written[1]
    assert b"List-Unsubscribe: \r\n <https://" in written[1] or b"List-Unsubscribe:\r\n " in written[1]
