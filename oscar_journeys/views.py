"""Public pages and endpoints reached from messages (no login; every one is keyed by a
signed token, see ``tokens.py``):

- ``u/<token>/``   unsubscribe: GET shows a confirmation, POST (RFC 8058 one-click, no
                   cookies, no CSRF token) unsubscribes and answers 200;
- ``p/<token>/``   preferences: consent per channel type;
- ``o/<token>.gif`` open pixel; ``c/<token>/`` click redirect (the target is looked up
                   in ``Message.links``, never taken from the request);
- ``r/<token>/``   restores an abandoned basket;
- ``hooks/<channel id>/<inbound token>/`` a channel provider's inbound webhook (SMS
                   replies such as STOP, bounces, complaints).

A tampered token, or one made for another purpose, is a 404 and changes nothing.
"""

import base64
import logging
from urllib.parse import urlsplit

from django import forms
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core import signing
from django.core.exceptions import SuspiciousOperation
from django.db.models import F
from django.http import Http404, HttpResponse, HttpResponseBadRequest, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils import timezone, translation
from django.utils.crypto import constant_time_compare
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods, require_POST, require_safe

from . import app_settings, tokens
from .inbound import handle_inbound_event
from .ml import schema
from .models import Channel, Customer, Message, Suppression
from .models.channels import EMAIL, KIND_CHOICES, PUSH, SMS
from .services import consent as consent_service
from .services.tracking import site_url
from .services.timeline import timeline_record_event

logger = logging.getLogger(__name__)

PIXEL = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
PREFERENCE_KINDS = (EMAIL, SMS, PUSH)
KIND_LABELS = dict(KIND_CHOICES)


def _read(purpose, token, max_age=None):
    try:
        data = tokens.read_token(purpose, token, max_age=max_age)
    except signing.SignatureExpired:
        raise
    except signing.BadSignature:
        raise Http404("bad token")
    if not isinstance(data, dict):
        raise Http404("bad token")
    return data


def _customer(data):
    try:
        customer = Customer.objects.filter(pk=int(data.get("c"))).first()
    except (TypeError, ValueError):
        customer = None
    if customer is None:
        raise Http404("unknown customer")
    if customer.merged_into_id:
        customer = Customer.objects.get(pk=customer.merged_into_id)
    return customer


def _language(customer):
    return translation.override((customer.language if customer else "") or settings.LANGUAGE_CODE)


def _shop_context():
    return {"shop_name": settings.OSCAR_SHOP_NAME, "shop_url": site_url() + "/"}


# --- unsubscribe (RFC 8058) ----------------------------------------------------------------


@csrf_exempt
@never_cache
@require_http_methods(["GET", "POST"])
def unsubscribe(request, token):
    """GET: a page with one button (nothing changes). POST, from that button or from a
    mail client's one-click (``List-Unsubscribe=One-Click``, any body, no cookies):
    withdraws consent for the channel kind, suppresses the address, answers 200."""
    data = _read(tokens.UNSUBSCRIBE, token)
    customer = _customer(data)
    kind = data.get("k")
    if kind not in KIND_LABELS:
        raise Http404("bad token")
    context = {
        **_shop_context(),
        "customer": customer,
        "kind_label": KIND_LABELS[kind],
        "preferences_url": reverse(
            "oscar_journeys:preferences", kwargs={"token": tokens.make_token(tokens.PREFERENCES, {"c": customer.pk})}
        ),
    }
    with _language(customer):
        if request.method == "GET":
            return render(request, "oscar_journeys/public/unsubscribe_confirm.html", context)
        now = timezone.now()
        consent_service.consent_set(customer=customer, kind=kind, granted=False, source="unsubscribe_link", now=now)
        addresses = {consent_service.address_for(customer, kind)}
        message_id = data.get("m")
        if message_id:
            recipient = Message.objects.filter(pk=message_id, customer_id=customer.pk).values_list(
                "recipient", flat=True
            )
            addresses.update(recipient)
        for address in filter(None, addresses):
            consent_service.suppress(
                kind=kind,
                address=address,
                reason=Suppression.UNSUBSCRIBED,
                detail=f"message {message_id}" if message_id else "unsubscribe link",
                now=now,
            )
        return render(request, "oscar_journeys/public/unsubscribe_done.html", context)


