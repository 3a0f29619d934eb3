"""Playbook tests of the per-connection limits that live in the HTTP layers (docs/hardening.md)."""

from __future__ import annotations

import pytest
import wsproto.events as ws

from proxycore.addons.proxyauth import make_auth_required_response
from proxycore.connection import Server
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._events import CLIENT_GONE
from proxycore.layers.http._hooks import (
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.http._http1 import LINGER_SECONDS, PAUSE_FLOOR
from proxycore.layers.websocket import CLOSE_TIMEOUT
from proxycore.proxy import commands, events
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply
from tests.layers.test_http1_layer import get_flow_playbook
from tests.layers.test_websocket_layer import DEFLATE, Relay, messages


@pytest.fixture
def tctx():
    return make_context()

# Answering at requestheaders time (proxyauth's 407) --------------------------------------

BIG_UPLOAD_HEAD = (
    b"POST http://example.com/upload HTTP/1.1\r\nHost: example.com\r\n"
    b"Content-Length: 200000000\r\nExpect: 100-continue\r\n\r\n"
)


def challenge(flow: HTTPFlow) -> None:
    flow.response = make_auth_required_response(is_proxy=True)


def challenged(tctx, head: bytes, flow: Placeholder[HTTPFlow], answer: Placeholder[bytes]) -> Playbook:
    """Up to the 407 an addon set at requestheaders time, written to the client."""
    return (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, head)
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=challenge)
        << HttpRequestHook(flow)
        >> reply()
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, answer)
    )


def test_answer_at_requestheaders_goes_out_before_the_body_without_100_continue(tctx):
    flow, answer = Placeholder(HTTPFlow), Placeholder(bytes)
    assert (
        challenged(tctx, BIG_UPLOAD_HEAD, flow, answer)
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
        # The body the client sends anyway is dropped, never buffered or forwarded.
        >> events.DataReceived(tctx.client, b"x" * 65536)
        >> events.DataReceived(tctx.client, b"x" * 65536)
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)
    )
    assert answer().startswith(b"HTTP/1.1 407 Proxy Authentication Required\r\n")
    assert b"100 Continue" not in answer()
    assert flow().request.raw_content is None  # never read
    assert "expect" not in flow().request.headers


def test_client_that_waits_for_100_continue_is_answered_and_cut_off_after_lingering(tctx):
    """curl's large uploads: it waits for 100 Continue; the 407 must come without it."""
    flow, answer = Placeholder(HTTPFlow), Placeholder(bytes)
    assert (
        challenged(tctx, BIG_UPLOAD_HEAD, flow, answer)
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
        >> reply(to=commands.RequestWakeup)
        << commands.CloseConnection(tctx.client)
    )


def test_answer_at_requestheaders_without_a_body_keeps_the_connection(tctx):
    """A bodiless request answered early is an ordinary addon answer: keep-alive stays."""
    head = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"
    flow, answer = Placeholder(HTTPFlow), Placeholder(bytes)
    assert challenged(tctx, head, flow, answer)
    assert answer().startswith(b"HTTP/1.1 407 ")


# A client FIN while the response is arriving ---------------------------------------------


def request_sent(tctx):
    return get_flow_playbook(
        tctx,
        b"GET http://example.com/big HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )


def test_client_fin_while_a_buffered_response_arrives_closes_the_server(tctx):
    playbook, flow, server = request_sent(tctx)
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply()
        >> events.DataReceived(server, b"3e8\r\n" + b"x" * 1000 + b"\r\n")
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(server)  # dropped before the error hook, as in mitmproxy
        << HttpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
        # Whatever the server still had in flight goes nowhere.
        >> events.DataReceived(server, b"x" * 1000)
    )
    assert flow().error.msg == CLIENT_GONE


