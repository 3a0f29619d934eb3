"""proxyweb as users drive it, in one process and with ``--workers 2``: /updates events,
mark, duplicate, delete, export, download and upload of flow files, clear, intercept set
through PUT /options with resume and kill, and a script's option changed from the web API."""

from __future__ import annotations

import asyncio
import io
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from proxycore.io import FlowReader
from tests.e2e.test_e2e_websocket import echo
from tests.e2e.test_e2e_workers import PID_SCRIPT, get, upstream, wait_for, worker_pids  # noqa: F401  (a fixture)
from tests.e2e_servers import free_port
from tests.processes import ProxyWeb
from tests.webapi import TOKEN, put_json, request, ws_connect, ws_recv, ws_until

pytestmark = pytest.mark.e2e

MODES = [pytest.param([], id="one-process"), pytest.param(["--workers", "2"], id="workers-2")]

SCRIPT = """\
import logging
import os

from mitmproxy import ctx


def load(loader):
    loader.add_option("stamp", str, "first", "what X-Stamp says")
    logging.info("LOADED IN %d", os.getpid())


def response(flow):
    flow.response.headers["X-Stamp"] = ctx.options.stamp
    logging.warning("STAMPED %s", flow.request.path)
"""


@pytest.fixture(params=MODES)
def web(request, tmp_path: Path) -> Iterator[ProxyWeb]:
    script = tmp_path / "stamp.py"
    script.write_text(SCRIPT)
    pw = ProxyWeb(tmp_path, *request.param, "-s", str(script), "--set", f"web_password={TOKEN}")
    yield pw
    assert pw.stop() == 0
    assert "Traceback" not in pw.stderr(), pw.stderr()


def flows(pw: ProxyWeb) -> list[dict[str, Any]]:
    return request(pw.web_port, "GET", "/flows").json()


def command(pw: ProxyWeb, name: str, *arguments: str) -> Any:
    body = json.dumps({"arguments": list(arguments)})
    r = request(
        pw.web_port, "POST", f"/commands/{name}", body, {"Content-Type": "application/json"}
    )
    assert r.status == 200, r.body
    return r.json()


def test_updates_once_per_flow_then_mark_duplicate_delete_export(web, upstream):  # noqa: F811
    sent = [f"/get?u={i}" for i in range(4)]
    with ws_connect(web.web_port) as ws:
        for path in sent:
            assert get(web.port, upstream, path)[0] == 200
        added: list[str] = []
        complete: set[str] = set()
        while len(complete) < len(sent):
            message = ws_recv(ws)
            if message["type"] == "flows/add":
                added.append(message["payload"]["flow"]["id"])
            elif message["type"] == "flows/update" and "response" in message["payload"]["flow"]:
                complete.add(message["payload"]["flow"]["id"])
    assert len(added) == len(set(added)) == len(sent) and complete == set(added)
    listed = flows(web)
    assert sorted(f["request"]["path"] for f in listed) == sorted(sent)
    first, second = listed[0]["id"], listed[1]["id"]

    assert put_json(web.web_port, f"/flows/{first}", {"marked": ":star:"}).status == 200
    copy = request(web.web_port, "POST", f"/flows/{first}/duplicate").text
    assert request(web.web_port, "DELETE", f"/flows/{second}").status == 200
    by_id = {f["id"]: f for f in flows(web)}
    assert (
        by_id[first]["marked"] == "\N{WHITE MEDIUM STAR}" and copy in by_id and second not in by_id
    )
    assert len(by_id) == len(sent)
    exported = command(web, "export", "curl", f"@{first}")["value"]
    assert exported.startswith("curl ") and by_id[first]["request"]["path"] in exported


def test_download_clear_and_upload_flow_file(web, upstream):  # noqa: F811
    sent = [f"/get?d={i}" for i in range(3)]
    for path in sent:
        assert get(web.port, upstream, path)[0] == 200
    wait_for(
        lambda: len([f for f in flows(web) if f.get("response")]) == len(sent), what="the flows"
    )
    dump = request(web.web_port, "GET", "/flows/dump")
    assert dump.status == 200
    assert sorted(f.request.path for f in FlowReader(io.BytesIO(dump.body)).stream()) == sorted(
        sent
    )
    assert request(web.web_port, "POST", "/clear").status == 200
    assert flows(web) == []
    assert request(web.web_port, "POST", "/flows/dump", dump.body).status == 200
    assert sorted(f["request"]["path"] for f in flows(web)) == sorted(sent)


