"""The standard addons end to end: proxydump with their flags, curl, local servers on 127.0.0.1.

anticache, anticomp, modify_headers (-H), modify_body (-B), map_remote (-M), map_local,
stickycookie, stickyauth and block.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e_servers import RecordingHandler, free_port, start_http
from tests.processes import Proxy, proxydump

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    server, port = start_http(handler=RecordingHandler)
    yield port
    server.shutdown()


@pytest.fixture(scope="module")
def site(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("site")
    www = root / "www"
    (www / "css").mkdir(parents=True)
    (www / "index.html").write_text("<h1>local home</h1>")
    (www / "css" / "site.css").write_text("body { color: red }")
    (www / "data.json").write_text('{"local": true}')
    (root / "secret.txt").write_text("must not be served")
    (root / "single.txt").write_text("one file for every URL")
    (root / "header-value").write_text("from a file\n")
    return root


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, upstream, site) -> Iterator[Proxy]:
    dead = free_port()  # nothing listens here: only map_remote can make requests to it work
    p = Proxy(
        [
            "--anticache", "--anticomp",
            "-H", "|~u /hdr|X-Added|yes",
            "-H", "|~u /hdr|User-Agent|",
            "-H", "|~s & ~u /hdr|X-Resp|r",
            "-H", f"|~u /hdrfile|X-From-File|@{site / 'header-value'}",
            "-B", "|~q & ~u /body|secret|public",
            "-B", "|~s & ~u /respbody|curl/|CURL/",
            "-M", f"|~u /remote|127.0.0.1:{dead}|127.0.0.1:{upstream}",
            "--map-local", f"|127.0.0.1:{upstream}/local/|{site / 'www'}",
            "--map-local", f"|example.invalid/one|{site / 'single.txt'}",
        ],
        tmp_path_factory.mktemp("addonproxy"),
    )
    p.dead_port = dead  # type: ignore[attr-defined]
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def curl(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "15", "-x", proxy.url, *args], capture_output=True, timeout=30
    )


def echo(proxy: Proxy, *args: str) -> dict:
    r = curl(proxy, *args)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def test_anticache_and_anticomp(proxy, upstream):
    info = echo(proxy, "--compressed", "-H", 'If-None-Match: "v1"', "-H",
                "If-Modified-Since: Mon, 01 Jan 2024 00:00:00 GMT", f"http://127.0.0.1:{upstream}/get")
    headers = info["headers"]
    assert "if-none-match" not in headers and "if-modified-since" not in headers
    assert headers["accept-encoding"] == "identity"


def test_modify_headers(proxy, upstream):
    r = curl(proxy, "-i", "-A", "curl-agent", f"http://127.0.0.1:{upstream}/hdr")
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    headers = json.loads(body)["headers"]
    assert headers["x-added"] == "yes"
    assert "user-agent" not in headers
    assert b"\r\nX-Resp: r" in head
    other = echo(proxy, f"http://127.0.0.1:{upstream}/get")["headers"]
    assert "x-added" not in other and other["user-agent"].startswith("curl/")


def test_modify_headers_from_file(proxy, upstream):
    headers = echo(proxy, f"http://127.0.0.1:{upstream}/hdrfile")["headers"]
    assert headers["x-from-file"] == "from a file"


def test_modify_body(proxy, upstream):
    info = echo(proxy, "--data-binary", "a secret and another secret", f"http://127.0.0.1:{upstream}/body")
    assert info["body"] == "a public and another public"
    assert info["headers"]["content-length"] == str(len("a public and another public"))
    r = curl(proxy, "-A", "curl/test", f"http://127.0.0.1:{upstream}/respbody")
    assert b'"user-agent": "CURL/test"' in r.stdout
    untouched = echo(proxy, "--data-binary", "secret", f"http://127.0.0.1:{upstream}/post")
    assert untouched["body"] == "secret"


def test_map_remote(proxy, upstream):
    # Without the mapping this would be "connection refused": nothing listens on the dead port.
    info = echo(proxy, f"http://127.0.0.1:{proxy.dead_port}/remote?x=1")
    assert info["path"] == "/remote?x=1"
    assert info["headers"]["host"] == f"127.0.0.1:{upstream}"
    r = curl(proxy, "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{proxy.dead_port}/elsewhere")
    assert r.stdout == b"502"


@pytest.mark.parametrize(
    "path, status, body, content_type",
    [
        ("/local/", 200, b"<h1>local home</h1>", "text/html"),
        ("/local/css/site.css", 200, b"body { color: red }", "text/css"),
        ("/local/data.json?cache=no", 200, b'{"local": true}', "application/json"),
        ("/local/missing.png", 404, b"", None),
    ],
)
def test_map_local_directory(proxy, upstream, path, status, body, content_type):
    marker = f"{path}{'&' if '?' in path else '?'}m={uuid.uuid4().hex}"
    r = curl(proxy, "-i", f"http://127.0.0.1:{upstream}{marker}")
    head, _, content = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(f"HTTP/1.1 {status} ".encode()), head
    assert content == body
    if content_type:
        assert f"\r\nContent-Type: {content_type}".encode() in head
    assert marker not in RecordingHandler.seen


@pytest.mark.parametrize(
    "path",
    ["/local/../secret.txt", "/local/..%2Fsecret.txt", "/local/%2E%2E/secret.txt", "/local/css/../../secret.txt",
     "/local/%2F..%2Fsecret.txt", "/local/css/%2e%2e%2f%2e%2e%2fsecret.txt"],
)
def test_map_local_path_traversal(proxy, upstream, path):
    r = curl(proxy, "--path-as-is", "-i", f"http://127.0.0.1:{upstream}{path}")
    assert b"must not be served" not in r.stdout
    # Not mapped: either the 404 of a rule without a file, or the real server's answer.
    assert r.stdout.startswith(b"HTTP/1.1 404") or b"Server: e2e-upstream" in r.stdout, r.stdout


def test_map_local_single_file_without_contacting_a_server(proxy):
    # example.invalid cannot be resolved: only a locally answered request succeeds.
    r = curl(proxy, "-i", "http://example.invalid/one/two?three")
    assert r.stdout.startswith(b"HTTP/1.1 200 OK")
    assert r.stdout.endswith(b"one file for every URL")


# sticky cookies and auth -----------------------------------------------------------------


@pytest.fixture(scope="module")
def sticky_proxy(tmp_path_factory) -> Iterator[Proxy]:
    p = Proxy(
        ["--stickycookie", "~d 127.0.0.1", "--stickyauth", ".",
         "-H", "|~s & ~u /setcookie|Set-Cookie|sid=42; Path=/; HttpOnly"],
        tmp_path_factory.mktemp("sticky"),
    )
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_stickycookie(sticky_proxy, upstream):
    before = echo(sticky_proxy, f"http://127.0.0.1:{upstream}/get")["headers"]
    assert "cookie" not in before
    r = curl(sticky_proxy, "-i", f"http://127.0.0.1:{upstream}/setcookie")
    assert b"Set-Cookie: sid=42" in r.stdout
    after = echo(sticky_proxy, f"http://127.0.0.1:{upstream}/get")["headers"]
    assert after["cookie"] == "sid=42"
    elsewhere = echo(sticky_proxy, f"http://localhost:{upstream}/get")["headers"]
    assert "cookie" not in elsewhere  # ~d 127.0.0.1 does not match, and it is another domain


def test_stickyauth(sticky_proxy, upstream):
    first = echo(sticky_proxy, "-u", "user:pw", f"http://127.0.0.1:{upstream}/get")["headers"]
    later = echo(sticky_proxy, f"http://127.0.0.1:{upstream}/get")["headers"]
    assert later["authorization"] == first["authorization"] == "Basic dXNlcjpwdw=="
    assert "authorization" not in echo(sticky_proxy, f"http://localhost:{upstream}/get")["headers"]


# block ----------------------------------------------------------------------------------


def local_address() -> str | None:
    """This machine's address on its default route (no packet is sent), if it is not loopback."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.254", 9))
        except OSError:
            return None
        address = s.getsockname()[0]
    return None if address.startswith("127.") else address