def test_client_fin_while_a_streamed_response_arrives_closes_the_server(tctx):
    def stream(flow: HTTPFlow) -> None:
        flow.response.stream = True

    playbook, flow, server = request_sent(tctx)
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=stream)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        >> events.DataReceived(server, b"3\r\nabc\r\n")
        << commands.SendData(tctx.client, b"3\r\nabc\r\n")
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(server)  # dropped before the error hook, as in mitmproxy
        << HttpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == CLIENT_GONE


def test_client_half_close_before_the_response_head_still_gets_the_response(tctx):
    playbook, flow, server = request_sent(tctx)
    assert (
        playbook
        >> events.ConnectionClosed(tctx.client)
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error is None


# body_buffer_limit: big bodies are streamed, not held in memory ---------------------------


def test_response_over_body_buffer_limit_is_streamed(tctx):
    tctx.options.update(body_buffer_limit="10")
    playbook, flow, server = request_sent(tctx)
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\na\r\n0123456789\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply()
        >> events.DataReceived(server, b"a\r\nabcdefghij\r\n")  # 20 bytes buffered: over the cap
        << commands.SendData(
            tctx.client, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n14\r\n0123456789abcdefghij\r\n"
        )
        >> events.DataReceived(server, b"a\r\nABCDEFGHIJ\r\n0\r\n\r\n")
        << commands.SendData(tctx.client, b"a\r\nABCDEFGHIJ\r\n")
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"0\r\n\r\n")
    )
    assert flow().response.stream is True


def test_response_declared_over_body_buffer_limit_streams_from_the_start(tctx):
    """A Content-Length above the cap streams at once, as with stream_large_bodies: the
    headers hook sees ``stream = True`` and nothing is buffered first."""
    tctx.options.update(body_buffer_limit="10")
    playbook, flow, server = request_sent(tctx)

    def sees_stream(flow: HTTPFlow) -> None:
        assert flow.response.stream is True

    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=sees_stream)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789")
        >> events.DataReceived(server, b"abcdefghij")
        << commands.SendData(tctx.client, b"abcdefghij")
        >> events.DataReceived(server, b"ABCDEFGHIJ")
        << commands.SendData(tctx.client, b"ABCDEFGHIJ")
        << HttpResponseHook(flow)
        >> reply()
    )
    assert flow().response.stream is True


def test_request_over_body_buffer_limit_is_streamed(tctx):
    tctx.options.update(body_buffer_limit="10")
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        >> events.DataReceived(tctx.client, b"10\r\n0123456789abcdef\r\n")  # 16 bytes: over the cap
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(
            server,
            b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n10\r\n0123456789abcdef\r\n",
        )
        >> events.DataReceived(tctx.client, b"9\r\nghijklmno\r\n0\r\n\r\n")
        << commands.SendData(server, b"9\r\nghijklmno\r\n")
        << HttpRequestHook(flow)
        >> reply()
        << commands.SendData(server, b"0\r\n\r\n")
    )
    assert flow().request.stream is True


def test_request_declared_over_body_buffer_limit_streams_from_the_start(tctx):
    """A Content-Length above the cap: the server connection opens after the headers hook,
    which sees ``stream = True``, and the body goes on as it comes."""
    tctx.options.update(body_buffer_limit="10")
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)

    def sees_stream(flow: HTTPFlow) -> None:
        assert flow.request.stream is True

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client, b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 25\r\n\r\n"
        )
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=sees_stream)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 25\r\n\r\n")
        >> events.DataReceived(tctx.client, b"0123456789abcdef")
        << commands.SendData(server, b"0123456789abcdef")
        >> events.DataReceived(tctx.client, b"ghijklmno")
        << commands.SendData(server, b"ghijklmno")
        << HttpRequestHook(flow)
        >> reply()
    )
    assert flow().request.stream is True


@pytest.mark.parametrize("off", [None, "0"])
def test_body_buffer_limit_can_be_turned_off(tctx, off):
    tctx.options.update(body_buffer_limit=off)
    playbook, flow, server = request_sent(tctx)
    assert playbook
    playbook.hooks = False
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 40000000\r\n\r\n")
        >> events.DataReceived(server, b"x" * 40_000_000)
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 200 OK\r\nContent-Length: 40000000\r\n\r\nx"))
    )
    assert not flow().response.stream