def test_intercept_from_put_options_resume_and_kill(web, upstream):  # noqa: F811
    assert put_json(web.web_port, "/options", {"intercept": "~q & ~u held"}).status == 200
    results: dict[str, Any] = {}

    def fetch(path: str) -> None:
        try:
            results[path] = get(web.port, upstream, path, 20)
        except OSError as e:
            results[path] = e

    clients = [threading.Thread(target=fetch, args=(p,)) for p in ("/get?held=1", "/get?held=2")]
    for client in clients:
        client.start()
    held = wait_for(
        lambda: len(found := [f for f in flows(web) if f["intercepted"]]) == 2 and found,
        what="two intercepted flows",
    )
    assert get(web.port, upstream, "/get?free=1")[0] == 200  # not matched: not held
    keep, doom = sorted(held, key=lambda f: f["request"]["path"])
    assert request(web.web_port, "POST", f"/flows/{keep['id']}/resume").status == 200
    assert request(web.web_port, "POST", f"/flows/{doom['id']}/kill").status == 200
    for client in clients:
        client.join(15)
    assert results["/get?held=1"][0] == 200
    assert isinstance(results["/get?held=2"], OSError)
    shown = wait_for(
        lambda: {
            f["request"]["path"]: f
            for f in flows(web)
            if not f["intercepted"] and (f.get("response") or f.get("error"))
        },
        what="both ends",
    )
    assert shown["/get?held=2"]["error"]["msg"] == "Connection killed."


def test_script_option_changed_from_the_web_api(web, upstream):  # noqa: F811
    assert get(web.port, upstream, "/get?before")[1]["x-stamp"] == "first"
    assert put_json(web.web_port, "/options", {"stamp": "second"}).status == 200

    def every_answer_changed() -> bool:
        return all(
            get(web.port, upstream, f"/get?after={i}")[1]["x-stamp"] == "second" for i in range(8)
        )

    wait_for(every_answer_changed, timeout=10, what="the new option in every process")


def test_log_lines_of_scripts_and_connections_in_the_event_log(web, upstream):  # noqa: F811
    """The Events pane (GET /events) shows what the terminal shows, once, whichever process
    logged it."""
    paths = [f"/get?ev={i}" for i in range(4)]
    for path in paths:
        assert get(web.port, upstream, path)[0] == 200

    def logged() -> list[str]:
        return [e["message"] for e in request(web.web_port, "GET", "/events").json()]

    wait_for(
        lambda: all(any(f"STAMPED {p}" in m for m in logged()) for p in paths),
        what="the script's lines",
    )
    messages = logged()
    for path in paths:
        assert sum(m.endswith(f"STAMPED {path}") for m in messages) == 1, messages
    assert any(m.endswith("client connect") for m in messages), messages


def test_start_lines_of_every_process_in_the_event_log(web):
    """What each process logs as it starts (a script's load, "listening at") is in the event
    log too: a worker's lines written before it heard that the primary wants them were lost."""

    def logged() -> list[str]:
        return [e["message"] for e in request(web.web_port, "GET", "/events").json()]

    processes = {web.proc.pid}
    if "--workers" in web.proc.args:
        processes |= wait_for(
            lambda: len(pids := worker_pids(web)) == 2 and pids, what="both workers"
        )

    def loaded() -> set[str]:
        lines = logged()
        found = {m for m in lines if "LOADED IN" in m}
        return (
            found
            if len(found) >= len(processes) and any("proxy listening at" in m for m in lines)
            else set()
        )

    loaded_lines = wait_for(loaded, what="each process's load line and the listening line")
    assert {int(m.rsplit(" ", 1)[1]) for m in loaded_lines} == processes
    assert sum("proxy listening at" in m for m in logged()) == 1, logged()


def test_listen_port_changed_from_the_web_api(web, upstream):  # noqa: F811
    """The new port serves; the old one refuses at once (with workers it had stayed open,
    nobody accepting: clients hung until their timeout)."""
    new = free_port()
    assert put_json(web.web_port, "/options", {"listen_port": new}).status == 200
    wait_for(lambda: _answers(new, upstream), timeout=10, what="the new port serving")
    wait_for(lambda: _refused(web.port), timeout=10, what="the old port refusing")


def _refused(port: int) -> bool:
    """True once nothing listens on ``port`` (a connection that a closing listener had in
    its queue may still be reset: ask again)."""
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    except OSError:
        pass
    return False


def _answers(port: int, upstream: int) -> bool:  # noqa: F811
    try:
        return get(port, upstream, "/get?new")[0] == 200
    except OSError:
        return False


