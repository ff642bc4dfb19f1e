"""What we do when a provider tells us something about an address: an SMS reply (STOP,
START, HELP), a hard bounce, a spam complaint, an unsubscribe at the email provider.

``handle_inbound_event`` is called by the channel webhook view for each ``InboundEvent``
a backend's ``parse_inbound`` returns. A backend may classify SMS replies itself
(kind "stop" / "start" / "help") or pass kind "other" with the text: ``classify_reply``
then reads the keywords (CTIA's STOP, END, CANCEL, UNSUBSCRIBE, QUIT, the FCC's REVOKE and
"OPT OUT", and their Spanish and Portuguese counterparts).

When django-anymail is installed, ``connect_inbound_receivers()`` (called from
``JourneysConfig.ready``) connects ``receive_anymail_tracking`` to anymail's ``tracking``
signal: bounced and rejected addresses, complaints and unsubscribes reported by the email
provider go on the suppression list.
"""

import logging
import re
import unicodedata

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from .channels.base import OutgoingMessage
from .exceptions import ChannelError, JourneysError
from .models import Customer, Message, Suppression
from .models.channels import EMAIL, SMS
from .services import consent as consent_service

logger = logging.getLogger(__name__)

STOP, START, HELP, BOUNCE, COMPLAINT = "stop", "start", "help", "bounce", "complaint"
STOP_WORDS = frozenset(
    [
        "STOP", "STOPALL", "STOP ALL", "END", "CANCEL", "UNSUBSCRIBE", "QUIT", "REVOKE", "OPT OUT", "OPTOUT",
        # Spanish and Portuguese
        "BAJA", "PARAR", "PARE", "CANCELAR", "SAIR", "DESCADASTRAR",
    ]
)
# Words that, anywhere in a short reply ("Please stop texting me"), count as an opt-out.
STOP_IN_SENTENCE = ("STOP", "UNSUBSCRIBE", "REVOKE", "OPT OUT", "OPTOUT", "BAJA", "DESCADASTRAR")
START_WORDS = frozenset(["START", "UNSTOP", "YES", "SUBSCRIBE", "ALTA"])
HELP_WORDS = frozenset(["HELP", "INFO", "AYUDA", "AJUDA"])
SHORT_REPLY_WORDS = 8
# How long a provider's notification id is remembered, to drop the provider's retries.
SEEN_SECONDS = 7 * 24 * 3600


def _normal(text):
    text = unicodedata.normalize("NFKD", text or "")
    text = "".join(char for char in text if not unicodedata.combining(char)).upper()
    return " ".join(re.sub(r"[^A-Z0-9]+", " ", text).split())


def classify_reply(text):
    """"stop", "start", "help" or "" for the text of an SMS reply."""
    words = _normal(text)
    if words in STOP_WORDS:
        return STOP
    if words in START_WORDS:
        return START
    if words in HELP_WORDS:
        return HELP
    padded = f" {words} "
    if len(words.split()) <= SHORT_REPLY_WORDS and any(f" {word} " in padded for word in STOP_IN_SENTENCE):
        return STOP
    return ""


# --- replies ---------------------------------------------------------------------------------


def _shop():
    return settings.OSCAR_SHOP_NAME


def reply_text(what):
    """The (translated, in the active language) text of a STOP / START / HELP reply."""
    from .services.tracking import site_url

    if what == STOP:
        return _("%(shop)s: you are unsubscribed and will get no more messages. Reply START to subscribe again.") % {
            "shop": _shop()
        }
    if what == START:
        return _("%(shop)s: you are subscribed again. Reply STOP to unsubscribe, HELP for help.") % {"shop": _shop()}
    return _("%(shop)s marketing messages. Reply STOP to unsubscribe. More: %(url)s") % {
        "shop": _shop(),
        "url": site_url() + "/",
    }


def _reply(channel, address, what, customers, key):
    language = next((c.language for c in customers if c.language), "") or settings.LANGUAGE_CODE
    with translation.override(language):
        text = reply_text(what)
    outgoing = OutgoingMessage(
        to=address, text=text, short_text=text, idempotency_key=key[:64], metadata={"reply_to": what}
    )
    try:
        with channel.get_backend() as backend:
            backend.send(outgoing)
    except ChannelError:
        logger.exception("channel %s: could not send the %s reply", channel.pk, what)
        return False
    return True


# --- handling ---------------------------------------------------------------------------------


def _customers_with(kind, address):
    if kind == SMS:
        return list(Customer.objects.canonical().filter(phone=address))
    if kind == EMAIL:
        return list(Customer.objects.canonical().filter(email=address))
    return []


