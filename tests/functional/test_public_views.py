"""The public pages reached from messages: one-click unsubscribe (RFC 8058), preferences,
open pixel, click redirect (no open redirect), basket restore, and the inbound channel
webhook (SMS STOP / START / HELP, bounces). RELIABILITY 3.2, 3.6, 4.2, 4.3."""

import time
from types import SimpleNamespace
from unittest import mock

import pytest
from django.apps import apps
from django.core.cache import cache
from django.core.exceptions import SuspiciousOperation
from django.test import Client, override_settings
from django.urls import reverse
from oscar.test.factories import create_product

from oscar_journeys import tokens
from oscar_journeys.channels.base import BaseChannel, InboundEvent
from oscar_journeys.inbound import classify_reply, connect_inbound_receivers, receive_anymail_tracking
from oscar_journeys.models import Channel, Consent, Event, Message, Suppression
from oscar_journeys.services import consent as consent_service
from oscar_journeys.services.consent import address_hash
from tests import storefront
from tests.integration import test_services_rendering as factories

pytestmark = pytest.mark.django_db
PHONE = "+447700900123"


def url(name, **data):
    purpose = {
        "unsubscribe": tokens.UNSUBSCRIBE,
        "preferences": tokens.PREFERENCES,
        "message-click": tokens.CLICK,
        "basket-restore": tokens.RESTORE,
    }[name]
    return reverse(f"oscar_journeys:{name}", kwargs={"token": tokens.make_token(purpose, data)})


def tamper(link):
    head, token, tail = link.rsplit("/", 2)[0], link.rsplit("/", 2)[1], "/"
    flipped = token[:-1] + ("A" if token[-1] != "A" else "B")
    return f"{head}/{flipped}{tail}"


@pytest.fixture
def ana(make_customer, django_user_model):
    user = django_user_model.objects.create_user(username="ana", email="ana@example.com", password="x")
    return make_customer(email="ana@example.com", phone=PHONE, user=user, first_name="Ana")


@pytest.fixture
def message(ana):
    template = factories.make_template(subject="x", body_text="{{ unsubscribe_url }}")
    message = factories.make_message(ana, template, recipient="ana@example.com")
    Message.objects.filter(pk=message.pk).update(status=Message.SENT, links=["https://example.com/shoes?a=1&b=2"])
    message.refresh_from_db()
    return message


def state(customer):
    return {
        "consent": dict(Consent.objects.filter(customer=customer).values_list("channel_kind", "granted")),
        "suppressed": sorted(Suppression.objects.values_list("channel_kind", "reason")),
        "events": sorted(Event.objects.filter(customer=customer, type__startswith="consent").values_list("type", flat=True)),
    }


# --- unsubscribe ----------------------------------------------------------------------------


def test_get_shows_a_confirmation_and_changes_nothing(ana, message):
    before = state(ana)
    response = Client().get(url("unsubscribe", c=ana.pk, k="email", m=message.pk))
    assert response.status_code == 200
    assert b'method="post"' in response.content and b"Unsubscribe" in response.content
    assert state(ana) == before


