"""HTTP/2 request_head_timeout and keepalive_timeout toward clients: GOAWAY, then close.

Playbook tests for the exact commands, H2Pump (two h2-library peers) for longer stories."""

from __future__ import annotations

import h2.errors
import h2.events
import h2.exceptions
import hyperframe.frame
import pytest
from hypothesis import event, example, given
from hypothesis import strategies as st

from proxycore.connection import Server
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._http2 import GOAWAY_LINGER_SECONDS
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply
from tests.hypothesis_budget import budget
from tests.layers.test_http2_layer import H2Pump, h2_peer

NO_ERROR = h2.errors.ErrorCodes.NO_ERROR


def split_header_block(data: bytes) -> tuple[bytes, bytes]:
    """One HEADERS frame as h2 wrote it, made into HEADERS without END_HEADERS + CONTINUATION."""
    frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
    frame.parse_body(memoryview(data[9 : 9 + length]))
    assert isinstance(frame, hyperframe.frame.HeadersFrame) and len(data) == 9 + length
    half = len(frame.data) // 2
    first = hyperframe.frame.HeadersFrame(frame.stream_id, flags=set(frame.flags) - {"END_HEADERS"})
    first.data = frame.data[:half]
    rest = hyperframe.frame.ContinuationFrame(frame.stream_id, flags=["END_HEADERS"])
    rest.data = frame.data[half:]
    return first.serialize(), rest.serialize()


def get(path: str) -> list[tuple[bytes, bytes]]:
    return [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"example.com"), (b":path", path.encode())]


@pytest.fixture
def tctx():
    context = make_context()
    context.client.alpn = b"h2"
    return context


def terminated(peer: h2.connection.H2Connection, data: bytes) -> h2.events.ConnectionTerminated:
    (goaway,) = [e for e in peer.receive_data(data) if isinstance(e, h2.events.ConnectionTerminated)]
    return goaway


def test_a_client_that_sends_no_request_gets_goaway_after_request_head_timeout(tctx):
    client = h2_peer(client_side=True)
    settings, goaway = Placeholder(bytes), Placeholder(bytes)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent), timeouts=True)
        << commands.SendData(tctx.client, settings)
        << commands.RequestTimeout(30)
        >> events.DataReceived(tctx.client, client.data_to_send())  # preface and SETTINGS only
        << commands.SendData(tctx.client, Placeholder(bytes))  # SETTINGS ack
        >> reply(to=commands.RequestTimeout)
        << commands.SendData(tctx.client, goaway)
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(GOAWAY_LINGER_SECONDS)
        >> reply(to=-1)
        << commands.CloseConnection(tctx.client)
    )
    client.receive_data(settings())
    assert terminated(client, goaway()).error_code == NO_ERROR


def test_a_header_block_without_end_headers_is_timed_even_with_streams_open(tctx):
    """The earlier bug: HEADERS without END_HEADERS never started a timer."""
    tctx.options.update(request_head_timeout=5)
    client = h2_peer(client_side=True)
    preface = client.data_to_send()
    client.send_headers(1, get("/first"), end_stream=True)
    first = client.data_to_send()
    client.send_headers(3, get("/second"), end_stream=True)
    headers, _ = split_header_block(client.data_to_send())
    goaway = Placeholder(bytes)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent), hooks=False, timeouts=True)
        << commands.SendData(tctx.client, Placeholder(bytes))
        << commands.RequestTimeout(5)
        >> events.DataReceived(tctx.client, preface)
        << commands.SendData(tctx.client, Placeholder(bytes))
        >> events.DataReceived(tctx.client, first)  # stream 1 is open: it waits for its server
        << commands.OpenConnection(Placeholder(Server))
        >> events.DataReceived(tctx.client, headers)
        << commands.RequestTimeout(5)  # a header block has begun: it is timed all the same
        >> reply(to=commands.RequestTimeout)
        << commands.SendData(tctx.client, goaway)
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(GOAWAY_LINGER_SECONDS)
    )
    assert b"request head timeout" in goaway()


def header_block_in_two(pump: H2Pump, path: str = "/slow") -> tuple[int, bytes, bytes]:
    """A request whose header block is a HEADERS frame and a CONTINUATION: its two halves."""
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(sid, get(path), end_stream=True)
    headers, continuation = split_header_block(pump.client.data_to_send())
    return sid, headers, continuation


def goaways(pump: H2Pump) -> list[h2.events.ConnectionTerminated]:
    return [e for e in pump.client_events if isinstance(e, h2.events.ConnectionTerminated)]


def test_a_stalled_continuation_fails_the_open_streams_and_closes():
    pump = H2Pump(hold_hooks=True, request_head_timeout=7)
    first = pump.request("/first")  # open: its hooks are held
    assert pump.timeouts[-1].delay == 7 and not pump.layer.connections[pump.context.client].head_timer.running
    sid, headers, _ = header_block_in_two(pump)
    pump.feed(events.DataReceived(pump.context.client, headers))
    timer = pump.timeouts[-1]
    assert timer.delay == 7 and pump.layer.connections[pump.context.client].head_timer.command is timer
    pump.feed(events.Wakeup(timer))
    (goaway,) = goaways(pump)
    assert goaway.error_code == NO_ERROR and goaway.last_stream_id == first
    assert "client" in pump.closed
    pump.release_hooks()
    assert pump.hooks[-1] == "error"  # the open exchange fails with the connection
    assert pump.server_requests() == {}


