"""SMS backends: a generic HTTP provider adapter and a Twilio preset, with their inbound
webhooks (replies such as STOP).

Inbound replies become ``InboundEvent``s whose kind is ``sms_keyword(text)``: "stop",
"start", "help" or "other"; what to do about them (opt out, confirm) is the inbound view's job.
"""

import base64
import hashlib
import hmac
import json
import re
import unicodedata
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import SuspiciousOperation, ValidationError
from django.utils.translation import gettext_lazy as _

from .. import app_settings
from ..exceptions import ChannelPermanentError, ChannelTransientError
from .base import InboundEvent, SendResult
from .http import HttpChannel, status_error
from .provider import MappedHttpChannel, field_name, get_path, provider_option_fields

# Exact-keyword replies (case, spaces and punctuation ignored): CTIA's opt-out words plus
# REVOKE and OPT OUT (FCC 2024), and the usual opt-in and help words.
STOP_WORDS = frozenset({"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"})
START_WORDS = frozenset({"START", "UNSTOP", "YES"})
HELP_WORDS = frozenset({"HELP", "INFO"})
SENDER = re.compile(r"^(\+[1-9][0-9]{6,14}|[0-9]{3,8}|[A-Za-z0-9][A-Za-z0-9 ]{0,10})$")


def sms_keyword(text):
    """"stop", "start", "help" or "other" for an inbound SMS: the whole message must be the
    keyword ("Stop", " stop ", "OPT-OUT" and "opt out" are "stop"; "please stop" is "other")."""
    word = re.sub(r"[\W_]+", "", unicodedata.normalize("NFKC", text or "")).upper()
    if word in STOP_WORDS:
        return "stop"
    if word in START_WORDS:
        return "start"
    if word in HELP_WORDS:
        return "help"
    return "other"


def sms_text(message):
    text = message.short_text or message.text
    if not text.strip():
        raise ChannelPermanentError(_("The message has no text to send by SMS."), recipient=message.to)
    return text


def clean_sender(clean, errors, name):
    value = clean.get(name)
    if value and not SENDER.match(value):
        errors[name] = [
            _(
                "Give a phone number in international form (+447700900123), a short code or a sender "
                "name of up to 11 letters and digits."
            )
        ]


def inbound_data(request):
    """The request's JSON object or form fields as a dict."""
    if (request.content_type or "").endswith("json"):
        try:
            data = json.loads(request.body or b"{}")
        except ValueError as exc:
            raise SuspiciousOperation("inbound SMS webhook: the body is not JSON") from exc
        if not isinstance(data, dict):
            raise SuspiciousOperation("inbound SMS webhook: the body is not a JSON object")
        return data
    return request.POST.dict()


class HttpSmsChannel(MappedHttpChannel):
    """Any SMS provider with an HTTP API: options say where to send and which field is which.

    Inbound replies: point the provider at the channel's inbound URL (it carries the
    channel's secret ``inbound_token``, which the view checks); ``parse_inbound`` reads the
    sender, the text and the message id from the JSON or form body by the configured names."""

    kind = "sms"
    channel_name = _("SMS through an HTTP provider")
    field_defaults = {
        "to_field": "to",
        "from_field": "from",
        "text_field": "text",
        "inbound_from_field": "from",
        "inbound_text_field": "text",
        "inbound_id_field": "id",
    }

    @classmethod
    def option_fields(cls):
        return {
            **provider_option_fields(),
            "from_number": forms.CharField(
                label=_("Sender"), required=False, help_text=_("Number or sender name the messages come from.")
            ),
            "to_field": field_name(_("Recipient field"), "to", _('Provider\'s field for the recipient (default "to").')),
            "from_field": field_name(_("Sender field"), "from", _('Provider\'s field for the sender (default "from").')),
            "text_field": field_name(_("Text field"), "text", _('Provider\'s field for the text (default "text").')),
            "inbound_from_field": field_name(
                _("Inbound sender field"), "from", _('Field of an incoming reply holding its sender (default "from").')
            ),
            "inbound_text_field": field_name(
                _("Inbound text field"), "text", _('Field of an incoming reply holding its text (default "text").')
            ),
            "inbound_id_field": field_name(
                _("Inbound id field"), "id", _('Field of an incoming reply holding its id (default "id").')
            ),
        }

    @classmethod
    def validate_options(cls, options, secrets):
        clean, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        clean_sender(clean, errors, "from_number")
        if errors:
            raise ValidationError(errors)
        return clean, clean_secrets

    def fields(self, message):
        return {"to_field": message.to, "from_field": self.option("from_number"), "text_field": sms_text(message)}

    def parse_inbound(self, request):
        data = inbound_data(request)
        sender = get_path(data, self.field("inbound_from_field"))
        if not sender:
            return []
        text = str(get_path(data, self.field("inbound_text_field")) or "")
        provider_id = get_path(data, self.field("inbound_id_field"))
        provider_id = "" if provider_id is None else str(provider_id)
        return [InboundEvent(kind=sms_keyword(text), address=str(sender), text=text, provider_id=provider_id)]


# --- Twilio ------------------------------------------------------------------------------------


def twilio_signature(auth_token, url, params):
    """X-Twilio-Signature of a request to ``url`` with form ``params`` (a dict or a
    QueryDict): base64 of HMAC-SHA1(auth token, url + each name and value, sorted by name)."""
    payload = url
    getlist = getattr(params, "getlist", None)
    for name in sorted(set(params)):
        values = getlist(name) if getlist else [params[name]]
        for value in sorted(set(values)):
            payload += name + value
    digest = hmac.new(auth_token.encode(), payload.encode(), hashlib.sha1).digest()
    return base64.b64encode(digest).decode()


