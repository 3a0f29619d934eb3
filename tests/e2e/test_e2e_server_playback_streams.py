"""Server playback of WebSocket and TCP conversations (beyond mitmproxy), end to end.

A WebSocket and a TCP conversation are recorded live through proxydump in front of real
servers (the WebSocket server speaks first, then answers every client message and ends
with close code 4001; the TCP server answers each chunk). The servers are stopped; then proxydump ``-S`` (and proxyweb's
``replay.server`` command) answer a real client (``websockets``, a raw socket) from the
recording, and the played-back flows are recorded (``is_replay == "response"``).
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
import time
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect
from websockets.sync.server import ServerConnection, serve

from proxycore.http import HTTPFlow
from proxycore.io import FlowReader
from proxycore.tcp import TCPFlow
from tests.e2e_servers import free_port, make_self_signed
from tests.processes import Proxy, ProxyWeb
from tests.webapi import request

pytestmark = pytest.mark.e2e

PASSWORD = "playback-e2e"


def _ws_server(ws: ServerConnection) -> None:
    ws.send("welcome")
    for message in ws:
        if message == "bye":
            ws.close(4001, "done")
            return
        ws.send(message.upper() if isinstance(message, str) else message[::-1])


def _tcp_server(listener: socket.socket, done: threading.Event, banner: bytes) -> None:
    while not done.is_set():
        try:
            conn, _ = listener.accept()
        except TimeoutError:
            continue
        except OSError:
            return
        with conn:
            if banner:
                conn.sendall(banner)
            while data := conn.recv(65535):
                conn.sendall(b"echo: " + data)


def _wait_listening(proxy: Proxy, *ports: int) -> None:
    deadline = time.monotonic() + 10
    while not all(f":{port}." in proxy.stderr() for port in ports):
        assert time.monotonic() < deadline, proxy.stderr()
        time.sleep(0.05)


def _ws_conversation(url: str, proxy: str | None = None) -> list[object]:
    got: list[object] = []
    with connect(url, proxy=proxy, open_timeout=10) as ws:
        got.append(ws.recv(timeout=10))
        ws.send("grüß")
        got.append(ws.recv(timeout=10))
        ws.send(b"\x01\x02")
        got.append(ws.recv(timeout=10))
        ws.send("bye")
        with pytest.raises(ConnectionClosed) as closed:
            ws.recv(timeout=10)
        got.append((closed.value.rcvd.code, closed.value.rcvd.reason))
    return got


def _tcp_conversation(sock: socket.socket, banner: bytes = b"") -> bytes:
    received = b""
    for word, expected in ((b"", banner), (b"one", b"echo: one"), (b"two", b"echo: two")):
        if word:
            sock.sendall(word)
        while len(received) < len(expected) or not received.endswith(expected):
            chunk = sock.recv(100)
            assert chunk, received
            received += chunk
    sock.shutdown(socket.SHUT_WR)
    while chunk := sock.recv(100):
        received += chunk
    return received


WS_EXPECTED = ["welcome", "GRÜSS", b"\x02\x01", (4001, "done")]
TCP_EXPECTED = b"echo: oneecho: two"
BANNER = b"220 ready\r\n"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, int, int, int]:
    """The flow file of one WebSocket and two TCP conversations (the server of the second
    speaks first), and the ports of their servers, which are gone once this returns."""
    tmp = tmp_path_factory.mktemp("record")
    saved = tmp / "recorded.mitm"
    done = threading.Event()
    listeners, threads = [], []
    for banner in (b"", BANNER):
        listener = socket.create_server(("127.0.0.1", 0))
        listener.settimeout(0.2)
        threads.append(threading.Thread(target=_tcp_server, args=(listener, done, banner), daemon=True))
        threads[-1].start()
        listeners.append(listener)
    tcp_echo, banner_echo = (listener.getsockname()[1] for listener in listeners)
    with serve(_ws_server, "127.0.0.1", 0) as server:
        ws_thread = threading.Thread(target=server.serve_forever, daemon=True)
        ws_thread.start()
        ws_echo = server.socket.getsockname()[1]
        tcp_port, ws_port, banner_port = free_port(), free_port(), free_port()
        proxy = Proxy(["--mode", "regular", "--mode", f"reverse:tcp://127.0.0.1:{tcp_echo}@{tcp_port}",
                       "--mode", f"reverse:tcp://127.0.0.1:{banner_echo}@{banner_port}",
                       "--mode", f"reverse:http://127.0.0.1:{ws_echo}@{ws_port}", "-w", str(saved)], tmp)
        try:
            _wait_listening(proxy, tcp_port, ws_port, banner_port)
            assert _ws_conversation(f"ws://127.0.0.1:{ws_port}/chat") == WS_EXPECTED
            for port, banner in ((tcp_port, b""), (banner_port, BANNER)):
                with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
                    assert _tcp_conversation(s, banner) == banner + TCP_EXPECTED
            deadline = time.monotonic() + 10
            while proxy.stdout().count("<- tcp <-") < 2:
                assert time.monotonic() < deadline, proxy.stdout()
                time.sleep(0.05)
        finally:
            assert proxy.stop() == 0
        server.shutdown()
        ws_thread.join()
    done.set()
    for thread, listener in zip(threads, listeners, strict=True):
        thread.join()
        listener.close()
    with saved.open("rb") as f:
        flows = list(FlowReader(f).stream())
    assert sorted(type(f).__name__ for f in flows) == ["HTTPFlow", "TCPFlow", "TCPFlow"]
    return saved, ws_echo, tcp_echo, banner_echo


def _refused(port: int) -> None:
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()


def test_proxydump_plays_back_websocket_and_tcp_conversations(
    tmp_path: Path, recorded: tuple[Path, int, int, int]
) -> None:
    saved, ws_echo, tcp_echo, _ = recorded
    _refused(ws_echo)
    _refused(tcp_echo)
    played = tmp_path / "played.mitm"
    tcp_port, ws_port = free_port(), free_port()
    # Reverse modes connect at once with the eager strategy (as mitmproxy): lazy here.
    proxy = Proxy(["-S", str(saved), "--keepserving", "--set", "connection_strategy=lazy", "--mode", "regular",
                   "--mode", f"reverse:tcp://127.0.0.1:{tcp_echo}@{tcp_port}",
                   "--mode", f"reverse:http://127.0.0.1:{ws_echo}@{ws_port}", "-w", str(played)], tmp_path)
    try:
        _wait_listening(proxy, tcp_port, ws_port)
        assert _ws_conversation(f"ws://127.0.0.1:{ws_port}/chat") == WS_EXPECTED
        with socket.create_connection(("127.0.0.1", tcp_port), timeout=10) as s:
            assert _tcp_conversation(s) == TCP_EXPECTED
        out = proxy.wait_output("<- tcp <-")
        assert "[replay]" in out and "/chat" in out, out
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stdout() + proxy.stderr()
    assert "Cannot connect" not in proxy.stdout() + proxy.stderr()
    with played.open("rb") as f:
        flows = list(FlowReader(f).stream())
    (ws_flow,) = [f for f in flows if isinstance(f, HTTPFlow)]
    (tcp_flow,) = [f for f in flows if isinstance(f, TCPFlow)]  # the other recording is not asked for
    assert ws_flow.is_replay == "response" and ws_flow.response.status_code == 101
    assert [(m.from_client, m.content) for m in ws_flow.websocket.messages] == [
        (False, b"welcome"), (True, "grüß".encode()), (False, "GRÜSS".encode()), (True, b"\x01\x02"),
        (False, b"\x02\x01"), (True, b"bye"),
    ]
    assert (ws_flow.websocket.close_code, ws_flow.websocket.closed_by_client) == (4001, False)
    assert tcp_flow.is_replay == "response" and tcp_flow.error is None
    assert b"".join(m.content for m in tcp_flow.messages if not m.from_client) == TCP_EXPECTED
    assert b"".join(m.content for m in tcp_flow.messages if m.from_client) == b"onetwo"


def test_replay_server_command_from_the_web_api_answers_a_connect_with_eager_connections(
    tmp_path: Path, recorded: tuple[Path, int, int, int]
) -> None:
    """Regular mode, eager strategy (the default): a CONNECT to a recorded TCP server is
    answered without trying the server, whose banner comes right after the 200 (before the
    client said anything); so is the CONNECT of a WebSocket client that uses the proxy. The
    flows show up in GET /flows."""
    saved, ws_echo, _, tcp_echo = recorded
    _refused(tcp_echo)
    _refused(ws_echo)
    proxy = ProxyWeb(tmp_path, "-r", str(saved), "--set", f"web_password={PASSWORD}")
    auth = {"Authorization": f"Bearer {PASSWORD}"}

    def flows() -> list[dict]:
        r = request(proxy.web_port, "GET", "/flows", headers=auth, auth=False)
        assert r.status == 200, r
        return r.json()

    try:
        deadline = time.monotonic() + 10
        while len(flows()) < 3:
            assert time.monotonic() < deadline, flows()
            time.sleep(0.05)
        r = request(proxy.web_port, "POST", "/commands/replay.server", json.dumps({"arguments": ["@all"]}),
                    headers={**auth, "Content-Type": "application/json"}, auth=False)
        assert r.status == 200, r
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as s:
            s.sendall(f"CONNECT 127.0.0.1:{tcp_echo} HTTP/1.1\r\nHost: 127.0.0.1:{tcp_echo}\r\n\r\n".encode())
            head = b""
            while b"\r\n\r\n" not in head:
                chunk = s.recv(1)
                assert chunk, head
                head += chunk
            assert head.startswith(b"HTTP/1.1 200"), head
            assert _tcp_conversation(s, BANNER) == BANNER + TCP_EXPECTED
        # websockets CONNECTs through an HTTP proxy, then sends its handshake in the tunnel.
        assert _ws_conversation(f"ws://127.0.0.1:{ws_echo}/chat", proxy=proxy.url) == WS_EXPECTED
        deadline = time.monotonic() + 10
        while True:
            now = flows()
            played = [f for f in now if f["type"] == "tcp" and f["is_replay"] == "response"
                      and f["client_conn"]["timestamp_end"]]
            ws_played = [f for f in now if f["type"] == "http" and f["is_replay"] == "response"
                         and f["request"]["method"] == "GET" and f.get("websocket", {}).get("timestamp_end")]
            if played and ws_played:
                break
            assert time.monotonic() < deadline, now
            time.sleep(0.1)
        assert played[0]["messages_meta"]["count"] == 5
        assert played[0]["server_conn"]["timestamp_start"] is None  # never connected
        (ws_played,) = ws_played
        assert ws_played["response"]["status_code"] == 101
        assert ws_played["websocket"]["close_code"] == 4001
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def _tls_conversation(proxy: Proxy, port: int, wait_eof: bool) -> bytes:
    """CONNECT to 127.0.0.1:port through ``proxy``, then TLS (SNI localhost) and the echo talk."""
    context = ssl.create_default_context(cafile=proxy.ca)
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as raw:
        raw.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = raw.recv(1)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 200"), head
        with context.wrap_socket(raw, server_hostname="localhost") as s:
            received = b""
            for word in (b"one", b"two"):
                s.sendall(word)
                while not received.endswith(b"echo: " + word):
                    chunk = s.recv(100)
                    assert chunk, received
                    received += chunk
            if wait_eof:  # the playback closes its side once the recording is over
                while chunk := s.recv(100):
                    received += chunk
            return received


def test_a_tls_tcp_conversation_is_played_back_by_sni(tmp_path: Path) -> None:
    """Recorded through a CONNECT tunnel with TLS intercepted (SNI localhost), played back the
    same way (eager strategy) with the server gone."""
    saved, played = tmp_path / "tls.mitm", tmp_path / "played.mitm"
    cert, key = make_self_signed(tmp_path)
    server_context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    done = threading.Event()

    def serve_tls() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            conn.settimeout(10)
            with server_context.wrap_socket(conn, server_side=True) as tls:
                while data := tls.recv(65535):
                    tls.sendall(b"echo: " + data)

    thread = threading.Thread(target=serve_tls, daemon=True)
    thread.start()
    tls_echo = listener.getsockname()[1]
    (tmp_path / "record").mkdir()
    proxy = Proxy(["-k", "-w", str(saved)], tmp_path / "record")
    try:
        assert _tls_conversation(proxy, tls_echo, wait_eof=False) == TCP_EXPECTED
        proxy.wait_output("<- tcp <-")
    finally:
        assert proxy.stop() == 0
        done.set()
        thread.join()
        listener.close()
    _refused(tls_echo)
    (tmp_path / "play").mkdir()
    proxy = Proxy(["-S", str(saved), "--keepserving", "-w", str(played)], tmp_path / "play")
    try:
        assert _tls_conversation(proxy, tls_echo, wait_eof=True) == TCP_EXPECTED
        proxy.wait_output("<- tcp <-")
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stdout() + proxy.stderr()
    with played.open("rb") as f:
        (flow,) = [f for f in FlowReader(f).stream() if isinstance(f, TCPFlow)]
    assert flow.is_replay == "response" and flow.error is None
    assert flow.client_conn.sni == "localhost" and flow.client_conn.tls_established
    assert b"".join(m.content for m in flow.messages if not m.from_client) == TCP_EXPECTED
