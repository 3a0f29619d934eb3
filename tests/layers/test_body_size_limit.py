"""body_size_limit: bodies over the limit fail the flow with 413 (request) or 502 (response).

Layer tests with HTTP/1 and HTTP/2 peers (no sockets); the end-to-end check with curl is in
tests/e2e/test_e2e_replay.py.
"""

from __future__ import annotations

import pytest

from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpResponseHeadersHook,
)
from proxycore.layers.http._http1 import LINGER_SECONDS
from proxycore.options import Options
from proxycore.proxy import commands, events
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply
from tests.layers.test_http1_layer import auto, get_flow_playbook, open_and_send
from tests.layers.test_http2_layer import H2Pump

REQUEST_MESSAGE = "Request body exceeds mitmproxy's body_size_limit."
RESPONSE_MESSAGE = "Response body exceeds mitmproxy's body_size_limit."


@pytest.fixture
def tctx():
    context = make_context()
    context.options.update(body_size_limit="10")
    return context


def page(status: int, message: str) -> BytesMatching:
    return BytesMatching(rb"HTTP/1.1 %d .*\r\n\r\n.*%s" % (status, message.replace("'", "&#x27;").encode()))


def post_over_the_limit(tctx, flow, length=b"11"):
    """A POST announcing 11 bytes (over the fixture's limit of 10), up to its requestheaders hook."""
    return (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client, b"POST http://example.com/ HTTP/1.1\r\nContent-Length: %s\r\n\r\n" % length
        )
        << HttpRequestHeadersHook(flow)
    )


# "11, 11": the size the HTTP/1 layer frames the body by (RequestHeaders.declared_size).
@pytest.mark.parametrize("length", [b"11", b"11, 11"])
def test_request_with_content_length_over_the_limit_gets_413_before_its_body(tctx, length):
    flow = Placeholder(HTTPFlow)
    assert (
        post_over_the_limit(tctx, flow, length)
        >> reply()
        << HttpErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, page(413, REQUEST_MESSAGE))
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
        # The body still arrives: it is dropped, nothing goes upstream.
        >> events.DataReceived(tctx.client, b"hello world")
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == REQUEST_MESSAGE
    assert flow().response is None and not flow().live


def test_a_client_that_keeps_sending_is_cut_off_after_lingering(tctx):
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(
            tctx.client, b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 1000\r\n\r\n"
        )
        << commands.SendData(tctx.client, page(413, REQUEST_MESSAGE))
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
        >> events.DataReceived(tctx.client, b"x" * 500)
        >> reply(to=commands.RequestWakeup)
        << commands.CloseConnection(tctx.client)
    )


def test_request_exactly_at_the_limit_passes(tctx):
    playbook, _ = open_and_send(
        auto(tctx), tctx,
        b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
        b"POST / HTTP/1.1\r\nContent-Length: 10\r\n\r\n0123456789",
    )
    assert playbook


def test_chunked_request_fails_once_the_buffered_body_passes_the_limit(tctx):
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n",
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        >> events.DataReceived(tctx.client, b"5\r\nghijk\r\n")
        << HttpErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, page(413, REQUEST_MESSAGE))
        << commands.CloseConnection(tctx.client, half_close=True)
        << commands.RequestWakeup(LINGER_SECONDS)
    )
    assert flow().error.msg == REQUEST_MESSAGE
    assert flow().request.raw_content is None


# "11, 11": repeated agreeing fields, the size the HTTP/1 layer frames the body by and
# passes on to the stream (ResponseHeaders.declared_size), so it too fails before the body.
@pytest.mark.parametrize("length", [b"11", b"11, 11"])
def test_response_with_content_length_over_the_limit_gets_502(tctx, length):
    playbook, flow, server = get_flow_playbook(
        tctx, b"GET http://example.com/ HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"
    )
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: %s\r\n\r\nhello" % length)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, page(502, RESPONSE_MESSAGE))
        << commands.CloseConnection(tctx.client)
        << commands.CloseConnection(server)
    )
    assert flow().error.msg == RESPONSE_MESSAGE
    assert flow().response.status_code == 200 and not flow().live


def test_chunked_response_fails_once_the_buffered_body_passes_the_limit(tctx):
    playbook, server = open_and_send(
        auto(tctx), tctx, b"GET http://example.com/ HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"
    )
    assert (
        playbook
        >> events.DataReceived(
            server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n8\r\n01234567\r\n"
        )
        >> events.DataReceived(server, b"8\r\n89abcdef\r\n")
        << commands.SendData(tctx.client, page(502, RESPONSE_MESSAGE))
        << commands.CloseConnection(tctx.client)
        << commands.CloseConnection(server)
    )


def test_head_response_announcing_a_large_body_is_fine(tctx):
    playbook, server = open_and_send(
        auto(tctx), tctx, b"HEAD http://example.com/ HTTP/1.1\r\n\r\n", b"HEAD / HTTP/1.1\r\n\r\n"
    )
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 99999\r\n\r\n")
    )


