"""The driver's basics on each event loop the proxy runs on (proxycore/utils/eventloop.py).

The rest of the suite starts its proxy processes on the default loop (uvloop where it is
installed); this module runs the same proxy on asyncio's loop too, so that neither loop's
transports (uvloop's are no asyncio.Transport subclasses) can break the driver unnoticed:
keep-alive, a connection per request, flow control toward a slow reader, TLS interception
through CONNECT, UDP datagrams, and workers sharing the listening socket.
"""

from __future__ import annotations

import http.client
import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.utils import eventloop
from tests.e2e_servers import free_port, udp_echo_server
from tests.processes import Proxy

pytestmark = pytest.mark.e2e

LOOPS = ["uvloop", "asyncio"]

# A script addon that writes which loop the proxy process really runs on, and how many
# objects the start-up left frozen (Master.run(freeze_heap=True)) when a request comes.
REPORT_SCRIPT = """
import asyncio, gc, os

def running():
    with open(os.environ["LOOP_REPORT"], "w") as f:
        f.write(type(asyncio.get_running_loop()).__module__)

def request(flow):
    with open(os.environ["LOOP_REPORT"] + ".frozen", "w") as f:
        f.write(str(gc.get_freeze_count()))
"""


def _require(loop: str) -> None:
    if loop == "uvloop" and importlib.util.find_spec("uvloop") is None:
        if sys.platform == "win32":
            pytest.skip("uvloop does not exist on Windows")
        pytest.fail("uvloop is a dependency on this platform (pyproject.toml) but is not installed")


@pytest.fixture(scope="module")
def udp_echo() -> Iterator[int]:
    with udp_echo_server() as port:
        yield port


class LoopProxy(Proxy):
    loop: str
    udp_port: int
    report: Path


@pytest.fixture(scope="module", params=LOOPS)
def proxy(request, tmp_path_factory, udp_echo) -> Iterator[LoopProxy]:
    loop = request.param
    _require(loop)
    tmp = tmp_path_factory.mktemp(loop)
    script = tmp / "loop_report.py"
    script.write_text(REPORT_SCRIPT)
    report = tmp / "loop.txt"
    udp_port = free_port()
    p = LoopProxy(
        ["--mode", "regular", "--mode", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}",
         "-s", str(script), "--set", "ssl_insecure=true", "--set", "flow_detail=0"],
        tmp,
        env={eventloop.ENV: loop, "LOOP_REPORT": str(report)},
    )
    p.loop, p.udp_port, p.report = loop, udp_port, report
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def _wait_for(path: Path, timeout: float = 10) -> str:
    deadline = time.monotonic() + timeout
    while not (path.exists() and path.read_text()):
        assert time.monotonic() < deadline, f"{path} not written"
        time.sleep(0.05)
    return path.read_text()


def test_the_proxy_runs_on_the_loop_asked_for(proxy: LoopProxy):
    module = _wait_for(proxy.report)
    assert module.split(".")[0] == proxy.loop, module


def test_the_start_up_heap_is_frozen_before_the_first_request(proxy: LoopProxy, upstream: int):
    """A full collection walks only what the proxy made since it started (master.py)."""
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    conn.request("GET", f"http://127.0.0.1:{upstream}/get")
    assert conn.getresponse().status == 200
    conn.close()
    assert int(_wait_for(Path(f"{proxy.report}.frozen"))) > 10_000


def test_keep_alive_requests_share_one_client_connection(proxy: LoopProxy, upstream: int):
    conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
    try:
        for i in range(5):
            body = b"n=%d" % i
            conn.request("POST", f"http://127.0.0.1:{upstream}/post", body=body)
            response = conn.getresponse()
            assert response.status == 200
            assert json.loads(response.read())["body"] == body.decode()
        assert conn.sock is not None  # never reconnected: http.client would have
    finally:
        conn.close()


def test_a_new_connection_per_request(proxy: LoopProxy, upstream: int):
    for _ in range(5):
        conn = http.client.HTTPConnection("127.0.0.1", proxy.port, timeout=10)
        conn.request("GET", f"http://127.0.0.1:{upstream}/get", headers={"Connection": "close"})
        response = conn.getresponse()
        assert response.status == 200 and json.loads(response.read())["path"] == "/get"
        assert conn.sock is not None and conn.sock.recv(1) == b""  # the proxy closed it
        conn.close()


