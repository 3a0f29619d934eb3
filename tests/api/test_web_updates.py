"""The /updates WebSocket with a real client: handshake security and every message type."""

from __future__ import annotations

import json
import logging
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.exceptions import ConnectionClosedError, InvalidStatus

from tests.flows import http_flow
from tests.webapi import (
    TOKEN,
    WebServer,
    put_json,
    request,
    running,
    ws_connect,
    ws_drain,
    ws_recv,
    ws_until,
)

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e


@pytest.fixture
def server(tmp_path: Path) -> Iterator[WebServer]:
    with running(tmp_path) as s:
        yield s


def add(server: WebServer, *flows) -> None:
    server.add(*flows)


def test_handshake_needs_auth(server: WebServer) -> None:
    with pytest.raises(InvalidStatus) as e:
        ws_connect(server.port, token=None)
    assert e.value.response.status_code == 403
    with pytest.raises(InvalidStatus) as e:
        ws_connect(server.port, token="wrong")
    assert e.value.response.status_code == 403


def test_handshake_checks_origin_and_sets_xsrf_cookie(server: WebServer) -> None:
    with pytest.raises(InvalidStatus) as e:
        ws_connect(server.port, origin="http://evil.example")
    assert e.value.response.status_code == 403
    with ws_connect(server.port, origin=f"http://127.0.0.1:{server.port}") as ws:
        cookies = ws.response.headers.get_all("Set-Cookie")
        xsrf = next(c for c in cookies if c.startswith("_mitmproxy_xsrf="))
        assert "SameSite=Strict" in xsrf and "Path=/" in xsrf and "HttpOnly" not in xsrf
        token = xsrf.split(";")[0].split("=", 1)[1]
        assert token[-1].isalnum()  # the UI's cookie regex ends at a word character
    # that cookie, echoed in X-XSRFToken, is what the front end sends on writes
    r = request(server.port, "POST", "/clear", xsrf=False,
                headers={"Cookie": f"_mitmproxy_xsrf={token}", "X-XSRFToken": token})
    assert r.status == 200
    # no Origin header at all (non-browser clients) is fine
    with ws_connect(server.port):
        pass


def test_nothing_is_sent_on_connect(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)


def test_flow_add_update_remove(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        flow = http_flow(method="POST")
        add(server, flow)
        message = ws_recv(ws)
        assert message["type"] == "flows/add"
        assert message["payload"]["flow"]["id"] == flow.id and message["payload"]["matching_filters"] == {}
        assert message["payload"]["flow"] == request(server.port, "GET", "/flows").json()[0]
        r = put_json(server.port, f"/flows/{flow.id}", {"comment": "hi"})
        assert r.status == 200
        message, _ = ws_until(ws, "flows/update")
        assert message["payload"]["flow"]["comment"] == "hi" and message["payload"]["flow"]["modified"]
        assert request(server.port, "DELETE", f"/flows/{flow.id}").status == 200
        message, _ = ws_until(ws, "flows/remove")
        assert message["payload"] == flow.id


def test_update_filter_search_and_highlight(server: WebServer) -> None:
    get_flow, post_flow = http_flow(method="GET"), http_flow(method="POST")
    add(server, get_flow, post_flow)
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~m POST"}}))
        assert ws_recv(ws) == {"type": "flows/filterUpdate", "payload": {"name": "search", "matching_flow_ids": [post_flow.id]}}
        # the UI's grammar accepts these; so does ours
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "highlight", "expr": "(~m GET)"}}))
        assert ws_recv(ws)["payload"] == {"name": "highlight", "matching_flow_ids": [get_flow.id]}
        new = http_flow(method="POST")
        add(server, new)
        message = ws_recv(ws)
        assert message["type"] == "flows/add"
        assert message["payload"]["matching_filters"] == {"search": True, "highlight": False}
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": ""}}))
        assert ws_recv(ws)["payload"] == {"name": "search", "matching_flow_ids": None}
        add(server, http_flow())
        assert ws_recv(ws)["payload"]["matching_filters"] == {"highlight": True}


