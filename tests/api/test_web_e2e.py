"""End to end: real traffic (curl) through the proxy shows up over /updates; the proxyweb CLI."""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_servers import free_port
from tests.processes import ProxyWeb, curl
from tests.webapi import WebServer, request, running, ws_connect, ws_recv, ws_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]
CORPUS = Path(__file__).parents[1] / "data" / "corpus-all.mitm"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s


def test_live_flow_appears_over_updates(server: WebServer, upstream: int) -> None:
    with ws_connect(server.port) as ws:
        r = curl(server, f"http://127.0.0.1:{upstream}/get?live=1", "-H", "X-Live: yes")
        assert r.returncode == 0, r.stderr
        added = ws_recv(ws)
        assert added["type"] == "flows/add"
        flow = added["payload"]["flow"]
        assert flow["request"]["path"] == "/get?live=1" and "response" not in flow
        final = flow
        while "response" not in final:
            message = ws_recv(ws)
            assert message["type"] == "flows/update" and message["payload"]["flow"]["id"] == flow["id"]
            final = message["payload"]["flow"]
        assert final["response"]["status_code"] == 200
        assert ["X-Live", "yes"] in final["request"]["headers"]
    (listed,) = request(server.port, "GET", "/flows").json()
    assert listed["id"] == flow["id"] and listed["response"]["status_code"] == 200


def test_thousand_flows_none_lost(server: WebServer, upstream: int) -> None:
    """1,000 requests through the proxy: every flow is added once and ends complete."""
    count = 1000
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~s"}}))
        ws_until(ws, "flows/filterUpdate")
        # 20 at a time: the test origin answers each request only after a delayed ACK
        r = curl(server, "-Z", "--parallel-max", "20", "-o", "/dev/null",
                 f"http://127.0.0.1:{upstream}/get?n=[1-{count}]")
        assert r.returncode == 0, r.stderr
        added: list[str] = []
        complete: set[str] = set()
        deadline = time.monotonic() + 60
        while len(complete) < count and time.monotonic() < deadline:
            message = ws_recv(ws, timeout=20)
            if message["type"] == "flows/add":
                added.append(message["payload"]["flow"]["id"])
            elif message["type"] == "flows/update":
                payload = message["payload"]
                if "response" in payload["flow"]:
                    assert payload["matching_filters"] == {"search": True}
                    complete.add(payload["flow"]["id"])
    assert len(added) == len(set(added)) == count
    assert complete == set(added)
    flows = request(server.port, "GET", "/flows").json()
    paths = sorted(int(f["request"]["path"].split("=")[1]) for f in flows)
    assert paths == list(range(1, count + 1))


# the proxyweb command ----------------------------------------------------------------


def test_proxyweb_serves_a_flow_file_and_live_traffic(tmp_path: Path, upstream: int) -> None:
    pw = ProxyWeb(tmp_path, "-r", str(CORPUS))
    try:
        match = re.fullmatch(rf"http://127\.0\.0\.1:{pw.web_port}/\?token=([0-9a-f]{{32}})", pw.web_url)
        assert match, pw.web_url
        token = match.group(1)
        headers = {"Authorization": f"Bearer {token}"}
        deadline = time.monotonic() + 10
        while len(request(pw.web_port, "GET", "/flows", headers=headers, auth=False).json()) < 16:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert request(pw.web_port, "GET", "/flows", auth=False).status == 403
        page = request(pw.web_port, "GET", f"/?token={token}", auth=False)
        assert page.status == 200 and "web_static" in page.text
        with ws_connect(pw.web_port, token=token) as ws:
            assert curl(pw, f"http://127.0.0.1:{upstream}/get?via=proxyweb").returncode == 0
            added, _ = ws_until(ws, "flows/add")
            assert added["payload"]["flow"]["request"]["path"] == "/get?via=proxyweb"
        assert len(request(pw.web_port, "GET", "/flows", headers=headers, auth=False).json()) == 17
    finally:
        assert pw.stop() == 0
    assert "Traceback" not in pw.stderr(), pw.stderr()


def test_proxyweb_password_is_not_printed(tmp_path: Path) -> None:
    pw = ProxyWeb(tmp_path, "--set", "web_password=s3cret")
    try:
        assert pw.web_url == f"http://127.0.0.1:{pw.web_port}/"
        assert "s3cret" not in pw.stderr()
        r = request(pw.web_port, "GET", "/state", headers={"Authorization": "Bearer s3cret"}, auth=False)
        assert r.status == 200
    finally:
        assert pw.stop() == 0


