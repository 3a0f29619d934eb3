"""``--workers 2``: keep-alive connections are spread evenly over the workers (issue 15).

With one SO_REUSEPORT socket per worker the kernel's hash put 16 connections 5/11, 6/10 or
7/9; the shared accept queue and the connection counts keep it within one of 8/8."""

from __future__ import annotations

import collections
import socket
import sys
from pathlib import Path

import pytest

from proxycore.workers.balance import ABSENT, HOLD_BACK, SLOT, Counts
from tests.e2e.test_e2e import Proxy
from tests.e2e.test_e2e_workers import PID_SCRIPT, upstream, wait_for, worker_pids  # noqa: F401

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/task/PID/children"),
]


def test_counts_send_a_connection_to_the_least_busy_worker(tmp_path) -> None:
    counts = Counts(str(tmp_path / "counts"), 3, create=True)
    other = Counts(str(tmp_path / "counts"), 3)  # another process maps the same file
    assert counts.hold_back(0) == 0.0  # nobody else runs yet
    counts.set(0, 4)
    other.set(1, 4)
    assert counts.hold_back(0) == 0.0 and other.hold_back(1) == 0.0  # as busy as the others
    other.set(1, 3)
    assert counts.hold_back(0) == HOLD_BACK and counts.hold_back(1) == 0.0
    other.set(1, ABSENT)  # worker 1 died
    assert counts.hold_back(0) == 0.0
    counts.close()
    other.close()


def keep_alive_get(sock: socket.socket, port: int) -> str:
    """One request on an open connection; the X-Worker-Pid of the answer."""
    sock.sendall(f"GET http://127.0.0.1:{port}/get HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    fields = dict(
        (k.strip().lower(), v.strip()) for k, _, v in (line.partition(":") for line in head.decode().split("\r\n")[1:])
    )
    while len(body) < int(fields["content-length"]):
        body += sock.recv(65536)
    return fields["x-worker-pid"]


def one_request(port: int, upstream: int) -> str:  # noqa: F811
    """The X-Worker-Pid of one request on a connection of its own."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        return keep_alive_get(sock, upstream)


def shared_counts(pid: int) -> str:
    """The counts file the primary ``pid`` shares with its workers (it maps it): one
    8-byte count of open client connections per worker (proxycore/workers/balance.py)."""
    maps = Path(f"/proc/{pid}/maps").read_text().splitlines()
    paths = {line.split()[-1] for line in maps if line.endswith("/counts") and "proxycore-workers-" in line}
    assert len(paths) == 1, paths
    return paths.pop()


def test_sixteen_connections_split_evenly(tmp_path, upstream) -> None:  # noqa: F811
    script = tmp_path / "pid.py"
    script.write_text(PID_SCRIPT)
    proxy = Proxy(["-q", "--workers", "2", "-s", str(script)], tmp_path)
    try:
        wait_for(lambda: len(worker_pids(proxy)) == 2, what="two workers")
        # Both accepting: one connection at a time until each worker has answered one (a
        # fixed 1.5 s was too short for a worker starting on a loaded machine: 2/14).
        answered: set[str] = set()
        wait_for(lambda: answered.add(one_request(proxy.port, upstream)) or len(answered) == 2, 60, "both workers")
        counts = Path(shared_counts(proxy.proc.pid))
        for _ in range(3):
            # the closed connections have left the counts
            wait_for(lambda: counts.read_bytes() == bytes(2 * SLOT), what="no connection counted")
            # One connection at a time, each answered (so counted) before the next opens: a
            # burst of 16 left each accept to whichever worker the loaded machine ran within
            # HOLD_BACK (15/1 once at load 7).
            socks: list[socket.socket] = []
            split: collections.Counter[str] = collections.Counter()
            try:
                for _ in range(16):
                    socks.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=10))
                    split[keep_alive_get(socks[-1], upstream)] += 1
            finally:
                for s in socks:
                    s.close()
            assert len(split) == 2 and max(split.values()) <= 9, split
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
