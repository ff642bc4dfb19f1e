"""The channel backend contract (after django-anymail's backends).

A backend is code; a channel is a record (``models.Channel``) that names a backend and holds
its options. ``channel.get_backend()`` returns ``BackendClass(channel)``.

Subclasses set ``kind`` and ``channel_name``, declare their options as Django form fields in
``option_fields()`` (the admin builds its form from them and ``validate_options`` checks
them), and implement ``deliver``. Everything else has a working default.

Sending many messages::

    backend = channel.get_backend()
    with backend:                     # opens one connection for the batch, closes it after
        for outgoing in batch:
            result = backend.send(outgoing)   # SendResult, or raises a ChannelError

``send`` raises ``ChannelTransientError`` (retry later) or ``ChannelPermanentError`` (give
up; ``suppress=True`` when the address itself is bad).
"""

from dataclasses import dataclass, field

from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _


@dataclass
class OutgoingMessage:
    """One rendered message, ready for a backend. ``to`` is the address for the channel's
    kind: an email, an E.164 phone number, a push token, or (webhook) the customer id."""

    to: str
    subject: str = ""
    text: str = ""
    html: str = ""
    short_text: str = ""
    # Extra headers (email) such as List-Unsubscribe; webhooks put them in the payload.
    headers: dict = field(default_factory=dict)
    # Deterministic per (customer, campaign, step, trigger occurrence): providers that accept
    # an idempotency key get it, so they drop a duplicate too.
    idempotency_key: str = ""
    # Free data for the backend (webhook payload, push "url"...): message id, campaign, customer.
    metadata: dict = field(default_factory=dict)


@dataclass
class SendResult:
    provider_id: str = ""
    # The provider's raw answer, shortened, for the message's log.
    detail: str = ""


@dataclass
class InboundEvent:
    """Something a provider told us about an address (from ``parse_inbound``).

    kind: "stop" (opt-out reply), "start" (opt back in), "help", "bounce" (hard), "complaint",
    "delivered", "other". ``provider_id`` identifies the inbound message or notification, so
    a provider's retry of the same webhook is recognised."""

    kind: str
    address: str
    text: str = ""
    provider_id: str = ""


class BaseChannel:
    #: Channel kind this backend sends: "email", "sms", "push" or "webhook". Must be set.
    kind = None
    #: Human name shown in the admin. Must be set.
    channel_name = None
    #: Names among option_fields() that are secrets: stored apart, never shown back.
    secret_options = ()

    def __init__(self, channel):
        self.channel = channel
        self.options = dict(channel.options or {})
        self.secrets = dict(channel.secrets or {})

    # --- configuration -------------------------------------------------------------------

    @classmethod
    def option_fields(cls):
        """{name: django.forms.Field} of the options this backend takes. Override."""
        return {}

    @classmethod
    def validate_options(cls, options, secrets):
        """Check ``options`` and ``secrets`` with ``option_fields()``; return both cleaned
        (JSON-serialisable). Raises ValidationError naming each bad option.
        A secret option may come in ``secrets`` (as stored) or in ``options`` (typed in a
        form): a non-empty value in ``options`` replaces the stored one, an empty one keeps
        it; either way it comes out in the cleaned secrets only.
        Subclasses add cross-field checks by overriding and calling super()."""
        fields = cls.option_fields()
        unknown = (set(options) | set(secrets)) - set(fields)
        errors = {}
        if unknown:
            errors["options"] = _("Unknown options: %(names)s.") % {"names": ", ".join(sorted(unknown))}
        clean_options, clean_secrets = {}, {}
        for name, form_field in fields.items():
            source = secrets if name in cls.secret_options else options
            if name in cls.secret_options and options.get(name) not in (None, ""):
                source = options  # a new secret typed in with the options replaces the stored one
            try:
                value = form_field.clean(source.get(name))
            except ValidationError as exc:
                errors[name] = exc.messages
                continue
            if isinstance(form_field, forms.DecimalField) and value is not None:
                value = str(value)
            if value in (None, "") and name not in source:
                continue
            (clean_secrets if name in cls.secret_options else clean_options)[name] = value
        if errors:
            raise ValidationError(errors)
        return clean_options, clean_secrets

    def option(self, name, default=None):
        if name in self.secret_options:
            return self.secrets.get(name, default)
        return self.options.get(name, default)

    # --- sending -------------------------------------------------------------------------

    def __enter__(self):
        self.open()
        return self

    def __exit__(self, *exc_info):
        self.close()

    def open(self):
        """Open a connection reused by the following sends. Optional."""

    def close(self):
        """Close what open() opened. Optional."""

    def send(self, message):
        """Send one message; return a SendResult or raise a ChannelError.
        Subclasses shouldn't need to override."""
        payload = self.build_payload(message)
        response = self.deliver(message, payload)
        return self.parse_result(message, response)

    def build_payload(self, message):
        """What ``deliver`` sends for ``message``. Default: the message itself."""
        return message

    def deliver(self, message, payload):
        """Hand ``payload`` to the provider and return its response. Must implement."""
        raise NotImplementedError(f"{type(self).__name__} must implement deliver()")

    def parse_result(self, message, response):
        """Turn the provider's response into a SendResult. Default: no provider id."""
        return SendResult()

    # --- inbound (replies, bounces) --------------------------------------------------------

    def parse_inbound(self, request):
        """Read a provider's webhook request (SMS reply, bounce notice) into a list of
        InboundEvent. Raise django.core.exceptions.SuspiciousOperation when the request is
        not authentic. Default: this backend takes no inbound webhooks (empty list)."""
        return []
