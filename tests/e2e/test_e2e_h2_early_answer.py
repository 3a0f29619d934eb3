"""End to end through proxydump: answers before the body, held uploads, head and idle timeouts.

HTTP/2 clients are h2-library clients over real sockets (CONNECT, then TLS with ALPN h2,
intercepted by the proxy; tests/h2_clients.py); the h2 origin is tests/e2e_servers.py's.
An addon script answers or holds requests in its ``requestheaders`` hook."""

from __future__ import annotations

import json
import select
import socket
import threading
import time
from pathlib import Path

import h2.events
import hyperframe.frame
import pytest

from tests.e2e_servers import start_h2
from tests.h2_clients import (
    UploadResult,
    h2_client,
    h2_get,
    h2_upload,
    http1_held_upload,
    open_h2_tunnel,
    request_headers,
    rss_kib,
)
from tests.processes import Proxy

pytestmark = pytest.mark.e2e

HOLD_SECONDS = 3
MIB = 2**20

GATE = f'''
import asyncio

from proxycore import http


class Gate:
    async def requestheaders(self, flow):
        if flow.request.path.startswith("/auth"):
            flow.response = http.Response.make(
                407, b"authenticate first", {{"Proxy-Authenticate": 'Basic realm="proxy"'}}
            )
        elif "held" in flow.request.path:
            await asyncio.sleep({HOLD_SECONDS})  # an addon (or a user) taking its time


addons = [Gate()]
'''


@pytest.fixture(scope="module")
def origin(tmp_path_factory):
    seen: list[str] = []
    _loop, port = start_h2(tmp_path_factory.mktemp("h2origin"), seen)
    return port, seen


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("gate")
    script = tmp / "gate.py"
    script.write_text(GATE)
    proxy = Proxy(
        ["-k", "-s", str(script), "--set", "body_buffer_limit=1m",
         "--set", "request_head_timeout=2", "--set", "keepalive_timeout=2"],
        tmp,
    )
    yield proxy
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_h2_answer_before_a_500_mb_upload_is_quick_and_costs_no_memory(proxy, origin):
    port, seen = origin
    assert h2_get(proxy.port, "localhost", port, "/warmup")[0] == 200
    before = rss_kib(proxy.proc.pid)
    # The client goes on uploading after the answer until the proxy tells it to stop.
    result = h2_upload(proxy.port, "localhost", port, "/auth/upload", 500 * MIB, give_up_after=10,
                       read_answer_first=False)
    assert result.status == 407 and result.body == b"authenticate first", result
    assert result.reset_code == 0  # RST_STREAM(NO_ERROR) after the answer
    assert result.seconds < 5, result.seconds  # 0.01 s measured; 36 s before
    # The client could send about a stream window before the RST_STREAM came.
    assert result.sent < 4 * MIB, result.sent
    assert rss_kib(proxy.proc.pid) - before < 10_000
    assert "/auth/upload" not in seen
    assert h2_get(proxy.port, "localhost", port, "/after")[0] == 200


def test_proxyauth_answers_an_h2_upload_at_once_in_reverse_mode(tmp_path, origin):
    """The real proxyauth addon: a reverse proxy with credentials answers 401 before the body."""
    port, seen = origin
    proxy = Proxy(["-k", "--mode", f"reverse:https://localhost:{port}", "--proxyauth", "user:pass"], tmp_path)
    try:
        result = h2_upload(proxy.port, "localhost", port, "/protected", 500 * MIB, give_up_after=10,
                           read_answer_first=False, tunnel=False)
    finally:
        assert proxy.stop() == 0
    assert result.status == 401 and result.reset_code == 0, result
    assert result.seconds < 5 and result.sent < 4 * MIB, result
    assert "/protected" not in seen
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_h2_upload_held_by_a_hook_is_bounded_by_the_stream_window(proxy, origin):
    port, _seen = origin
    size = 64 * MIB
    before = rss_kib(proxy.proc.pid)
    progress = UploadResult()
    thread = threading.Thread(target=h2_upload, args=(proxy.port, "localhost", port, "/sink/held", size),
                              kwargs={"result": progress})
    thread.start()
    time.sleep(HOLD_SECONDS - 1)
    sent_while_held = progress.sent
    grown_while_held = rss_kib(proxy.proc.pid) - before
    thread.join(60)
    assert sent_while_held <= 2 * MIB, sent_while_held  # one stream window (1 MiB), then stuck
    assert grown_while_held < 10_000, grown_while_held
    assert progress.status == 200 and json.loads(progress.body)["received"] == size, progress


