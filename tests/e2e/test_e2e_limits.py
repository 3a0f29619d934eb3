"""End-to-end checks of the per-connection limits (docs/hardening.md) with real peers.

A real proxydump process, real Python ``ssl``/socket clients and curl, real
origin servers on 127.0.0.1.
"""

from __future__ import annotations

import os
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509

from tests.e2e_servers import Origin, start_http
from tests.processes import Proxy, connect_tunnel, lines_besides_connections, peak_rss_mb

pytestmark = [pytest.mark.e2e]

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")


# TLS certificate cache ------------------------------------------------------------------


def test_many_snis_through_one_origin_each_get_their_own_certificate(tmp_path, tls_upstream):
    """More SNIs than the cert store holds (100): every handshake gets a leaf for its name."""
    proxy = Proxy(["--set", "ssl_insecure=true"], tmp_path)
    try:
        client_context = ssl.create_default_context(cafile=proxy.ca)
        client_context.check_hostname = False  # we check the names ourselves, below
        wrong = []
        for i in range(150):
            sni = f"site{i}.sni.test"
            with connect_tunnel(proxy, "127.0.0.1", tls_upstream) as raw:
                with client_context.wrap_socket(raw, server_hostname=sni) as tls:
                    der = tls.getpeercert(binary_form=True)
            assert der is not None
            cert = x509.load_der_x509_certificate(der)
            san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            if sni not in san.get_values_for_type(x509.DNSName):
                wrong.append(sni)
        assert not wrong, f"{len(wrong)} handshakes got another name's certificate: {wrong[:5]}"
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


# Helpers for the HTTP items ------------------------------------------------------------------


needs_proc = pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")


def read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response head: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


# A client FIN while the response is arriving ------------------------------------------------


@needs_proc
@pytest.mark.parametrize("how", ["shutdown", "close"])
def test_client_fin_during_an_endless_response_closes_the_origin(tmp_path, how):
    origin = Origin(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", None)
    proxy = Proxy([], tmp_path)
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(f"GET http://127.0.0.1:{origin.port}/endless HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, _ = read_head(client)  # arrives once body_buffer_limit turned buffering into streaming
        assert head.startswith(b"HTTP/1.1 200")
        fin_at = time.monotonic()
        if how == "shutdown":
            client.shutdown(socket.SHUT_WR)  # FIN, but never reads again
        else:
            client.close()
        deadline = fin_at + 5
        while not origin.closed_at and time.monotonic() < deadline:
            time.sleep(0.02)
        assert origin.closed_at, "the proxy kept the origin connection open"
        assert origin.closed_at[0] - fin_at < 1.0
        time.sleep(0.5)
        assert peak_rss_mb(proxy) < 250, f"peak RSS {peak_rss_mb(proxy):.0f} MiB"
        client.close()
    finally:
        assert proxy.stop() == 0
        origin.close()
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@needs_proc
def test_a_client_that_does_not_read_a_200mb_response_does_not_grow_the_proxy(tmp_path):
    size = 200 * 1024 * 1024
    origin = Origin(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode(), size)
    proxy = Proxy([], tmp_path)
    try:
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.sendall(f"GET http://127.0.0.1:{origin.port}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(2)  # not reading: only backpressure keeps the proxy from buffering it all
        assert peak_rss_mb(proxy) < 250, f"peak RSS {peak_rss_mb(proxy):.0f} MiB"
        head, rest = read_head(client)
        assert f"Content-Length: {size}".encode() in head
        received = len(rest)
        while received < size:
            chunk = client.recv(1 << 20)
            assert chunk, f"response cut short at {received} bytes"
            received += len(chunk)
        assert received == size
        assert peak_rss_mb(proxy) < 250, f"peak RSS {peak_rss_mb(proxy):.0f} MiB"
        client.close()
    finally:
        assert proxy.stop() == 0
        origin.close()


# Proxy authentication answers before the body --------------------------------------------


@pytest.fixture
def auth_proxy(tmp_path) -> Iterator[Proxy]:
    proxy = Proxy(["--proxyauth", "alice:s3cret"], tmp_path)
    yield proxy
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@needs_proc
@needs_curl
def test_a_200mb_post_without_credentials_gets_407_at_once(auth_proxy, tmp_path):
    origin = Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0)
    upload = tmp_path / "upload.bin"
    with upload.open("wb") as f:
        f.truncate(200 * 1024 * 1024)  # sparse: costs no disk
    try:
        started = time.monotonic()
        result = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "--max-time", "20",
             "-x", auth_proxy.url, "-X", "POST", "-T", str(upload), f"http://127.0.0.1:{origin.port}/post"],
            capture_output=True,
            timeout=30,
        )
        elapsed = time.monotonic() - started
    finally:
        origin.close()
    assert result.stdout == b"407", result
    assert elapsed < 3, f"407 took {elapsed:.1f} s"
    assert not origin.sent, "the refused request reached the origin"
    assert peak_rss_mb(auth_proxy) < 200, f"peak RSS {peak_rss_mb(auth_proxy):.0f} MiB"


