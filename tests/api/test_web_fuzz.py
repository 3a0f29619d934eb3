"""Properties: whatever a client sends, the API answers 2xx/4xx (never 500) and keeps serving."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
from websockets.exceptions import ConnectionClosedError

from tests.flows import http_flow, tcp_flow
from tests.hypothesis_budget import budget
from tests.webapi import WebServer, put_json, request, running, ws_connect, ws_recv

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
scalars = st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=12)
header_lists = st.lists(st.lists(scalars, max_size=3), max_size=3)
message_edits = st.dictionaries(
    st.sampled_from(
        ["method", "scheme", "host", "port", "path", "http_version", "headers", "trailers",
         "content", "reason", "code", "other"]
    ),
    scalars | header_lists | json_values,
    max_size=4,
)
flow_edits = st.dictionaries(
    st.sampled_from(["request", "response", "marked", "comment", "nope"]),
    st.one_of(message_edits, message_edits, scalars, json_values),
    max_size=3,
)
SAFE_OPTIONS = [
    "anticache", "anticomp", "showhost", "view_filter", "view_order", "view_order_reversed",
    "intercept", "web_columns", "web_theme", "content_view_lines_cutoff", "ignore_hosts", "no_such_option",
]
option_updates = st.dictionaries(st.sampled_from(SAFE_OPTIONS), json_values | st.sampled_from(["~q", "~m (", "size"]), max_size=3)
FUZZ = budget(150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebServer]:
    with running(tmp_path_factory.mktemp("fuzz")) as s:
        s.flows = [http_flow(response=True), http_flow(), tcp_flow()]
        s.add(*s.flows)
        yield s
    assert "Traceback" not in s.log.getvalue(), s.log.getvalue()


@FUZZ
@given(edit=flow_edits, which=st.sampled_from([0, 0, 0, 1, 2]))
def test_flow_edits_never_fail_the_server(server: WebServer, edit: dict[str, Any], which: int) -> None:
    flow = server.flows[which]
    before = flow.get_state()
    r = put_json(server.port, f"/flows/{flow.id}", edit)
    assert r.status in (200, 400), (edit, r)
    if r.status == 400:
        assert flow.get_state() == {**before, "backup": flow.get_state()["backup"]}  # rolled back
    assert request(server.port, "GET", "/flows").status == 200
    server.call(flow.revert)


@FUZZ
@given(update=option_updates)
def test_option_updates_never_fail_the_server(server: WebServer, update: dict[str, Any]) -> None:
    r = put_json(server.port, "/options", update)
    assert r.status in (200, 400), (update, r)
    assert request(server.port, "GET", "/options").status == 200
    server.call(lambda: server.master.options.update(view_filter=None, intercept=None))


@FUZZ
@given(body=st.binary(max_size=200), content_type=st.sampled_from(["application/json", "text/plain", ""]))
def test_arbitrary_bodies(server: WebServer, body: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    flow = server.flows[0]
    for method, path in [("PUT", f"/flows/{flow.id}"), ("PUT", "/options"), ("POST", "/commands/view.properties.length")]:
        r = request(server.port, method, path, body, headers)
        assert r.status in (200, 400), (method, path, body, r)
    server.call(flow.revert)
    r = request(server.port, "POST", "/flows/dump", body)
    assert r.status in (200, 400), r
    server.call(lambda: (server.view.clear(), server.view.add(server.flows)))


@budget(40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    message=st.one_of(
        st.text(max_size=60),
        st.builds(
            lambda name, expr: json.dumps({"type": "flows/updateFilter", "payload": {"name": name, "expr": expr}}),
            st.text(max_size=10), st.text(max_size=30),
        ),
    )
)
def test_websocket_messages(server: WebServer, message: str) -> None:
    """A filter update gets its filterUpdate; anything else closes with 1011. Either way
    the server carries on."""
    with ws_connect(server.port) as ws:
        ws.send(message)
        try:
            while True:
                reply = ws_recv(ws, timeout=5)
                if reply["type"] == "flows/filterUpdate":
                    break
        except ConnectionClosedError as e:
            assert e.rcvd is not None and e.rcvd.code == 1011
    assert request(server.port, "GET", "/flows").status == 200
