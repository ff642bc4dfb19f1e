"""A small HTTP client for channel backends that call out to a URL the shop owner typed in
(webhooks, SMS and push providers), safe against server-side request forgery.

``SafeHttpClient.request(method, url, ...)``:

- accepts only ``https`` (``http`` too when ``allow_http``) and ports 80 and 443 (plus
  ``extra_ports``); refuses credentials in the URL;
- resolves the host once and refuses private, loopback, link-local, reserved, multicast,
  shared (CGNAT) and unspecified addresses, IPv4 or IPv6, whatever their spelling
  (``127.1``, ``2130706433``, ``0x7f.1``, ``[::1]``, ``::ffff:127.0.0.1``, 6to4...), unless
  ``allow_private`` (``OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES`` or the channel's
  ``allow_private_addresses`` option);
- connects to the address it checked (pinned: there is no second lookup an attacker's DNS
  could answer differently) while TLS still sends and verifies the real host name;
- never follows redirects (``status_error`` turns a 3xx into a permanent error);
- gives up after ``OSCAR_JOURNEYS_HTTP_TIMEOUT_SECONDS``.

Connections are kept for the client's life, so a backend opens one client per batch.

The rules on URLs and addresses, checked without DNS (``check_url``, ``is_public_address``,
``Target``, ``UnsafeURLError``...), live in ``url_policy.py`` and are importable from here
too; this module resolves host names (``resolve``) and makes the requests.
"""

import json
import logging
import socket
from dataclasses import dataclass, field

import urllib3
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .. import app_settings
from ..exceptions import ChannelPermanentError, ChannelTransientError
from .base import BaseChannel
from .url_policy import (
    ALLOWED_PORTS,
    DEFAULT_PORTS,
    Target,
    UnsafeURLError,
    check_url,
    is_public_address,
    literal_address,
)

__all__ = [
    "ALLOWED_PORTS", "DEFAULT_PORTS", "MAX_RESPONSE_BYTES", "USER_AGENT", "HttpChannel", "HttpResponse",
    "PortListField", "SafeHttpClient", "Target", "UnsafeURLError", "check_url", "getaddrinfo",
    "is_public_address", "literal_address", "network_option_fields", "resolve", "status_error",
]

logger = logging.getLogger(__name__)

MAX_RESPONSE_BYTES = 256 * 1024
USER_AGENT = "oscar-journeys"


