"""A server that answers while a streamed upload is still arriving (RFC 9110 15.5.14).

As in mitmproxy, the rest of the upload is still relayed to that server, and the
client connection goes on afterwards; only if the server closes its connection do both
sides end. (An answer an addon gives before the body, e.g. proxyauth's 407, is another
path: that body is dropped, see test_limits_layer.py.)
"""

from __future__ import annotations

import h2.events
import pytest

from proxycore.connection import Server
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply
from tests.layers.test_http2_layer import H2Pump


@pytest.fixture
def tctx():
    return make_context()


def streamed_upload(tctx) -> tuple[Playbook, Placeholder, Placeholder]:
    """A POST of 9 bytes, streamed: 3 of them are at the server."""
    tctx.options.stream_large_bodies = "0"
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\n"
                                            b"Content-Length: 9\r\n\r\nabc")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST /up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 9\r\n\r\nabc")
    )
    return playbook, flow, server


EARLY = b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 0\r\n\r\n"


def answered_early(playbook: Playbook, flow: Placeholder, server: Placeholder, tctx) -> Playbook:
    return (
        playbook
        >> events.DataReceived(server, EARLY)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, EARLY)
    )


def test_the_rest_of_the_upload_still_reaches_the_server_and_the_connection_goes_on(tctx):
    playbook, flow, server = streamed_upload(tctx)
    assert (
        answered_early(playbook, flow, server, tctx)
        >> events.DataReceived(tctx.client, b"defghi")
        << commands.SendData(server, b"defghi")
        << HttpRequestHook(flow)
        >> reply()
        # Both messages are complete: the client connection reads its next request.
        >> events.DataReceived(tctx.client, b"GET http://example.com/next HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
    )
    assert flow().response.status_code == 413 and flow().error is None


def test_the_server_connection_is_not_reused_before_the_upload_is_out(tctx):
    playbook, flow, server = streamed_upload(tctx)
    assert answered_early(playbook, flow, server, tctx)
    client_layer = playbook.layer.connections[server()]
    assert not client_layer.reusable
    assert (
        playbook
        >> events.DataReceived(tctx.client, b"defghi")
        << commands.SendData(server, b"defghi")
        << HttpRequestHook(flow)
        >> reply()
    )
    assert client_layer.reusable


def test_a_server_that_closes_after_answering_ends_both_sides_without_an_error_hook(tctx):
    playbook, flow, server = streamed_upload(tctx)
    assert (
        answered_early(playbook, flow, server, tctx)
        >> events.ConnectionClosed(server)
        << commands.CloseConnection(server)
        << commands.CloseConnection(tctx.client)
    )
    assert flow().response.status_code == 413


def test_http2_upload_answered_early_is_relayed_to_its_end_without_a_reset():
    pump = H2Pump()
    pump.context.options.update(stream_large_bodies="0")
    sid = pump.request("/up", body=b"abc", end=False)
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"too large")
    got = pump.client_responses()
    assert got[sid]["status"] == b"200" and got[sid]["ended"] and "reset" not in got[sid]
    pump.client.send_data(sid, b"def", end_stream=True)
    pump.pump_peers()
    seen = pump.server_requests()[server_sid]
    assert seen["body"] == b"abcdef" and seen["ended"]
    assert not any(isinstance(e, h2.events.StreamReset) for e in pump.client_events)
    assert not pump.layer.streams  # both directions done: the stream is gone
