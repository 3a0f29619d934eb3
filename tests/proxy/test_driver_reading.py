"""The driver's own reading switch: bytes a loop delivers while we asked for a pause (uvloop
does so right after connection_made) wait, in order, until reading is switched on."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import pytest

from proxycore.proxy.server import _ConnectionProtocol


class Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


class Handler:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def data_received(self, connection: object, data: bytes) -> None:
        self.seen.append(data)

    def read_closed(self, connection: object, exc: object) -> None:
        self.seen.append("eof")


def make() -> tuple[_ConnectionProtocol, Transport, Handler]:
    handler = Handler()
    protocol = _ConnectionProtocol(handler, object())  # type: ignore[arg-type]
    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    return protocol, transport, handler


def test_data_during_a_pause_is_held_and_delivered_in_order():
    protocol, transport, handler = make()
    protocol.set_reading(False)
    protocol.data_received(b"a")
    protocol.data_received(b"b")
    assert handler.seen == [] and transport.calls[-1] == "pause"
    protocol.set_reading(True)
    assert handler.seen == [b"a", b"b"] and transport.calls[-1] == "resume"
    protocol.data_received(b"c")
    assert handler.seen == [b"a", b"b", b"c"]


def test_eof_during_a_pause_comes_after_the_held_data():
    protocol, transport, handler = make()
    protocol.set_reading(False)
    protocol.data_received(b"a")
    protocol.eof_received()
    assert handler.seen == []
    protocol.set_reading(True)
    assert handler.seen == [b"a", "eof"]


def test_switching_is_idempotent():
    protocol, transport, _ = make()
    protocol.set_reading(True)
    protocol.set_reading(False)
    protocol.set_reading(False)
    assert transport.calls == ["pause"]


@pytest.mark.e2e
@pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="uvloop is not installed (opt-in)")
def test_a_request_through_the_proxy_on_uvloop():
    code = (
        "import socket, threading, http.server, subprocess, sys, time\n"
        "srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), http.server.SimpleHTTPRequestHandler)\n"
        "threading.Thread(target=srv.serve_forever, daemon=True).start()\n"
        "s = socket.socket(); s.bind(('127.0.0.1', 0)); port = s.getsockname()[1]; s.close()\n"
        "p = subprocess.Popen([sys.executable, '-m', 'proxycore', '-q', '--listen-host', '127.0.0.1', '-p', str(port)])\n"
        "try:\n"
        "    for _ in range(100):\n"
        "        try: c = socket.create_connection(('127.0.0.1', port)); break\n"
        "        except OSError: time.sleep(0.05)\n"
        "    c.sendall(b'GET http://127.0.0.1:%d/ HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n' % srv.server_address[1])\n"
        "    c.settimeout(10); print(c.recv(100)[:12].decode())\n"
        "finally:\n"
        "    p.terminate(); p.wait()\n"
    )
    env = {**os.environ, "PROXYCORE_EVENT_LOOP": "uvloop"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.stdout.startswith(("HTTP/1.0 200", "HTTP/1.1 200")), out.stdout + out.stderr