def _url_variants(url):
    """``url`` with and without its default port: Twilio signs the URL as configured."""
    found = [url]
    match = re.match(r"^(https?)://([^/:]+)(:(\d+))?(.*)$", url)
    if match:
        scheme, host, _colon, port, rest = match.groups()
        default = "443" if scheme == "https" else "80"
        if port is None:
            found.append(f"{scheme}://{host}:{default}{rest}")
        elif port == default:
            found.append(f"{scheme}://{host}{rest}")
    return found


class TwilioSmsChannel(HttpChannel):
    """Twilio's Messages API (form-encoded POST, HTTP Basic with the account SID and auth
    token). In the Twilio console, set the number's "A message comes in" webhook to the
    channel's inbound URL: replies are checked against X-Twilio-Signature."""

    kind = "sms"
    channel_name = _("SMS through Twilio")
    secret_options = ("auth_token",)
    url_options = ()
    api_base = "https://api.twilio.com"
    # 21211 invalid "To" number, 21610 the recipient replied STOP, 21614 not a mobile number.
    SUPPRESS_CODES = frozenset({21211, 21610, 21614})
    RETRY_CODES = frozenset({20429, 20500, 20503})

    @classmethod
    def option_fields(cls):
        return {
            "account_sid": forms.RegexField(
                label=_("Account SID"),
                regex=r"^AC[0-9a-fA-F]{32}$",
                help_text=_('Starts with "AC"; in the Twilio console.'),
                error_messages={"invalid": _('An account SID is "AC" followed by 32 hexadecimal digits.')},
            ),
            "auth_token": forms.CharField(
                label=_("Auth token"), help_text=_("In the Twilio console, next to the account SID.")
            ),
            "from_number": forms.CharField(
                label=_("Sender"), required=False, help_text=_("A Twilio number in international form, e.g. +447700900123.")
            ),
            "messaging_service_sid": forms.RegexField(
                label=_("Messaging service SID"), regex=r"^MG[0-9a-fA-F]{32}$", required=False,
                help_text=_("Instead of a sender: a messaging service that picks the number."),
                error_messages={"invalid": _('A messaging service SID is "MG" followed by 32 hexadecimal digits.')},
            ),
        }

    @classmethod
    def validate_options(cls, options, secrets):
        clean, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        clean_sender(clean, errors, "from_number")
        if not clean.get("from_number") and not clean.get("messaging_service_sid"):
            errors["from_number"] = [_("Give a sender number or a messaging service SID.")]
        if errors:
            raise ValidationError(errors)
        return clean, clean_secrets

    def http_client(self):
        client = super().http_client()
        client.allow_http = False  # the API is always https
        return client

    def build_payload(self, message):
        fields = {"To": message.to, "Body": sms_text(message)}
        if self.option("messaging_service_sid"):
            fields["MessagingServiceSid"] = self.option("messaging_service_sid")
        else:
            fields["From"] = self.option("from_number")
        pair = f"{self.option('account_sid')}:{self.option('auth_token', '')}".encode()
        headers = {
            "Authorization": "Basic " + base64.b64encode(pair).decode(),
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        return urlencode(fields), headers

    def deliver(self, message, payload):
        body, headers = payload
        url = f"{self.api_base}/2010-04-01/Accounts/{self.option('account_sid')}/Messages.json"
        response = self.http_request("POST", url, body=body, headers=headers, recipient=message.to)
        if 200 <= response.status < 300:
            return response
        code = get_path(response.json(), "code")
        kwargs = {"channel": self.channel, "recipient": message.to, "response": response}
        if code in self.SUPPRESS_CODES:
            raise ChannelPermanentError(
                _("Twilio refused the number (error %(code)s).") % {"code": code}, suppress=True, **kwargs
            )
        if code in self.RETRY_CODES:
            raise ChannelTransientError(_("Twilio is busy (error %(code)s); will retry.") % {"code": code}, **kwargs)
        raise status_error(response, channel=self.channel, recipient=message.to)

    def parse_result(self, message, response):
        data = response.json() or {}
        return SendResult(provider_id=str(data.get("sid") or ""), detail=str(data.get("status") or ""))

    def parse_inbound(self, request):
        signature = request.headers.get("X-Twilio-Signature", "")
        token = self.option("auth_token") or ""
        urls = _url_variants(request.build_absolute_uri())
        if app_settings.SITE_URL:
            urls += _url_variants(app_settings.SITE_URL.rstrip("/") + request.get_full_path())
        if not signature or not token or not any(
            hmac.compare_digest(signature, twilio_signature(token, url, request.POST)) for url in urls
        ):
            raise SuspiciousOperation("inbound Twilio webhook: missing or wrong X-Twilio-Signature")
        sender = request.POST.get("From", "")
        if not sender:
            return []
        text = request.POST.get("Body", "")
        # With Twilio's Advanced Opt-Out, OptOutType says what Twilio itself understood.
        kind = {"STOP": "stop", "START": "start", "HELP": "help"}.get(request.POST.get("OptOutType", "").upper())
        return [
            InboundEvent(
                kind=kind or sms_keyword(text), address=sender, text=text, provider_id=request.POST.get("MessageSid", "")
            )
        ]
