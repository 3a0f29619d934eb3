"""What proxydump does with real clients, in one process and with ``--workers 2``: HTTPS
interception (curl, Python ``ssl``), HTTP/2, WebSocket messages, TCP passthrough and
``--ignore-hosts``, streamed and 64 MiB bodies, the reverse, SOCKS5 and upstream modes, and
the default output, ``--set flow_detail=3`` and ``-w`` read back with ``-r``."""

from __future__ import annotations

import asyncio
import http.client
import json
import re
import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from proxycore.io import FlowReader
from tests.e2e.test_e2e_websocket import echo
from tests.e2e_servers import start_h2, tcp_echo_server
from tests.processes import Proxy, connect_tunnel, proxydump

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl"),
]

MODES = [pytest.param([], id="one-process"), pytest.param(["--workers", "2"], id="workers-2")]
MiB = 1 << 20


@pytest.fixture(params=MODES)
def workers(request) -> list[str]:
    return request.param


@pytest.fixture(scope="module")
def h2_upstream(tmp_path_factory) -> int:
    _loop, port = start_h2(tmp_path_factory.mktemp("h2"))
    return port


@pytest.fixture
def proxies(tmp_path: Path) -> Iterator[list[Proxy]]:
    """The proxies a test started: stopped at its end, each with exit status 0 and no traceback."""
    started: list[Proxy] = []
    yield started
    for p in started:
        assert p.stop() == 0, p.stderr()
        assert "Traceback" not in p.stderr(), p.stderr()


def start(proxies: list[Proxy], tmp: Path, *args: str) -> Proxy:
    folder = tmp / f"p{len(proxies)}"
    folder.mkdir()
    p = Proxy(list(args), folder)
    proxies.append(p)
    return p


def curl(*args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["curl", "-sS", "--max-time", "20", *args], capture_output=True, timeout=30
    )


def flows_in(path: Path) -> list:
    with path.open("rb") as f:
        return list(FlowReader(f).stream())


def normalised(text: str) -> list[str]:
    """Output lines with ports and dates taken out (they differ from run to run)."""
    text = re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:PORT", text)
    text = re.sub(r"Date: .*", "Date: DATE", text)
    text = re.sub(r'"client_port": \d+', '"client_port": PORT', text)
    return text.splitlines()


def test_https_http2_and_python_ssl(tmp_path, proxies, workers, tls_upstream, h2_upstream):
    p = start(proxies, tmp_path, *workers, "-k", "-w", str(tmp_path / "out.flows"))
    r = curl(
        "--cacert",
        p.ca,
        "-x",
        p.url,
        "--http2",
        "-w",
        "\n%{http_version}",
        f"https://localhost:{h2_upstream}/h2?x=1",
    )
    body, version = r.stdout.rsplit(b"\n", 1)
    assert version == b"2" and json.loads(body)["protocol"] == "h2", r
    r = curl("--cacert", p.ca, "-x", p.url, f"https://localhost:{tls_upstream}/h1?x=2")
    assert json.loads(r.stdout)["path"] == "/h1?x=2", r
    conn = http.client.HTTPSConnection(
        "127.0.0.1", p.port, timeout=10, context=ssl.create_default_context(cafile=p.ca)
    )
    conn.set_tunnel("localhost", tls_upstream)
    for i in range(3):  # keep-alive: one worker, one connection, three flows
        conn.request("GET", f"/py?n={i}")
        assert json.loads(conn.getresponse().read())["path"] == f"/py?n={i}"
    conn.close()
    out = p.wait_output("/py?n=2")
    assert f"GET https://localhost:{h2_upstream}/h2?x=1 HTTP/2.0" in out
    assert out.count("/py?n=") == 3 and out.count("/h1?x=2") == 1
    p.stop()
    paths = sorted(f.request.path for f in flows_in(tmp_path / "out.flows"))
    assert paths == ["/h1?x=2", "/h2?x=1", "/py?n=0", "/py?n=1", "/py?n=2"]


def test_websocket_messages_shown_and_saved(tmp_path, proxies, workers):
    p = start(proxies, tmp_path, *workers, "-w", str(tmp_path / "ws.flows"))

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/chat", proxy=p.url) as ws:
                for message in ("one", b"two", "three"):
                    await ws.send(message)
                    assert await ws.recv() == message

    asyncio.run(asyncio.wait_for(main(), 20))
    p.wait_output("WebSocket connection closed")
    p.stop()
    (flow,) = flows_in(tmp_path / "ws.flows")
    assert [m.content for m in flow.websocket.messages] == [
        b"one",
        b"one",
        b"two",
        b"two",
        b"three",
        b"three",
    ]


