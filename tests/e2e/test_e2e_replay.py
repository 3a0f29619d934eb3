"""proxydump end to end: client replay (-C), server replay (-S) and body_size_limit, with
curl and real local servers."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.io import FlowReader, FlowWriter
from tests.addons.test_clientplayback import tflow
from tests.e2e_servers import free_port, start_h2, start_http
from tests.processes import Proxy, proxydump

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


def curl(proxy: Proxy, *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "15", "--cacert", proxy.ca, "-x", proxy.url, *args],
        capture_output=True,
        timeout=30,
    )


def write_flows(path: Path, *flows: object) -> Path:
    with path.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)  # type: ignore[arg-type]
    return path


def read_flows(path: Path) -> list:
    with path.open("rb") as f:
        return list(FlowReader(f).stream())


def wait_exit(proxy: Proxy, timeout: float = 15) -> int:
    deadline = time.monotonic() + timeout
    while proxy.proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proxy.proc.poll() is not None, f"proxydump kept running:\n{proxy.stderr()}"
    return proxy.proc.returncode


# client replay ---------------------------------------------------------------------------


def test_client_replay_prints_replay_flows_and_exits(tmp_path, origin):
    flows = write_flows(
        tmp_path / "flows.mitm",
        tflow(f"http://127.0.0.1:{origin}/get?a=1"),
        tflow(f"http://127.0.0.1:{origin}/post", "POST", b"hello"),
    )
    saved = tmp_path / "replayed.mitm"
    r = proxydump("-n", "-C", str(flows), "-w", str(saved))
    assert r.returncode == 0, r.stderr
    assert re.fullmatch(
        rf"\[replay\]: GET http://127\.0\.0\.1:{origin}/get\?a=1\n +<< 200 OK \d+b\n"
        rf"\[replay\]: POST http://127\.0\.0\.1:{origin}/post\n +<< 200 OK \d+b\n",
        r.stdout,
    ), r.stdout
    assert "Traceback" not in r.stderr
    replayed = read_flows(saved)
    assert [f.is_replay for f in replayed] == ["request", "request"]
    assert json.loads(replayed[1].response.content)["body"] == "hello"


def test_client_replay_goes_on_after_a_refused_connection(tmp_path, origin):
    dead = free_port()
    flows = write_flows(
        tmp_path / "flows.mitm",
        tflow(f"http://127.0.0.1:{dead}/gone"),
        tflow(f"http://127.0.0.1:{origin}/get?next=1"),
    )
    r = proxydump("-n", "-C", str(flows))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"[replay]: GET http://127.0.0.1:{dead}/gone"
    assert lines[1].startswith(" << ") and "Connection refused" in lines[1]
    assert lines[2] == f"[replay]: GET http://127.0.0.1:{origin}/get?next=1"
    assert "<< 200 OK" in lines[3]


def test_client_replay_with_keepserving_keeps_the_proxy_up(tmp_path, origin):
    flows = write_flows(tmp_path / "flows.mitm", tflow(f"http://127.0.0.1:{origin}/get?once=1"))
    p = Proxy(["-C", str(flows), "--keepserving"], tmp_path)
    try:
        p.wait_output("[replay]: GET")
        r = curl(p, f"http://127.0.0.1:{origin}/get?live=1")
        assert r.returncode == 0 and b"/get?live=1" in r.stdout
        assert p.proc.poll() is None
    finally:
        assert p.stop() == 0


def test_client_replay_in_upstream_mode_goes_through_the_upstream_proxy(tmp_path, origin):
    upstream = Proxy([], tmp_path)
    try:
        flows = write_flows(
            tmp_path / "flows.mitm", tflow(f"http://127.0.0.1:{origin}/get?via=upstream")
        )
        saved = tmp_path / "replayed.mitm"
        r = proxydump(
            "-n", "-C", str(flows), "-w", str(saved), "--mode", f"upstream:http://127.0.0.1:{upstream.port}"
        )
        assert r.returncode == 0, r.stderr
        assert "<< 200 OK" in r.stdout
        # The upstream proxy saw (and forwarded) the replayed request.
        upstream.wait_output(f"GET http://127.0.0.1:{origin}/get?via=upstream")
        (replayed,) = read_flows(saved)
        scheme, address = replayed.server_conn.via
        assert (scheme, tuple(address)) == ("http", ("127.0.0.1", upstream.port))
        assert json.loads(replayed.response.content)["path"] == "/get?via=upstream"
    finally:
        assert upstream.stop() == 0


@pytest.mark.parametrize("flag,kind", [("-C", "client"), ("-S", "server")])
def test_missing_replay_file_is_one_clear_error(tmp_path, flag, kind):
    r = proxydump("-n", flag, str(tmp_path / "nope.mitm"))
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        f"proxydump: error: Cannot read {kind} replay file {tmp_path / 'nope.mitm'}: No such file or directory"
    ]
    assert r.stdout == ""


# server replay ---------------------------------------------------------------------------


def test_server_replay_nopop_at_startup_stops_proxydump(tmp_path):
    """As mitmdump 12.3.1: the renamed option is an error, and errors at startup are fatal."""
    flows = write_flows(tmp_path / "flows.mitm", tflow("http://127.0.0.1:9/a"))
    port = free_port()
    r = proxydump("-n", "-p", str(port), "-S", str(flows), "--set", "server_replay_nopop=true", timeout=30)
    assert r.returncode == 1, (r.stdout, r.stderr)
    assert "server_replay_reuse" in r.stderr and "logged during startup" in r.stderr


def test_recorded_responses_are_served_without_the_origin(tmp_path):
    server, port = start_http()
    base = f"http://127.0.0.1:{port}"
    record = tmp_path / "record.mitm"
    requests = [
        [f"{base}/get?x=1"],
        ["--data-binary", "a=1&b=2", f"{base}/post"],
        [f"{base}/status/404"],
        ["-X", "DELETE", f"{base}/get?x=1"],
    ]
    p = Proxy(["-w", str(record)], tmp_path)
    try:
        live = [curl(p, "-i", *args) for args in requests]
        assert all(r.returncode == 0 for r in live)
        p.wait_output("DELETE")
    finally:
        assert p.stop() == 0
        server.shutdown()  # from here on nothing answers on that port
    assert len(read_flows(record)) == len(requests)

    p = Proxy(["-S", str(record)], tmp_path)
    replayed = [curl(p, "-i", *args) for args in requests]
    assert wait_exit(p) == 0  # every recorded response was used: proxydump is done
    for before, after in zip(live, replayed, strict=True):
        assert after.returncode == 0, after.stderr
        head_before, body_before = before.stdout.split(b"\r\n\r\n", 1)
        head_after, body_after = after.stdout.split(b"\r\n\r\n", 1)
        assert body_after == body_before  # the recorded bodies, client ports and all
        assert head_after.split(b"\r\n")[0] == head_before.split(b"\r\n")[0]
    out = p.stdout()
    assert out.count("[replay]") == len(requests), out
    assert "Traceback" not in p.stderr()


def test_unmatched_requests_follow_server_replay_extra(tmp_path, origin):
    flow = tflow(f"http://127.0.0.1:{origin}/get?recorded=1")
    record = write_flows(tmp_path / "one.mitm", flow)
    p = Proxy(["-S", str(record), "--server-replay-extra", "404", "--keepserving"], tmp_path)
    try:
        other = curl(p, "-i", f"http://127.0.0.1:{origin}/get?other=1")
        assert other.stdout.startswith(b"HTTP/1.1 404")
        hit = curl(p, "-i", f"http://127.0.0.1:{origin}/get?recorded=1")
        assert hit.stdout.startswith(b"HTTP/1.1 299") and hit.stdout.endswith(b"recorded")
    finally:
        assert p.stop() == 0
    assert "returned 404 non-replay request" in p.stderr()


# body_size_limit ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def limited(tmp_path_factory) -> Iterator[Proxy]:
    p = Proxy(["-k", "--set", "body_size_limit=1k"], tmp_path_factory.mktemp("limited"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_upload_over_the_limit_gets_413(limited, origin, tmp_path):
    body = tmp_path / "body"
    body.write_bytes(b"u" * 4000)
    for extra in ([], ["-H", "Transfer-Encoding: chunked"]):
        r = curl(limited, "-i", *extra, "--data-binary", f"@{body}", f"http://127.0.0.1:{origin}/post")
        assert r.returncode == 0, r.stderr
        assert r.stdout.startswith(b"HTTP/1.1 413"), r.stdout[:200]
        assert b"Request body exceeds mitmproxy&#x27;s body_size_limit." in r.stdout
    limited.wait_output(" << Request body exceeds mitmproxy's body_size_limit.")


def test_download_over_the_limit_gets_502(limited, origin):
    r = curl(limited, "-i", f"http://127.0.0.1:{origin}/big/5000")
    assert r.stdout.startswith(b"HTTP/1.1 502"), r.stdout[:200]
    assert b"Response body exceeds" in r.stdout
    ok = curl(limited, f"http://127.0.0.1:{origin}/big/1024")
    assert ok.stdout == b"x" * 1024  # at the limit is fine


def test_http2_upload_over_the_limit_gets_413(limited, tmp_path):
    _loop, port = start_h2(tmp_path)
    body = tmp_path / "body"
    body.write_bytes(b"h" * 4000)
    r = curl(limited, "--http2", "-w", "\\n%{http_code} %{http_version}", "--data-binary", f"@{body}",
             f"https://localhost:{port}/upload")
    assert r.returncode == 0, r.stderr
    assert r.stdout.endswith(b"\n413 2") and b"Request body exceeds" in r.stdout
    small = curl(limited, "--http2", "--data-binary", "tiny", f"https://localhost:{port}/upload")
    assert json.loads(small.stdout)["body"] == "tiny"
