"""Fixtures for the channel backends: a fake channel record, and real local servers (HTTP
and SMTP) in threads, so requests and connections are real but never leave the machine."""

import json
import socket
import socketserver
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import pytest

from oscar_journeys.channels import locmem


class FakeChannel(SimpleNamespace):
    def __str__(self):
        return self.name


def make_backend(cls, options=None, secrets=None, *, validate=True):
    """``cls`` bound to a channel-like object, its options cleaned as Channel.clean() would."""
    options, secrets = dict(options or {}), dict(secrets or {})
    if validate:
        options, secrets = cls.validate_options(options, secrets)
    return cls(FakeChannel(pk=1, name="test channel", options=options, secrets=secrets))


@pytest.fixture(autouse=True)
def _empty_locmem():
    locmem.reset()
    yield
    locmem.reset()


# --- HTTP ------------------------------------------------------------------------------------


class RecordingHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _handle(self):
        server = self.server
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        server.requests.append(
            SimpleNamespace(method=self.command, path=self.path, headers=dict(self.headers.items()), body=body,
                            peer=self.client_address, connection=id(self.connection))
        )
        if server.hang_requests:
            server.release.wait(10)  # a server that never answers (until the test ends)
            return
        status, headers, payload = server.responses.pop(0) if server.responses else server.default
        if not isinstance(payload, bytes):
            payload = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_POST = do_PUT = do_GET = _handle


@pytest.fixture
def http_server():
    """A local HTTP server: ``.requests`` (what it received), ``.responses`` (queued
    (status, headers, body) answers; then ``.default``), ``.url(path)``, ``.hang_requests``."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RecordingHandler)
    server.daemon_threads = True
    server.requests, server.responses = [], []
    server.default = (200, {"Content-Type": "application/json"}, {"id": "provider-1"})
    server.release, server.hang_requests = threading.Event(), False
    server.port = server.server_address[1]
    server.url = lambda path="/": f"http://127.0.0.1:{server.port}{path}"
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


@pytest.fixture
def local_http_options(http_server):
    """Options letting an HTTP backend call the local server."""
    return {"allow_http": True, "allow_private_addresses": True, "extra_ports": str(http_server.port)}


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- SMTP ------------------------------------------------------------------------------------


class SMTPHandler(socketserver.StreamRequestHandler):
    """Just enough SMTP for smtplib: replies can be set per recipient (``rcpt_replies``) and
    for DATA (``data_replies``, consumed in order); ``drop_on_data`` hangs up instead."""

    def reply(self, line):
        self.wfile.write(line.encode() + b"\r\n")

    def handle(self):
        server = self.server
        with server.lock:
            server.connections += 1
        self.reply("220 localhost test SMTP")
        envelope = {"from": None, "to": []}
        while True:
            line = self.rfile.readline()
            if not line:
                return
            command = line.decode().strip()
            verb = command.split(" ", 1)[0].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 localhost")
            elif verb == "MAIL":
                envelope = {"from": command[10:], "to": []}
                self.reply("250 OK")
            elif verb == "RCPT":
                address = command.split(":", 1)[1].strip().strip("<>")
                reply = server.rcpt_replies.get(address, "250 OK")
                if reply.startswith("2"):
                    envelope["to"].append(address)
                self.reply(reply)
            elif verb == "DATA":
                if server.drop_on_data:
                    server.drop_on_data -= 1
                    return  # hang up: smtplib sees SMTPServerDisconnected
                self.reply("354 go ahead")
                data = []
                while True:
                    chunk = self.rfile.readline()
                    if chunk in (b".\r\n", b""):
                        break
                    data.append(chunk)
                reply = server.data_replies.pop(0) if server.data_replies else "250 queued"
                if reply.startswith("2"):
                    server.messages.append({**envelope, "data": b"".join(data)})
                self.reply(reply)
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:  # RSET, NOOP
                self.reply("250 OK")


@pytest.fixture
def smtp_server():
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), SMTPHandler, bind_and_activate=False)
    server.allow_reuse_address = True
    server.daemon_threads = True
    server.server_bind()
    server.server_activate()
    server.lock = threading.Lock()
    server.connections, server.messages = 0, []
    server.rcpt_replies, server.data_replies, server.drop_on_data = {}, [], 0
    server.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()
