"""The proxy as a real process for e2e tests: proxydump (``Proxy``), proxyweb (``ProxyWeb``)
and curl through it. Shared by tests/e2e, tests/api, tests/store, tests/adversarial and the
e2e tests elsewhere; the origins they talk to are in tests/e2e_servers.py."""

from __future__ import annotations

import atexit
import functools
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.e2e_servers import free_port


@functools.cache
def _session_ca() -> Path:
    """One CA file set per test process, made on first use and removed at exit."""
    from proxycore.certs import CertStore

    folder = Path(tempfile.mkdtemp(prefix="proxycore-test-ca-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    CertStore.create_store(folder / "conf", "proxycore")
    return folder / "conf"


def seed_ca(confdir: Path) -> None:
    """Give a new confdir the test process's CA, as a second start of the proxy would find it.

    Creating a CA costs an RSA key (60 ms of CPU on average, up to 170 ms) at every proxy
    start in a fresh confdir; no test through a proxy process is about that creation
    (tests/model/test_certs.py is), so they share one. Private files keep their 0600."""
    if not confdir.exists():
        shutil.copytree(_session_ca(), confdir)


class Proxy:
    def __init__(
        self, args: list[str], tmp: Path, module: str = "proxycore", python: str = sys.executable,
        wrapper: tuple[str, ...] = (), env: dict[str, str] | None = None,
    ) -> None:
        """Run ``python -m module`` (proxydump; proxyweb is ``proxycore.tools.web``), as the
        last arguments of ``wrapper`` if one is given; ``env`` adds environment variables."""
        self.port = free_port()
        self.confdir = tmp / "conf"  # never the user's ~/.proxycore
        seed_ca(self.confdir)
        self.stdout_path = tmp / f"proxy-{self.port}.out"
        self.stderr_path = tmp / f"proxy-{self.port}.err"
        self.proc = subprocess.Popen(
            [
                *wrapper, python, "-m", module, "--listen-host", "127.0.0.1", "-p", str(self.port),
                "--set", f"confdir={self.confdir}", *args,
            ],
            stdout=self.stdout_path.open("wb"),
            stderr=self.stderr_path.open("wb"),
            env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        )
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"proxy exited early:\n{self.stderr()}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(f"proxy did not start listening:\n{self.stderr()}")

    @property
    def ca(self) -> str:
        return str(self.confdir / "proxycore-ca-cert.pem")

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stdout(self) -> str:
        return self.stdout_path.read_text(errors="replace")

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def wait_output(self, needle: str, timeout: float = 5) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = self.stdout()
            if needle in out:
                return out
            time.sleep(0.05)
        raise AssertionError(f"{needle!r} not in proxy output:\n{self.stdout()}\n{self.stderr()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class ProxyWeb(Proxy):
    """The proxyweb command, with the web API on a free port; ``url`` is the printed one.

    The first-use download of the front end is off unless ``fetch_frontend`` (then it comes
    from the index in ``PIP_INDEX_URL``, see tests/api/test_web_frontend.py).
    """

    def __init__(
        self, tmp: Path, *args: str, fetch_frontend: bool = False, python: str = sys.executable,
        wrapper: tuple[str, ...] = (),
    ) -> None:
        self.web_port = free_port()
        fetch = ["--set", f"web_fetch_frontend={str(fetch_frontend).lower()}"]
        super().__init__(["--no-web-open-browser", "--web-port", str(self.web_port), *fetch, *args], tmp,
                         module="proxycore.tools.web", python=python, wrapper=wrapper)
        deadline = time.monotonic() + 20
        while not (found := re.search(r"Web server listening at (\S+)", self.stderr())):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"proxyweb did not start:\n{self.stderr()}")
            time.sleep(0.05)
        self.web_url = found.group(1)


def curl(proxy: Proxy, *args: str, timeout: float = 20) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "15", "-x", proxy.url, *args],
        capture_output=True,
        timeout=timeout,
    )


def proxydump(
    *args: str, stdin: bytes | None = None, cwd: Path | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m proxycore ARGS`` to its end: exit status, stdout and stderr as text."""
    result = subprocess.run(
        [sys.executable, "-m", "proxycore", *args], capture_output=True, input=stdin, cwd=cwd, timeout=timeout
    )
    return subprocess.CompletedProcess(result.args, result.returncode, result.stdout.decode(), result.stderr.decode())


def assert_clean_failure(r: subprocess.CompletedProcess[str], *needles: str) -> None:
    """Non-zero exit, no traceback, and the error named on one stderr line."""
    assert r.returncode != 0, (r.stdout, r.stderr)
    assert "Traceback" not in r.stderr, r.stderr
    lines = [line for line in r.stderr.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, r.stderr


def start_proxydump(*args: str) -> subprocess.Popen[bytes]:
    """``python -m proxycore ARGS`` left running, stdout and stderr piped (see ``Proxy``)."""
    return subprocess.Popen([sys.executable, "-m", "proxycore", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def wait_listening(proc: subprocess.Popen[bytes], port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            assert proc.stderr is not None
            raise AssertionError(f"exited early with {proc.returncode}: {proc.stderr.read()!r}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.02)
    raise AssertionError("proxy did not start listening")


def connect_tunnel(proxy: Proxy, host: str, port: int, timeout: float = 10) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=timeout)
    sock.sendall(f"CONNECT {host}:{port} HTTP/1.1\r\nHost: {host}:{port}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        assert chunk, f"proxy closed during CONNECT: {head!r}"
        head += chunk
    assert head.startswith(b"HTTP/1.1 200"), head
    return sock


def peak_rss_mb(proxy: Proxy) -> float:
    """The proxy process's peak resident set size (VmHWM), in MiB."""
    for line in Path(f"/proc/{proxy.proc.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM in /proc status")


_CONNECTION_LINE = re.compile(r"\] (client|server) (connect|disconnect)\b")


def lines_besides_connections(log: str) -> list[str]:
    """The lines of a proxy's output without each connection's own connect/disconnect lines
    (one per event at the default level): what a test that bounds log noise counts."""
    return [line for line in log.splitlines() if not _CONNECTION_LINE.search(line)]