def test_proxyweb_argon2_password(tmp_path: Path) -> None:
    argon2 = pytest.importorskip("argon2")
    hashed = argon2.PasswordHasher().hash("hunter2")
    pw = ProxyWeb(tmp_path, "--set", f"web_password={hashed}")
    try:
        ok = request(pw.web_port, "GET", "/state", headers={"Authorization": "Bearer hunter2"}, auth=False)
        bad = request(pw.web_port, "GET", "/state", headers={"Authorization": "Bearer hunter3"}, auth=False)
        assert (ok.status, bad.status) == (200, 403)
    finally:
        assert pw.stop() == 0


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "proxycore.tools.web", *args],
        capture_output=True, text=True, timeout=60,
    )


def test_proxyweb_open_browser_flags() -> None:
    from proxycore.tools.web import make_parser

    parser = make_parser()
    assert parser.parse_args([]).web_open_browser is None  # left to the option's default
    assert parser.parse_args(["--web-open-browser"]).web_open_browser is True
    assert parser.parse_args(["--no-web-open-browser"]).web_open_browser is False


def test_proxyweb_help_and_bad_flags() -> None:
    r = run_cli("--help")
    assert r.returncode == 0
    for flag in ("--web-host", "--web-port", "--no-web-open-browser", "--intercept", "-r", "--mode", "--set"):
        assert flag in r.stdout, flag
    assert "--flow-detail" not in r.stdout
    r = run_cli("--web-port", "x")
    assert r.returncode == 2 and "proxyweb: error:" in r.stderr
    r = run_cli("--no-web-open-browser", "--set", "web_static=/nonexistent")
    assert r.returncode == 1 and r.stderr.strip() == "proxyweb: error: web_static: no index.html in /nonexistent"
    r = run_cli("--no-web-open-browser", "--set", "web_password=$argon2id$nope")
    assert r.returncode == 1 and "not a valid argon2 hash" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("--no-web-open-browser", "--intercept", "~q (")  # the flag reaches the option
    assert r.returncode == 1 and "proxyweb: error: intercept: Invalid filter expression: '~q ('" in r.stderr
    r = run_cli("--options")
    assert r.returncode == 0 and "web_port: 8081" in r.stdout and "view_order: time" in r.stdout


def test_proxyweb_web_port_in_use(tmp_path: Path) -> None:
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    port = busy.getsockname()[1]
    try:
        r = run_cli("--no-web-open-browser", "--listen-host", "127.0.0.1", "-p", str(free_port()),
                    "--web-port", str(port), "--set", f"confdir={tmp_path}")
    finally:
        busy.close()
    assert r.returncode == 1
    assert f"Web server failed to listen on 127.0.0.1:{port}" in r.stderr
    assert "Traceback" not in r.stderr


