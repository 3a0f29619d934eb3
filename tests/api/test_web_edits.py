"""PUT /flows/<id>: edits cannot put line breaks or NUL into what a replay writes on the wire."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.flows import http_flow
from tests.webapi import WebServer, put_json, running

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s


@pytest.mark.parametrize(
    "edit",
    [
        {"request": {"method": "GET /evil HTTP/1.1\r\nHost: x\r\n\r\nGET"}},
        {"request": {"method": "GET\n"}},
        {"request": {"method": "G ET"}},
        {"request": {"method": ""}},
        {"request": {"path": "/a\r\nX-Injected: 1"}},
        {"request": {"path": "/a b"}},
        {"request": {"path": "/a\x00"}},
        {"request": {"host": "example.com\r\n"}},
        {"request": {"scheme": "http\n"}},
        {"request": {"http_version": "HTTP/1.1\r\nX: y"}},
        {"request": {"headers": [["X-Ok", "fine"], ["X-Bad", "a\r\nInjected: yes"]]}},
        {"request": {"headers": [["X-Bad\r\nInjected", "v"]]}},
        {"request": {"headers": [["Bad Name", "v"]]}},
        {"request": {"headers": [["Bad:Name", "v"]]}},
        {"request": {"headers": [["", "v"]]}},
        {"request": {"headers": [["X", "nul\x00"]]}},
        {"request": {"trailers": [["X", "a\nb"]]}},
        {"response": {"reason": "OK\r\nSet-Cookie: a=b"}},
        {"response": {"headers": [["Location", "/\r\n\r\n<script>"]]}},
        {"response": {"http_version": "HTTP/1.1 "}},
    ],
)
def test_line_breaks_and_nul_are_refused_and_the_flow_stays(server: WebServer, edit: dict[str, Any]) -> None:
    flow = http_flow(response=True)
    server.add(flow)
    before = list(flow.request.headers.fields)
    edit = {"comment": "changed", **edit}
    r = put_json(server.port, f"/flows/{flow.id}", edit)
    assert r.status == 400 and r.text.startswith("Invalid update "), r
    assert not flow.modified() and flow.comment == ""
    assert flow.request.method == "GET" and flow.request.path == "/path"
    assert list(flow.request.headers.fields) == before


def test_ordinary_edits_still_work(server: WebServer) -> None:
    flow = http_flow(response=True)
    server.add(flow)
    edit = {
        "request": {"method": "PATCH", "path": "/a/b?c=d%20e", "host": "example.org", "scheme": "https",
                    "headers": [["X-Tab", "a\tb"], ["Accept", "*/*"]]},
        "response": {"reason": "Not Quite OK", "headers": [["X-Unicode", "ünïcode"]]},
    }
    r = put_json(server.port, f"/flows/{flow.id}", edit)
    assert r.status == 200, r
    assert flow.request.method == "PATCH" and flow.request.path == "/a/b?c=d%20e"
    assert flow.request.headers["X-Tab"] == "a\tb" and flow.response.reason == "Not Quite OK"
