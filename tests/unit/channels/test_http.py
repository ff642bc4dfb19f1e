"""The SSRF-safe HTTP client: which URLs it refuses (a corpus, with the resolver replaced),
and real requests to a local server: pinned to the checked address, no redirect followed,
timeouts and refused connections are transient."""

import socket

import pytest
from django.test import override_settings

from oscar_journeys.channels import http
from oscar_journeys.channels.http import HttpResponse, SafeHttpClient, UnsafeURLError, status_error
from oscar_journeys.exceptions import ChannelPermanentError, ChannelTransientError

from .conftest import free_port

DNS = {
    "hooks.example.com": ["93.184.216.34"],
    "v6.example.com": ["2606:4700::6810:84e5"],
    "internal.example.com": ["10.1.2.3"],
    "metadata.example.com": ["169.254.169.254"],
    "mixed.example.com": ["93.184.216.34", "127.0.0.1"],
    "loop6.example.com": ["::1"],
    "mapped.example.com": ["::ffff:192.168.0.1"],
    "cgnat.example.com": ["100.64.0.7"],
}


def fake_getaddrinfo(calls=None):
    def resolve(host, port):
        if calls is not None:
            calls.append(host)
        if host not in DNS:
            raise socket.gaierror(f"unknown host {host}")
        return [
            (socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))
            for ip in DNS[host]
        ]

    return resolve


@pytest.fixture(autouse=True)
def resolver(monkeypatch):
    calls = []
    monkeypatch.setattr(http, "getaddrinfo", fake_getaddrinfo(calls))
    return calls


BLOCKED = [
    "https://127.0.0.1/",
    "https://127.1/",
    "https://2130706433/",
    "https://0x7f000001/",
    "https://0x7f.0.0.1/",
    "https://0177.0.0.1/",
    "https://[::1]/",
    "https://[::ffff:127.0.0.1]/",
    "https://[::ffff:7f00:1]/",
    "https://[2002:7f00:1::]/",  # 6to4 wrapping 127.0.0.1
    "https://[64:ff9b::a00:1]/",  # NAT64 wrapping 10.0.0.1
    "https://169.254.169.254/latest/meta-data/",
    "https://[fe80::1]/",
    "https://[fc00::1]/",
    "https://[fec0::1]/",
    "https://10.0.0.1/",
    "https://172.16.5.4/",
    "https://192.168.1.1/",
    "https://100.64.0.1/",
    "https://0.0.0.0/",
    "https://0/",
    "https://[::]/",
    "https://224.0.0.1/",
    "https://[ff02::1]/",
    "https://240.0.0.1/",
    "https://255.255.255.255/",
    "https://localhost/",
    "https://LOCALHOST./",
    "https://api.localhost/",
    "https://internal.example.com/",
    "https://metadata.example.com/",
    "https://mixed.example.com/",
    "https://loop6.example.com/",
    "https://mapped.example.com/",
    "https://cgnat.example.com/",
]


@pytest.mark.parametrize("url", BLOCKED)
def test_private_and_local_addresses_are_refused(url):
    with pytest.raises(UnsafeURLError, match="private or local"):
        SafeHttpClient().target(url)


@pytest.mark.parametrize("url", ["http://169.254.169.254/", "http://127.1/", "http://2130706433/", "http://[::1]/"])
def test_the_ssrf_classics_are_refused_even_with_plain_http_allowed(url):
    with pytest.raises(UnsafeURLError, match="private or local"):
        SafeHttpClient(allow_http=True).target(url)


@pytest.mark.parametrize(
    "url, message",
    [
        ("http://hooks.example.com/", "https://"),
        ("ftp://hooks.example.com/", "https://"),
        ("file:///etc/passwd", "https://"),
        ("gopher://hooks.example.com/", "https://"),
        ("https:///no-host", "no host"),
        ("https://hooks.example.com:8080/", "Port 8080"),
        ("https://hooks.example.com:22/", "Port 22"),
        ("https://user:secret@hooks.example.com/", "credentials"),
        ("https://hooks.example.com@127.0.0.1/", "credentials"),
        ("https://hooks.example.com:99999/", "not valid"),
    ],
)
def test_schemes_ports_and_credentials_are_checked(url, message):
    with pytest.raises(UnsafeURLError, match=message):
        SafeHttpClient().target(url)


@pytest.mark.parametrize(
    "url, ip",
    [
        ("https://hooks.example.com/x?y=1", "93.184.216.34"),
        ("https://v6.example.com/", "2606:4700::6810:84e5"),
        ("https://8.8.8.8/", "8.8.8.8"),
        ("https://[2606:4700::1]/", "2606:4700::1"),
        ("https://[::ffff:8.8.8.8]/", "::ffff:808:808"),
        ("https://hooks.example.com:443/", "93.184.216.34"),
        ("https://hooks.example.com:80/", "93.184.216.34"),
    ],
)
def test_public_addresses_are_allowed(url, ip):
    assert SafeHttpClient().target(url).ip == ip


def test_international_names_are_resolved_in_their_ascii_form(resolver):
    DNS["xn--bcher-kva.example"] = ["93.184.216.34"]
    try:
        target = SafeHttpClient().target("https://bücher.example/")
    finally:
        del DNS["xn--bcher-kva.example"]
    assert (target.host, resolver) == ("xn--bcher-kva.example", ["xn--bcher-kva.example"])


