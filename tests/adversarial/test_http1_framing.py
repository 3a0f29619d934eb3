"""HTTP/1 framing attacks (issue 18, items 1, 7, 8, 9): whatever the framing trick, the proxy
answers 400 (a bad request) or 502 (a bad response), and the origin never receives a second,
smuggled request; the client never receives a smuggled response or header."""

from __future__ import annotations

import socket
import time

import pytest

from tests.adversarial.harness import RecordingOrigin, answer, status_of


def send_raw(port: int, data: bytes, timeout: float = 5) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.sendall(data)
    return sock


def read_all(sock: socket.socket, timeout: float = 2) -> bytes:
    """Everything the proxy sends until it closes (or goes quiet for ``timeout`` seconds)."""
    sock.settimeout(timeout)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return data


@pytest.fixture
def origin():
    server = RecordingOrigin()
    yield server
    server.close()


def test_bare_lf_smuggling_in_a_request_head(attack, origin):
    attack.proxy()
    authority = f"127.0.0.1:{origin.port}"
    smuggled = f"GET /SMUGGLED HTTP/1.1\r\nHost: {authority}\r\n\r\n".encode()
    statuses = []
    for head in (
        # The request: a bare LF ends "X-A: a" for a lenient origin, which then
        # sees Content-Length: 0 first and reads the body as a second request.
        f"POST http://{authority}/innocent HTTP/1.1\r\nHost: {authority}\r\nX-A: a\nContent-Length: 0\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n",
        # A bare CR, and a NUL, inside a value.
        f"POST http://{authority}/innocent HTTP/1.1\r\nHost: {authority}\r\nX-A: a\rContent-Length: 0\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n",
        f"POST http://{authority}/innocent HTTP/1.1\r\nHost: {authority}\r\nX-A: a\x00b\r\n"
        f"Content-Length: {len(smuggled)}\r\n\r\n",
    ):
        with send_raw(attack.proxies[0].port, head.encode() + smuggled) as sock:
            statuses.append(answer(sock))
    assert statuses == [400, 400, 400]
    assert b"SMUGGLED" not in origin.received()
    assert origin.received() == b""  # refused requests reach no one
    attack.outcome = f"{statuses}; origin saw {len(origin.heads)} requests, none smuggled"
    attack.check()


