"""Content view routes: the JSON shape of mitmweb 12, line limits, and odd requests."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from proxycore.websocket import Opcode, WebSocketMessage
from tests.flows import http_flow, tcp_flow, ws_flow
from tests.webapi import WebServer, request, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

DATA = Path(__file__).parents[1] / "data"
KEYS = ["text", "view_name", "syntax_highlight", "description"]


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path, rfile=str(DATA / "corpus-all.mitm")) as s:
        s.wait_for_flows(16)
        yield s


def get(server: WebServer, path: str) -> Any:
    return request(server.port, "GET", path)


def add(server: WebServer, *flows: Any) -> None:
    server.add(*flows)


def test_every_route_the_ui_fetched_from_mitmweb(server: WebServer) -> None:
    """The corpus routes mitmweb answered: same flows, messages, directions and times.

    The reference comes from mitmweb 11 ({"lines": ...}); proxycore answers in mitmweb
    12's shape ({"text", "view_name", "syntax_highlight", "description"})."""
    reference = json.loads((DATA / "corpus-all.webextra.json").read_text())
    routes = {k[4:]: v for k, v in reference.items() if "/content/" in k}
    assert len(routes) == 32
    for path, theirs in routes.items():
        r = get(server, path)
        assert r.status == 200, path
        ours = r.json()
        if path.split("/")[3] == "messages":
            assert isinstance(ours, list) and len(ours) == len(theirs), path
            for mine, their in zip(ours, theirs, strict=True):
                assert list(mine) == [*KEYS, "from_client", "timestamp"]
                assert (mine["from_client"], mine["timestamp"]) == (their["from_client"], their["timestamp"])
        else:
            assert list(ours) == KEYS, path
            assert isinstance(ours["text"], str) and isinstance(ours["description"], str)
            assert ours["text"].count("\n") <= 513
            if not theirs["lines"]:
                assert ours["text"] == "", path  # mitmweb had no content to show either


def test_text_and_line_limit(server: WebServer) -> None:
    body = "".join(f"line {i}\n" for i in range(20)).encode()
    flow = http_flow(response=True, resp_body=body, resp_headers={"content-type": "text/plain"})
    add(server, flow)
    whole = get(server, f"/flows/{flow.id}/response/content/auto.json").json()
    assert whole["text"] == body.decode() and whole["view_name"]
    cut = get(server, f"/flows/{flow.id}/response/content/Auto.json?lines=3").json()
    assert cut["text"] == "line 0\nline 1\nline 2\n"
    assert get(server, f"/flows/{flow.id}/response/content/AUTO?lines=3").json() == cut
    assert get(server, f"/flows/{flow.id}/response/content/raw.json?lines=1").json()["text"] == "line 0\n"


def test_unknown_and_encoded_view_names(server: WebServer) -> None:
    flow = http_flow(response=True, resp_body=b"<a>b</a>", resp_headers={"content-type": "text/xml"})
    add(server, flow)
    unknown = get(server, f"/flows/{flow.id}/response/content/no-such-view.json")
    assert (unknown.status, unknown.text) == (400, "Unknown content view: no-such-view")  # mitmweb: 200, auto
    assert get(server, f"/flows/{flow.id}/response/content/ZIP%20Archive.json").status == 200
    assert get(server, f"/flows/{flow.id}/response/content/xml%2Fhtml.json").status == 200
    assert get(server, f"/flows/{flow.id}/response/content/hex%20dump.json").status == 200
    assert get(server, f"/flows/{flow.id}/response/content/socket.io.json").status == 404  # as mitmweb


def test_messages_share_the_line_budget(server: WebServer) -> None:
    flow = ws_flow()
    flow.websocket.messages = [
        WebSocketMessage(Opcode.TEXT, True, b"a\nb\nc"),
        WebSocketMessage(Opcode.TEXT, False, b"d"),
        WebSocketMessage(Opcode.TEXT, True, b"e"),
    ]
    add(server, flow)
    every = get(server, f"/flows/{flow.id}/messages/content/auto.json").json()
    assert [m["from_client"] for m in every] == [True, False, True]
    # budget 4: the first message costs 3 (2 newlines + 1), the second 1 -> stop there
    limited = get(server, f"/flows/{flow.id}/messages/content/auto.json?lines=4").json()
    assert len(limited) == 2
    tcp = tcp_flow()
    add(server, tcp)
    assert len(get(server, f"/flows/{tcp.id}/messages/content/auto.json").json()) == 2


def test_parts_a_flow_does_not_have(server: WebServer) -> None:
    plain, tcp = http_flow(), tcp_flow()
    add(server, plain, tcp)
    r = get(server, f"/flows/{plain.id}/messages/content/auto.json")
    assert (r.status, r.text) == (400, "This flow has no messages.")
    r = get(server, f"/flows/{plain.id}/response/content/auto.json")
    assert (r.status, r.text) == (400, "This flow has no response.")
    assert get(server, f"/flows/{tcp.id}/request/content/auto.json").status == 400
    assert get(server, f"/flows/{plain.id}/request/content/auto.json?lines=x").status == 400


def test_missing_content(server: WebServer) -> None:
    flow = http_flow(response=True)
    flow.response.raw_content = None  # streamed, not kept
    add(server, flow)
    shown = get(server, f"/flows/{flow.id}/response/content/auto.json").json()
    assert shown == {"text": "Content is missing.", "view_name": None, "syntax_highlight": "error", "description": ""}


def test_control_characters_are_dots_in_raw(server: WebServer) -> None:
    flow = http_flow(response=True, resp_body=b"a\x00b\tc\r\nd\x1b")
    add(server, flow)
    text = get(server, f"/flows/{flow.id}/response/content/raw.json").json()["text"]
    assert re.fullmatch(r"a\.b\tc\r\nd\.", text), text


def test_state_lists_views(server: WebServer) -> None:
    views = get(server, "/state").json()["contentViews"]
    assert views[0] == "auto" and "raw" in views and "query" not in views
    assert views[1:] == sorted(views[1:]) and all(v == v.lower() for v in views)