def test_tcp_hosts_and_ignore_hosts(tmp_path, proxies, workers):
    with tcp_echo_server() as server_port:
        p = start(
            proxies,
            tmp_path,
            *workers,
            "--tcp-hosts",
            "^localhost:",
            "--ignore-hosts",
            "^127\\.0\\.0\\.1:",
            "-w",
            str(tmp_path / "tcp.flows"),
        )
        for host in ("localhost", "127.0.0.1"):
            with connect_tunnel(p, host, server_port) as sock:
                for i in range(5):  # (one message each way at a time)
                    sock.sendall(b"not http at all %d\r\n" % i)
                    assert sock.recv(100) == b"not http at all %d\r\n" % i
        out = p.wait_output("-> tcp ->")
        assert f"localhost:{server_port}" in out
        assert f"127.0.0.1:{server_port}" not in re.sub(
            r"^.*client (dis)?connect.*$", "", out, flags=re.M
        )
        p.stop()
        (flow,) = flows_in(tmp_path / "tcp.flows")  # every message once, in order
        assert [m.content for m in flow.messages] == [
            b"not http at all %d\r\n" % (i // 2) for i in range(10)
        ]


def test_streamed_and_64_mib_bodies(tmp_path, proxies, workers, upstream):
    p = start(
        proxies,
        tmp_path,
        *workers,
        "-q",
        "--set",
        "stream_large_bodies=1m",
        "-w",
        str(tmp_path / "big.flows"),
    )
    r = curl("-x", p.url, "-o", "-", f"http://127.0.0.1:{upstream}/big/{64 * MiB}")
    assert r.returncode == 0 and len(r.stdout) == 64 * MiB and r.stdout.count(b"x") == 64 * MiB
    r = curl("-x", p.url, "--data-binary", "@-", f"http://127.0.0.1:{upstream}/post")
    assert r.returncode == 0
    p.stop()
    flows = flows_in(tmp_path / "big.flows")
    assert [f.request.path for f in flows] == [f"/big/{64 * MiB}", "/post"]
    assert flows[0].response.raw_content is None  # streamed: not kept, as without workers


def test_default_output_and_flow_detail_3_as_without_workers(tmp_path, proxies, upstream):
    """Each flow once, in the same lines as one process prints (keep-alive and separate
    connections); ``-w`` read back with ``-r`` lists every flow once as well."""
    outputs = {}
    for name, args in (("one", []), ("two", ["--workers", "2"])):
        for detail in ("1", "3"):
            p = start(
                proxies,
                tmp_path,
                *args,
                "--set",
                f"flow_detail={detail}",
                "-w",
                str(tmp_path / f"{name}{detail}"),
            )
            for i in range(3):
                assert curl("-x", p.url, f"http://127.0.0.1:{upstream}/sep?n={i}").returncode == 0
            urls = [f"http://127.0.0.1:{upstream}/ka?n={i}" for i in range(3)]
            assert curl("-x", p.url, *urls).returncode == 0  # one keep-alive connection
            p.wait_output("/ka?n=2")
            p.stop()
            outputs[name, detail] = normalised(p.stdout())
            r = proxydump(
                "-n", "-r", str(tmp_path / f"{name}{detail}"), "--set", f"confdir={p.confdir}"
            )
            assert r.returncode == 0, r.stderr
            outputs[name, "read", detail] = normalised(r.stdout)
    for key in [k for k in outputs if k[0] == "one"]:
        assert outputs[("two", *key[1:])] == outputs[key], key
    assert sum(1 for line in outputs["two", "1"] if " GET " in line) == 6
    assert sum(1 for line in outputs["two", "read", "1"] if " GET " in line) == 6


def test_reverse_socks5_and_upstream_modes(tmp_path, proxies, workers, upstream, tls_upstream):
    reverse = start(proxies, tmp_path, *workers, "--mode", f"reverse:http://127.0.0.1:{upstream}")
    assert json.loads(curl(f"http://127.0.0.1:{reverse.port}/rev").stdout)["path"] == "/rev"
    reverse.wait_output(f"GET http://127.0.0.1:{upstream}/rev")

    socks = start(proxies, tmp_path, *workers, "--mode", "socks5", "-k")
    r = curl("--socks5-hostname", f"127.0.0.1:{socks.port}", f"http://localhost:{upstream}/socks")
    assert json.loads(r.stdout)["path"] == "/socks", r
    r = curl(
        "--socks5-hostname",
        f"127.0.0.1:{socks.port}",
        "--cacert",
        socks.ca,
        f"https://localhost:{tls_upstream}/socks-tls",
    )
    assert json.loads(r.stdout)["path"] == "/socks-tls", r
    socks.wait_output(f"GET https://localhost:{tls_upstream}/socks-tls")

    nexthop = start(proxies, tmp_path, "-k")
    chained = start(proxies, tmp_path, *workers, "-k", "--mode", f"upstream:{nexthop.url}")
    r = curl("-x", chained.url, f"http://127.0.0.1:{upstream}/up")
    assert json.loads(r.stdout)["path"] == "/up", r
    r = curl("-x", chained.url, "--cacert", chained.ca, f"https://localhost:{tls_upstream}/up-tls")
    assert json.loads(r.stdout)["path"] == "/up-tls", r
    chained.wait_output("/up-tls")
    nexthop.wait_output("/up-tls")


def test_buffered_64_mib_upload_is_saved_whole(tmp_path, proxies, workers, upstream):
    """Buffered, a 64 MiB body travels from the worker to the primary within its flow."""
    p = start(
        proxies, tmp_path, *workers, "-q", "--set", "stream_large_bodies=100m",
        "--set", "body_buffer_limit=100m", "-w", str(tmp_path / "big.flows"),
    )  # fmt: skip
    body = b"0123456789abcdef" * (4 * MiB)  # (the origin echoes it as JSON: ASCII stays 1:1)
    r = subprocess.run(
        ["curl", "-sS", "--max-time", "30", "-x", p.url, "--data-binary", "@-", "-o", "/dev/null",
         "-w", "%{http_code} %{size_download}", f"http://127.0.0.1:{upstream}/post"],
        input=body, capture_output=True, timeout=40,
    )  # fmt: skip
    status, size = r.stdout.split()
    assert status == b"200" and int(size) > len(body), r
    p.stop()
    (flow,) = flows_in(tmp_path / "big.flows")
    assert flow.request.raw_content == body
