"""Email through Django's email machinery: the shop's ``EMAIL_BACKEND`` (SMTP, or a
django-anymail provider) or a connection of the channel's own.

Oscar's communication app (its ``Dispatcher`` and communication event types) sends the
shop's transactional mail — order confirmations, password resets — through the same
``django.core.mail`` connections; this backend is for marketing messages and sends them one
``EmailMultiAlternatives`` (text, plus an HTML alternative) at a time over one connection per
batch (``with backend:``), which is what makes a few hundred messages a second possible.

Each email's Message-ID is derived from the message's idempotency key
(``<key@sender-domain>``), so a duplicate is recognisable in any mailbox or log.
"""

import secrets
import smtplib
import sys
from email.policy import Compat32
from email.utils import parseaddr

from django import forms
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.mail import BadHeaderError, EmailMultiAlternatives, get_connection
from django.core.mail.message import DNS_NAME
from django.core.validators import validate_email
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _

from ..exceptions import ChannelPermanentError, ChannelTransientError
from .base import BaseChannel, SendResult

# Options that only make sense with an own server (``host``): without it, Django's EMAIL_*
# settings apply whole.
SERVER_OPTIONS = ("host", "port", "use_tls", "use_ssl")
# Seconds, when neither the channel's timeout option nor EMAIL_TIMEOUT is set.
DEFAULT_TIMEOUT = 30


def split_addresses(value):
    return [part.strip() for part in (value or "").split(",") if part.strip()]


def check_address(value):
    """Raise ValidationError unless ``value`` is "user@example.com" or "Name <user@example.com>"."""
    name, address = parseaddr(value)
    try:
        validate_email(address)
    except ValidationError:
        raise ValidationError(_("%(value)s is not an email address.") % {"value": value}) from None


def message_id(idempotency_key, from_email):
    domain = parseaddr(from_email)[1].rpartition("@")[2] or str(DNS_NAME)
    return f"<{idempotency_key}@{domain}>"


class _Compat32Headers(Compat32):
    """The ``compat32`` policy of Django's messages, writing a header that already fits on
    one line (ASCII, no line break, at most ``max_line_length``) as it is. The stock policy
    passes every header through ``email.header.Header`` to fold it, which gives the same line
    for such a header but was a sixth of a message's send time; longer, encoded or multi-line
    headers still take that path."""

    def _fold(self, name, value, sanitize):
        if (
            isinstance(value, str) and self.max_line_length and len(name) + 2 + len(value) <= self.max_line_length
            and value.isascii() and "\n" not in value and "\r" not in value
        ):
            return f"{name}: {value}{self.linesep}"
        return super()._fold(name, value, sanitize)


HEADERS_POLICY = _Compat32Headers()


class MarketingEmail(EmailMultiAlternatives):
    """Django's ``EmailMultiAlternatives``, built for speed with the same bytes on the wire:

    - the MIME boundary of the text/HTML alternatives is chosen when the message is built: a
      random token that neither body contains. Left unset, ``email.generator`` picks one at
      send time and makes sure no body line is that boundary by compiling a regular
      expression for it, once per message: a noticeable cost at a few hundred messages a
      second;
    - the message is written with ``HEADERS_POLICY`` (short headers are not re-folded).
    """

    def message(self):
        msg = super().message()
        msg.policy = HEADERS_POLICY
        return msg

    def _create_alternatives(self, msg):
        msg = super()._create_alternatives(msg)
        if msg.is_multipart() and msg.get_boundary() is None:
            bodies = [self.body, *(content for content, _mimetype in self.alternatives if isinstance(content, str))]
            boundary = _boundary()
            while any(boundary in body for body in bodies):
                boundary = _boundary()
            msg.set_boundary(boundary)
        return msg


def _boundary():
    # The form email.generator gives its own boundaries.
    return "=" * 15 + f"{secrets.randbelow(sys.maxsize):019d}" + "=="