@pytest.mark.parametrize("multipart", [False, True])
def test_one_click_post_without_cookies_or_csrf_unsubscribes(ana, message, multipart):
    client = Client(enforce_csrf_checks=True)
    link = url("unsubscribe", c=ana.pk, k="email", m=message.pk)
    if multipart:
        response = client.post(link, {"List-Unsubscribe": "One-Click"})
    else:
        response = client.post(link, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert response.status_code == 200  # not a redirect (RFC 8058)
    assert not response.cookies
    assert state(ana) == {
        "consent": {"email": False},
        "suppressed": [("email", "unsubscribed")],
        "events": ["consent_withdrawn"],
    }
    assert consent_service.can_message(customer=ana, kind="email", address="ana@example.com") == "suppressed"
    # A repeat POST (mail clients retry) is fine and changes nothing more.
    again = Client(enforce_csrf_checks=True).post(link, "List-Unsubscribe=One-Click", content_type="application/x-www-form-urlencoded")
    assert again.status_code == 200
    assert state(ana)["events"] == ["consent_withdrawn"] and Suppression.objects.count() == 1


def test_unsubscribe_suppresses_the_address_the_message_went_to(ana, message):
    Message.objects.filter(pk=message.pk).update(recipient="old@example.com")
    Client().post(url("unsubscribe", c=ana.pk, k="email", m=message.pk))
    hashes = set(Suppression.objects.values_list("address_hash", flat=True))
    assert hashes == {address_hash("email", "ana@example.com"), address_hash("email", "old@example.com")}


def test_sms_unsubscribe_link(ana):
    Client().post(url("unsubscribe", c=ana.pk, k="sms", m=None))
    assert consent_service.is_suppressed(kind="sms", address=PHONE)
    assert state(ana)["consent"] == {"sms": False}


@pytest.mark.parametrize("method", ["get", "post"])
def test_tampered_or_foreign_tokens_are_404_and_change_nothing(ana, message, method):
    before = state(ana)
    good = url("unsubscribe", c=ana.pk, k="email", m=message.pk)
    click_token_as_unsubscribe = reverse(
        "oscar_journeys:unsubscribe", kwargs={"token": tokens.make_token(tokens.CLICK, {"c": ana.pk, "k": "email", "m": message.pk})}
    )
    for link in (tamper(good), click_token_as_unsubscribe, "/journeys/u/not-a-token/", url("unsubscribe", c=ana.pk, k="fax")):
        response = getattr(Client(), method)(link)
        assert response.status_code == 404, link
    assert state(ana) == before


def test_links_signed_with_a_rotated_key_still_work(ana, message):
    with override_settings(SECRET_KEY="old-key"):
        link = url("unsubscribe", c=ana.pk, k="email", m=message.pk)
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=["old-key"]):
        assert Client().post(link).status_code == 200
    with override_settings(SECRET_KEY="new-key", SECRET_KEY_FALLBACKS=[]):
        assert Client().get(link).status_code == 404
    assert Suppression.objects.count() == 1


def test_pages_are_in_the_customers_language(ana, message):
    ana.language = "es"
    ana.save()
    response = Client(HTTP_ACCEPT_LANGUAGE="en").get(url("unsubscribe", c=ana.pk, k="email", m=message.pk))
    assert b'<html lang="es">' in response.content


# --- preferences ------------------------------------------------------------------------------


def test_preferences_show_and_save_consent(ana):
    link = url("preferences", c=ana.pk)
    page = Client().get(link)
    assert page.status_code == 200
    form = page.context["form"]
    assert list(form.fields) == ["email", "sms"]  # no push token: no push choice
    assert form.initial == {"email": True, "sms": False}  # soft opt-in email (an account), opt-in sms
    response = Client().post(link, {"sms": "on"})
    assert response.status_code == 200 and response.context["saved"]
    assert state(ana)["consent"] == {"email": False, "sms": True}
    assert response.context["form"].initial == {"email": False, "sms": True}


def test_opting_in_again_lifts_an_unsubscribe_but_not_a_bounce(ana):
    Client().post(url("unsubscribe", c=ana.pk, k="email", m=None))
    consent_service.suppress(kind="sms", address=PHONE, reason=Suppression.BOUNCED)
    Client().post(url("preferences", c=ana.pk), {"email": "on", "sms": "on"})
    assert state(ana)["suppressed"] == [("sms", "bounced")]
    assert consent_service.can_message(customer=ana, kind="email", address=ana.email) == ""
    assert consent_service.can_message(customer=ana, kind="sms", address=PHONE) == "suppressed"


def test_preferences_form_needs_its_csrf_token(ana):
    response = Client(enforce_csrf_checks=True).post(url("preferences", c=ana.pk), {"sms": "on"})
    assert response.status_code == 403
    assert not Consent.objects.exists()


# --- open and click tracking ------------------------------------------------------------------


def pixel(message_id):
    return reverse("oscar_journeys:message-open", kwargs={"token": tokens.make_token(tokens.OPEN, {"m": message_id})})