def getaddrinfo(host, port):
    """The resolver (a module attribute, so tests can replace it)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


# --- host names --------------------------------------------------------------------------------


def resolve(target, *, allow_private=False):
    """Resolve ``target.host`` once; refuse it if any of its addresses is not public. Sets
    and returns ``target.ip`` (the first address), which is what the client connects to."""
    if target.ip:
        return target.ip
    try:
        infos = getaddrinfo(target.host, target.port)
    except (socket.gaierror, UnicodeError) as exc:
        raise ChannelTransientError(_("Cannot resolve %(host)s: %(error)s") % {"host": target.host, "error": exc}) from exc
    addresses = [info[4][0] for info in infos]
    if not addresses:
        raise ChannelTransientError(_("%(host)s has no address.") % {"host": target.host})
    if not allow_private:
        for address in addresses:
            if not is_public_address(address):
                raise UnsafeURLError(
                    _("%(host)s resolves to %(address)s, a private or local address.")
                    % {"host": target.host, "address": address}
                )
    target.ip = addresses[0].split("%", 1)[0]
    return target.ip


# --- responses and errors --------------------------------------------------------------------


@dataclass
class HttpResponse:
    status: int
    headers: dict = field(default_factory=dict)
    data: bytes = b""

    @property
    def text(self):
        return self.data.decode("utf-8", "replace")

    def json(self):
        """The body parsed as JSON, or None if it is not JSON."""
        try:
            return json.loads(self.data or b"null")
        except ValueError:
            return None

    def __str__(self):
        return f"HTTP {self.status} {self.text[:300]}"


def status_error(response, *, channel=None, recipient=None, suppress=False):
    """The ChannelError for a non-2xx response, or None for a 2xx one: 3xx (redirects are
    never followed), 4xx → permanent; 408, 425, 429 and 5xx → transient."""
    status = response.status
    if 200 <= status < 300:
        return None
    kwargs = {"channel": channel, "recipient": recipient, "response": response}
    if status in (408, 425, 429) or status >= 500:
        return ChannelTransientError(_("The provider answered %(status)s; will retry.") % {"status": status}, **kwargs)
    if 300 <= status < 400:
        return ChannelPermanentError(
            _("The provider answered with a redirect (%(status)s); redirects are not followed.") % {"status": status},
            **kwargs,
        )
    return ChannelPermanentError(
        _("The provider refused the message (%(status)s).") % {"status": status}, suppress=suppress, **kwargs
    )


# --- the client ------------------------------------------------------------------------------


class SafeHttpClient:
    """Calls URLs under the rules in this module's docstring. Reuses connections until
    ``close()``; usable as a context manager."""

    def __init__(self, *, allow_http=False, allow_private=False, extra_ports=(), timeout=None, channel=None):
        self.allow_http = allow_http
        self.allow_private = bool(allow_private or app_settings.ALLOW_PRIVATE_ADDRESSES)
        self.extra_ports = tuple(extra_ports or ())
        self.timeout = float(timeout if timeout is not None else app_settings.HTTP_TIMEOUT_SECONDS)
        self.channel = channel
        self._pools = {}
        self._addresses = {}  # (host, port) -> ip: one lookup per host for the client's life

    def __enter__(self):
        return self

    def __exit__(self, *exc_info):
        self.close()

    def close(self):
        for pool in self._pools.values():
            pool.close()
        self._pools.clear()
        self._addresses.clear()

    def _pool(self, target):
        key = (target.scheme, target.ip, target.port, target.host)
        if key not in self._pools:
            kwargs = {"timeout": urllib3.Timeout(total=self.timeout), "retries": False, "maxsize": 1}
            if target.scheme == "https":
                # Connect to the pinned address, but send and verify the real name (SNI).
                sni = None if literal_address(target.host) else target.host
                self._pools[key] = urllib3.HTTPSConnectionPool(
                    target.ip, target.port, cert_reqs="CERT_REQUIRED", server_hostname=sni,
                    assert_hostname=target.host, **kwargs,
                )
            else:
                self._pools[key] = urllib3.HTTPConnectionPool(target.ip, target.port, **kwargs)
        return self._pools[key]

    def target(self, url):
        """The checked and resolved Target of ``url`` (raises UnsafeURLError)."""
        target = check_url(
            url, allow_http=self.allow_http, allow_private=self.allow_private, extra_ports=self.extra_ports
        )
        cached = self._addresses.get((target.host, target.port))
        if cached:
            target.ip = cached
        else:
            self._addresses[(target.host, target.port)] = resolve(target, allow_private=self.allow_private)
        return target

    def request(self, method, url, *, body=b"", headers=None, recipient=None):
        """Send one request and return an HttpResponse whatever its status (see
        ``status_error``). Raises UnsafeURLError, or ChannelTransientError on a timeout or a
        connection error."""
        target = self.target(url)
        send_headers = {"User-Agent": USER_AGENT, **(headers or {}), "Host": target.host_header}
        if isinstance(body, str):
            body = body.encode()
        try:
            raw = self._pool(target).urlopen(
                method, target.path, body=body or None, headers=send_headers, redirect=False,
                retries=False, preload_content=False, assert_same_host=False,
            )
        except (urllib3.exceptions.LocationParseError, ValueError) as exc:
            raise UnsafeURLError(
                _("The URL is not valid: %(error)s") % {"error": exc}, channel=self.channel, recipient=recipient
            ) from exc
        except urllib3.exceptions.HTTPError as exc:
            raise ChannelTransientError(
                _("Cannot reach %(host)s: %(error)s") % {"host": target.host, "error": exc},
                channel=self.channel, recipient=recipient,
            ) from exc
        try:
            data = raw.read(MAX_RESPONSE_BYTES + 1, decode_content=True)
            complete = len(data) <= MAX_RESPONSE_BYTES
        except urllib3.exceptions.HTTPError:
            data, complete = b"", False  # the status line arrived: the answer stands
        if complete:
            raw.release_conn()
        else:
            raw.close()  # a response this long is not reused; only its start is kept
        return HttpResponse(raw.status, dict(raw.headers), data[:MAX_RESPONSE_BYTES])


# --- the base of backends that call a URL ------------------------------------------------------


class PortListField(forms.Field):
    """Ports as "8080, 8443" (or a list); cleans to a sorted list of ints."""

    def to_python(self, value):
        if value in (None, "", []):
            return []
        items = value if isinstance(value, (list, tuple)) else str(value).replace(";", ",").split(",")
        ports = []
        for item in items:
            item = str(item).strip()
            if not item:
                continue
            if not item.isdigit() or not 0 < int(item) < 65536:
                raise ValidationError(_("%(value)s is not a port number (1-65535).") % {"value": item})
            ports.append(int(item))
        return sorted(set(ports))


def network_option_fields():
    """The options every backend calling a shop-given URL takes."""
    return {
        "allow_http": forms.BooleanField(
            label=_("Allow plain http://"),
            required=False,
            help_text=_("Only for the shop's own internal services: the messages travel unencrypted."),
        ),
        "allow_private_addresses": forms.BooleanField(
            label=_("Allow private addresses"),
            required=False,
            help_text=_(
                "Let this channel call private, loopback and link-local addresses (10.x, 192.168.x, "
                "127.0.0.1...). Only for the shop's own internal services."
            ),
        ),
        "extra_ports": PortListField(
            label=_("Extra ports"),
            required=False,
            help_text=_("Ports besides 80 and 443 the URL may use, separated by commas."),
        ),
    }


class HttpChannel(BaseChannel):
    """Base of backends that call HTTP APIs through SafeHttpClient. ``open()`` starts one
    client for the batch (connections reused), ``close()`` ends it; ``http_request`` works
    outside a batch too. Subclasses list the options holding URLs in ``url_options``: they
    are checked (scheme, port, literal private addresses) when the channel is saved; host
    names are resolved and checked at send time."""

    url_options = ("url",)

    def __init__(self, channel):
        super().__init__(channel)
        self._http = None

    def http_client(self):
        """A new SafeHttpClient set up from this channel's options."""
        return SafeHttpClient(
            allow_http=bool(self.option("allow_http")),
            allow_private=bool(self.option("allow_private_addresses")),
            extra_ports=self.option("extra_ports") or (),
            channel=self.channel,
        )

    def open(self):
        if self._http is None:
            self._http = self.http_client()

    def close(self):
        if self._http is not None:
            self._http.close()
            self._http = None

    def http_request(self, method, url, *, body=b"", headers=None, recipient=None):
        """SafeHttpClient.request through the batch's client, or a one-off one."""
        if self._http is not None:
            return self._http.request(method, url, body=body, headers=headers, recipient=recipient)
        with self.http_client() as client:
            return client.request(method, url, body=body, headers=headers, recipient=recipient)

    @classmethod
    def validate_options(cls, options, secrets):
        clean_options, clean_secrets = super().validate_options(options, secrets)
        errors = {}
        for name in cls.url_options:
            url = clean_options.get(name)
            if not url:
                continue
            try:
                check_url(
                    url,
                    allow_http=bool(clean_options.get("allow_http")),
                    allow_private=bool(clean_options.get("allow_private_addresses"))
                    or app_settings.ALLOW_PRIVATE_ADDRESSES,
                    extra_ports=clean_options.get("extra_ports") or (),
                )
            except UnsafeURLError as exc:
                errors[name] = [exc.args[0]]
        if errors:
            raise ValidationError(errors)
        return clean_options, clean_secrets
