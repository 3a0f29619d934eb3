"""Proxy authentication end to end: proxydump --proxyauth, curl and raw sockets, local servers.

Every refused request is also checked at the upstream server: it must never have arrived.
"""

from __future__ import annotations

import base64
import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_servers import RecordingHandler as Recording
from tests.e2e_servers import start_http
from tests.model.test_htpasswd import KNOWN, PASSWORD
from tests.processes import Proxy, assert_clean_failure, proxydump

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

USER, SECRET = "alice", "s3cret"
GOOD = "Basic " + base64.b64encode(f"{USER}:{SECRET}".encode()).decode()
WRONG = "Basic " + base64.b64encode(f"{USER}:nope".encode()).decode()
# Valid base64 followed by junk: a lenient decoder (binascii.a2b_base64) would still read it.
SLOPPY = GOOD + "!!"


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server, port = start_http(handler=Recording)
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def tls_upstream(tmp_path_factory) -> Iterator[int]:
    server, port = start_http(tmp_path_factory.mktemp("tls"), handler=Recording)
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory) -> Iterator[Proxy]:
    # stream_large_bodies: a refused request must not reach the server by being streamed.
    p = Proxy(["-k", "--proxyauth", f"{USER}:{SECRET}", "--set", "stream_large_bodies=1k"],
              tmp_path_factory.mktemp("authproxy"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()
    assert SECRET not in p.stderr() and "nope" not in p.stderr()


def marker() -> str:
    return f"/get?case={uuid.uuid4().hex}"


def curl(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "15", "-x", proxy.url, *args], capture_output=True, timeout=30
    )


def read_response(stream) -> tuple[int, dict[str, str], bytes] | None:  # type: ignore[no-untyped-def]
    """One HTTP/1 response from a socket file, None if the connection ended first."""
    status_line = stream.readline()
    if not status_line:
        return None
    status = int(status_line.split()[1])
    headers: dict[str, str] = {}
    while (line := stream.readline()) not in (b"\r\n", b"\n", b""):
        name, _, value = line.decode("latin-1").partition(":")
        headers[name.strip().lower()] = value.strip()
    if status == 200 and not headers and b"Connection established" in status_line:
        return status, headers, b""
    length = int(headers.get("content-length", "0"))
    return status, headers, stream.read(length)


def exchange(proxy: Proxy, *requests: bytes, count: int | None = None) -> list[tuple[int, dict[str, str], bytes]]:
    """Send raw bytes on one connection, return the responses (``count``, default one per request)
    until the proxy closes the connection."""
    results: list[tuple[int, dict[str, str], bytes]] = []
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        pending = list(requests)
        try:
            while len(results) < (count or len(requests)):
                if pending:
                    sock.sendall(pending.pop(0))
                response = read_response(stream)
                if response is None:
                    break
                results.append(response)
        except ConnectionError:
            pass
    return results


# curl ---------------------------------------------------------------------------------


def test_get_with_credentials_passes_and_header_is_not_forwarded(proxy, upstream):
    path = marker()
    r = curl(proxy, "--proxy-user", f"{USER}:{SECRET}", "-H", "Authorization: Bearer origin",
             f"http://127.0.0.1:{upstream}{path}")
    assert r.returncode == 0, r.stderr
    info = json.loads(r.stdout)
    assert "proxy-authorization" not in info["headers"]
    assert info["headers"]["authorization"] == "Bearer origin"  # the origin's own header stays
    assert path in Recording.seen


@pytest.mark.parametrize("credentials", [None, f"{USER}:nope", f"bob:{SECRET}", f"{USER}:"])
def test_get_without_good_credentials_gets_407(proxy, upstream, credentials):
    path = marker()
    args = ["--proxy-user", credentials] if credentials else []
    r = curl(proxy, *args, "-i", f"http://127.0.0.1:{upstream}{path}")
    assert r.returncode == 0, r.stderr
    head = r.stdout.decode("latin-1")
    assert head.startswith("HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert 'Proxy-Authenticate: Basic realm="mitmproxy"' in head
    assert path not in Recording.seen


def test_https_via_connect_with_credentials(proxy, tls_upstream):
    path = marker()
    r = curl(proxy, "--proxy-user", f"{USER}:{SECRET}", "--cacert", proxy.ca,
             f"https://127.0.0.1:{tls_upstream}{path}")
    assert r.returncode == 0, r.stderr
    assert "proxy-authorization" not in json.loads(r.stdout)["headers"]
    assert path in Recording.seen


@pytest.mark.parametrize("credentials", [None, f"{USER}:nope"])
def test_https_via_connect_without_good_credentials_gets_407(proxy, tls_upstream, credentials):
    path = marker()
    args = ["--proxy-user", credentials] if credentials else []
    r = curl(proxy, *args, "--cacert", proxy.ca, "-w", "%{http_connect}",
             f"https://127.0.0.1:{tls_upstream}{path}")
    assert r.returncode != 0
    assert r.stdout.endswith(b"407")
    assert path not in Recording.seen


def test_failed_attempts_are_logged(proxy, upstream):
    curl(proxy, "--proxy-user", f"{USER}:nope", f"http://127.0.0.1:{upstream}/get")
    assert "Authentication failed for user 'alice'" in proxy.stderr()


# raw requests: shapes that must not get through -------------------------------------------


def bypass_requests(up: int, tls_up: int) -> dict[str, tuple[str, str]]:
    """name -> (request with {path}, what it must get: "407" or "refused" = any non-2xx)."""
    target = f"http://127.0.0.1:{up}{{path}}"
    host = f"Host: 127.0.0.1:{up}\r\n"
    return {
        "http/1.0 absolute-form": (f"GET {target} HTTP/1.0\r\n\r\n", "407"),
        "http/1.0 wrong credentials": (f"GET {target} HTTP/1.0\r\nProxy-Authorization: {WRONG}\r\n\r\n", "407"),
        # (origin form with good credentials is served, as in mitmproxy: the Host header names the target)
        "origin-form without": (f"GET {{path}} HTTP/1.1\r\n{host}\r\n", "407"),
        "https absolute-form": (f"GET https://127.0.0.1:{tls_up}{{path}} HTTP/1.1\r\nHost: 127.0.0.1:{tls_up}\r\n\r\n", "407"),
        "userinfo in the URL": (f"GET http://{USER}:url-password@127.0.0.1:{up}{{path}} HTTP/1.1\r\n{host}\r\n", "refused"),
        "lowercase header, wrong": (f"GET {target} HTTP/1.1\r\n{host}proxy-authorization: {WRONG}\r\n\r\n", "407"),
        "origin Authorization header": (f"GET {target} HTTP/1.1\r\n{host}Authorization: {GOOD}\r\n\r\n", "407"),
        "duplicate good+good": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: {GOOD}\r\nProxy-Authorization: {GOOD}\r\n\r\n", "407"),
        "duplicate good+wrong": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: {GOOD}\r\nproxy-authorization: {WRONG}\r\n\r\n", "407"),
        "duplicate wrong+good": (f"GET {target} HTTP/1.1\r\n{host}PROXY-AUTHORIZATION: {WRONG}\r\nProxy-Authorization: {GOOD}\r\n\r\n", "407"),
        "two credentials in one field": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: {WRONG}, {GOOD}\r\n\r\n", "407"),
        "junk after base64": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: {SLOPPY}\r\n\r\n", "407"),
        "not base64": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: Basic %%%%\r\n\r\n", "407"),
        "no scheme": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: {GOOD[6:]}\r\n\r\n", "407"),
        "other scheme": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: Digest {GOOD[6:]}\r\n\r\n", "407"),
        "empty value": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization:\r\n\r\n", "407"),
        "space before colon": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization : {GOOD}\r\n\r\n", "refused"),
        "folded header": (f"GET {target} HTTP/1.1\r\n{host}Proxy-Authorization: Basic\r\n {GOOD[6:]}\r\n\r\n", "refused"),
        "chunked body": (f"POST {target} HTTP/1.1\r\n{host}Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", "407"),
        "body larger than stream_large_bodies": (
            f"POST {target} HTTP/1.1\r\n{host}Content-Length: 5000\r\n\r\n" + "x" * 5000, "407"),
        "websocket upgrade": (
            f"GET {target} HTTP/1.1\r\n{host}Upgrade: websocket\r\nConnection: Upgrade\r\n"
            "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", "407"),
        "CONNECT": (f"CONNECT 127.0.0.1:{up} HTTP/1.1\r\nHost: 127.0.0.1:{up}\r\n\r\n", "407"),
        "CONNECT wrong credentials": (f"CONNECT 127.0.0.1:{up} HTTP/1.1\r\nProxy-Authorization: {WRONG}\r\n\r\n", "407"),
        "CONNECT http/1.0": (f"CONNECT 127.0.0.1:{up} HTTP/1.0\r\n\r\n", "407"),
        "lowercase connect": (f"connect 127.0.0.1:{up} HTTP/1.1\r\n\r\n", "refused"),
        "CONNECT duplicate credentials": (
            f"CONNECT 127.0.0.1:{up} HTTP/1.1\r\nProxy-Authorization: {WRONG}\r\nProxy-Authorization: {GOOD}\r\n\r\n", "407"),
    }


CASES = list(bypass_requests(1, 2))


@pytest.mark.parametrize("case", CASES)
def test_bypass_shapes_are_refused(proxy, upstream, tls_upstream, case):
    template, expected = bypass_requests(upstream, tls_upstream)[case]
    path = marker()
    request = template.replace("{path}", path).encode("latin-1")
    # After the answer, try the tunnel anyway: a refused CONNECT must not have opened one.
    follow_up = f"GET {path}&again HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n\r\n".encode()
    responses = exchange(proxy, request, follow_up)
    assert responses, "no answer at all"
    status = responses[0][0]
    if expected == "407":
        assert status == 407, responses[0]
        assert responses[0][1]["proxy-authenticate"] == 'Basic realm="mitmproxy"'
    else:
        assert not 200 <= status < 300, responses[0]
    assert all(r[0] != 200 for r in responses), responses
    assert not any(p.startswith(path) for p in Recording.seen), Recording.seen


@pytest.mark.parametrize(
    "header",
    [f"proxy-authorization: {GOOD}", f"PROXY-AUTHORIZATION: {GOOD}", f"Proxy-Authorization: basic {GOOD[6:]}",
     f"Proxy-Authorization:   {GOOD}  "],
)
def test_header_case_and_spacing_still_work(proxy, upstream, header):
    path = marker()
    responses = exchange(proxy, f"GET http://127.0.0.1:{upstream}{path} HTTP/1.0\r\n{header}\r\n\r\n".encode())
    assert responses[0][0] == 200
    assert "proxy-authorization" not in json.loads(responses[0][2])["headers"]


def test_pipelined_requests_are_checked_one_by_one(proxy, upstream):
    good, bad = marker(), marker()
    both = (
        f"GET http://127.0.0.1:{upstream}{good} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n"
        f"Proxy-Authorization: {GOOD}\r\n\r\n"
        f"GET http://127.0.0.1:{upstream}{bad} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n\r\n"
    ).encode()
    responses = exchange(proxy, both, count=2)
    assert [r[0] for r in responses] == [200, 407]
    assert good in Recording.seen and bad not in Recording.seen


def test_keep_alive_connection_is_not_remembered_for_plain_requests(proxy, upstream):
    first, second = marker(), marker()
    responses = exchange(
        proxy,
        f"GET http://127.0.0.1:{upstream}{first} HTTP/1.1\r\nHost: x\r\nProxy-Authorization: {GOOD}\r\n\r\n".encode(),
        f"GET http://127.0.0.1:{upstream}{second} HTTP/1.1\r\nHost: x\r\n\r\n".encode(),
    )
    assert [r[0] for r in responses] == [200, 407]
    assert second not in Recording.seen


def test_authenticated_connect_covers_the_tunnel_only(proxy, upstream):
    inside = marker()
    with socket.create_connection(("127.0.0.1", proxy.port), timeout=10) as sock:
        stream = sock.makefile("rb")
        sock.sendall(f"CONNECT 127.0.0.1:{upstream} HTTP/1.1\r\nProxy-Authorization: {GOOD}\r\n\r\n".encode())
        assert read_response(stream)[0] == 200
        sock.sendall(f"GET {inside} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n\r\n".encode())
        status, _, body = read_response(stream)
        assert status == 200
        assert "proxy-authorization" not in json.loads(body)["headers"]
    assert inside in Recording.seen

    # Another connection (to another host) gets nothing from the first one's CONNECT.
    elsewhere = marker()
    responses = exchange(
        proxy,
        f"CONNECT localhost:{upstream} HTTP/1.1\r\n\r\n".encode(),
        f"GET http://localhost:{upstream}{elsewhere} HTTP/1.1\r\nHost: localhost:{upstream}\r\n\r\n".encode(),
    )
    assert [r[0] for r in responses] == [407, 407]
    assert elsewhere not in Recording.seen


# htpasswd files -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def htpasswd_proxy(tmp_path_factory) -> Iterator[Proxy]:
    tmp = tmp_path_factory.mktemp("htpasswd")
    path = tmp / "users"
    if shutil.which("htpasswd"):
        subprocess.run(["htpasswd", "-c", "-b", "-B", "-C", "4", str(path), "bcrypt-user", "pw one"], check=True)
        subprocess.run(["htpasswd", "-b", "-m", str(path), "md5-user", "pw:two"], check=True)
        subprocess.run(["htpasswd", "-b", "-s", str(path), "sha-user", "pw three"], check=True)
        subprocess.run(["htpasswd", "-b", "-5", str(path), "sha512-user", "pw four"], check=True)
    else:  # the same kinds of entries, written by htpasswd earlier
        path.write_text(
            f"bcrypt-user:{KNOWN['-B -C 4']}\nmd5-user:{KNOWN['-m']}\nsha-user:{KNOWN['-s']}\n"
            f"sha512-user:{KNOWN['-5']}\n"
        )
    p = Proxy(["--proxyauth", f"@{path}"], tmp)
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def htpasswd_users() -> dict[str, str]:
    if shutil.which("htpasswd"):
        return {"bcrypt-user": "pw one", "md5-user": "pw:two", "sha-user": "pw three", "sha512-user": "pw four"}
    return dict.fromkeys(["bcrypt-user", "md5-user", "sha-user", "sha512-user"], PASSWORD)


def test_htpasswd_users(htpasswd_proxy, upstream):
    for user, password in htpasswd_users().items():
        ok = curl(htpasswd_proxy, "--proxy-user", f"{user}:{password}", "-o", "/dev/null", "-w", "%{http_code}",
                  f"http://127.0.0.1:{upstream}/get")
        assert ok.stdout == b"200", (user, ok.stderr)
        bad = curl(htpasswd_proxy, "--proxy-user", f"{user}:{password}x", "-o", "/dev/null", "-w", "%{http_code}",
                   f"http://127.0.0.1:{upstream}/get")
        assert bad.stdout == b"407", user


# bad option values ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, needle",
    [
        ("@/no/such/file", "Could not open htpasswd file: /no/such/file"),
        ("justaword", "Invalid proxyauth specification"),
        ("ldap:localhost:cn=x:pw", "Invalid LDAP specification"),
    ],
)
def test_bad_proxyauth_exits_with_one_line(value, needle):
    r = proxydump("-p", "0", "--proxyauth", value)
    assert_clean_failure(r, "proxydump: error:", needle)


def test_malformed_htpasswd_exits_with_one_line(tmp_path):
    path = tmp_path / "users"
    path.write_text("alice:plain-text-password\n")
    r = proxydump("-p", "0", "--proxyauth", f"@{path}")
    assert_clean_failure(r, "proxydump: error:", "unsupported hash for user 'alice'")


def test_flows_read_from_a_file_are_not_challenged(tmp_path):
    corpus = str(Path(__file__).parents[1] / "data" / "corpus-all.mitm")
    plain = proxydump("-n", "-r", corpus, "--set", f"confdir={tmp_path}")
    with_auth = proxydump("-n", "-r", corpus, "--set", f"confdir={tmp_path}", "--proxyauth", "a:b")
    assert plain.returncode == with_auth.returncode == 0
    assert " << 200 " in plain.stdout
    assert with_auth.stdout == plain.stdout
