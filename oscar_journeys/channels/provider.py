"""A generic adapter to an HTTP provider API (SMS, push): a URL, an authentication, and a
mapping from the message's parts to the provider's field names.

Field names are paths: ``"to"``, ``"message.body"`` (nested objects), ``"tokens[]"`` (the
value wrapped in a list), so the same adapter fits most JSON APIs. Responses are read with
paths too (``id_field``, ``error_code_field``; a number picks from a list: ``"messages.0.id"``).
"""

import base64
import copy
import json
from urllib.parse import urlencode

from django import forms
from django.core.exceptions import ValidationError
from django.core.serializers.json import DjangoJSONEncoder
from django.utils.translation import gettext_lazy as _

from ..exceptions import ChannelPermanentError
from .base import SendResult
from .http import HttpChannel, network_option_fields, status_error

FORBIDDEN_HEADERS = {"host", "content-length", "transfer-encoding", "connection"}


def set_path(target, path, value):
    """Put ``value`` at ``path`` in the dict ``target`` ("a.b" nests, "a[]" wraps in a list)."""
    *parents, last = path.split(".")
    for name in parents:
        target = target.setdefault(name, {})
    if last.endswith("[]"):
        target[last[:-2]] = [value]
    else:
        target[last] = value


def get_path(data, path):
    """The value at ``path`` ("a.b", "items.0.id") in parsed JSON, or None."""
    if not path:
        return None
    for name in path.split("."):
        if isinstance(data, dict):
            data = data.get(name)
        elif isinstance(data, list) and name.isdigit() and int(name) < len(data):
            data = data[int(name)]
        else:
            return None
    return data


def field_name(label, default, help_text):
    """An option naming one of the provider's fields (a path, see the module docstring)."""
    return forms.CharField(label=label, required=False, initial=default, help_text=help_text)


def provider_option_fields():
    """Options of MappedHttpChannel backends: where, how to authenticate, how to read answers."""
    return {
        "url": forms.URLField(label=_("API URL"), assume_scheme="https"),
        "method": forms.ChoiceField(
            label=_("HTTP method"), choices=[("POST", "POST"), ("PUT", "PUT")], required=False, initial="POST"
        ),
        "body_format": forms.ChoiceField(
            label=_("Body format"),
            choices=[("json", _("JSON")), ("form", _("Form (application/x-www-form-urlencoded)"))],
            required=False,
            initial="json",
        ),
        "auth": forms.ChoiceField(
            label=_("Authentication"),
            choices=[
                ("none", _("None")),
                ("bearer", _("Bearer token (Authorization: Bearer <token>)")),
                ("header", _("Token in a header of your choice")),
                ("basic", _("User name and password (HTTP Basic)")),
            ],
            required=False,
            initial="none",
        ),
        "token": forms.CharField(label=_("API token"), required=False, help_text=_("For bearer or header authentication.")),
        "auth_header": forms.CharField(
            label=_("Token header"), required=False, help_text=_('Header carrying the token, e.g. "X-API-Key".')
        ),
        "username": forms.CharField(label=_("User name"), required=False),
        "password": forms.CharField(label=_("Password"), required=False),
        "idempotency_header": forms.CharField(
            label=_("Idempotency header"),
            required=False,
            help_text=_(
                'Header carrying the message\'s idempotency key, if the provider takes one (e.g. "Idempotency-Key").'
            ),
        ),
        "extra_fields": forms.JSONField(
            label=_("Fixed fields"),
            required=False,
            help_text=_('Fields sent with every message, as a JSON object, e.g. {"app_id": "..."}.'),
        ),
        "extra_headers": forms.JSONField(
            label=_("Extra headers"),
            required=False,
            help_text=_("Headers sent with every request, as a JSON object. Not secret: put keys in the token."),
        ),
        "id_field": field_name(
            _("Message id in the answer"), "id", _('Where the answer gives the message id, e.g. "id" or "messages.0.id".')
        ),
        "error_code_field": field_name(
            _("Error code in the answer"), "code", _('Where the answer gives an error code, e.g. "code" or "errors.0.code".')
        ),
        "invalid_address_codes": forms.CharField(
            label=_("Codes meaning a bad address"),
            required=False,
            help_text=_(
                "Error codes, separated by commas, that mean the recipient's address is invalid or "
                "unsubscribed: the address is then suppressed."
            ),
        ),
        **network_option_fields(),
    }