def test_long_websocket_session_stays_linear_and_whole(web, tmp_path):
    """3,000 round trips: every message in the view once, in order (the worker sends each
    new message alone; sending the whole flow for each one had taken 17 s for 2,000)."""
    count = 3000

    async def main() -> float:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/long", proxy=web.url) as ws:
                started = time.monotonic()
                for i in range(count):
                    await ws.send(f"m{i}")
                    assert await ws.recv() == f"m{i}"
                return time.monotonic() - started

    took = asyncio.run(asyncio.wait_for(main(), 60))
    assert took < 15, f"{count} round trips took {took:.1f} s"
    (flow,) = wait_for(
        lambda: [
            f for f in flows(web) if f.get("websocket", {}).get("closed_by_client") is not None
        ],
        what="the closed WebSocket flow",
    )
    assert flow["websocket"]["messages_meta"]["count"] == 2 * count
    r = request(web.web_port, "GET", f"/flows/{flow['id']}/messages/content/raw.json")
    assert r.status == 200, r
    texts = [m["text"] for m in r.json()]
    assert texts == [f"m{i}" for i in range(count) for _ in range(2)]


def test_state_lists_the_servers(web):
    """GET /state's servers (the Capture tab): the mode and its address, as in one process
    (with workers the primary's proxyserver runs no listener: it was empty)."""

    def servers() -> dict[str, Any]:
        return request(web.web_port, "GET", "/state").json()["servers"]

    (regular,) = servers().values()
    assert regular["full_spec"] == "regular" and regular["is_running"] is True
    assert regular["listen_addrs"] == [["127.0.0.1", web.port]]
    new = free_port()
    assert put_json(web.web_port, "/options", {"listen_port": new}).status == 200
    wait_for(
        lambda: servers()["regular"]["listen_addrs"] == [["127.0.0.1", new]],
        what="the new port in /state",
    )


def test_state_shows_what_the_workers_bound_and_their_errors(tmp_path, upstream):  # noqa: F811
    """After a change of the listen options each worker binds its own listeners: /state shows
    what they bound (it showed the address asked for), and why they could not; a change they
    cannot follow is the PUT's error and the option goes back (it was 200, the primary's
    option kept the port the workers had gone back from)."""
    script = tmp_path / "pid.py"
    script.write_text(PID_SCRIPT)
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", str(script), "--set", f"web_password={TOKEN}")
    try:
        pids: set[str] = set()
        wait_for(  # (both run their listeners: a change before that is their first options)
            lambda: (
                pids.add(get(pw.port, upstream, "/get?up")[1]["x-worker-pid"]) or len(pids) == 2
            ),
            what="both workers serving",
        )

        def regular() -> dict[str, Any]:
            return request(pw.web_port, "GET", "/state").json()["servers"]["regular"]

        with socket.create_server(("127.0.0.1", 0)) as taken:  # (no SO_REUSEPORT: theirs fail)
            busy = taken.getsockname()[1]
            # as in one process: the request fails with the error and the option goes back
            r = put_json(pw.web_port, "/options", {"listen_port": busy})
            assert r.status == 400 and f"failed to listen on 127.0.0.1:{busy}" in r.text, r.text
            options = request(pw.web_port, "GET", "/options").json()
            assert options["listen_port"]["value"] == pw.port
            shown = wait_for(lambda: (r := regular())["last_exception"] and r, what="the error")
        assert f"failed to listen on 127.0.0.1:{busy}" in shown["last_exception"]
        assert shown["listen_addrs"] == [["127.0.0.1", pw.port]] and shown["is_running"]
        assert _answers(pw.port, upstream)  # the old listeners serve on

        # port 0: each worker binds a free port of its own, and /state lists both, as the
        # /updates announcement does once the change settled (it announced the old ones)
        with ws_connect(pw.web_port) as ws:
            assert put_json(pw.web_port, "/options", {"listen_port": 0}).status == 200
            announced: list[Any] = []
            while len(announced) < 2 or ["127.0.0.1", pw.port] in announced:  # (not old and new)
                update, _ = ws_until(ws, "state/update")
                announced = update["payload"]["servers"]["regular"]["listen_addrs"]
        shown = wait_for(
            lambda: len((r := regular())["listen_addrs"]) == 2 and r, what="two addresses"
        )
        assert shown["last_exception"] is None and shown["listen_addrs"] == announced
        for host, port in shown["listen_addrs"]:
            assert host == "127.0.0.1" and port != pw.port
            wait_for(lambda: _answers(port, upstream), what=f"port {port} serving")  # noqa: B023
    finally:
        assert pw.stop() == 0
    assert "Traceback" not in pw.stderr(), pw.stderr()