@pytest.mark.skipif(local_address() is None, reason="no non-loopback IPv4 address")
@pytest.mark.parametrize("refuse", [False, True])
def test_block(tmp_path, upstream, refuse):
    import ipaddress

    address = local_address()
    assert address is not None
    kind = "global" if ipaddress.ip_address(address).is_global else "private"
    # By default global clients are refused and private ones let in.
    if kind == "private":
        args = ["--set", "block_private=true"] if refuse else []
    else:
        args = [] if refuse else ["--set", "block_global=false"]
    proxy = Proxy(["--listen-host", "0.0.0.0", *args], tmp_path)
    try:
        r = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-x", f"http://{address}:{proxy.port}",
             "-o", "/dev/null", "-w", "%{http_code}", f"http://127.0.0.1:{upstream}/get"],
            capture_output=True, timeout=30,
        )
        from_loopback = subprocess.run(
            ["curl", "-sS", "--max-time", "10", "-x", proxy.url, "-o", "/dev/null", "-w", "%{http_code}",
             f"http://127.0.0.1:{upstream}/get"], capture_output=True, timeout=30,
        )
    finally:
        proxy.stop()
    assert from_loopback.stdout == b"200"  # loopback is never blocked
    line = f"Client connection from {address} killed by block_{kind} option."
    if refuse:
        assert r.returncode != 0 and r.stdout == b"000", r
        assert line in proxy.stderr()
    else:
        assert r.stdout == b"200", r.stderr
        assert "killed by" not in proxy.stderr()


def test_help_lists_the_addon_flags():
    out = proxydump("--help").stdout
    for flag in ("--proxyauth", "--anticache", "--anticomp", "--stickycookie", "--stickyauth",
                 "--map-remote", "--map-local", "--modify-body", "--modify-headers", "-H PATTERN", "-B PATTERN",
                 "-M PATTERN"):
        assert flag in out, flag


@pytest.mark.parametrize(
    "args, needle",
    [
        (["-H", "/only-a-name"], "Cannot parse modify_headers option /only-a-name"),
        (["-B", "/[/x"], "Cannot parse modify_body option"),
        (["-M", "/(/x"], "Cannot parse map_remote option"),
        (["--map-local", "|x|/no/such/dir"], "Cannot parse map_local option"),
        (["--stickycookie", "~~"], "Invalid filter expression"),
        (["--stickyauth", "("], "Invalid filter expression"),
    ],
)
def test_bad_flags_exit_with_one_line(args, needle):
    from tests.processes import assert_clean_failure

    assert_clean_failure(proxydump("-p", "0", *args), "proxydump: error:", needle)