def test_a_large_response_to_a_slow_reader_arrives_whole(proxy: LoopProxy, upstream: int):
    """8 MB that the client does not read at first: the proxy's write buffer toward it fills,
    pause_writing stops the reading from the origin, resume_writing starts it again."""
    size = 8_000_000
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16384)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", proxy.port))
    try:
        sock.sendall(f"GET http://127.0.0.1:{upstream}/big/{size} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(0.5)  # the proxy meets a full socket and buffers up to its high-water mark
        received = bytearray()
        while b"\r\n\r\n" not in received:
            received += sock.recv(65536)
        head, _, body = bytes(received).partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 200") and f"content-length: {size}".encode() in head.lower()
        got = len(body)
        while got < size:
            chunk = sock.recv(1 << 20)
            assert chunk, f"closed after {got} of {size} bytes"
            got += len(chunk)
        assert got == size
    finally:
        sock.close()


def test_https_through_connect_is_intercepted(proxy: LoopProxy, tls_upstream: int):
    out = subprocess.run(
        ["curl", "-sS", "--max-time", "15", "--cacert", proxy.ca, "-x", proxy.url,
         f"https://127.0.0.1:{tls_upstream}/get?x=1", f"https://127.0.0.1:{tls_upstream}/get?x=2"],
        capture_output=True, timeout=30,
    )
    assert out.returncode == 0, out.stderr
    answers = out.stdout.replace(b"}{", b"}\n{").splitlines()
    assert [json.loads(a)["path"] for a in answers] == ["/get?x=1", "/get?x=2"]


def test_udp_datagrams_both_ways(proxy: LoopProxy):
    deadline = time.monotonic() + 10
    while f":{proxy.udp_port}" not in proxy.stderr():  # the UDP listener may start after the TCP one
        assert time.monotonic() < deadline, proxy.stderr()
        time.sleep(0.05)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
        client.settimeout(5)
        replies = []
        for word in (b"one", b"two"):
            client.sendto(word, ("127.0.0.1", proxy.udp_port))
            replies.append(client.recvfrom(65535)[0])
    assert replies == [b"echo: one", b"echo: two"]


@pytest.mark.parametrize("loop", LOOPS)
def test_workers_share_the_port(loop: str, tmp_path: Path, upstream: int):
    """Two worker processes on one accept queue (their own loop's accept path and the
    add_reader wait of proxycore/workers/balance.py's gate)."""
    _require(loop)
    p = Proxy(["--workers", "2", "--set", "flow_detail=0"], tmp_path, env={eventloop.ENV: loop})
    try:
        for _ in range(6):
            conn = http.client.HTTPConnection("127.0.0.1", p.port, timeout=10)
            conn.request("GET", f"http://127.0.0.1:{upstream}/get", headers={"Connection": "close"})
            response = conn.getresponse()
            assert response.status == 200, response.read()
            response.read()
            conn.close()
    finally:
        assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


@pytest.mark.parametrize(
    ("value", "expected"),
    [("", "uvloop"), ("uvloop", "uvloop"), ("asyncio", "asyncio"), (" AsyncIO ", "asyncio")],
)
def test_choice(monkeypatch, value: str, expected: str):
    _require("uvloop")
    monkeypatch.setenv(eventloop.ENV, value)
    assert eventloop.choose() == (expected, None)


def test_an_unknown_loop_falls_back_to_the_default_and_says_so(monkeypatch):
    _require("uvloop")
    monkeypatch.setenv(eventloop.ENV, "trio")
    name, warning = eventloop.choose()
    assert name == "uvloop" and warning is not None and "'trio' is not known" in warning


def test_uvloop_asked_for_but_missing_runs_asyncio_and_says_so(monkeypatch):
    monkeypatch.setenv(eventloop.ENV, "uvloop")
    monkeypatch.setattr(importlib.util, "find_spec", lambda name: None)
    assert eventloop.choose() == ("asyncio", f"{eventloop.ENV}=uvloop, but uvloop is not installed: using asyncio's loop")
    monkeypatch.delenv(eventloop.ENV)
    assert eventloop.choose() == ("asyncio", None)  # not asked for: no warning