def test_a_header_block_completed_in_time_outdates_its_timer():
    pump = H2Pump(request_head_timeout=7)
    sid, headers, rest = header_block_in_two(pump)
    pump.feed(events.DataReceived(pump.context.client, headers))
    timer = pump.timeouts[-1]
    pump.feed(events.DataReceived(pump.context.client, rest))
    assert [r["path"] for r in pump.server_requests().values()] == [b"/slow"]
    pump.feed(events.Wakeup(timer))
    assert not goaways(pump) and "client" not in pump.closed


def test_an_idle_connection_gets_goaway_after_keepalive_timeout():
    pump = H2Pump(keepalive_timeout=11)
    sid = pump.request("/one")
    (server_sid,) = pump.server_requests()
    assert not pump.layer.connections[pump.context.client].head_timer.running  # a stream is open
    pump.respond(server_sid, b"ok")
    assert pump.client_responses()[sid]["body"] == b"ok"
    idle = pump.timeouts[-1]
    assert idle.delay == 11
    pump.feed(events.Wakeup(idle))
    (goaway,) = goaways(pump)
    assert goaway.error_code == NO_ERROR and goaway.additional_data == b"idle"
    assert "client" in pump.closed


def test_a_new_stream_outdates_the_keepalive_timer():
    pump = H2Pump(keepalive_timeout=11, hold_hooks=True)
    pump.release_hooks()
    sid = pump.request("/one")
    pump.release_hooks()
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"ok")
    idle = pump.timeouts[-1]
    pump.hold_hooks = True
    pump.request("/two")  # held in its hooks: the connection is not idle
    pump.feed(events.Wakeup(idle))
    assert not goaways(pump) and pump.client_responses()[sid]["ended"]


def test_idle_with_a_partial_frame_is_a_head_that_has_begun():
    pump = H2Pump(keepalive_timeout=11, request_head_timeout=3)
    pump.request("/one")
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"ok")
    assert pump.timeouts[-1].delay == 11
    _, headers, _ = header_block_in_two(pump, "/two")
    pump.feed(events.DataReceived(pump.context.client, headers[:5]))  # a frame header, cut short
    head = pump.timeouts[-1]
    assert head.delay == 3
    pump.feed(events.Wakeup(head))
    assert goaways(pump)[0].additional_data == b"request head timeout"


def test_timeouts_can_be_turned_off():
    pump = H2Pump(keepalive_timeout=0, request_head_timeout=0)
    sid, headers, _ = header_block_in_two(pump)
    pump.feed(events.DataReceived(pump.context.client, headers))
    assert pump.timeouts == []


# Any order of requests, cut frames and timers: no exception, and a timer that fires
# while a head is incomplete or the connection idle ends the connection. -------------------

OPS = st.lists(
    st.sampled_from(["get", "post", "data", "end", "cut", "rest", "fire-oldest", "fire-newest", "release", "respond"]),
    max_size=25,
)


@budget(300, deadline=None)
@given(OPS)
@example(["get", "release", "respond", "fire-newest"])  # idle
@example(["get", "cut", "fire-newest"])  # a head cut short with a stream open
def test_requests_cut_frames_and_timers_in_any_order_never_raise(ops):
    pump = H2Pump(hold_hooks=True, request_head_timeout=5, keepalive_timeout=9)
    timers = pump.timeouts
    open_posts: list[int] = []
    responded: set[int] = set()
    rest = b""
    for op in ops:
        if "client" in pump.closed:
            break
        if op in ("get", "post", "cut"):
            sid = pump.client.get_next_available_stream_id()
            pump.client.send_headers(sid, get(f"/{op}"), end_stream=op != "post")
            data = pump.client.data_to_send()
            if op == "cut":
                headers, rest = split_header_block(data)
                data = headers[: len(headers) - 3]
                rest = headers[len(headers) - 3 :] + rest
            elif op == "post":
                open_posts.append(sid)
            pump.feed(events.DataReceived(pump.context.client, data))
        elif op == "rest" and rest:
            pump.feed(events.DataReceived(pump.context.client, rest))
            rest = b""
        elif op in ("data", "end") and open_posts and not rest:
            sid = open_posts[0] if op == "data" else open_posts.pop(0)
            try:
                pump.client.send_data(sid, b"x" * 100, end_stream=op == "end")
            except h2.exceptions.ProtocolError:
                continue  # the proxy reset or refused it meanwhile
            pump.pump_peers()
        elif op.startswith("fire") and timers:
            timer = timers.pop(0 if op == "fire-oldest" else -1)
            server_layer = pump.layer.connections[pump.context.client]
            live = server_layer.head_timer.command is timer
            pump.feed(events.Wakeup(timer))
            if live:
                event(f"live {'idle' if server_layer.head_timer.idle else 'head'} timer fired")
                assert "client" in pump.closed and goaways(pump)
        elif op == "release":
            pump.release_hooks()
            pump.hold_hooks = True
        elif op == "respond":
            for server_sid, request in pump.server_requests().items():
                if request["ended"] and server_sid not in responded:
                    responded.add(server_sid)
                    pump.hold_hooks = False
                    pump.respond(server_sid, b"ok")
                    pump.release_hooks()
                    pump.hold_hooks = True