def test_a_small_stream_large_bodies_streams_without_pausing_for_a_few_bytes(tctx):
    tctx.options.update(body_buffer_limit="1m", stream_large_bodies="5")
    playbook, flow, server = request_sent(tctx)
    assert playbook
    playbook.hooks = False
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n01234567")
        # The body came while the responseheaders hook was pending: past 5 bytes it is
        # streamed, but the server is only paused past PAUSE_FLOOR (as mitmproxy's playbooks expect).
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\n01234567")
    )
    assert flow().response.stream is True


def test_stream_large_bodies_pauses_a_held_body_past_the_floor(tctx):
    tctx.options.update(body_buffer_limit="1m", stream_large_bodies="5")
    playbook, flow, server = request_sent(tctx)
    assert playbook
    playbook.hooks = False
    body = b"x" * (PAUSE_FLOOR + 1)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    assert (
        playbook
        >> events.DataReceived(server, head + body)
        << commands.PauseReading(server)
        << commands.ResumeReading(server)
        << commands.SendData(tctx.client, head + body)
    )


# request_head_timeout and keepalive_timeout ---------------------------------------------------


def timers(playbook: Playbook) -> list[commands.RequestTimeout]:
    return [c for c in playbook.issued if isinstance(c, commands.RequestTimeout)]


def test_a_head_not_complete_in_time_gets_408_and_the_connection_closes(tctx):
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), timeouts=True)
        << commands.RequestTimeout(30)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n")
        >> events.DataReceived(tctx.client, b"X-Slow: 1\r\n")
        >> reply(to=commands.RequestTimeout)
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 408 Request Timeout\r\n"))
        << commands.CloseConnection(tctx.client)
        # Late bytes change nothing.
        >> events.DataReceived(tctx.client, b"\r\n")
    )


def test_a_connection_that_never_sends_anything_is_closed_silently(tctx):
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), timeouts=True)
        << commands.RequestTimeout(30)
        >> reply(to=commands.RequestTimeout)
        << commands.CloseConnection(tctx.client)
    )


def test_a_head_completed_in_time_outdates_its_timer(tctx):
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False, timeouts=True)
        << commands.RequestTimeout(30)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n")
        >> events.DataReceived(tctx.client, b"Host: example.com\r\n\r\n")
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> reply(to=commands.RequestTimeout)  # fires while the request is answered: nothing happens
    )


def answered_once(tctx) -> Playbook:
    server = Placeholder(Server)
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False, timeouts=True)
        << commands.RequestTimeout(tctx.options.request_head_timeout)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    return playbook


def test_an_idle_keep_alive_connection_is_closed_after_keepalive_timeout(tctx):
    tctx.options.update(keepalive_timeout=7)
    assert (
        answered_once(tctx)
        << commands.RequestTimeout(7)
        >> reply(to=commands.RequestTimeout)
        << commands.CloseConnection(tctx.client)
    )


def test_after_an_idle_wait_a_started_head_gets_request_head_timeout(tctx):
    tctx.options.update(keepalive_timeout=7, request_head_timeout=3)
    playbook = (
        answered_once(tctx)
        << commands.RequestTimeout(7)
        >> events.DataReceived(tctx.client, b"GET http://example.com/")
        << commands.RequestTimeout(3)
    )
    assert playbook
    first, idle, head = timers(playbook)
    assert (
        playbook
        >> events.Wakeup(idle)  # outdated: nothing happens
        >> events.Wakeup(head)
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 408 "))
        << commands.CloseConnection(tctx.client)
    )


