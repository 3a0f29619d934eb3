"""What every attack of the battery needs: a real proxy process, real origins that record
what reaches them, a canary client, and the proxy's peak memory.

The proxy is ``python -m proxycore`` (proxydump) or ``proxycore.tools.web`` (proxyweb) in
a subprocess (tests.processes.Proxy); the origins are threads of the test process on
127.0.0.1 port 0.
"""

from __future__ import annotations

import base64
import http.client
import json
import os
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e_servers import start_http
from tests.processes import Proxy

ROOT = Path(__file__).resolve().parents[2]


def peak_rss_mib(pid: int) -> float:
    """Peak resident set size (VmHWM) of a process, in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc/PID/status")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time a process has used so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def read_head(sock: socket.socket, limit: int = 1 << 20) -> tuple[bytes, bytes]:
    """Read up to the end of a response head; returns (head, what came after it)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data[:200]!r}")
        data += chunk
        if len(data) > limit:
            raise AssertionError("response head too large")
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def status_of(head: bytes) -> int:
    return int(head.split(b" ", 2)[1])


def answer(sock: socket.socket, timeout: float = 5) -> int | None:
    """The status code of the proxy's answer on ``sock``, or None if it closed without one
    (timeouts raise: no answer in time is a failure of its own)."""
    sock.settimeout(timeout)
    try:
        head, _ = read_head(sock)
    except ConnectionError:
        return None
    return status_of(head)


def run_client(function: str, *args: object, timeout: float = 120) -> dict[str, Any]:
    """Run ``tests.h2_clients.<function>(*args)`` in a fresh interpreter and return its result
    (a dataclass) as a dict. A busy client in the test process would hold the GIL that the
    origins' threads need, and stall the origin rather than the proxy."""
    script = (
        "import dataclasses, json, sys; from tests import h2_clients; "
        f"r = h2_clients.{function}(*json.loads(sys.argv[1])); "
        "d = dataclasses.asdict(r); "
        "d = {k: v.decode('latin-1') if isinstance(v, bytes) else v for k, v in d.items()}; "
        "print(json.dumps(d))"
    )
    done = subprocess.run(
        [sys.executable, "-c", script, json.dumps(list(args))],
        capture_output=True, text=True, timeout=timeout, cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.splitlines()[-1])


class RecordingOrigin:
    """A raw HTTP/1 origin that keeps every byte it receives, per connection.

    Each request head it finds (CRLF or bare-LF terminated; a Content-Length body is
    skipped) is answered with ``response``, ``delay`` seconds later. ``received()`` is everything that reached it,
    which is what the smuggling attacks search for their marker."""

    def __init__(
        self, response: bytes = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\norigin", delay: float = 0.0
    ) -> None:
        self.response, self.delay = response, delay
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.connections: list[bytearray] = []
        self.heads: list[bytes] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            buffer = bytearray()
            self.connections.append(buffer)
            threading.Thread(target=self._serve, args=(conn, buffer), daemon=True).start()

    def _serve(self, conn: socket.socket, buffer: bytearray) -> None:
        conn.settimeout(30)
        pending = b""
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    return
                buffer += data
                pending += data
                while True:
                    end = min((i for i in (pending.find(b"\r\n\r\n"), pending.find(b"\n\n")) if i >= 0), default=-1)
                    if end < 0:
                        break
                    sep = 4 if pending[end : end + 4] == b"\r\n\r\n" else 2
                    head, pending = pending[:end], pending[end + sep :]
                    self.heads.append(head)
                    length = 0
                    for line in head.splitlines()[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length" and value.strip().isdigit():
                            length = int(value.strip())
                    while len(pending) < length:
                        more = conn.recv(65536)
                        if not more:
                            return
                        buffer += more
                        pending += more
                    pending = pending[length:]
                    time.sleep(self.delay)
                    conn.sendall(self.response)
        except OSError:
            pass
        finally:
            conn.close()

    def received(self) -> bytes:
        return b"".join(bytes(c) for c in self.connections)

    def close(self) -> None:
        self.listener.close()


@dataclass
class Canary:
    """Ordinary requests through the proxy, one fresh connection every ``interval`` seconds,
    while an attack runs: each must get its 200 within ``timeout`` seconds."""

    proxy_port: int
    origin_port: int
    interval: float = 0.1
    timeout: float = 5.0
    auth: str | None = None  # "user:password" for a proxy with proxyauth
    sent: int = 0
    failures: list[str] = field(default_factory=list)
    slowest: float = 0.0

    def __post_init__(self) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Canary:
        self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self.sent += 1
            started = time.monotonic()
            try:
                self._one(self.sent)
            except Exception as e:  # noqa: BLE001 - every way of failing counts
                self.failures.append(f"#{self.sent} after {time.monotonic() - started:.1f} s: {type(e).__name__}: {e}")
            self.slowest = max(self.slowest, time.monotonic() - started)
            self._stop.wait(self.interval)

    def _one(self, n: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.proxy_port, timeout=self.timeout)
        try:
            headers = {}
            if self.auth:
                headers["Proxy-Authorization"] = "Basic " + base64.b64encode(self.auth.encode()).decode()
            conn.request("GET", f"http://127.0.0.1:{self.origin_port}/get?canary={n}", headers=headers)
            response = conn.getresponse()
            body = response.read()
            if response.status != 200 or f"canary={n}".encode() not in body:
                raise AssertionError(f"status {response.status}, body {body[:80]!r}")
        finally:
            conn.close()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(self.timeout + 5)


class CanaryOrigin:
    """The canary's own origin (Python's http.server), apart from the attacked one."""

    def __init__(self) -> None:
        self.server, self.port = start_http()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


__all__ = ["Canary", "CanaryOrigin", "Proxy", "RecordingOrigin", "answer", "cpu_seconds", "peak_rss_mib", "read_head", "run_client",
           "status_of"]
