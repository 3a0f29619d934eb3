"""Peers that are slow, stall, or never read (issue 18, item 3 and the "Also" list): the
proxy drops what nobody will read, bounds what it buffers, and keeps serving others."""

from __future__ import annotations

import socket
import time

from tests.adversarial.harness import RecordingOrigin, read_head, status_of
from tests.e2e_servers import Origin
from tests.processes import lines_besides_connections


def test_client_fin_during_an_endless_response(attack):
    endless = Origin(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n\r\n", None)
    try:
        proxy = attack.proxy()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        client.sendall(f"GET http://127.0.0.1:{endless.port}/endless HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        head, _ = read_head(client)
        assert status_of(head) == 200
        client.shutdown(socket.SHUT_WR)  # FIN, and never read again
        fin_at = time.monotonic()
        while not endless.closed_at and time.monotonic() - fin_at < 5:
            time.sleep(0.02)
        assert endless.closed_at, "the proxy went on downloading for nobody"
        took = endless.closed_at[0] - fin_at
        assert took < 1.0, took
        time.sleep(1)  # long enough to download gigabytes, had it gone on
        client.close()
    finally:
        endless.close()
    attack.outcome = f"origin closed {took:.2f} s after the FIN; {endless.sent[0] >> 20} MiB had been sent"
    attack.check()


def test_client_that_does_not_read_a_200mb_response(attack):
    size = 200 * 1024 * 1024
    big = Origin(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode(), size)
    try:
        proxy = attack.proxy()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=30)
        client.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)
        client.sendall(f"GET http://127.0.0.1:{big.port}/big HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        time.sleep(3)  # not reading: only backpressure keeps the proxy from taking it all in
        stalled_rss = attack.peak_rss
        head, rest = read_head(client)
        assert f"Content-Length: {size}".encode() in head
        received = len(rest)
        while received < size:
            chunk = client.recv(1 << 20)
            assert chunk, f"response cut short at {received} bytes"
            received += len(chunk)
        client.close()
    finally:
        big.close()
    attack.outcome = f"all {size >> 20} MiB delivered once read; {stalled_rss:.0f} MiB peak while stalled"
    attack.check()


def closed_by_peer(sock: socket.socket) -> bool:
    """True once the peer closed; reads and drops what it sent (sock is non-blocking)."""
    try:
        while True:
            if not sock.recv(65536):
                return True
    except BlockingIOError:
        return False
    except OSError:
        return True


def test_slowloris_request_heads(attack):
    proxy = attack.proxy("--set", "request_head_timeout=2")
    clients: list[socket.socket] = []
    try:
        for i in range(400):
            sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
            sock.sendall(b"GET http://127.0.0.1/ HTTP/1.1\r\n" if i % 2 else b"G")
            sock.setblocking(False)
            clients.append(sock)
        started = time.monotonic()
        still_open = list(clients)
        while still_open and time.monotonic() - started < 8:
            for sock in still_open:
                try:
                    sock.send(b"X: y\r\n")  # a trickle, never the end of the head
                except OSError:
                    pass
            time.sleep(0.25)
            still_open = [s for s in still_open if not closed_by_peer(s)]
        took = time.monotonic() - started
        assert not still_open, f"{len(still_open)} of {len(clients)} slowloris connections open after {took:.0f} s"
    finally:
        for sock in clients:
            sock.close()
    attack.outcome = f"all {len(clients)} closed within {took:.1f} s (request_head_timeout=2)"
    attack.check()


def test_pipelining_flood_behind_a_slow_request(attack):
    """One request the origin answers after 3 s, then as many pipelined requests as the
    proxy takes for 4 s (up to 200 MB): the proxy must neither hold them all nor spin on
    them, and the first answer still arrives."""
    origin = RecordingOrigin(delay=3)
    try:
        proxy = attack.proxy()
        client = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
        target = f"http://127.0.0.1:{origin.port}"
        client.sendall(f"GET {target}/slow HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        pipelined = f"GET {target}/p HTTP/1.1\r\nHost: x\r\n\r\n".encode() * 4096
        sent = 0
        client.settimeout(0.5)
        started = time.monotonic()
        while time.monotonic() - started < 4 and sent < 200 << 20:
            try:
                sent += client.send(pipelined)
            except TimeoutError:
                pass  # the proxy stopped reading
        client.settimeout(10)
        head, _ = read_head(client)
        assert status_of(head) in (200, 413, 400), head
        first = status_of(head)
        client.close()
    finally:
        origin.close()
    attack.outcome = f"first answer {first}; client got {sent >> 20} MiB of pipelined requests out in 4 s"
    attack.check()


def test_file_descriptor_exhaustion(attack, monkeypatch):
    """One client opens server connections until the proxy has no descriptor left; clients
    arriving then wait (the canary too) and are served once descriptors are free again,
    with a line or two in the log instead of one per failed accept()."""
    import os

    monkeypatch.setenv("PROXYCORE_TEST_NOFILE", "128")
    origins = [Origin(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n", 2) for _ in range(130)]
    proxy = attack.proxy(module="tests.fd_limited_proxydump", canary_timeout=20)
    hungry = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    waiting: list[socket.socket] = []

    def open_fds() -> int:
        return len(os.listdir(f"/proc/{proxy.proc.pid}/fd"))

    try:
        for origin in origins:
            if open_fds() >= 127:
                break
            hungry.sendall(f"GET http://127.0.0.1:{origin.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            head, rest = read_head(hungry)
            assert status_of(head) == 200
            while len(rest) < 2:
                rest += hungry.recv(65536)
        assert open_fds() >= 127, "the proxy never ran out of descriptors: the attack did not happen"
        waiting = [socket.create_connection(("127.0.0.1", proxy.port), timeout=5) for _ in range(20)]
        time.sleep(2.5)  # accept() fails all this while
        hungry.close()
        answers = []
        for sock in waiting:
            sock.settimeout(10)
            sock.sendall(f"GET http://127.0.0.1:{origins[0].port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode())
            answers.append(status_of(read_head(sock)[0]))
        assert answers == [200] * len(waiting)
    finally:
        hungry.close()
        for sock in waiting:
            sock.close()
        for origin in origins:
            origin.close()
    log = proxy.stdout() + proxy.stderr()
    assert log.count("Cannot accept connections") <= 2
    other = lines_besides_connections(log)  # flows and little else
    assert len(other) < 400, f"{len(other)} log lines"
    attack.outcome = f"20 waiting clients served after; {len(other)} log lines besides connection lines"
    attack.check()