def test_invalid_filter_keeps_the_socket_open(server: WebServer) -> None:
    add(server, http_flow())
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~m ("}}))
        payload = ws_recv(ws)["payload"]
        assert payload["matching_flow_ids"] == [] and payload["error"].startswith("Invalid search filter")
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~q"}}))
        message, before = ws_until(ws, "flows/filterUpdate")
        assert len(message["payload"]["matching_flow_ids"]) == 1
        assert [m["type"] for m in before] == ["events/add"]  # the warning about the filter
    events = request(server.port, "GET", "/events").json()
    assert any("Invalid search filter" in e["message"] for e in events)


@pytest.mark.parametrize(
    "message",
    ["not json", json.dumps({"type": "flows/other"}), json.dumps({"type": "flows/updateFilter", "payload": {}})],
)
def test_malformed_messages_close_with_1011(server: WebServer, message: str) -> None:
    with ws_connect(server.port) as ws:
        ws.send(message)
        with pytest.raises(ConnectionClosedError) as e:
            ws.recv(timeout=5)
        assert e.value.rcvd.code == 1011 and e.value.rcvd.reason == "Internal server error."
    assert request(server.port, "GET", "/flows").status == 200  # the server is fine
    with ws_connect(server.port):
        pass


def test_view_filter_change_order_reset_filter_update_options(server: WebServer) -> None:
    get_flow, post_flow = http_flow(method="GET"), http_flow(method="POST")
    add(server, get_flow, post_flow)
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~m GET"}}))
        ws_recv(ws)
        assert put_json(server.port, "/options", {"view_filter": "~m POST"}).status == 200
        messages = ws_drain(ws)
        kinds = [m["type"] for m in messages]
        assert kinds == ["flows/reset", "flows/filterUpdate", "options/update"]
        assert messages[1]["payload"] == {"name": "search", "matching_flow_ids": []}
        assert list(messages[2]["payload"]) == ["view_filter"]
        assert messages[2]["payload"]["view_filter"]["value"] == "~m POST"
        assert [f["id"] for f in request(server.port, "GET", "/flows").json()] == [post_flow.id]
        # a flow that stops matching the view filter is removed, one that starts is added
        put_json(server.port, f"/flows/{post_flow.id}", {"request": {"method": "GET"}})
        assert ws_until(ws, "flows/remove")[0]["payload"] == post_flow.id


def test_intercept_option_updates_and_reversed_order_reset(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        put_json(server.port, "/options", {"view_order_reversed": True})
        kinds = [m["type"] for m in ws_drain(ws)]
        assert kinds == ["flows/reset", "options/update"]
        put_json(server.port, "/options", {"view_order": "size"})
        assert [m["type"] for m in ws_drain(ws)] == ["options/update"]  # no reset for a new order


def test_clear_resets_flows_and_events(server: WebServer) -> None:
    add(server, http_flow())
    with ws_connect(server.port) as ws:
        assert request(server.port, "POST", "/clear").status == 200
        kinds = [m["type"] for m in ws_drain(ws)]
        assert kinds[:2] == ["flows/reset", "events/reset"]


def test_events_add(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        server.call(lambda: logging.getLogger("proxycore.test").warning("something to see ünïcode"))
        message, _ = ws_until(ws, "events/add")
        payload = message["payload"]
        assert list(payload) == ["id", "message", "level"]
        assert payload["level"] == "warn" and payload["message"].endswith("] something to see ünïcode")
    assert request(server.port, "GET", "/events").json()[-1]["message"] == payload["message"]


def test_non_ascii_is_sent_as_utf8_and_broken_text_escaped(server: WebServer) -> None:
    flow = http_flow(url="http://example.com/ünï")
    flow.request.headers["x-raw"] = "\udcff"  # undecodable byte, kept as a surrogate
    with ws_connect(server.port) as ws:
        add(server, flow)
        raw = ws.recv(timeout=5)
        assert json.loads(raw)["payload"]["flow"]["request"]["headers"][-1] == ["x-raw", "\udcff"]
        ok = http_flow(url="http://example.com/ünï")
        add(server, ok)
        raw = ws.recv(timeout=5)
        assert "ünï" in raw  # not \\u-escaped


def test_state_update_on_mode_change(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        put_json(server.port, "/options", {"mode": ["regular@127.0.0.1:0"]})
        messages = ws_drain(ws, quiet=1.0)
        states = [m["payload"] for m in messages if m["type"] == "state/update"]
        assert states, messages
        final = states[-1]["servers"]
        assert list(final) == ["regular@127.0.0.1:0"]
        assert final["regular@127.0.0.1:0"]["is_running"] is True
    state = request(server.port, "GET", "/state").json()
    assert state["servers"] == final


def test_flow_commands_send_updates(server: WebServer) -> None:
    flow = http_flow()
    add(server, flow)
    with ws_connect(server.port) as ws:
        body = json.dumps({"arguments": [f"@{flow.id}", ":green_circle:"]})
        r = request(server.port, "POST", "/commands/flow.mark", body, {"Content-Type": "application/json"})
        assert r.json() == {"value": None}
        message, _ = ws_until(ws, "flows/update")
        assert message["payload"]["flow"]["marked"] == "\U0001f7e2"


def test_mode_change_that_cannot_bind_is_refused_and_state_keeps_the_old_listener(server: WebServer) -> None:
    import socket

    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen()
    spec = f"regular@127.0.0.1:{busy.getsockname()[1]}"
    try:
        r = put_json(server.port, "/options", {"mode": [spec]})
    finally:
        busy.close()
    assert r.status == 400 and "failed to listen" in r.text and "address already in use" in r.text
    assert server.master.options.mode == ["regular"]
    servers = request(server.port, "GET", "/state").json()["servers"]
    assert list(servers) == ["regular"]
    entry = servers["regular"]
    assert entry["is_running"] is True and entry["last_exception"] is None
    assert entry["type"] == "regular" and entry["description"] == "HTTP(S) proxy"


# a client that stops reading ------------------------------------------------------------


def _raw_websocket(port: int) -> socket.socket:
    """A handshaken /updates connection that reads nothing unless told (small receive buffer)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(10)
    sock.connect(("127.0.0.1", port))
    sock.sendall(
        (
            f"GET /updates HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            f"Sec-WebSocket-Version: 13\r\nAuthorization: Bearer {TOKEN}\r\n\r\n"
        ).encode()
    )
    head = b""
    while b"\r\n\r\n" not in head:
        head += sock.recv(1)  # byte by byte: nothing after the head is consumed
    assert head.startswith(b"HTTP/1.1 101 "), head
    return sock


def test_client_that_does_not_read_is_dropped_and_its_queue_stays_bounded(tmp_path: Path) -> None:
    limits = {"web_updates_max_queue": 1000, "web_updates_max_queue_bytes": "1m"}
    with running(tmp_path, **limits) as server:
        stalled = _raw_websocket(server.port)
        deadline = time.monotonic() + 10
        while len(server.web.app.connections) < 1:
            assert time.monotonic() < deadline
            time.sleep(0.01)
        conn = next(iter(server.web.app.connections))
        with ws_connect(server.port) as reader:  # a client that reads keeps getting everything
            most = (0, 0)
            for _ in range(40):
                server.add(*[http_flow(url="http://example.com/" + "x" * 8000) for _ in range(50)])
                count, size = server.call(lambda: conn.queued)
                most = (max(most[0], count), max(most[1], size))
                time.sleep(0.02)  # the reading client keeps up between bursts
            assert most[0] <= 1000 and most[1] <= 1024 * 1024, most
            assert server.call(lambda: conn not in server.web.app.connections)
            assert server.call(lambda: conn.queued) == (0, 0)
            received = ws_drain(reader)
            assert sum(m["type"] == "flows/add" for m in received) == 2000
        assert server.log.getvalue().count("fell behind") == 1
        # The dropped client finds its connection closed once it reads (1008, or cut after 5 s).
        stalled.settimeout(15)
        data = b""
        try:
            while chunk := stalled.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        stalled.close()
        if b"\x88" in data:
            close = data[data.rindex(b"\x88"):]
            assert close[2:4] == (1008).to_bytes(2, "big")


def test_filter_too_slow_for_the_view_is_refused_like_an_invalid_one(server: WebServer) -> None:
    add(server, http_flow(), http_flow())
    server.call(lambda: server.master.options.update(web_filter_time_budget=0))  # every evaluation overruns
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~b x"}}))
        message, _ = ws_until(ws, "flows/filterUpdate")
        payload = message["payload"]
        assert payload["matching_flow_ids"] == []
        assert "'~b x' is too slow" in payload["error"]
        add(server, http_flow(req_body=b"x"))  # later flows do not match the refused filter
        message, _ = ws_until(ws, "flows/add")
        assert message["payload"]["matching_filters"] == {"search": False}
        server.call(lambda: server.master.options.update(web_filter_time_budget=2))
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~b x"}}))
        message, _ = ws_until(ws, "flows/filterUpdate")
        assert len(message["payload"]["matching_flow_ids"]) == 1 and "error" not in message["payload"]


def test_refused_filter_reports_why(server: WebServer) -> None:
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": r'~u "(\\d+)+\\1"'}}))
        message, _ = ws_until(ws, "flows/filterUpdate")
        assert "exponential time" in message["payload"]["error"]


def test_one_message_larger_than_the_queue_limit_still_reaches_a_reading_client(server: WebServer) -> None:
    server.call(lambda: server.master.options.update(web_updates_max_queue_bytes="1"))
    add(server, http_flow())
    with ws_connect(server.port) as ws:
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": "~q"}}))
        message, _ = ws_until(ws, "flows/filterUpdate")
        assert len(message["payload"]["matching_flow_ids"]) == 1
    assert "fell behind" not in server.log.getvalue()
