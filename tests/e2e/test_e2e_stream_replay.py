"""Replay of WebSocket and TCP flows (beyond mitmproxy) end to end, against echo servers.

A WebSocket conversation and a TCP one are recorded live through proxydump (reverse modes
in front of a `websockets` echo server and a TCP echo server), then replayed:

- by ``proxydump -n -C``: the replays in its output and in its ``-w`` file, which
  mitmproxy 11 and 12 read back to the same states;
- by proxyweb's ``replay.client`` command over the web API: the replays in GET /flows.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from proxycore.http import HTTPFlow
from proxycore.io import FlowReader
from proxycore.tcp import TCPFlow
from tests.e2e_servers import free_port
from tests.processes import Proxy, ProxyWeb, proxydump
from tests.real_mitmproxy import assert_mitmproxy_reads_back
from tests.webapi import request

pytestmark = pytest.mark.e2e

PASSWORD = "replay-e2e"


@pytest.fixture(scope="module")
def ws_echo() -> Iterator[int]:
    """A WebSocket server that sends every message back as it came."""

    def echo(ws: ServerConnection) -> None:
        for message in ws:
            ws.send(message)

    with serve(echo, "127.0.0.1", 0) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        yield server.socket.getsockname()[1]
        server.shutdown()
        thread.join()


@pytest.fixture(scope="module")
def tcp_echo() -> Iterator[int]:
    """Answers every chunk with ``echo: <chunk>``."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while data := conn.recv(65535):
                conn.sendall(b"echo: " + data)

    def serve_tcp() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve_tcp, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    listener.close()


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory, ws_echo: int, tcp_echo: int) -> Path:
    """A flow file with one WebSocket and one TCP conversation, recorded through proxydump."""
    tmp = tmp_path_factory.mktemp("record")
    saved = tmp / "recorded.mitm"
    tcp_port, ws_port = free_port(), free_port()
    proxy = Proxy(["--mode", "regular", "--mode", f"reverse:tcp://127.0.0.1:{tcp_echo}@{tcp_port}",
                   "--mode", f"reverse:http://127.0.0.1:{ws_echo}@{ws_port}", "-w", str(saved)], tmp)
    try:
        _wait_listening(proxy, tcp_port, ws_port)
        with connect(f"ws://127.0.0.1:{ws_port}/chat") as ws:
            ws.send("grüß")
            assert ws.recv(timeout=10) == "grüß"
            ws.send(b"\x00\xffbin")
            assert ws.recv(timeout=10) == b"\x00\xffbin"
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as s:
            for word in (b"one", b"two"):
                s.sendall(word)
                assert s.recv(100) == b"echo: " + word
        proxy.wait_output("<- tcp <-")
    finally:
        assert proxy.stop() == 0
    with saved.open("rb") as f:
        flows = list(FlowReader(f).stream())
    assert sorted(type(f).__name__ for f in flows) == ["HTTPFlow", "TCPFlow"]
    return saved


def _wait_listening(proxy: Proxy, *ports: int) -> None:
    import time

    deadline = time.monotonic() + 10
    while not all(f":{port}." in proxy.stderr() for port in ports):
        assert time.monotonic() < deadline, proxy.stderr()
        time.sleep(0.05)


def _check_replays(flows: list[object]) -> None:
    ws = [f for f in flows if isinstance(f, HTTPFlow)]
    tcp = [f for f in flows if isinstance(f, TCPFlow)]
    assert len(ws) == 1 and len(tcp) == 1, flows
    (ws_flow,), (tcp_flow,) = ws, tcp
    assert ws_flow.is_replay == "request" and ws_flow.response.status_code == 101
    assert ws_flow.websocket is not None
    for from_client in (True, False):  # each direction in order; the two may interleave
        sent = [m.content for m in ws_flow.websocket.messages if m.from_client is from_client]
        assert sent == ["grüß".encode(), b"\x00\xffbin"]
    assert tcp_flow.is_replay == "request" and tcp_flow.error is None
    assert [m.content for m in tcp_flow.messages if m.from_client] == [b"one", b"two"]
    answers = b"".join(m.content for m in tcp_flow.messages if not m.from_client)
    assert answers in (b"echo: oneecho: two", b"echo: onetwo")  # the echo may read both at once


def test_proxydump_replays_websocket_and_tcp_flows_and_records_them(
    tmp_path: Path, recorded: Path, mitmproxy_pythons: dict[str, Path]
) -> None:
    replayed = tmp_path / "replayed.mitm"
    r = proxydump("-n", "-C", str(recorded), "-w", str(replayed), "--set", f"confdir={tmp_path / 'conf'}",
                  timeout=60)
    assert r.returncode == 0, r.stderr
    assert "[replay]: GET http://127.0.0.1:" in r.stdout and "/chat" in r.stdout, r.stdout
    assert "-> tcp -> 127.0.0.1:" in r.stdout, r.stdout
    assert "Traceback" not in r.stdout + r.stderr
    flows = assert_mitmproxy_reads_back(mitmproxy_pythons, replayed)  # mitmproxy 11 and 12 read the same
    _check_replays(flows)


def test_replay_from_the_web_api_shows_the_replayed_flows(tmp_path: Path, recorded: Path) -> None:
    import time

    proxy = ProxyWeb(tmp_path, "-r", str(recorded), "--set", f"web_password={PASSWORD}")
    auth = {"Authorization": f"Bearer {PASSWORD}"}

    def flows() -> list[dict]:
        r = request(proxy.web_port, "GET", "/flows", headers=auth, auth=False)
        assert r.status == 200, r
        return r.json()

    try:
        deadline = time.monotonic() + 10
        while len(flows()) < 2:
            assert time.monotonic() < deadline, flows()
            time.sleep(0.05)
        r = request(proxy.web_port, "POST", "/commands/replay.client", '{"arguments": ["@all"]}',
                    headers={**auth, "Content-Type": "application/json"}, auth=False)
        assert r.status == 200, r
        deadline = time.monotonic() + 20
        while True:
            now = flows()
            tcp_replays = [f for f in now if f["type"] == "tcp" and f["is_replay"] == "request"]
            ws_replays = [f for f in now if f["type"] == "http" and f["is_replay"] == "request"
                          and f.get("websocket", {}).get("timestamp_end")]
            if tcp_replays and ws_replays and tcp_replays[0]["client_conn"]["timestamp_end"]:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        # the recorded TCP flow stays as it was next to its replay; the WebSocket flow is
        # replayed in place, as HTTP flows are
        assert len([f for f in now if f["type"] == "tcp"]) == 2
        (tcp_replay,) = tcp_replays
        assert tcp_replay["messages_meta"]["count"] >= 3
        (ws_replay,) = ws_replays
        assert ws_replay["response"]["status_code"] == 101
        assert ws_replay["websocket"]["close_code"] == 1000
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