def test_no_limit_by_default():
    tctx = make_context()
    body = b"x" * 100_000
    playbook, _ = open_and_send(
        auto(tctx), tctx,
        b"POST http://example.com/ HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + body,
        b"POST / HTTP/1.1\r\nContent-Length: 100000\r\n\r\n" + body,
    )
    assert playbook


def test_killed_in_the_headers_hook_stays_killed(tctx):
    flow = Placeholder(HTTPFlow)
    assert (
        post_over_the_limit(tctx, flow)
        >> reply(side_effect=lambda f: f.kill())
        << HttpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == "Connection killed."


@pytest.mark.parametrize("value", ["abc", "10x", "-1"])
def test_bad_size_is_an_option_error(value):
    with pytest.raises(OptionsError, match="Invalid size"):
        Options(body_size_limit=value)


@pytest.mark.parametrize("value,size", [("1k", 1024), ("2m", 2 * 1024**2), ("1g", 1024**3)])
def test_sizes_take_k_m_g_suffixes(value, size):
    tctx = make_context()
    tctx.options.update(body_size_limit=value)
    layer = HttpLayer(tctx, HTTPMode.regular)
    list(layer.handle_event(events.Start()))
    from proxycore.layers.http import HttpStream

    stream = HttpStream(tctx, 1, HTTPMode.regular)
    assert not stream._over_size_limit(size) and stream._over_size_limit(size + 1)


# HTTP/2 ---------------------------------------------------------------------------------


def h2_pump(limit: str = "10") -> H2Pump:
    pump = H2Pump()
    pump.context.options.update(body_size_limit=limit)
    return pump


def test_h2_request_over_the_limit_gets_413_and_the_upload_is_stopped():
    pump = h2_pump()
    sid = pump.request("/upload", body=b"y" * 50, end=False)
    got = pump.client_responses()
    assert got[sid]["status"] == b"413" and got[sid]["ended"]
    assert b"Request body exceeds" in got[sid]["body"]
    assert got[sid]["reset"] == 0  # NO_ERROR: stop sending, the answer is complete
    assert pump.server_requests() == {}
    assert pump.hooks == ["requestheaders", "error"]


def test_h2_request_with_content_length_fails_before_any_data():
    pump = h2_pump()
    sid = pump.client.get_next_available_stream_id()
    pump.client.send_headers(
        sid,
        [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"example.com"),
         (b":path", b"/"), (b"content-length", b"11")],
    )
    pump.pump_peers()
    got = pump.client_responses()
    assert got[sid]["status"] == b"413"
    assert pump.hooks == ["requestheaders", "error"]


def test_h2_other_streams_are_unaffected():
    pump = h2_pump("100")
    big = pump.request("/big", body=b"z" * 101)
    small = pump.request("/small", body=b"z" * 100)
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"ok")
    got = pump.client_responses()
    assert got[big]["status"] == b"413"
    assert got[small]["status"] == b"200" and got[small]["body"] == b"ok"


def test_h2_response_over_the_limit_gets_502_and_the_upstream_stream_is_reset():
    pump = h2_pump("1k")
    sid = pump.request("/download")
    (server_sid,) = pump.server_requests()
    got = pump.respond_partly(server_sid, b"q" * 2000)
    assert got[sid]["status"] == b"502" and b"Response body exceeds" in got[sid]["body"]
    resets = [e for e in pump.server_events if type(e).__name__ == "StreamReset"]
    assert [e.stream_id for e in resets] == [server_sid]
    assert pump.hooks[-2:] == ["responseheaders", "error"]


@pytest.mark.parametrize("declared", [None, 0, 5, 8, 10, 11, 100])
@pytest.mark.parametrize("body_limit", [None, "10"])
@pytest.mark.parametrize("stream_large", [None, "5"])
@pytest.mark.parametrize("buffer_limit", ["0", "8"])
def test_what_a_declared_size_decides_before_the_headers_hook(declared, body_limit, stream_large, buffer_limit):
    """HttpStream._declared_body against the rules it states: too large above body_size_limit;
    above the streaming threshold (the lower of stream_large_bodies and body_buffer_limit)
    the message streams and the hook holds the body; an unknown size is held if there is
    such a threshold; otherwise nothing."""
    from proxycore.http import Response
    from proxycore.layers.http import HttpStream
    from proxycore.layers.http._body import BodyBuffer
    from proxycore.layers.http._http1 import size_limits

    tctx = make_context()
    tctx.options.update(body_size_limit=body_limit, stream_large_bodies=stream_large, body_buffer_limit=buffer_limit)
    limits = size_limits(tctx.options)
    stream = HttpStream(tctx, 1, HTTPMode.regular)
    message = Response.make(200)
    too_large, held = stream._declared_body(message, BodyBuffer(), declared)
    over = limits.body is not None and declared is not None and declared > limits.body
    hold = limits.hold
    assert too_large is over
    if over:
        assert not held and not message.stream
        return
    assert message.stream is (hold is not None and declared is not None and declared > hold)
    assert held is (hold is not None and (declared is None or declared > hold))