class MappedHttpChannel(HttpChannel):
    """Sends ``fields(message)`` (``{option name: value}``, each option naming the provider's
    field) to the configured URL. Subclasses implement ``fields`` and list the defaults of
    their field-name options in ``field_defaults``."""

    secret_options = ("token", "password")
    field_defaults = {}

    @classmethod
    def validate_options(cls, options, secrets):
        clean, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        auth = clean.get("auth") or "none"
        if auth in ("bearer", "header") and not clean_secrets.get("token"):
            errors["token"] = [_("Give the API token, or choose no authentication.")]
        if auth == "header" and not clean.get("auth_header"):
            errors["auth_header"] = [_("Name the header that carries the token.")]
        if auth == "basic" and not clean.get("username"):
            errors["username"] = [_("Give the user name for HTTP Basic authentication.")]
        for name in ("extra_fields", "extra_headers"):
            value = clean.get(name)
            if value is not None and not isinstance(value, dict):
                errors[name] = [_("Give a JSON object, e.g. {}.")]
        headers = clean.get("extra_headers") or {}
        if isinstance(headers, dict):
            bad = [h for h, v in headers.items() if h.lower() in FORBIDDEN_HEADERS or not isinstance(v, str)]
            if bad:
                errors["extra_headers"] = [_("These headers cannot be set: %(names)s.") % {"names": ", ".join(bad)}]
        if clean.get("body_format") == "form" and clean.get("extra_fields"):
            if any(isinstance(v, (dict, list)) for v in clean["extra_fields"].values()):
                errors["extra_fields"] = [_("A form body takes only plain values.")]
        if errors:
            raise ValidationError(errors)
        return clean, clean_secrets

    def field(self, name):
        return self.option(name) or self.field_defaults[name]

    def fields(self, message):
        """{option name: value} for ``message``, e.g. {"to_field": "+34600000000"}. Must implement."""
        raise NotImplementedError(f"{type(self).__name__} must implement fields()")

    def headers(self, message):
        headers = {"Accept": "application/json", **(self.option("extra_headers") or {})}
        auth, token = self.option("auth") or "none", self.option("token") or ""
        if auth == "bearer":
            headers["Authorization"] = f"Bearer {token}"
        elif auth == "header":
            headers[self.option("auth_header")] = token
        elif auth == "basic":
            pair = f"{self.option('username', '')}:{self.option('password', '')}".encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if self.option("idempotency_header") and message.idempotency_key:
            headers[self.option("idempotency_header")] = message.idempotency_key
        return headers

    def build_payload(self, message):
        body = copy.deepcopy(self.option("extra_fields") or {})
        for name, value in self.fields(message).items():
            if value not in (None, ""):
                set_path(body, self.field(name), value)
        headers = self.headers(message)
        if (self.option("body_format") or "json") == "form":
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return urlencode({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()}), headers
        headers["Content-Type"] = "application/json"
        return json.dumps(body, cls=DjangoJSONEncoder), headers

    def deliver(self, message, payload):
        body, headers = payload
        response = self.http_request(
            self.option("method") or "POST", self.option("url"), body=body, headers=headers, recipient=message.to
        )
        codes = {c.strip() for c in (self.option("invalid_address_codes") or "").split(",") if c.strip()}
        code = get_path(response.json(), self.option("error_code_field") or "code")
        if codes and code is not None and str(code) in codes:
            raise ChannelPermanentError(
                _("The provider says the address is invalid (code %(code)s).") % {"code": code},
                suppress=True, channel=self.channel, recipient=message.to, response=response,
            )
        error = status_error(response, channel=self.channel, recipient=message.to)
        if error is not None:
            raise error
        return response

    def parse_result(self, message, response):
        provider_id = get_path(response.json(), self.option("id_field") or "id")
        return SendResult(provider_id="" if provider_id is None else str(provider_id)[:255], detail=str(response)[:300])