def test_open_pixel_counts_opens_and_records_one_event(message):
    for _ in range(2):
        response = Client().get(pixel(message.pk))
        assert response.status_code == 200 and response["Content-Type"] == "image/gif"
        assert response.content.startswith(b"GIF89a") and "no-store" in response["Cache-Control"]
    message.refresh_from_db()
    assert message.open_count == 2 and message.opened_at is not None
    assert Event.objects.filter(type="message_opened").count() == 1


def test_a_bad_open_token_still_gets_a_gif_but_counts_nothing(message):
    for link in (tamper(pixel(message.pk)[:-4] + "/")[:-1] + ".gif", "/journeys/o/nonsense.gif"):
        response = Client().get(link)
        assert response.status_code == 200 and response.content.startswith(b"GIF")
    message.refresh_from_db()
    assert message.open_count == 0 and not Event.objects.filter(type="message_opened").exists()


def test_click_redirects_to_the_stored_link_and_counts(message):
    link = url("message-click", m=message.pk, l=0)
    for _ in range(2):
        response = Client().get(link)
        assert response.status_code == 302 and response["Location"] == "https://example.com/shoes?a=1&b=2"
    message.refresh_from_db()
    assert message.click_count == 2 and message.clicked_at is not None
    # No pixel was loaded (images off): the click counts as one open.
    assert message.open_count == 1 and message.opened_at == message.clicked_at
    assert sorted(Event.objects.values_list("type", flat=True).filter(type__startswith="message")) == [
        "message_clicked",
        "message_opened",
    ]


def test_head_requests_from_link_checkers_count_nothing(message):
    response = Client().head(url("message-click", m=message.pk, l=0))
    assert response.status_code == 302
    assert Client().head(pixel(message.pk)).status_code == 200
    message.refresh_from_db()
    assert (message.click_count, message.open_count) == (0, 0)
    assert not Event.objects.filter(type__startswith="message").exists()


@pytest.mark.parametrize(
    "link",
    [
        url("message-click", m=10**9, l=0),
        url("message-click", m=1, l=7),
        "/journeys/c/bogus/",
        reverse("oscar_journeys:message-click", kwargs={"token": tokens.make_token(tokens.OPEN, {"m": 1, "l": 0})}),
    ],
)
def test_unknown_or_foreign_click_tokens_are_404(message, link):
    assert Client().get(link).status_code == 404
    message.refresh_from_db()
    assert message.click_count == 0


# Django's open-redirect corpus (tests/utils_tests/test_http.py) and friends.
UNSAFE_TARGETS = [
    "javascript:alert(1)",
    "JavaScript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "http:///example.com",
    "https:///example.com",
    "\\\\example.com",
    "\\//example.com",
    "/\\/example.com",
    "//example.com",
    "///example.com",
    "http:/example.com",
    "http:example.com",
    "ftp://example.com/file",
    "mailto:a@example.com",
    "http://exa\nmple.com",
    "\x08//example.com",
    "/relative/path",
    "",
]


@pytest.mark.parametrize("target", UNSAFE_TARGETS)
def test_click_never_redirects_to_anything_but_http(message, target):
    Message.objects.filter(pk=message.pk).update(links=[target])
    response = Client().get(url("message-click", m=message.pk, l=0))
    assert response.status_code == 400
    assert "Location" not in response


# --- basket restore ---------------------------------------------------------------------------


@pytest.fixture
def shoe(db):
    return create_product(title="Trail runner", price="45.00", num_in_stock=10, upc="TR-9")


def test_restore_an_anonymous_basket_into_a_new_browser(client, ana, shoe):
    storefront.add_to_basket(client, shoe, quantity=2)
    basket = apps.get_model("basket", "Basket").objects.get()
    assert basket.owner_id is None
    browser = Client()
    response = browser.get(url("basket-restore", b=basket.pk, c=ana.pk))
    assert response.status_code == 302 and response["Location"] == reverse("basket:summary")
    from django.conf import settings

    assert response.cookies[settings.OSCAR_BASKET_COOKIE_OPEN]["httponly"]
    page = browser.get(response["Location"])
    assert page.context["basket"].pk == basket.pk
    assert "Trail runner" in page.content.decode()