def test_the_head_timer_is_published_for_the_driver_not_yielded(tctx):
    # mitmproxy's layer playbooks list every command: a timer command would break them all.
    layer = HttpLayer(tctx, HTTPMode.regular)
    emitted = list(layer.handle_event(events.Start()))
    assert not any(isinstance(c, commands.RequestWakeup) for c in emitted)
    first = tctx.client.head_timer
    assert isinstance(first, commands.RequestTimeout) and first.delay == 30
    list(layer.handle_event(events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n\r\n")))
    assert tctx.client.head_timer is None  # the head is in: the driver cancels its timer
    # A Wakeup for it that arrives late (the driver raced the head) is ignored.
    assert not [c for c in layer.handle_event(events.Wakeup(first)) if not isinstance(c, commands.Log)]


def test_head_timeouts_can_be_turned_off(tctx):
    tctx.options.update(keepalive_timeout=0, request_head_timeout=0)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), timeouts=True)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n")
    )


# websocket_message_size_limit ---------------------------------------------------------------


def closes(peer) -> list[tuple[int, str]]:
    return [(e.code, e.reason) for e in peer.events() if isinstance(e, ws.CloseConnection)]


def test_a_websocket_message_over_the_limit_closes_both_sides_with_1009():
    relay = Relay()
    relay.context.options.update(websocket_message_size_limit="10")
    relay.from_client(ws.BytesMessage(b"0123456", message_finished=False), ws.BytesMessage(b"789ab"), split=3)
    assert relay.layer.client.message.tell() == 0 and relay.layer.client.frames == []  # nothing held
    # Sent before the peers read our close: dropped unread, never relayed.
    relay.from_client(ws.BytesMessage(b"more of it"))
    relay.from_server(ws.BytesMessage(b"late"))
    assert not relay.closed and relay.layer.client.message.tell() == 0
    assert closes(relay.client) == [(1009, "Message too big")]
    assert closes(relay.server) == [(1009, "Message too big")]
    relay.from_client(ws.CloseConnection(code=1009, reason="Message too big"))
    relay.from_server(ws.CloseConnection(code=1009, reason="Message too big"))
    assert relay.closed == {"client", "server"}
    assert messages(relay.received(relay.client)) == [] and messages(relay.received(relay.server)) == []
    assert relay.hooks == ["websocket_start", "websocket_end"]  # never relayed, never hooked
    assert relay.flow.websocket.close_code == 1009
    assert "websocket_message_size_limit" in relay.flow.error.msg


def test_peers_that_do_not_answer_the_1009_close_are_cut_off():
    relay = Relay()
    relay.context.options.update(websocket_message_size_limit="10")
    relay.from_server(ws.BytesMessage(b"x" * 11))
    timer = relay.layer.close_timer
    assert timer is not None and timer.delay == CLOSE_TIMEOUT
    relay.feed(events.Wakeup(timer))
    assert relay.closed == {"client", "server"}
    assert relay.hooks[-1] == "websocket_end"


def test_a_websocket_message_at_the_limit_passes():
    relay = Relay()
    relay.context.options.update(websocket_message_size_limit="10")
    relay.from_server(ws.TextMessage("0123456789"))
    relay.from_server(ws.TextMessage("0123456789"))  # the count starts again per message
    assert messages(relay.received(relay.client)) == [(ws.TextMessage, "0123456789", True)] * 2
    assert not relay.closed


def test_the_websocket_limit_counts_decompressed_bytes():
    relay = Relay(extensions=DEFLATE)
    relay.context.options.update(websocket_message_size_limit="1k")
    relay.from_client(ws.BytesMessage(b"\0" * 100_000))  # a few hundred bytes on the wire
    assert closes(relay.server) == [(1009, "Message too big")]


@pytest.mark.parametrize("off", [None, "0"])
def test_the_websocket_limit_can_be_turned_off(off):
    relay = Relay()
    relay.context.options.update(websocket_message_size_limit=off)
    relay.from_client(ws.BytesMessage(b"x" * 40_000_000))
    assert not relay.closed and relay.flow.websocket.messages[0].content == b"x" * 40_000_000
