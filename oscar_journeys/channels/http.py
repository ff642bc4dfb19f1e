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
"""

import ipaddress
import json
import logging
import re
import socket
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import urllib3
from django import forms
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from .. import app_settings
from ..exceptions import ChannelPermanentError, ChannelTransientError
from .base import BaseChannel

logger = logging.getLogger(__name__)

DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOWED_PORTS = frozenset(DEFAULT_PORTS.values())
MAX_RESPONSE_BYTES = 256 * 1024
USER_AGENT = "oscar-journeys"
# "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1": forms inet_aton() reads as IPv4.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


class UnsafeURLError(ChannelPermanentError):
    """The URL may not be called: wrong scheme or port, or a private address."""


def getaddrinfo(host, port):
    """The resolver (a module attribute, so tests can replace it)."""
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


# --- addresses -------------------------------------------------------------------------------


def _embedded(ip):
    """The address itself and any IPv4 address an IPv6 one carries."""
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return [ip.ipv4_mapped]  # ::ffff:a.b.c.d is a.b.c.d and nothing else
    found = [ip]
    if ip.version == 6:
        for inner in (ip.sixtofour, *(ip.teredo or ())):
            if inner is not None:
                found.append(inner)
        if ip in ipaddress.IPv6Network("64:ff9b::/96"):  # NAT64
            found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def is_public_address(ip):
    """True when ``ip`` (an ipaddress object or a string) is a public unicast address."""
    if isinstance(ip, str):
        ip = ipaddress.ip_address(ip.split("%", 1)[0])
    for one in _embedded(ip):
        if (
            not one.is_global
            or one.is_private
            or one.is_loopback
            or one.is_link_local
            or one.is_reserved
            or one.is_multicast
            or one.is_unspecified
            or (one.version == 6 and one.is_site_local)
        ):
            return False
    return True


def literal_address(host):
    """The IP address ``host`` spells, in any form a resolver would accept, or None."""
    try:
        return ipaddress.ip_address(host.strip("[]").split("%", 1)[0])
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host.rstrip(".")))
        except OSError:
            return None
    return None


@dataclass
class Target:
    """A checked URL: where to connect (``ip``, ``port``) and what to ask for."""

    scheme: str
    host: str
    port: int
    path: str
    ip: str = ""

    @property
    def host_header(self):
        host = f"[{self.host}]" if ":" in self.host else self.host
        return host if self.port == DEFAULT_PORTS[self.scheme] else f"{host}:{self.port}"


def check_url(url, *, allow_http=False, allow_private=False, extra_ports=()):
    """Check what can be checked without DNS; return a ``Target`` (``ip`` set when the host
    is an address). Raises UnsafeURLError with a message saying what is wrong."""
    try:
        parts = urlsplit(str(url).strip())
        port = parts.port
    except ValueError as exc:
        raise UnsafeURLError(_("The URL is not valid: %(error)s") % {"error": exc}) from exc
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or (scheme == "http" and not allow_http):
        raise UnsafeURLError(_("The URL must start with https://."))
    if parts.username is not None or parts.password is not None:
        raise UnsafeURLError(_("Put credentials in the channel's options, not in the URL."))
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise UnsafeURLError(_("The URL has no host name."))
    if not host.isascii():
        try:
            host = host.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise UnsafeURLError(_("The URL is not valid: %(error)s") % {"error": exc}) from exc
    port = port or DEFAULT_PORTS[scheme]
    if port not in ALLOWED_PORTS and port not in set(extra_ports or ()):
        raise UnsafeURLError(
            _("Port %(port)s is not allowed: use 80 or 443, or add it to the extra ports.") % {"port": port}
        )
    target = Target(scheme, host, port, (parts.path or "/") + (f"?{parts.query}" if parts.query else ""))
    ip = literal_address(host)
    if ip is not None:
        target.ip = str(ip)
    if not allow_private:
        if (ip is not None and not is_public_address(ip)) or host.lower() == "localhost" or host.lower().endswith(
            ".localhost"
        ):
            raise UnsafeURLError(
                _("%(host)s is a private or local address; only public addresses may be called.") % {"host": host}
            )
    return target


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