def test_plain_http_and_extra_ports_are_allowed_when_asked():
    target = SafeHttpClient(allow_http=True, extra_ports=[8443]).target("http://hooks.example.com:8443/a")
    assert (target.scheme, target.port, target.path, target.host_header) == ("http", 8443, "/a", "hooks.example.com:8443")


def test_private_addresses_are_allowed_by_the_channel_option_or_the_setting():
    assert SafeHttpClient(allow_private=True).target("https://internal.example.com/").ip == "10.1.2.3"
    with override_settings(OSCAR_JOURNEYS_ALLOW_PRIVATE_ADDRESSES=True):
        assert SafeHttpClient().target("https://127.1/").ip == "127.0.0.1"


def test_an_unknown_host_is_a_transient_error():
    with pytest.raises(ChannelTransientError, match="Cannot resolve"):
        SafeHttpClient().target("https://nowhere.example.com/")


def test_a_host_is_resolved_once_per_client(resolver):
    client = SafeHttpClient()
    for _ in range(3):
        client.target("https://hooks.example.com/")
    assert resolver == ["hooks.example.com"]


def test_https_connects_to_the_checked_address_and_verifies_the_real_name():
    client = SafeHttpClient()
    pool = client._pool(client.target("https://hooks.example.com/"))
    assert pool.host == "93.184.216.34"
    assert pool.conn_kw["server_hostname"] == "hooks.example.com"
    assert pool.assert_hostname == "hooks.example.com"
    assert pool.cert_reqs == "CERT_REQUIRED"


@pytest.mark.parametrize(
    "status, error",
    [
        (200, None),
        (204, None),
        (301, ChannelPermanentError),
        (302, ChannelPermanentError),
        (307, ChannelPermanentError),
        (400, ChannelPermanentError),
        (404, ChannelPermanentError),
        (410, ChannelPermanentError),
        (408, ChannelTransientError),
        (429, ChannelTransientError),
        (500, ChannelTransientError),
        (503, ChannelTransientError),
    ],
)
def test_statuses_map_to_errors(status, error):
    found = status_error(HttpResponse(status))
    assert (type(found) if found else None) is error
    if isinstance(found, ChannelPermanentError):
        assert found.suppress is False


# --- real requests to a local server ---------------------------------------------------------


def local_client(http_server, **kwargs):
    return SafeHttpClient(allow_http=True, allow_private=True, extra_ports=[http_server.port], **kwargs)


def test_requests_go_to_the_pinned_address_with_the_real_host_name(http_server, monkeypatch):
    answers = iter(["127.0.0.1", "10.255.255.1"])  # a rebinding DNS: another answer each time
    lookups = []

    def rebinding(host, port):
        lookups.append(host)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (next(answers), port))]

    real = socket.getaddrinfo
    os_lookups = []
    monkeypatch.setattr(http, "getaddrinfo", rebinding)
    monkeypatch.setattr(socket, "getaddrinfo", lambda host, *a, **k: os_lookups.append(host) or real(host, *a, **k))
    with local_client(http_server) as client:
        first = client.request("POST", f"http://hooks.test:{http_server.port}/a", body=b"1")
        second = client.request("POST", f"http://hooks.test:{http_server.port}/b", body=b"2")
    assert (first.status, second.status) == (200, 200)
    assert lookups == ["hooks.test"]  # one lookup; the second request did not ask again
    assert "hooks.test" not in os_lookups  # urllib3 never resolved the name itself
    assert [r.path for r in http_server.requests] == ["/a", "/b"]
    assert http_server.requests[0].headers["Host"] == f"hooks.test:{http_server.port}"
    assert http_server.requests[0].connection == http_server.requests[1].connection  # kept alive


def test_redirects_are_not_followed(http_server):
    http_server.responses.append((302, {"Location": http_server.url("/internal")}, b""))
    with local_client(http_server) as client:
        response = client.request("POST", http_server.url("/hook"), body=b"{}")
    assert response.status == 302
    assert [r.path for r in http_server.requests] == ["/hook"]
    with pytest.raises(ChannelPermanentError, match="redirect"):
        raise status_error(response)


def test_without_the_option_the_local_server_is_refused(http_server):
    with pytest.raises(UnsafeURLError):
        SafeHttpClient(allow_http=True, extra_ports=[http_server.port]).request("GET", http_server.url())
    assert http_server.requests == []


@override_settings(OSCAR_JOURNEYS_HTTP_TIMEOUT_SECONDS=0.3)
def test_a_silent_server_times_out_as_a_transient_error(http_server):
    http_server.hang_requests = True
    with pytest.raises(ChannelTransientError, match="Cannot reach"):
        local_client(http_server).request("POST", http_server.url(), body=b"x")


def test_a_refused_connection_is_transient():
    port = free_port()
    client = SafeHttpClient(allow_http=True, allow_private=True, extra_ports=[port])
    with pytest.raises(ChannelTransientError):
        client.request("GET", f"http://127.0.0.1:{port}/")


def test_a_long_answer_is_cut(http_server, monkeypatch):
    monkeypatch.setattr(http, "MAX_RESPONSE_BYTES", 10)
    http_server.responses.append((200, {}, b"x" * 1000))
    response = local_client(http_server).request("GET", http_server.url())
    assert response.data == b"x" * 10