def test_bare_lf_hides_a_header_in_a_response_head(attack):
    evil = RecordingOrigin(
        b"HTTP/1.1 200 OK\r\nX-A: a\nSet-Cookie: evil=1\r\nContent-Length: 2\r\n\r\nok"
    )
    try:
        proxy = attack.proxy()
        with send_raw(proxy.port, f"GET http://127.0.0.1:{evil.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()) as sock:
            seen = read_all(sock)
    finally:
        evil.close()
    assert seen.startswith(b"HTTP/1.1 502 "), seen[:200]
    head = seen.partition(b"\r\n\r\n")[0].lower()
    assert b"set-cookie" not in head and b"evil" not in head  # (the error page may quote the line)
    attack.outcome = "502; the hidden Set-Cookie never reached the client"
    attack.check()


def test_nul_and_bad_idna_hosts(attack, origin):
    proxy = attack.proxy()
    port = origin.port
    attempts = {
        "CONNECT NUL": f"CONNECT a\x00b.example:{port} HTTP/1.1\r\nHost: a\x00b.example:{port}\r\n\r\n",
        "absolute NUL": f"GET http://a\x00b.example:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "CONNECT bad IDNA": f"CONNECT xn--a.example:{port} HTTP/1.1\r\nHost: xn--a.example:{port}\r\n\r\n",
        "absolute bad IDNA": f"GET http://xn--a.example:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "absolute non-ASCII": f"GET http://\u00e4\u200d.example:{port}/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "Host NUL": f"GET / HTTP/1.1\r\nHost: a\x00b.example:{port}\r\n\r\n",
    }
    results = {}
    for what, request in attempts.items():
        started = time.monotonic()
        with send_raw(proxy.port, request.encode("utf-8")) as sock:
            try:
                status: int | str | None = answer(sock, timeout=3)
            except TimeoutError:
                status = "no answer"
            results[what] = (status, round(time.monotonic() - started, 2))
    assert all(status in (400, 502) for status, _ in results.values()), results
    assert all(seconds < 2 for _, seconds in results.values()), results
    assert not origin.connections
    attack.outcome = "; ".join(f"{what}: {status}" for what, (status, _) in results.items())
    attack.check()


def test_unicode_digits_and_odd_chunk_sizes(attack, origin):
    proxy = attack.proxy()
    authority = f"127.0.0.1:{origin.port}"
    smuggled = f"GET /SMUGGLED HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    requests = {
        "Content-Length: \u00b2": f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nContent-Length: \u00b2\r\n\r\nab",
        "Content-Length: \u0661\u0660": f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nContent-Length: \u0661\u0660\r\n\r\n0123456789",
        "port \u00b2 in the URL": "GET http://127.0.0.1:8\u00b2/ HTTP/1.1\r\nHost: x\r\n\r\n",
        "port \u00b2 in Host": "GET / HTTP/1.1\r\nHost: 127.0.0.1:8\u00b2\r\n\r\n",
        "chunk size 1_0": f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"1_0\r\n0123456789abcdef\r\n0\r\n\r\n{smuggled}",
        "chunk size +5": f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"+5\r\nhello\r\n0\r\n\r\n{smuggled}",
        "chunk size 0x5": f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: chunked\r\n\r\n"
        f"0x5\r\nhello\r\n0\r\n\r\n{smuggled}",
    }
    results = {}
    for what, request in requests.items():
        with send_raw(proxy.port, request.encode("utf-8")) as sock:
            results[what] = answer(sock)
    assert all(status == 400 for status in results.values()), results
    assert b"SMUGGLED" not in origin.received()
    # The same tricks in responses: 502, and the client gets nothing of the bad response.
    responses = {
        "Content-Length: \u00b2": "HTTP/1.1 200 OK\r\nContent-Length: \u00b2\r\n\r\nab",
        "chunk size 1_0": "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n1_0\r\n0123456789abcdef\r\n0\r\n\r\n",
    }
    for what, response in responses.items():
        bad = RecordingOrigin(response.encode("utf-8"))
        try:
            with send_raw(proxy.port, f"GET http://127.0.0.1:{bad.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()) as sock:
                seen = read_all(sock)
        finally:
            bad.close()
        results[f"response {what}"] = status_of(seen) if seen.startswith(b"HTTP/1.1 ") else None
        assert seen.startswith(b"HTTP/1.1 502 "), (what, seen[:200])
        assert b"0123456789abcdef" not in seen
    attack.outcome = "; ".join(f"{what}: {status}" for what, status in results.items())
    attack.check()


def test_xchunked_transfer_coding(attack, origin):
    proxy = attack.proxy()
    authority = f"127.0.0.1:{origin.port}"
    smuggled = f"GET /SMUGGLED HTTP/1.1\r\nHost: {authority}\r\n\r\n"
    results = {}
    for coding in ("xchunked", "chunked, identity", "chunkedx", "chunked\x0b"):
        request = (
            f"POST http://{authority}/ HTTP/1.1\r\nHost: {authority}\r\nTransfer-Encoding: {coding}\r\n\r\n"
            f"0\r\n\r\n{smuggled}"
        )
        with send_raw(proxy.port, request.encode()) as sock:
            results[f"request {coding!r}"] = answer(sock)
    assert all(status in (400, 501) for status in results.values()), results
    assert b"SMUGGLED" not in origin.received()
    # A response whose coding contains "chunked" but is not chunked: 502, never re-framed
    # into a response the client would read differently.
    sneaky = RecordingOrigin(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n"
        b"HTTP/1.1 200 OK\r\nX-Smuggled: 1\r\nContent-Length: 0\r\n\r\n"
    )
    try:
        with send_raw(proxy.port, f"GET http://127.0.0.1:{sneaky.port}/ HTTP/1.1\r\nHost: x\r\n\r\n".encode()) as sock:
            seen = read_all(sock)
    finally:
        sneaky.close()
    results["response xchunked"] = status_of(seen) if seen.startswith(b"HTTP/1.1 ") else None
    assert seen.startswith(b"HTTP/1.1 502 "), seen[:300]
    assert b"X-Smuggled" not in seen
    attack.outcome = "; ".join(f"{what}: {status}" for what, status in results.items())
    attack.check()