def read_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http1_sink() -> int:
    """An HTTP/1 origin that counts a POST body without keeping it and answers with the count."""
    listener = socket.create_server(("127.0.0.1", 0))

    def serve(conn: socket.socket) -> None:
        with conn:
            data = read_head(conn)
            head, _, body = data.partition(b"\r\n\r\n")
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            received = len(body)
            while received < length:
                chunk = conn.recv(MIB)
                if not chunk:
                    return
                received += len(chunk)
            answer = json.dumps({"received": received}).encode()
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    def accept() -> None:
        while True:
            conn, _ = listener.accept()
            threading.Thread(target=serve, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    return listener.getsockname()[1]


def test_http1_upload_held_by_a_hook_stops_being_read(proxy):
    size = 256 * MIB
    sent_while_held, grown_while_held, status = http1_held_upload(proxy, size, HOLD_SECONDS - 1)
    # Without the pause the proxy took in all 256 MiB during the hold; now the limit (1 MiB)
    # plus what the kernel buffers on both sides of the loopback.
    assert sent_while_held < 24 * MIB, sent_while_held
    assert grown_while_held < 16_000, grown_while_held
    assert status == b"HTTP/1.1 200 OK"


def split_header_block(data: bytes) -> bytes:
    """The HEADERS frame h2 wrote, without END_HEADERS and with half its block: a stalled head."""
    frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
    frame.parse_body(memoryview(data[9 : 9 + length]))
    stalled = hyperframe.frame.HeadersFrame(frame.stream_id, flags=set(frame.flags) - {"END_HEADERS"})
    stalled.data = frame.data[: len(frame.data) // 2]
    return stalled.serialize()


def wait_for_goaway(tls, conn, timeout: float) -> tuple[h2.events.ConnectionTerminated | None, bool]:
    """(the GOAWAY, whether the proxy closed the connection) within ``timeout`` seconds."""
    goaway, deadline = None, time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not (tls.pending() or select.select([tls], [], [], 0.1)[0]):
            continue
        data = tls.recv(65536)
        if not data:
            return goaway, True
        for event in conn.receive_data(data):
            if isinstance(event, h2.events.ConnectionTerminated):
                goaway = event
    return goaway, False


def test_h2_stalled_header_block_is_closed_after_request_head_timeout(proxy, origin):
    port, seen = origin
    tls = open_h2_tunnel(proxy.port, "localhost", port)
    conn = h2_client()
    preface = conn.data_to_send()
    conn.send_headers(1, request_headers("localhost", port, "/stalled"), end_stream=True)
    tls.sendall(preface + split_header_block(conn.data_to_send()))
    start = time.monotonic()
    try:
        goaway, closed = wait_for_goaway(tls, conn, 10)
    finally:
        tls.close()
    assert goaway is not None and goaway.error_code == 0 and goaway.additional_data == b"request head timeout"
    assert closed and 1.5 < time.monotonic() - start < 6
    assert "/stalled" not in seen


def test_h2_idle_connection_is_closed_after_keepalive_timeout(proxy, origin):
    port, _seen = origin
    tls = open_h2_tunnel(proxy.port, "localhost", port)
    conn = h2_client()
    conn.send_headers(1, request_headers("localhost", port, "/one"), end_stream=True)
    tls.sendall(conn.data_to_send())
    try:
        ended = False
        while not ended:
            for event in conn.receive_data(tls.recv(65536)):
                ended = ended or isinstance(event, h2.events.StreamEnded)
        tls.sendall(conn.data_to_send())
        idle_since = time.monotonic()
        goaway, closed = wait_for_goaway(tls, conn, 10)
    finally:
        tls.close()
    assert goaway is not None and goaway.error_code == 0 and goaway.additional_data == b"idle"
    assert closed and 1.5 < time.monotonic() - idle_since < 6


def test_proxy_is_fine_afterwards(proxy, origin):
    port, _seen = origin
    assert h2_get(proxy.port, "localhost", port, "/canary")[0] == 200
    assert not Path(proxy.stderr_path).read_text().count("Traceback")