@needs_proc
def test_a_client_that_sends_the_body_anyway_reads_the_407_and_nothing_is_buffered(auth_proxy):
    origin = Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n", 0)
    size = 200 * 1024 * 1024
    client = socket.create_connection(("127.0.0.1", auth_proxy.port), timeout=10)
    client.sendall(
        f"POST http://127.0.0.1:{origin.port}/post HTTP/1.1\r\nHost: x\r\nContent-Length: {size}\r\n\r\n".encode()
    )
    stop = threading.Event()

    def upload() -> None:
        chunk = b"y" * 65536
        try:
            for _ in range(size // len(chunk)):
                if stop.is_set():
                    return
                client.sendall(chunk)
        except OSError:
            pass

    sender = threading.Thread(target=upload, daemon=True)
    sender.start()
    try:
        head, _ = read_head(client)
        assert head.startswith(b"HTTP/1.1 407 ")
        assert b"100 Continue" not in head
    finally:
        stop.set()
        sender.join(10)
        client.close()
        origin.close()
    assert not origin.sent
    assert peak_rss_mb(auth_proxy) < 200, f"peak RSS {peak_rss_mb(auth_proxy):.0f} MiB"


# Slowloris: request_head_timeout and keepalive_timeout ---------------------------------------


@pytest.fixture(scope="module")
def plain_upstream() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the peer closed (EOF or reset); reads and drops whatever it sent."""
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_connections_are_closed_after_request_head_timeout(tmp_path, plain_upstream):
    proxy = Proxy(["--set", "request_head_timeout=2"], tmp_path)
    clients: list[socket.socket] = []
    try:
        for _ in range(200):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            sock.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\n")
            sock.setblocking(False)
            clients.append(sock)
        started = time.monotonic()
        open_ = list(clients)
        while open_ and time.monotonic() - started < 6:
            for sock in open_:
                try:
                    sock.send(b"X: y\r\n")  # a trickle, never the end of the head
                except OSError:
                    pass
            time.sleep(0.25)
            open_ = [s for s in open_ if not closed_by_peer(s)]
        assert not open_, f"{len(open_)} slowloris connections still open after 6 s"
        assert time.monotonic() - started > 1.0  # not closed before their time
        # The proxy serves as before.
        ok = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-x", proxy.url,
             f"http://127.0.0.1:{plain_upstream}/get"],
            capture_output=True, timeout=20,
        )
        assert ok.stdout == b"200", ok
    finally:
        for sock in clients:
            sock.close()
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(tmp_path, plain_upstream):
    proxy = Proxy(["--set", "keepalive_timeout=1"], tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
            sock.sendall(f"GET http://127.0.0.1:{plain_upstream}/get HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, rest = read_head(sock)
            assert head.startswith(b"HTTP/1.1 200")
            started = time.monotonic()
            while sock.recv(65536):
                pass  # the rest of the body, then EOF when the proxy gives up on us
            idle = time.monotonic() - started
        assert 0.8 < idle < 4, idle
    finally:
        assert proxy.stop() == 0


# Connection limit and running out of file descriptors ----------------------------------------


def fd_limited_proxy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nofile: int | str, *args: str) -> Proxy:
    monkeypatch.setenv("PROXYCORE_TEST_NOFILE", str(nofile))
    return Proxy(list(args), tmp_path, module="tests.fd_limited_proxydump")


def connect_status(sock: socket.socket, port: int, timeout: float) -> bytes | None:
    """Send CONNECT and return the status line, or None if nothing came within ``timeout``."""
    sock.settimeout(timeout)
    try:
        sock.sendall(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, _ = read_head(sock)
    except TimeoutError:
        return None
    return head.split(b"\r\n", 1)[0]


def test_over_the_connection_limit_clients_wait_and_are_served_later(tmp_path, monkeypatch, plain_upstream):
    proxy = fd_limited_proxy(tmp_path, monkeypatch, 1024, "--set", "max_connections=10")
    first = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(10)]
    try:
        for sock in first:
            assert connect_status(sock, plain_upstream, 5) == b"HTTP/1.1 200 Connection established"
        waiting = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(5)]
        assert all(connect_status(sock, plain_upstream, 0.3) is None for sock in waiting)
        for sock in first:
            sock.close()
        for sock in waiting:
            sock.settimeout(5)
            head, _ = read_head(sock)
            assert head.startswith(b"HTTP/1.1 200 Connection established")
            sock.close()
    finally:
        for sock in first:
            sock.close()
        assert proxy.stop() == 0
    log = proxy.stdout() + proxy.stderr()
    assert "Traceback" not in log
    # Each close let a waiting client in and the limit was hit again: one warning, not one
    # per refill (at most one per LIMIT_WARNING_INTERVAL).
    assert log.count("new connections wait until some close") == 1


def open_fds(proxy: Proxy) -> int:
    return len(os.listdir(f"/proc/{proxy.proc.pid}/fd"))


@needs_proc
def test_out_of_file_descriptors_logs_one_line_and_recovers(tmp_path, monkeypatch):
    # One client keeps a server connection open to each of many origins, until the proxy
    # has almost no descriptor left; the clients that come next find accept() failing.
    origins = [Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 2) for _ in range(130)]
    nofile = 128
    proxy = fd_limited_proxy(tmp_path, monkeypatch, nofile)
    hungry = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    others: list[socket.socket] = []
    try:
        for origin in origins:
            if open_fds(proxy) >= nofile - 1:
                break
            hungry.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, rest = read_head(hungry)
            assert head.startswith(b"HTTP/1.1 200"), head
            while len(rest) < 2:
                rest += hungry.recv(65536)
        assert open_fds(proxy) >= nofile - 1, "the proxy never ran short of descriptors: test is void"
        for _ in range(20):
            others.append(socket.create_connection(("127.0.0.1", proxy.port), timeout=5))
        time.sleep(2.5)  # accept() fails all this time
        assert "Cannot accept connections" in proxy.stdout() + proxy.stderr()
        hungry.close()  # frees a server descriptor per origin
        answers = [connect_status(sock, origins[0].port, 10) for sock in others]
        assert None not in answers, answers  # every waiting client was taken in
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as fresh:
            assert connect_status(fresh, origins[0].port, 5) == b"HTTP/1.1 200 Connection established"
    finally:
        hungry.close()
        for sock in others:
            sock.close()
        assert proxy.stop() == 0
        for origin in origins:
            origin.close()
    log = proxy.stdout() + proxy.stderr()
    assert "Traceback" not in log and "socket.accept() out of system resource" not in log
    assert log.count("Cannot accept connections") <= 2, log[-3000:]
    other = lines_besides_connections(log)  # flows and little else
    assert len(other) < 400, f"{len(other)} log lines"


# WebSocket message size limit ---------------------------------------------------------------


def test_a_websocket_message_over_the_limit_closes_both_sides_with_1009(tmp_path):
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve
    from websockets.exceptions import ConnectionClosed

    proxy = Proxy(["--set", "websocket_message_size_limit=64k"], tmp_path)
    server_saw: list[int | None] = []

    async def handler(ws) -> None:
        try:
            async for message in ws:
                await ws.send(message)
        except ConnectionClosed:
            pass
        server_saw.append(ws.close_code)

    async def main() -> int | None:
        async with serve(handler, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, max_size=None) as ws:
                await ws.send(b"small")
                assert await ws.recv() == b"small"
                await ws.send(b"x" * 200_000)
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                code = ws.close_code
            for _ in range(50):
                if server_saw:
                    break
                await asyncio.sleep(0.05)
            return code

    try:
        client_code = asyncio.run(asyncio.wait_for(main(), 30))
    finally:
        assert proxy.stop() == 0
    assert client_code == 1009
    assert server_saw == [1009]
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


# SOCKS5 username/password version byte -------------------------------------------------------


@pytest.mark.parametrize("version, accepted", [(0x01, True), (0x05, False)])
def test_socks5_auth_subnegotiation_version_is_checked(tmp_path, plain_upstream, version, accepted):
    proxy = Proxy(["--mode", "socks5", "--proxyauth", "user:pass"], tmp_path)
    try:
        with socket.create_connection(("127.0.0.1", proxy.port), timeout=5) as sock:
            sock.sendall(b"\x05\x01\x02")
            assert sock.recv(2) == b"\x05\x02"
            sock.sendall(bytes([version]) + b"\x04user\x04pass")
            answer = sock.recv(2)
            if accepted:
                assert answer == b"\x01\x00"
                sock.sendall(b"\x05\x01\x00\x01\x7f\x00\x00\x01" + plain_upstream.to_bytes(2, "big"))
                assert sock.recv(10)[:2] == b"\x05\x00"
            else:
                assert answer == b""  # closed without a word
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@needs_proc
def test_the_soft_fd_limit_is_raised_to_the_hard_one(tmp_path, monkeypatch):
    proxy = fd_limited_proxy(tmp_path, monkeypatch, "256:4096")
    try:
        limits = Path(f"/proc/{proxy.proc.pid}/limits").read_text()
        line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
        assert line.split()[3:5] == ["4096", "4096"], line
    finally:
        assert proxy.stop() == 0