class EmailChannel(BaseChannel):
    kind = "email"
    channel_name = _("Email (Django's email backend: SMTP or a provider)")
    secret_options = ("password",)

    @classmethod
    def option_fields(cls):
        return {
            "from_email": forms.CharField(
                label=_("From"), help_text=_('Sender address, e.g. "Shop <news@shop.example.com>".')
            ),
            "reply_to": forms.CharField(
                label=_("Reply to"), required=False, help_text=_("Addresses replies go to, separated by commas.")
            ),
            "email_backend": forms.CharField(
                label=_("Email backend"),
                required=False,
                help_text=_(
                    "Dotted path of a Django email backend (e.g. anymail.backends.mailgun.EmailBackend). "
                    "Empty: the shop's EMAIL_BACKEND setting."
                ),
            ),
            "host": forms.CharField(
                label=_("SMTP server"), required=False, help_text=_("Only to use another server than EMAIL_HOST.")
            ),
            "port": forms.IntegerField(label=_("SMTP port"), required=False, min_value=1, max_value=65535),
            "username": forms.CharField(label=_("SMTP user name"), required=False),
            "password": forms.CharField(label=_("SMTP password"), required=False),
            "use_tls": forms.BooleanField(label=_("Use STARTTLS"), required=False),
            "use_ssl": forms.BooleanField(label=_("Use SSL/TLS (implicit, usually port 465)"), required=False),
            "timeout": forms.IntegerField(
                label=_("Timeout (seconds)"), required=False, min_value=1, max_value=300,
                help_text=_("Give up on a silent server after this long."),
            ),
        }

    @classmethod
    def validate_options(cls, options, secrets):
        clean, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        addresses = {"from_email": [clean.get("from_email")], "reply_to": split_addresses(clean.get("reply_to"))}
        for name, values in addresses.items():
            for value in values:
                if value:
                    try:
                        check_address(value)
                    except ValidationError as exc:
                        errors[name] = exc.messages
        if clean.get("email_backend"):
            try:
                import_string(clean["email_backend"])
            except ImportError as exc:
                errors["email_backend"] = [
                    _("Cannot import %(path)s: %(error)s") % {"path": clean["email_backend"], "error": exc}
                ]
        if clean.get("use_tls") and clean.get("use_ssl"):
            errors["use_ssl"] = [_("Choose STARTTLS or SSL/TLS, not both.")]
        if not clean.get("host") and any(clean.get(name) for name in SERVER_OPTIONS[1:]):
            errors["host"] = [_("Give the SMTP server to use a port, STARTTLS or SSL/TLS of the channel's own.")]
        if errors:
            raise ValidationError(errors)
        return clean, clean_secrets

    def __init__(self, channel):
        super().__init__(channel)
        self.connection = None
        self._batch = False
        self._unreachable = None

    # --- the connection ------------------------------------------------------------------

    def connection_kwargs(self):
        kwargs = {}
        if self.option("host"):
            kwargs.update({name: self.option(name) for name in SERVER_OPTIONS if self.option(name) is not None})
        for name in ("username", "password", "timeout"):
            if self.option(name):
                kwargs[name] = self.option(name)
        if "timeout" not in kwargs and getattr(settings, "EMAIL_TIMEOUT", None) is None:
            kwargs["timeout"] = DEFAULT_TIMEOUT  # a silent server must not hold a worker forever
        return kwargs

    def get_connection(self):
        backend = self.option("email_backend") or settings.EMAIL_BACKEND
        return get_connection(backend, fail_silently=False, **self.connection_kwargs())

    def open(self):
        """Open one connection for the batch. Raises ChannelTransientError if the server
        cannot be reached, so the caller can put the whole batch back at once."""
        self._batch, self._unreachable = True, None
        self._connect()

    def close(self):
        self._batch, self._unreachable = False, None
        self._reset()

    def _connect(self):
        if self._unreachable is not None:  # failed earlier in this batch: don't wait again
            raise ChannelTransientError(
                _("The mail server was unreachable earlier in this batch."), channel=self.channel,
                response=self._unreachable,
            )
        if self.connection is None:
            self.connection = self.get_connection()
        try:
            self.connection.open()  # no-op while connected
        except Exception as exc:
            error = self.map_error(exc, None)
            self._unreachable = exc
            raise error from exc

    def _reset(self):
        """Drop the connection (after an error that may have broken it)."""
        connection, self.connection = self.connection, None
        if connection is not None:
            try:
                connection.close()
            except Exception:  # closing a broken connection may fail again; it is gone anyway
                pass

    # --- sending -------------------------------------------------------------------------

    def build_payload(self, message):
        try:
            validate_email(message.to)
        except ValidationError:
            raise ChannelPermanentError(
                _("%(address)s is not an email address.") % {"address": message.to},
                suppress=True, channel=self.channel, recipient=message.to,
            ) from None
        from_email = self.option("from_email") or settings.DEFAULT_FROM_EMAIL
        headers = dict(message.headers or {})
        if message.idempotency_key:
            headers["Message-ID"] = message_id(message.idempotency_key, from_email)
        email = MarketingEmail(
            subject=message.subject,
            body=message.text,
            from_email=from_email,
            to=[message.to],
            reply_to=split_addresses(self.option("reply_to")),
            headers=headers,
        )
        if message.html and message.text:
            email.attach_alternative(message.html, "text/html")
        elif message.html:
            email.body, email.content_subtype = message.html, "html"
        return email

    def deliver(self, message, payload):
        if self._batch:
            self._connect()  # reconnects after an error reset the connection
        else:
            self.connection = self.get_connection()
        try:
            sent = self.connection.send_messages([payload])
        except BadHeaderError as exc:
            raise ChannelPermanentError(str(exc), channel=self.channel, recipient=message.to) from exc
        except Exception as exc:
            raise self.map_error(exc, message) from exc
        finally:
            if not self._batch:
                self.connection = None
        if not sent:
            raise ChannelTransientError(
                _("The email backend sent nothing."), channel=self.channel, recipient=message.to
            )
        return payload

    def map_error(self, exc, message):
        """The ChannelError for an exception raised while sending; re-raises what is not a
        sending error (a bug). Resets the connection when it may be broken."""
        kwargs = {"channel": self.channel, "recipient": getattr(message, "to", None), "response": exc}
        if isinstance(exc, smtplib.SMTPRecipientsRefused):
            codes = [code for code, _text in exc.recipients.values()]
            if codes and all(code >= 500 for code in codes):
                return ChannelPermanentError(_("The mail server refused the address."), suppress=True, **kwargs)
            return ChannelTransientError(_("The mail server deferred the address."), **kwargs)
        if isinstance(exc, smtplib.SMTPResponseException) and not isinstance(
            exc, (smtplib.SMTPConnectError, smtplib.SMTPHeloError)
        ):
            if exc.smtp_code >= 500:
                return ChannelPermanentError(
                    _("The mail server refused the message (%(code)s).") % {"code": exc.smtp_code}, **kwargs
                )
            if exc.smtp_code == 421:  # the server is closing the connection
                self._reset()
            return ChannelTransientError(
                _("The mail server deferred the message (%(code)s).") % {"code": exc.smtp_code}, **kwargs
            )
        if isinstance(exc, OSError):  # SMTPServerDisconnected, timeouts, connection refused...
            self._reset()
            return ChannelTransientError(_("Cannot reach the mail server: %(error)s") % {"error": exc}, **kwargs)
        if type(exc).__module__.startswith("anymail"):
            return self.map_anymail_error(exc, kwargs)
        raise exc

    def map_anymail_error(self, exc, kwargs):
        status = getattr(exc, "status_code", None)
        if type(exc).__name__ == "AnymailRecipientsRefused":
            return ChannelPermanentError(_("The email provider refused the address."), suppress=True, **kwargs)
        if isinstance(status, int) and 400 <= status < 500 and status not in (408, 429):
            return ChannelPermanentError(
                _("The email provider refused the message (%(status)s).") % {"status": status}, **kwargs
            )
        return ChannelTransientError(_("The email provider failed: %(error)s") % {"error": exc}, **kwargs)

    def parse_result(self, message, response):
        status = getattr(response, "anymail_status", None)
        provider_id = getattr(status, "message_id", None) or response.extra_headers.get("Message-ID", "")
        return SendResult(provider_id=str(provider_id)[:255])
