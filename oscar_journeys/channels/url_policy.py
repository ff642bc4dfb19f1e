"""Which URLs a channel backend may call: the address policy of ``SafeHttpClient``
(``http.py``), checked without any DNS lookup.

``check_url(url, ...)`` returns a ``Target`` or raises ``UnsafeURLError``:

- only ``https`` (``http`` too when ``allow_http``) and ports 80 and 443 (plus
  ``extra_ports``); no credentials in the URL;
- no private, loopback, link-local, reserved, multicast, shared (CGNAT) or unspecified
  address, IPv4 or IPv6, whatever its spelling (``127.1``, ``2130706433``, ``0x7f.1``,
  ``[::1]``, ``::ffff:127.0.0.1``, 6to4...), and no ``localhost``, unless ``allow_private``.

Host names are resolved, and their addresses checked with ``is_public_address``, by
``http.resolve`` at send time. Every name here is importable from ``http`` too.
"""

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from django.utils.translation import gettext_lazy as _

from ..exceptions import ChannelPermanentError

DEFAULT_PORTS = {"http": 80, "https": 443}
ALLOWED_PORTS = frozenset(DEFAULT_PORTS.values())
# "127.1", "2130706433", "0x7f.0.0.1", "0177.0.0.1": forms inet_aton() reads as IPv4.
_NUMERIC_HOST = re.compile(r"^(0x[0-9a-f]*|[0-9]+)(\.(0x[0-9a-f]*|[0-9]+)){0,3}\.?$", re.IGNORECASE)


class UnsafeURLError(ChannelPermanentError):
    """The URL may not be called: wrong scheme or port, or a private address."""


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


# --- URLs --------------------------------------------------------------------------------------


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