def test_restore_an_owned_basket_asks_for_login(client, shoe, make_customer):
    storefront.register(client, "bea@example.com")
    storefront.add_to_basket(client, shoe)
    basket = apps.get_model("basket", "Basket").objects.get()
    assert basket.owner is not None
    link = url("basket-restore", b=basket.pk, c=make_customer().pk)
    stranger = Client()
    response = stranger.get(link)
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("customer:login") + "?next=")
    assert reverse("basket:summary") in response["Location"]
    storefront.log_in(stranger, "bea@example.com")
    response = stranger.get(link)
    assert response.status_code == 302 and response["Location"] == reverse("basket:summary")


def test_restore_of_a_closed_or_expired_basket_is_a_friendly_page(ana, shoe):
    basket = factories.make_basket((shoe, 1))
    link = url("basket-restore", b=basket.pk, c=ana.pk)
    later = time.time() + 31 * 86400
    with mock.patch("django.core.signing.time.time", return_value=later):
        response = Client().get(link)
    assert response.status_code == 410 and b"no longer available" in response.content
    assert Client().get(link).status_code == 302  # still valid today
    basket.submit()
    response = Client().get(link)
    assert response.status_code == 410 and not response.cookies
    assert Client().get(tamper(link)).status_code == 404


# --- inbound webhook: SMS STOP / START / HELP, bounces --------------------------------------------


class RecordingSmsChannel(BaseChannel):
    """An SMS backend for these tests: records sends; inbound form fields From, Body, Sid,
    kind; refuses requests without sig=ok."""

    kind = "sms"
    channel_name = "recording"
    sent = []

    def deliver(self, message, payload):
        RecordingSmsChannel.sent.append(message)
        return message

    def parse_inbound(self, request):
        if request.POST.get("sig") != "ok":
            raise SuspiciousOperation("bad signature")
        return [
            InboundEvent(
                kind=request.POST.get("kind", "other"),
                address=request.POST["From"],
                text=request.POST.get("Body", ""),
                provider_id=request.POST.get("Sid", ""),
            )
        ]


@pytest.fixture
def sms_channel(settings):
    from oscar_journeys import app_settings

    settings.OSCAR_JOURNEYS_CHANNEL_BACKENDS = [*app_settings.CHANNEL_BACKENDS, f"{__name__}.RecordingSmsChannel"]
    RecordingSmsChannel.sent.clear()
    return Channel.objects.create(name="SMS", kind="sms", backend=f"{__name__}.RecordingSmsChannel")


def hook(channel, token=None):
    return reverse(
        "oscar_journeys:channel-inbound", kwargs={"channel_id": channel.pk, "inbound_token": token or channel.inbound_token}
    )


def reply(channel, body, sid="SM1", **extra):
    return Client(enforce_csrf_checks=True).post(hook(channel), {"From": PHONE, "Body": body, "Sid": sid, "sig": "ok", **extra})


@pytest.mark.parametrize("body", ["STOP", " stop ", "Stop.", "OPT OUT", "opt-out", "Revoke", "unsubscribe", "Please stop texting me", "BAJA", "Sair"])
def test_stop_variants_opt_out_with_exactly_one_confirmation(ana, sms_channel, body):
    consent_service.consent_set(customer=ana, kind="sms", granted=True, source="checkout")
    assert reply(sms_channel, body).status_code == 200
    assert reply(sms_channel, body).status_code == 200  # the provider retries the webhook
    cache.clear()
    assert reply(sms_channel, body).status_code == 200  # ...even after the cache forgot it
    assert reply(sms_channel, "STOP", sid="SM2").status_code == 200  # and a second STOP
    assert len(RecordingSmsChannel.sent) == 1
    confirmation = RecordingSmsChannel.sent[0]
    assert confirmation.to == PHONE and "START" in confirmation.short_text
    assert Suppression.objects.get().reason == Suppression.STOPPED
    assert consent_service.can_message(customer=ana, kind="sms", address=PHONE) == "suppressed"
    assert Consent.objects.get(customer=ana, channel_kind="sms").source == "sms_stop"