def _stop(channel, kind, address, event, now):
    with transaction.atomic():
        customers = _customers_with(kind, address)
        for customer in customers:
            consent_service.consent_set(customer=customer, kind=kind, granted=False, source="sms_stop", now=now)
        suppression, created = consent_service.suppress(
            kind=kind, address=address, reason=Suppression.STOPPED, detail=event.provider_id, now=now
        )
        # An address suppressed for another reason (a bounce, staff) is marked as stopped
        # now; exactly one STOP, even delivered twice at once, wins this update.
        confirm = created or bool(
            Suppression.objects.filter(pk=suppression.pk).exclude(reason=Suppression.STOPPED).update(
                reason=Suppression.STOPPED, detail=(event.provider_id or "")[:255]
            )
        )
    if confirm:
        _reply(channel, address, STOP, customers, f"stop:{channel.pk}:{event.provider_id or suppression.pk}")
    return confirm


def _start(channel, kind, address, event, now):
    with transaction.atomic():
        customers = _customers_with(kind, address)
        removed = consent_service.unsuppress(
            kind=kind, address=address, reasons=[Suppression.STOPPED, Suppression.UNSUBSCRIBED]
        )
        changed = False
        for customer in customers:
            changed |= consent_service.consent_set(
                customer=customer, kind=kind, granted=True, source="sms_start", now=now
            )[1]
    if removed or changed:
        _reply(channel, address, START, customers, f"start:{channel.pk}:{event.provider_id}")
    return bool(removed or changed)


def handle_inbound_event(*, channel, event, now=None):
    """React to one InboundEvent from ``channel``'s webhook; return what it was taken as
    ("stop", "start", "help", "bounce", "complaint" or "" for nothing to do).

    A provider's retry of the same notification (same ``provider_id``) is dropped; a STOP
    is confirmed by exactly one SMS even when delivered twice at once (the suppression
    entry's creation decides)."""
    now = now or timezone.now()
    what = event.kind
    if what not in (STOP, START, HELP, BOUNCE, COMPLAINT):
        what = classify_reply(event.text) if event.text else ""
    kind = channel.kind
    address = consent_service.normalize_address(kind, event.address)
    if not what or not address:
        return ""
    seen_key = f"oscar_journeys:inbound:{channel.pk}:{event.provider_id}" if event.provider_id else None
    if seen_key and cache.get(seen_key):
        logger.info("channel %s: inbound %s already handled", channel.pk, event.provider_id)
        return ""
    if what == STOP:
        _stop(channel, kind, address, event, now)
    elif what == START:
        _start(channel, kind, address, event, now)
    elif what == HELP:
        _reply(channel, address, HELP, _customers_with(kind, address), f"help:{channel.pk}:{event.provider_id}")
    else:
        reason = Suppression.BOUNCED if what == BOUNCE else Suppression.COMPLAINED
        consent_service.suppress(kind=kind, address=address, reason=reason, detail=event.provider_id, now=now)
    if seen_key:
        cache.set(seen_key, 1, SEEN_SECONDS)
    return what


# --- django-anymail ---------------------------------------------------------------------------

ANYMAIL_REASONS = {
    "bounced": Suppression.BOUNCED,
    "rejected": Suppression.BOUNCED,
    "complained": Suppression.COMPLAINED,
    "unsubscribed": Suppression.UNSUBSCRIBED,
}


def receive_anymail_tracking(sender, event, esp_name="", **kwargs):
    """anymail ``tracking`` signal: suppress bounced / rejected / complaining /
    unsubscribed recipients; an unsubscribe also withdraws their email consent, and a
    bounce marks our message bounced."""
    reason = ANYMAIL_REASONS.get(getattr(event, "event_type", None))
    recipient = getattr(event, "recipient", None)
    if reason is None or not recipient:
        return
    now = getattr(event, "timestamp", None) or timezone.now()
    try:
        with transaction.atomic():
            consent_service.suppress(
                kind=EMAIL, address=recipient, reason=reason, detail=f"{esp_name} {event.event_type}", now=now
            )
            if reason == Suppression.UNSUBSCRIBED:
                for customer in _customers_with(EMAIL, consent_service.normalize_address(EMAIL, recipient)):
                    consent_service.consent_set(
                        customer=customer, kind=EMAIL, granted=False, source="esp_unsubscribe", now=now
                    )
            message_id = getattr(event, "message_id", None)
            if reason == Suppression.BOUNCED and message_id:
                Message.objects.filter(provider_id=message_id, channel__kind=EMAIL, status=Message.SENT).update(
                    status=Message.BOUNCED
                )
    except JourneysError:
        logger.exception("could not record %s's %s event", esp_name, event.event_type)


def connect_inbound_receivers():
    """Connect ``receive_anymail_tracking`` when django-anymail is installed; True if so."""
    try:
        from anymail.signals import tracking
    except ImportError:
        return False
    tracking.connect(receive_anymail_tracking, dispatch_uid="oscar_journeys.receive_anymail_tracking")
    return True