# --- preferences ---------------------------------------------------------------------------


class PreferencesForm(forms.Form):
    def __init__(self, *args, kinds, **kwargs):
        super().__init__(*args, **kwargs)
        for kind in kinds:
            self.fields[kind] = forms.BooleanField(required=False, label=KIND_LABELS[kind])


def _current_preferences(customer, kinds):
    """{kind: True when we may message the customer on it} (consent and no suppression)."""
    if not kinds:
        return {}
    state = consent_service.reachability(customer_ids=[customer.pk], kinds=kinds)
    row = state.loc[customer.pk]
    return {kind: bool(row[f"{kind}_consent"] and not row[f"{kind}_suppressed"]) for kind in kinds}


@never_cache
@require_http_methods(["GET", "POST"])
def preferences(request, token):
    """Consent per channel kind the customer can be reached on; saving records each
    change (source "preferences"); opting in again lifts an unsubscribe of that address."""
    customer = _customer(_read(tokens.PREFERENCES, token))
    kinds = [kind for kind in PREFERENCE_KINDS if consent_service.address_for(customer, kind)]
    current = _current_preferences(customer, kinds)
    saved = False
    with _language(customer):
        if request.method == "POST":
            form = PreferencesForm(request.POST, kinds=kinds)
            if form.is_valid():
                now = timezone.now()
                for kind in kinds:
                    wanted = form.cleaned_data[kind]
                    if wanted == current[kind]:
                        continue
                    consent_service.consent_set(
                        customer=customer, kind=kind, granted=wanted, source="preferences", now=now
                    )
                    if wanted:
                        consent_service.unsuppress(
                            kind=kind,
                            address=consent_service.address_for(customer, kind),
                            reasons=[Suppression.UNSUBSCRIBED],
                        )
                saved = True
                form = PreferencesForm(initial=_current_preferences(customer, kinds), kinds=kinds)
        else:
            form = PreferencesForm(initial=current, kinds=kinds)
        return render(
            request,
            "oscar_journeys/public/preferences.html",
            {**_shop_context(), "customer": customer, "form": form, "saved": saved},
        )


# --- tracking --------------------------------------------------------------------------------


def _message(data):
    try:
        return Message.objects.select_related("customer").filter(pk=int(data.get("m"))).first()
    except (TypeError, ValueError):
        return None


def _record(message, type, now, **payload):
    """One message_opened / message_clicked event per message on the timeline."""
    timeline_record_event(
        customer=message.customer,
        type=type,
        occurred_at=now,
        source="journeys",
        idempotency_key=f"message:{message.pk}:{type}",
        payload={"message_id": message.pk, "campaign_id": message.campaign_id, "step": message.step, **payload},
    )


def _count_open(message, now):
    Message.objects.filter(pk=message.pk).update(open_count=F("open_count") + 1)
    if Message.objects.filter(pk=message.pk, opened_at__isnull=True).update(opened_at=now):
        _record(message, schema.MESSAGE_OPENED, now)


@require_safe
def message_open(request, token):
    """The 1x1 open pixel. Always a GIF; only a valid token (and a GET, not a HEAD)
    counts an open."""
    try:
        data = tokens.read_token(tokens.OPEN, token)
    except signing.BadSignature:
        data = None
    message = _message(data) if isinstance(data, dict) else None
    if message is not None and request.method == "GET":
        _count_open(message, timezone.now())
    response = HttpResponse(PIXEL, content_type="image/gif")
    response["Cache-Control"] = "no-store, no-cache, must-revalidate, max-age=0"
    return response


def is_safe_target(url):
    """True for an absolute http(s) URL with a host that Django's own redirect check
    accepts (no "javascript:", "data:", "http:///x", "\\\\x", control characters...)."""
    if not isinstance(url, str) or not url or any(ord(char) < 33 or ord(char) == 127 for char in url):
        return False  # whitespace and control characters (urlsplit would silently drop some)
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc or not parts.hostname:
        return False
    return url_has_allowed_host_and_scheme(url, allowed_hosts={parts.netloc}, require_https=False)


