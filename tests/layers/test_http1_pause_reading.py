"""HTTP/1: a request body that arrives while a hook holds the request is bounded by
body_buffer_limit (the client is not read beyond it until the hook returns), and the
body of a request answered before it (proxyauth's 407) is dropped, never queued."""

from __future__ import annotations

import pytest

from proxycore.connection import Server
from proxycore.http import HTTPFlow, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.http._http1 import LINGER_SECONDS
from proxycore.proxy import commands, events
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply

HEAD = b"POST http://example.com/up HTTP/1.1\r\nHost: example.com\r\nContent-Length: 30\r\n\r\n"


@pytest.fixture
def tctx():
    context = make_context()
    context.options.update(body_buffer_limit="10")
    return context


def answer(flow: HTTPFlow) -> None:
    flow.response = Response.make(407, b"no", {"Connection": "close"})


def test_a_held_request_stops_reading_the_client_past_body_buffer_limit(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, HEAD)
        << HttpRequestHeadersHook(flow)  # an addon (or an intercept) holds the request
        >> events.DataReceived(tctx.client, b"0123456789")  # up to the limit: still read
        >> events.DataReceived(tctx.client, b"abcdef")
        << commands.PauseReading(tctx.client)
        >> reply(to=HttpRequestHeadersHook)
        << commands.ResumeReading(tctx.client)
        # What came meanwhile is over the limit: the request streams, as it would unheld.
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, BytesMatching(rb"^POST /up HTTP/1.1\r\n.*\r\n\r\n0123456789abcdef$"))
        >> events.DataReceived(tctx.client, b"ghijklmnopqrst")
        << commands.SendData(server, b"ghijklmnopqrst")
        << HttpRequestHook(flow)
        >> reply()
    )


def test_a_held_request_under_the_limit_is_never_paused(tctx):
    tctx.options.update(body_buffer_limit="100")
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, HEAD)
        << HttpRequestHeadersHook(flow)
        >> events.DataReceived(tctx.client, b"x" * 30)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(Placeholder(Server))
    )
    assert flow().request.content == b"x" * 30


@pytest.mark.parametrize("off", [None, "0"])
def test_without_a_limit_a_held_request_is_read_on(tctx, off):
    tctx.options.update(body_buffer_limit=off)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, HEAD)
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> events.DataReceived(tctx.client, b"x" * 30)
    )


def test_an_answer_while_paused_resumes_reading_to_drop_the_rest(tctx):
    flow = Placeholder(HTTPFlow)
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, HEAD)
        << HttpRequestHeadersHook(flow)
        >> events.DataReceived(tctx.client, b"x" * 12)
        << commands.PauseReading(tctx.client)
        >> reply(to=HttpRequestHeadersHook, side_effect=answer)
        << commands.ResumeReading(tctx.client)  # the rest is read, to be dropped
        << HttpRequestHook(flow)
        >> events.DataReceived(tctx.client, b"y" * 12)  # while the request hook runs: dropped
    )
    assert playbook
    # Behind the hook wait only the 12 bytes that came while it was undecided; none since.
    queued = playbook.layer.streams[1]._paused_event_queue
    assert sum(len(getattr(e, "data", b"")) for e in queued) == 12
    assert (
        playbook
        >> reply()
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 407 .*\r\n\r\nno$"))
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
        >> events.DataReceived(tctx.client, b"z" * 6)  # the last of the body: dropped too
    )
    assert flow().request.raw_content is None


def test_a_body_complete_before_the_answer_keeps_the_connection(tctx):
    """Dropped bytes are still parsed: once the body is over, the next request can follow."""
    tctx.options.update(body_buffer_limit="100")
    flow = Placeholder(HTTPFlow)

    def answer_kept_alive(f: HTTPFlow) -> None:
        f.response = Response.make(407, b"no")

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, HEAD)
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=answer_kept_alive)
        << HttpRequestHook(flow)
        >> events.DataReceived(tctx.client, b"x" * 30)  # the whole body, while the hook runs
        >> reply()
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 407 .*\r\n\r\nno$"))
        >> events.DataReceived(tctx.client, b"GET http://example.com/next HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
    )


# The same for a response held in its responseheaders hook, toward an HTTP/1 server ---------


def test_a_held_response_stops_reading_the_server_past_body_buffer_limit(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/big HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET /big HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n")
        << HttpResponseHeadersHook(flow)  # held
        >> events.DataReceived(server, b"0123456789")
        >> events.DataReceived(server, b"abcdef")
        << commands.PauseReading(server)
        >> reply(to=HttpResponseHeadersHook)
        << commands.ResumeReading(server)
        # Over the limit: the response streams, as it would unheld.
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\n\r\n0123456789abcdef")
        >> events.DataReceived(server, b"ghijklmnopqrst")
        << commands.SendData(tctx.client, b"ghijklmnopqrst")
        << HttpResponseHook(flow)
    )


def test_pausing_a_server_behind_an_upstream_proxy_pauses_the_connection_to_the_proxy():
    from proxycore.layers.http._upstream_proxy import HttpUpstreamTunnel
    from proxycore.proxy.layer import Layer

    class Holder(Layer):
        def _handle_event(self, event):
            if isinstance(event, events.DataReceived):
                yield commands.PauseReading(self.context.server)
                yield commands.ResumeReading(self.context.server)

    context = make_context()
    context.server = Server(address=("example.com", 80), via=("http", ("proxy.example", 8080)))
    tunnel = HttpUpstreamTunnel.make(context, send_connect=False, child=Holder(context))
    assert (
        Playbook(tunnel)
        >> events.DataReceived(context.client, b"x")
        << commands.PauseReading(tunnel.tunnel_conn)
        << commands.ResumeReading(tunnel.tunnel_conn)
    )
