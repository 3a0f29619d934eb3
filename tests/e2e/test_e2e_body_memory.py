"""Large bodies through a real proxydump process: memory stays bounded, every byte arrives.

The proxy's peak resident set (VmHWM, Linux /proc) is compared with its resident set just
before the transfer.  A buffered body must cost about its own size once (one more copy
of 64 MiB fails the test), a streamed one next to nothing.
"""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest

from tests.processes import Proxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc"),
]

MiB = 1 << 20
BODY = 64 * MiB


def kb(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def fetch(proxy: Proxy, port: int, size: int, close: bool = False) -> tuple[bytes, int]:
    """GET /big/size through the proxy; returns the head and the count of body bytes, all
    checked to be the server's "x" (read until EOF when ``close``, else Content-Length)."""
    extra = b"Connection: close\r\n" if close else b""
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=30) as s:
        s.sendall(b"GET http://127.0.0.1:%d/big/%d HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n"
                  % (port, size, port, extra))
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        assert rest.count(b"x") == len(rest)
        got = len(rest)
        buf = bytearray(MiB)
        view = memoryview(buf)
        while close or got < size:
            n = s.recv_into(view)
            if not n:
                break
            assert buf.count(b"x", 0, n) == n, "a byte other than the server's"
            got += n
        return head, got


def transfer_cost(args: list[str], tmp_path: Path, port: int, size: int = BODY, close: bool = False) -> int:
    """Peak RSS growth (bytes) of a fresh proxy while it relays one body of ``size``."""
    proxy = Proxy(["-q", *args], tmp_path)
    try:
        head, _ = fetch(proxy, port, 100)  # imports and first-flow allocations happen here
        assert head.startswith(b"HTTP/1.1 200"), head
        before = kb(proxy.proc.pid, "VmRSS")
        head, got = fetch(proxy, port, size, close)
        assert head.startswith(b"HTTP/1.1 200"), head
        assert got == size
        return (kb(proxy.proc.pid, "VmHWM") - before) * 1024
    finally:
        proxy.stop()


def test_buffered_body_is_held_once(tmp_path, upstream):
    cost = transfer_cost(["--set", "body_buffer_limit=0"], tmp_path, upstream)
    assert cost <= BODY + 32 * MiB, f"peak grew by {cost / MiB:.0f} MiB for a 64 MiB body"


def test_streamed_body_keeps_memory_flat(tmp_path, upstream):
    cost = transfer_cost(["--set", "stream_large_bodies=1m"], tmp_path, upstream)
    assert cost <= 24 * MiB, f"peak grew by {cost / MiB:.0f} MiB while streaming"


def test_default_threshold_bounds_an_unconfigured_proxy(tmp_path, upstream):
    """No option set: body_buffer_limit (32m) streams the rest, so 64 MiB costs at most ~32."""
    cost = transfer_cost([], tmp_path, upstream)
    assert cost <= 32 * MiB + 24 * MiB, f"peak grew by {cost / MiB:.0f} MiB"


def test_large_body_then_close_arrives_whole(tmp_path, upstream):
    """Connection: close right behind a large write: the close waits for the last byte."""
    cost = transfer_cost(["--set", "body_buffer_limit=0"], tmp_path, upstream, size=16 * MiB, close=True)
    assert cost <= 16 * MiB + 32 * MiB