@never_cache
@require_safe
def message_click(request, token):
    """Redirect to link number ``l`` of message ``m`` (stored when it was rendered). A HEAD
    request (a link checker) is answered without counting a click."""
    data = _read(tokens.CLICK, token)
    message = _message(data)
    index = data.get("l")
    if message is None or not isinstance(index, int) or not 0 <= index < len(message.links or []):
        raise Http404("unknown link")
    url = message.links[index]
    if not is_safe_target(url):
        logger.warning("refused to redirect message %s link %s to a non-http(s) URL", message.pk, index)
        return HttpResponseBadRequest("This link cannot be followed.")
    if request.method == "HEAD":
        return HttpResponseRedirect(url)
    now = timezone.now()
    Message.objects.filter(pk=message.pk).update(click_count=F("click_count") + 1)
    if Message.objects.filter(pk=message.pk, clicked_at__isnull=True).update(clicked_at=now):
        _record(message, schema.MESSAGE_CLICKED, now, link=index)
    if not message.opened_at:  # a click is an open the pixel missed (images off)
        if Message.objects.filter(pk=message.pk, opened_at__isnull=True).update(
            opened_at=now, open_count=F("open_count") + 1
        ):
            _record(message, schema.MESSAGE_OPENED, now)
    return HttpResponseRedirect(url)


# --- basket restore ----------------------------------------------------------------------------


def _basket_url():
    return reverse("basket:summary")


def _login_url():
    try:
        return reverse("customer:login")
    except NoReverseMatch:
        return settings.LOGIN_URL


@never_cache
@require_safe
def basket_restore(request, token):
    """Bring the shopper back to their basket: an anonymous basket is put back in the
    browser's basket cookie (as Oscar's BasketMiddleware does); a customer's own basket
    needs them logged in. An expired link or a basket no longer open gets a friendly page."""
    from django.apps import apps
    from oscar.core.loading import get_class

    max_age = app_settings.RESTORE_LINK_MAX_AGE_DAYS * 86400
    customer = None
    try:
        data = _read(tokens.RESTORE, token, max_age=max_age)
    except signing.SignatureExpired:
        data = None
    basket = None
    if data is not None:
        customer = Customer.objects.filter(pk=data.get("c")).first() if isinstance(data.get("c"), int) else None
        Basket = apps.get_model("basket", "Basket")
        basket = Basket._default_manager.filter(pk=data.get("b"), status=Basket.OPEN).first()
        if basket is not None and basket.is_empty:
            basket = None
    if basket is None:
        with _language(customer):
            return render(request, "oscar_journeys/public/restore_error.html", _shop_context(), status=410)
    if basket.owner_id is None:
        BasketMiddleware = get_class("basket.middleware", "BasketMiddleware")
        response = HttpResponseRedirect(_basket_url())
        response.set_cookie(
            BasketMiddleware(lambda request: None).get_cookie_key(request),
            BasketMiddleware(lambda request: None).get_basket_hash(basket.pk),
            max_age=settings.OSCAR_BASKET_COOKIE_LIFETIME,
            secure=settings.OSCAR_BASKET_COOKIE_SECURE,
            httponly=True,
        )
        return response
    if request.user.is_authenticated and request.user.pk == basket.owner_id:
        return HttpResponseRedirect(_basket_url())
    return redirect_to_login(_basket_url(), login_url=_login_url())


# --- inbound webhooks -------------------------------------------------------------------------


@csrf_exempt
@require_POST
def channel_inbound(request, channel_id, inbound_token):
    """A provider's webhook for one channel (SMS replies, bounces, complaints)."""
    channel = Channel.objects.filter(pk=channel_id, enabled=True).first()
    if channel is None or not constant_time_compare(channel.inbound_token, inbound_token):
        raise Http404("unknown channel")
    backend = channel.get_backend()
    try:
        events = backend.parse_inbound(request)
    except SuspiciousOperation as exc:
        logger.warning("channel %s: refused an inbound request: %s", channel.pk, exc)
        return HttpResponseBadRequest("not accepted")
    now = timezone.now()
    for event in events:
        handle_inbound_event(channel=channel, event=event, now=now)
    return HttpResponse("", content_type="text/plain")