@pytest.mark.parametrize(
    "text, kind",
    [("STOP", "stop"), ("stop all", "stop"), ("End", "stop"), ("cancel", "stop"), ("quit!", "stop"),
     ("Opt out", "stop"), ("please STOP", "stop"), ("Pare", "stop"), ("UNSTOP", "start"), ("start", "start"),
     ("Yes", "start"), ("help", "help"), ("Ayuda", "help"), ("when will my order arrive?", ""),
     ("I can't stop loving these shoes, they are so comfortable and light", "")],
)
def test_classify_reply(text, kind):
    assert classify_reply(text) == kind


def test_start_opts_back_in_and_help_replies(ana, sms_channel):
    reply(sms_channel, "STOP", sid="SM1")
    assert reply(sms_channel, "START", sid="SM2").status_code == 200
    assert not Suppression.objects.exists()
    assert Consent.objects.get(customer=ana, channel_kind="sms").granted
    assert Consent.objects.get(customer=ana, channel_kind="sms").source == "sms_start"
    reply(sms_channel, "HELP", sid="SM3")
    reply(sms_channel, "HELP", sid="SM3")  # retried: one answer
    texts = [sent.short_text for sent in RecordingSmsChannel.sent]
    assert len(texts) == 3 and "subscribed again" in texts[1] and "Reply STOP" in texts[2]
    assert reply(sms_channel, "Where is my parcel?", sid="SM4").status_code == 200
    assert len(RecordingSmsChannel.sent) == 3


def test_an_unknown_number_can_stop_too(sms_channel):
    reply(sms_channel, "STOP")
    assert consent_service.is_suppressed(kind="sms", address=PHONE)
    assert len(RecordingSmsChannel.sent) == 1


def test_bounces_and_complaints_suppress(sms_channel):
    reply(sms_channel, "", sid="B1", kind="bounce")
    assert Suppression.objects.get().reason == Suppression.BOUNCED
    assert RecordingSmsChannel.sent == []


def test_webhook_refuses_wrong_token_disabled_channel_bad_signature_and_get(sms_channel):
    form = {"From": PHONE, "Body": "STOP", "sig": "ok"}
    assert Client().post(hook(sms_channel, token="wrong"), form).status_code == 404
    assert Client().post(hook(sms_channel), {**form, "sig": "forged"}).status_code == 400
    assert Client().get(hook(sms_channel)).status_code == 405
    Channel.objects.filter(pk=sms_channel.pk).update(enabled=False)
    assert Client().post(hook(sms_channel), form).status_code == 404
    assert not Suppression.objects.exists() and RecordingSmsChannel.sent == []


# --- django-anymail tracking ------------------------------------------------------------------


def test_anymail_tracking_events_suppress_and_mark_bounces(ana, message):
    Message.objects.filter(pk=message.pk).update(provider_id="esp-1")
    event = SimpleNamespace(event_type="bounced", recipient="Ana@Example.com", message_id="esp-1", timestamp=None)
    receive_anymail_tracking(sender=None, event=event, esp_name="Mailgun")
    assert Suppression.objects.get().reason == Suppression.BOUNCED
    assert Message.objects.get(pk=message.pk).status == Message.BOUNCED
    Suppression.objects.all().delete()
    receive_anymail_tracking(sender=None, event=SimpleNamespace(event_type="unsubscribed", recipient="ana@example.com"), esp_name="x")
    assert Suppression.objects.get().reason == Suppression.UNSUBSCRIBED
    assert Consent.objects.get(customer=ana).source == "esp_unsubscribe"
    receive_anymail_tracking(sender=None, event=SimpleNamespace(event_type="opened", recipient="b@example.com"), esp_name="x")
    assert Suppression.objects.count() == 1


def test_connect_inbound_receivers_without_anymail():
    try:
        import anymail  # noqa: F401
    except ImportError:
        assert connect_inbound_receivers() is False
    else:
        assert connect_inbound_receivers() is True
