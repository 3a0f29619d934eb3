"""Received HTTP events without their ReceiveHttp (issue 15).

The HTTP/1 connection layers that the HttpLayer routes itself yield a received event bare
(``Http1Connection.bare_received``): the HttpLayer knows it as received because a connection
layer, not a stream, yielded it.  Used alone (a Playbook, mitmproxy's tests, any other
parent), the layers still wrap every received event in a ReceiveHttp.  Both ways must give
the driver the same commands and the hooks the same flows.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.connection import ConnectionState
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import HttpEvent, RequestHeaders, ResponseHeaders
from proxycore.layers.http._http1 import Http1Client, Http1Connection, Http1Server
from proxycore.proxy import events
from proxycore.testing import make_context
from tests.speed.test_layer_fast_paths import CONVERSATION, GET, OK, Driver, converse, general_path


def _always_wrapped(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every HTTP/1 layer wraps what it received, whatever the HttpLayer sets."""
    monkeypatch.setattr(Http1Connection, "bare_received", property(lambda self: False, lambda self, value: None))


@pytest.mark.parametrize("instant_hooks", [True, False])
@pytest.mark.parametrize("cuts", [[], [1], [7, 30, 61], [45, 90]])
def test_bare_and_wrapped_events_give_the_same_commands(monkeypatch: pytest.MonkeyPatch, instant_hooks: bool, cuts: list[int]) -> None:
    bare = converse(instant_hooks, cuts)
    assert [t[0] for t in bare].count("response") == len(CONVERSATION)
    with monkeypatch.context() as m:
        _always_wrapped(m)
        wrapped = converse(instant_hooks, cuts)
    assert bare == wrapped
    with monkeypatch.context() as m:
        _always_wrapped(m)
        general_path(m)
        assert converse(instant_hooks, cuts) == bare


def test_the_http_layer_makes_no_receive_http_per_request(monkeypatch: pytest.MonkeyPatch) -> None:
    """Both connection layers of a plain HTTP/1 exchange are routed directly: once the
    server connection is open, a keep-alive exchange makes no ReceiveHttp at all."""
    made: list[HttpEvent] = []
    init = ReceiveHttp.__init__

    def counted(self: ReceiveHttp, event: HttpEvent) -> None:
        made.append(event)
        init(self, event)

    monkeypatch.setattr(ReceiveHttp, "__init__", counted)
    driver = Driver(instant_hooks=True)
    for _ in range(3):
        driver.feed(events.DataReceived(driver.context.client, GET))
        assert driver.server is not None
        driver.feed(events.DataReceived(driver.server, OK))
    made.clear()  # (the first exchange opened the connection through the HttpClient)
    for _ in range(3):
        driver.feed(events.DataReceived(driver.context.client, GET))
        driver.feed(events.DataReceived(driver.server, OK))
    assert made == []
    assert [t[0] for t in driver.trace].count("response") == 6


def _events_of(layer: Http1Connection, *feed: events.Event) -> list[Any]:
    out: list[Any] = []
    for event in feed:
        out.extend(layer.handle_event(event))
    return out


def _described(commands_: list[Any]) -> list[Any]:
    """Commands comparable across two runs: an event by its type and stream, bytes by value."""
    described: list[Any] = []
    for command in commands_:
        event = command.event if isinstance(command, ReceiveHttp) else command
        if isinstance(event, RequestHeaders):
            described.append((type(event).__name__, event.stream_id, event.request.url, event.end_stream, event.declared_size))
        elif isinstance(event, ResponseHeaders):
            described.append((type(event).__name__, event.stream_id, event.response.status_code, event.end_stream))
        elif isinstance(event, HttpEvent):
            described.append((type(event).__name__, event.stream_id, getattr(event, "data", None)))
        else:
            described.append(repr(command))
    return described


@pytest.mark.parametrize("bare", [False, True])
def test_a_server_layer_alone_wraps_unless_told(bare: bool) -> None:
    context = make_context()
    context.client.state = ConnectionState.OPEN
    layer = Http1Server(context)
    layer.bare_received = bare
    post = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhel"
    out = _events_of(
        layer,
        events.Start(),
        events.DataReceived(context.client, post),
        events.DataReceived(context.client, b"lo"),
        events.ConnectionClosed(context.client),
    )
    received = [c for c in out if isinstance(c, (ReceiveHttp, HttpEvent))]
    assert len(received) == 5  # head, two chunks, end, half-close
    assert all(isinstance(c, HttpEvent) for c in received) if bare else all(isinstance(c, ReceiveHttp) for c in received)
    assert _described(out) == [
        ("RequestHeaders", 1, "http://example.com/", False, 5),
        ("RequestData", 1, b"hel"),
        ("RequestData", 1, b"lo"),
        ("RequestEndOfMessage", 1, None),
        ("RequestHalfClosed", 1, None),
    ]


def test_a_client_layer_yields_the_same_events_either_way() -> None:
    outs = []
    for bare in (False, True):
        context = make_context()
        context.server.state = ConnectionState.OPEN
        layer = Http1Client(context)
        layer.bare_received = bare
        server = Http1Server(make_context())
        (head,) = [c.event for c in _events_of(server, events.Start(), events.DataReceived(server.conn, GET)) if isinstance(c.event, RequestHeaders)]
        out = _events_of(
            layer,
            events.Start(),
            head,
            events.DataReceived(context.server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n"),
            events.DataReceived(context.server, b"0\r\n\r\n" + OK),  # (a second response: unexpected)
        )
        assert any(isinstance(c, ReceiveHttp) for c in out) is not bare
        outs.append(_described(out))
    assert outs[0] == outs[1]
    assert ("ResponseData", 1, b"abc") in outs[0] and ("ResponseEndOfMessage", 1, None) in outs[0]