def updated_flow(ws: Any, until: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """The first flow a flows/update message carries for which ``until`` holds."""
    while True:
        message = ws_recv(ws)
        flow = message["payload"]["flow"] if message["type"] == "flows/update" else {}
        if flow and until(flow):
            return flow


@contextlib.contextmanager
def held_curl(server: WebServer, ws: Any, url: str) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, Any]]]:
    """curl ``url`` through the proxy (intercept on): the process and its flow once held;
    a curl still running at the end is killed."""
    proc = subprocess.Popen(
        ["curl", "-sS", "--max-time", "30", "-x", f"http://127.0.0.1:{server.proxy_port}", url],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        yield proc, updated_flow(ws, lambda flow: flow["intercepted"])
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_intercept_hold_and_resume(server: WebServer, upstream: int) -> None:
    """PUT intercept=~q: a request is held (flows/update intercepted) until /resume."""
    from tests.webapi import put_json, ws_drain

    with ws_connect(server.port) as ws:
        assert put_json(server.port, "/options", {"intercept": "~q & ~u held"}).status == 200
        updates = [m for m in ws_drain(ws) if m["type"] == "options/update"]
        assert [list(m["payload"]) for m in updates] == [["intercept_active"], ["intercept"]]
        with held_curl(server, ws, f"http://127.0.0.1:{upstream}/get?held=1") as (proc, held):
            assert "response" not in held
            time.sleep(0.3)
            assert proc.poll() is None  # held
            assert request(server.port, "POST", f"/flows/{held['id']}/resume").status == 200
            out, err = proc.communicate(timeout=30)
            assert proc.returncode == 0, err
            assert b"held=1" in out
        (flow,) = request(server.port, "GET", "/flows").json()
        assert flow["intercepted"] is False and flow["response"]["status_code"] == 200
    assert server.master.options.intercept_active is True
    put_json(server.port, "/options", {"intercept": None})
    assert server.master.options.intercept_active is False


def test_kill_intercepted_flow(server: WebServer, upstream: int) -> None:
    from tests.webapi import put_json

    with ws_connect(server.port) as ws:
        put_json(server.port, "/options", {"intercept": "~q"})
        with held_curl(server, ws, f"http://127.0.0.1:{upstream}/get?killme=1") as (proc, held):
            assert request(server.port, "POST", f"/flows/{held['id']}/kill").status == 200
            proc.communicate(timeout=30)
            assert proc.returncode != 0  # the client's connection was dropped, no answer
        flow = updated_flow(ws, lambda flow: bool(flow.get("error")))
        assert flow["error"]["msg"] == "Connection killed." and flow["intercepted"] is False


def test_replay_from_the_api(server: WebServer, upstream: int) -> None:
    """view.flows.create (the UI's "n" key), then /replay: the flow is sent and updated in place."""
    body = json.dumps({"arguments": ["get", f"http://127.0.0.1:{upstream}/get?replayed=1"]})
    r = request(server.port, "POST", "/commands/view.flows.create", body, {"Content-Type": "application/json"})
    assert r.json() == {"value": None}
    (flow,) = request(server.port, "GET", "/flows").json()
    with ws_connect(server.port) as ws:
        assert request(server.port, "POST", f"/flows/{flow['id']}/replay").status == 200
        while True:
            message, _ = ws_until(ws, "flows/update")
            shown = message["payload"]["flow"]
            if "response" in shown:
                break
        assert shown["id"] == flow["id"] and shown["is_replay"] == "request"
        assert shown["response"]["status_code"] == 200


def test_websocket_flow_updates_per_message(server: WebServer) -> None:
    """A WebSocket session through the proxy: one update per message, then the close."""
    import asyncio

    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    from tests.e2e.test_e2e_websocket import echo

    async def session() -> None:
        async with serve(echo, "127.0.0.1", 0) as origin:
            port = origin.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/chat", proxy=server.url) as ws:
                for text in ("one", "two", "three"):
                    await ws.send(text)
                    assert await ws.recv() == text

    with ws_connect(server.port) as updates:
        asyncio.run(asyncio.wait_for(session(), 30))
        counts = []
        while True:
            message = ws_recv(updates)
            shown = message["payload"]["flow"] if message["type"] == "flows/update" else {}
            websocket = shown.get("websocket")
            if websocket:
                counts.append(websocket["messages_meta"]["count"])
                if websocket["close_code"] is not None:
                    break
    assert counts[-1] == 6 and set(range(1, 7)) <= set(counts)
    assert websocket["close_code"] == 1000 and websocket["closed_by_client"] is True
    messages = request(server.port, "GET", f"/flows/{shown['id']}/messages/content/auto.json").json()
    assert [(m["from_client"], m["text"]) for m in messages] == [
        (True, "one"), (False, "one"), (True, "two"), (False, "two"), (True, "three"), (False, "three")
    ]


def test_raw_tcp_flow_appears(server: WebServer) -> None:
    """Non-HTTP bytes after CONNECT become a TCP flow: added at tcp_start, updated per message."""
    import asyncio

    from tests.addons.test_intercept import _echo

    async def session() -> None:
        origin = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = origin.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", server.proxy_port)
        writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"\x00\x01 raw bytes")
        assert await asyncio.wait_for(reader.readexactly(12), 10) == b"\x00\x01 raw bytes"
        writer.close()
        origin.close()

    with ws_connect(server.port) as updates:
        asyncio.run(asyncio.wait_for(session(), 30))
        added, _ = ws_until(updates, "flows/add")
        flow = added["payload"]["flow"]
        while flow["type"] != "tcp":  # the CONNECT itself is no flow of the view
            added, _ = ws_until(updates, "flows/add")
            flow = added["payload"]["flow"]
        while flow["messages_meta"]["count"] < 2:
            flow = ws_until(updates, "flows/update")[0]["payload"]["flow"]
    assert flow["messages_meta"]["contentLength"] == 24
    (listed,) = request(server.port, "GET", "/flows").json()
    assert listed["type"] == "tcp" and listed["id"] == flow["id"]
