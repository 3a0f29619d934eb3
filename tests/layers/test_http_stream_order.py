"""Where streaming meets the hooks, in mitmproxy's order (Playbook tests of the HTTP layer).

- a Content-Length above stream_large_bodies: ``stream`` is already True in the headers hooks;
- a streamed request or response ends only after its request/response hook, so the hook may
  still add trailers; a stream modifier gets ``b""`` at the end to flush;
- a 101 (WebSocket handshake) response is complete with its head: it has a ``timestamp_end``.
"""

from proxycore import http
from proxycore.connection import Server
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.websocket import WebsocketStartHook
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply


def test_declared_size_over_stream_large_bodies_streams_before_the_headers_hooks():
    tctx = make_context()
    tctx.options.stream_large_bodies = "10"
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)
    seen = {}

    def note(what):
        def side_effect(f):
            seen[what] = getattr(f, what).stream

        return side_effect

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 20\r\n\r\n0123456789",
        )
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=note("request"))
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 20\r\n\r\n0123456789")
        >> events.DataReceived(tctx.client, b"abcdefghij")
        << commands.SendData(server, b"abcdefghij")
        << HttpRequestHook(flow)
        >> reply()
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=note("response"))
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 12\r\n\r\n")
        >> events.DataReceived(server, b"hello world!")
        << commands.SendData(tctx.client, b"hello world!")
        << HttpResponseHook(flow)
    )
    assert seen == {"request": True, "response": True}


def test_streamed_request_ends_after_the_request_hook_and_flushes_the_modifier():
    tctx = make_context()
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)
    calls: list[bytes] = []

    def upper(data: bytes) -> bytes:
        calls.append(data)
        return data.upper() if data else b"!"  # b"" at the end: flush one last byte

    def stream_it(f):
        f.request.stream = upper

    def add_trailer(f):
        f.request.trailers = http.Headers(x_checked="yes")

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n",
        )
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=stream_it)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nABC\r\n")
        >> events.DataReceived(tctx.client, b"0\r\n\r\n")
        << commands.SendData(server, b"1\r\n!\r\n")
        << HttpRequestHook(flow)
        >> reply(side_effect=add_trailer)
        << commands.SendData(server, b"0\r\nx-checked: yes\r\n\r\n")
    )
    assert calls == [b"abc", b""]


def test_streamed_response_ends_after_the_response_hook():
    tctx = make_context()
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)

    def stream_it(f):
        f.response.stream = True

    def add_trailer(f):
        f.response.trailers = http.Headers(x_done="1")

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTE: trailers\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\nTE: trailers\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=stream_it)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n")
        >> events.DataReceived(server, b"0\r\n\r\n")
        << HttpResponseHook(flow)
        >> reply(side_effect=add_trailer)
        << commands.SendData(tctx.client, b"0\r\nx-done: 1\r\n\r\n")
    )


def test_websocket_handshake_response_is_complete_with_its_head():
    tctx = make_context()
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)
    seen = {}

    def note(f):
        seen["end"], seen["start"] = f.response.timestamp_end, f.response.timestamp_start

    upgrade = b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n" + upgrade + b"\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n" + upgrade + b"\r\n")
        >> events.DataReceived(
            server,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply(side_effect=note)
        << commands.SendData(
            tctx.client,
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
        )
        << WebsocketStartHook(flow)
    )
    assert seen["end"] is not None and seen["end"] == seen["start"]


def _upgraded(tctx, **options):
    tctx.options.update(**options)
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)
    answer = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n"
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n")
        >> events.DataReceived(server, answer)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, answer)
    )
    return playbook, flow


def test_an_upgrade_without_websocket_becomes_a_tcp_flow_with_hooks():
    from proxycore.layers.tcp import TcpStartHook
    from proxycore.tcp import TCPFlow

    tctx = make_context()
    playbook, _ = _upgraded(tctx, websocket=False)
    assert playbook << TcpStartHook(Placeholder(TCPFlow))


def test_an_upgrade_nothing_can_relay_closes_the_client():
    tctx = make_context()
    playbook, flow = _upgraded(tctx, websocket=False, rawtcp=False)
    assert playbook << commands.CloseConnection(tctx.client)
    assert not flow().live


def test_store_streamed_bodies_keeps_what_was_sent_on():
    tctx = make_context()
    tctx.options.update(store_streamed_bodies=True)
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)

    def stream_upper(f):
        message = f.response or f.request
        message.stream = lambda data: data.upper() + (b"!" if not data else b"")

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client, b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
        )
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=stream_upper)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nABC!")
        << HttpRequestHook(flow)
        >> reply()
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nwxyz")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=stream_upper)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nWXYZ!")
        << HttpResponseHook(flow)
        >> reply()
    )
    # the bodies as they went on, stream modifier and its final flush included
    assert flow().request.data.content == b"ABC!" and flow().response.data.content == b"WXYZ!"
