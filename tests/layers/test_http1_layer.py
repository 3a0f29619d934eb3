"""Playbook tests of the HTTP layer with HTTP/1 on both sides (regular proxy mode)."""

import pytest

from proxycore.connection import ConnectionState, Server
from proxycore.http import HTTPFlow, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._events import CLIENT_GONE
from proxycore.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.tcp import TCPLayer
from proxycore.proxy import commands, events
from proxycore.proxy.layer import NextLayer, NextLayerHook
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply


@pytest.fixture
def tctx():
    return make_context()


def get_flow_playbook(tctx, request: bytes, upstream_request: bytes):
    """A playbook up to the request having been written upstream."""
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, upstream_request)
    )
    return playbook, flow, server


def test_simple_get(tctx):
    playbook, flow, server = get_flow_playbook(
        tctx,
        b"GET http://example.com/path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET /path?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello")
    )
    assert server().address == ("example.com", 80)
    assert flow().request.url == "http://example.com/path?q=1"
    assert flow().request.authority == ""
    assert flow().response.content == b"hello"
    assert not flow().live


def test_keep_alive_reuses_upstream_connection(tctx):
    playbook, flow, server = get_flow_playbook(
        tctx,
        b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        playbook
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na")
    )
    playbook.hooks = False
    assert (
        playbook
        >> events.DataReceived(tctx.client, b"GET http://example.com/b HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << commands.SendData(server, b"GET /b HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nb")
    )


def auto(tctx, mode=HTTPMode.regular):
    return Playbook(HttpLayer(tctx, mode), hooks=False)


def open_and_send(playbook, tctx, request, upstream_request):
    server = Placeholder(Server)
    return (
        playbook
        >> events.DataReceived(tctx.client, request)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, upstream_request)
    ), server


def open_and_send_checked(playbook, tctx, request, upstream_request):
    """Like open_and_send, but runs (and checks) those steps before hooks are turned on."""
    pb, server = open_and_send(playbook, tctx, request, upstream_request)
    assert pb
    return pb, server


def test_head_response_has_no_body(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"HEAD http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"HEAD / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
        # the connection is reusable right away: no body was expected
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    )


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_status(tctx, status):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    head = b"HTTP/1.1 %d X\r\n\r\n" % status
    assert pb >> events.DataReceived(server, head) << commands.SendData(tctx.client, head)
    assert tctx.client.state is ConnectionState.OPEN


def test_interim_responses_are_skipped(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\nHTTP/1.1 200 OK\r\n")
        >> events.DataReceived(server, b"Content-Length: 2\r\n\r\nok")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )


def test_expect_100_continue_answered_by_proxy(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\n"
            b"Content-Length: 3\r\nExpect: 100-continue\r\n\r\n",
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 100 Continue\r\n\r\n")
        >> events.DataReceived(tctx.client, b"abc")
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(
            server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 3\r\n\r\nabc"
        )
    )
    assert "expect" not in flow().request.headers


def test_chunked_request_with_extensions_and_trailers(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: yes\r\n\r\n",
        b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nabcde\r\n0\r\nX-Trailer: yes\r\n\r\n",
    )
    assert pb


def test_chunked_response_is_rechunked(tctx):
    flow = Placeholder(HTTPFlow)
    layer = HttpLayer(tctx, HTTPMode.regular)
    pb, server = open_and_send(
        Playbook(layer, hooks=False),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nWiki\r\n")
        >> events.DataReceived(server, b"5\r\npedia\r\n0\r\n\r\n")
        << commands.SendData(
            tctx.client,
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n9\r\nWikipedia\r\n0\r\n\r\n",
        )
    )
    del flow


def test_connection_close_closes_both_sides(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        << commands.CloseConnection(server)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        << commands.CloseConnection(tctx.client)
    )


def test_http10_closes_after_response(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        << commands.CloseConnection(server)
        << commands.SendData(tctx.client, b"HTTP/1.0 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        << commands.CloseConnection(tctx.client)
    )


def test_response_until_eof(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\n\r\nsome")
        >> events.DataReceived(server, b" data")
        >> events.ConnectionClosed(server)
        << commands.CloseConnection(server)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\n\r\nsome data")
        << commands.CloseConnection(tctx.client)
    )


def test_upstream_closes_mid_body_gives_502(tctx):
    flow = Placeholder(HTTPFlow)
    layer = HttpLayer(tctx, HTTPMode.regular)
    pb, server = open_and_send_checked(
        Playbook(layer, hooks=False),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    pb.hooks = True
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
        << HttpResponseHeadersHook(flow)
        >> reply()
        >> events.ConnectionClosed(server)
        << commands.CloseConnection(server)
        << HttpErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 502 Bad Gateway.*peer closed connection"))
        << commands.CloseConnection(tctx.client)
    )
    assert "peer closed connection" in flow().error.msg


def test_refused_upstream_gives_502(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply("Connection refused")
        << HttpErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 502 .*Cannot connect to example.com:80: Connection refused"))
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == "Cannot connect to example.com:80: Connection refused"


@pytest.mark.parametrize(
    "garbage",
    [
        b"\x16\x03\x01\x00garbage\r\n\r\n",
        b"GET\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nbad header\r\n\r\n",
        b"GET http://example.com/ HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"GET http://example.com:99999/ HTTP/1.1\r\n\r\n",
        b"POST http://example.com/ HTTP/1.1\r\nTransfer-Encoding: gzip\r\n\r\n",
    ],
)
def test_garbage_request_gives_400(tctx, garbage):
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(tctx.client, garbage)
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 400 Bad Request\r\n.*Bad request"))
        << commands.CloseConnection(tctx.client)
    )


def test_origin_form_to_regular_proxy_goes_where_the_host_header_says(tctx):
    """As in mitmproxy (a Host naming the proxy itself is refused by proxyserver when connecting)."""
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\nHost: example.com:8000\r\n\r\n")
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com:8000\r\n\r\n")
    )
    assert server().address == ("example.com", 8000)


def test_origin_form_without_host_header_is_rejected(tctx):
    """Answered with 400 and one log line; no hook sees a request that has no destination."""
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), logs=True)
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\n\r\n")
        << commands.Log(Placeholder(str), "info")
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 400 .*no host header"))
        << commands.CloseConnection(tctx.client)
    )


def test_pipelined_requests_are_answered_in_order(tctx):
    two = (
        b"GET http://example.com/1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
        b"GET http://example.com/2 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    )
    pb, server = open_and_send(auto(tctx), tctx, two, b"GET /1 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n1")
        << commands.SendData(server, b"GET /2 HTTP/1.1\r\nHost: example.com\r\n\r\n")
    )


def test_client_half_close_after_request_still_gets_response(tctx):
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert (
        pb
        >> events.ConnectionClosed(tctx.client)
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << commands.CloseConnection(tctx.client)
    )


def test_client_disconnects_mid_body(tctx):
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client, b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 10\r\n\r\nab"
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)  # closed first, then the flow fails (as mitmproxy)
        << HttpErrorHook(flow)
        >> reply()
    )
    assert flow().error.msg == CLIENT_GONE


def test_response_from_addon_skips_server(tctx):
    def answer(flow):
        flow.response = Response.make(418, b"teapot", {"X-From": "addon"})

    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply(side_effect=answer)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 418 I'm a teapot\r\n.*x-from: addon.*\r\n\r\nteapot$|^HTTP/1.1 418 I'm a teapot\r\n.*X-From: addon.*\r\n\r\nteapot$"))
    )


def test_kill_in_requestheaders(tctx):
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=lambda f: f.kill())
        << HttpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error.msg == "Connection killed."


def test_streamed_request_body(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)

    def stream(f):
        f.request.stream = True

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\nabc",
        )
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=stream)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(
            server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 6\r\n\r\nabc"
        )
        >> events.DataReceived(tctx.client, b"def")
        << commands.SendData(server, b"def")
        << HttpRequestHook(flow)
        >> reply()
    )
    assert flow().request.raw_content is None or flow().request.raw_content == b""


def test_streamed_response_body(tctx):
    flow = Placeholder(HTTPFlow)

    def stream(f):
        f.response.stream = True

    pb, server = open_and_send_checked(
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    pb.hooks = True
    assert (
        pb
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=stream)
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        >> events.DataReceived(server, b"def")
        << commands.SendData(tctx.client, b"def")
        << HttpResponseHook(flow)
        >> reply()
    )


def test_connect_then_raw_passthrough(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    nl = Placeholder(NextLayer)

    def choose_tcp(data):
        data.layer = TCPLayer(data.context, ignore=True)

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        << HttpConnectHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << HttpConnectedHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
        >> events.DataReceived(tctx.client, b"\x16\x03\x01hello")
        << NextLayerHook(nl)
        >> reply(side_effect=choose_tcp)
        << commands.SendData(server, b"\x16\x03\x01hello")
        >> events.DataReceived(server, b"\x16\x03\x03reply")
        << commands.SendData(tctx.client, b"\x16\x03\x03reply")
        >> events.ConnectionClosed(server)
        << commands.CloseTcpConnection(tctx.client, half_close=True)
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(server)
    )
    assert server().address == ("example.com", 443)
    assert flow().request.method == "CONNECT"


def test_connect_to_unreachable_host(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        << commands.OpenConnection(server)
        >> reply("Connection refused")
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 502 .*Connection refused"))
        << commands.CloseConnection(tctx.client)
    )
    del flow


def test_a_refused_eager_connect_is_a_502_not_a_flow_error(tctx):
    """As mitmproxy: http_connect_error sees the 502 and no error, so mitmdump prints no
    " << Cannot connect ..." line under it (replaying with -S while the server is down)."""
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        << HttpConnectHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply("Connection refused")
        << HttpConnectErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"^HTTP/1.1 502 .*Connection refused"))
        << commands.CloseConnection(tctx.client)
    )
    assert flow().response.status_code == 502
    assert flow().error is None


def test_data_pipelined_after_connect_reaches_the_tunnel(tctx):
    nl = Placeholder(NextLayer)
    server = Placeholder(Server)
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:80 HTTP/1.1\r\n\r\nearly bytes")
        << HttpConnectHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << HttpConnectedHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
        << NextLayerHook(nl)
    )
    assert nl().data_client() == b"early bytes"


def test_transparent_request_keeps_its_host_header():
    """The connection goes to the original destination; Host still names what the client asked for."""
    tctx = make_context()
    tctx.server = Server(address=("10.0.0.1", 80))
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent))
        >> events.DataReceived(tctx.client, b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        << commands.SendData(tctx.server, b"GET /x HTTP/1.1\r\nHost: example.com\r\n\r\n")
    )
    assert flow().request.host == "10.0.0.1" and flow().request.pretty_host == "example.com"


def test_a_connect_killed_in_its_hook_closes_the_client_without_an_error_hook(tctx):
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\n\r\n")
        << HttpConnectHook(flow)
        >> reply(side_effect=lambda f: f.kill())
        << commands.CloseConnection(tctx.client)
    )
    assert flow().error is not None and not flow().live


def test_a_flow_killed_at_its_response_closes_only_the_http1_client(tctx):
    server = Placeholder(Server)
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply(side_effect=lambda f: f.kill())
        # no error hook after the response hook; the driver drops the server connection
        # with the client's
        << commands.CloseConnection(tctx.client)
    )


def test_lazy_transparent_tls_keeps_the_client_sni_for_the_server():
    tctx = make_context()
    tctx.client.sni = "sni.example"
    tctx.server = Server(address=("192.0.2.42", 443))
    tctx.server.tls = True
    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent), hooks=False)
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\n\r\n")
        << commands.OpenConnection(server)
    )
    assert server().address == ("192.0.2.42", 443) and server().sni == "sni.example"


def test_a_flow_killed_in_its_error_hook_gets_no_error_page(tctx):
    server = Placeholder(Server)
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.ConnectionClosed(server)
        << commands.CloseConnection(server)
        << HttpErrorHook(flow)
        >> reply(side_effect=lambda f: f.kill())
        << commands.CloseConnection(tctx.client)
    )


def test_an_unused_server_connection_closed_by_the_server_is_closed(tctx):
    tctx.server = Server(address=("192.0.2.1", 80))
    tctx.server.state = ConnectionState.OPEN
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent))
        >> events.ConnectionClosed(tctx.server)
        << commands.CloseConnection(tctx.server)
    )


@pytest.mark.parametrize("method", [b"connect", b"Connect"])
def test_server_side_reads_a_method_set_in_lower_case_in_upper_case(tctx, method):
    """Http1Client reads the request's method without the Request.method property, in
    upper case as that gives it: a 2xx to a CONNECT written "connect" is still a tunnel."""
    from proxycore.http import Request
    from proxycore.layers.http._commands import ReceiveHttp
    from proxycore.layers.http._events import (
        RequestEndOfMessage,
        RequestHeaders,
        ResponseData,
        ResponseHeaders,
    )
    from proxycore.layers.http._http1 import Http1Client

    tctx.server = Server(address=("example.com", 443))
    request = Request.make("CONNECT", "http://example.com:443/")
    request.data.method = method
    headers = Placeholder(ResponseHeaders)
    assert (
        Playbook(Http1Client(tctx))
        >> RequestHeaders(1, request, True)
        << commands.SendData(tctx.server, Placeholder(bytes))
        >> RequestEndOfMessage(1)
        >> events.DataReceived(tctx.server, b"HTTP/1.1 200 OK\r\n\r\nhello")
        << ReceiveHttp(headers)
        << ReceiveHttp(ResponseData(1, b"hello"))  # the tunnel's first bytes, no end of message
    )
    assert headers().end_stream


def test_a_changed_head_size_limit_holds_from_the_next_head_on(tctx):
    """The layers read head_size_limit for every head (from the options' derived cache):
    a change between two exchanges of one connection applies to the next response head."""
    request = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"
    pb, server = open_and_send(auto(tctx), tctx, request, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nX-Pad: " + b"p" * 100 + b"\r\n\r\n"
    assert pb >> events.DataReceived(server, response) << commands.SendData(tctx.client, response)
    tctx.options.update(head_size_limit="100")
    assert (
        pb
        >> events.DataReceived(tctx.client, request)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, response)  # 125 bytes: too large now
        << commands.CloseConnection(server)
        << commands.SendData(tctx.client, BytesMatching(b"HTTP/1.1 502 .*head larger than 100 bytes.*"))
        << commands.CloseConnection(tctx.client)
    )


def test_a_changed_head_size_limit_holds_for_the_clients_next_head(tctx):
    """As above, for the next request head of a kept-alive client connection."""
    request = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"  # 55 bytes
    pb, server = open_and_send(auto(tctx), tctx, request, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
    response = b"HTTP/1.1 204 No Content\r\n\r\n"
    assert pb >> events.DataReceived(server, response) << commands.SendData(tctx.client, response)
    tctx.options.update(head_size_limit="40")
    assert (
        pb
        >> events.DataReceived(tctx.client, request)
        << commands.SendData(tctx.client, BytesMatching(b"HTTP/1.1 431 .*"))
        << commands.CloseConnection(tctx.client)
    )


@pytest.mark.parametrize(
    "head, declared",
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", 5),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 5\r\n\r\n", 5),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", None),
        (b"HTTP/1.1 200 OK\r\n\r\n", None),  # until the server closes
        (b"HTTP/1.1 204 No Content\r\n\r\n", 0),
    ],
)
def test_the_client_side_passes_on_the_declared_response_size(tctx, head, declared):
    """Http1Client reads Content-Length to frame the body and gives it to the stream with
    the head, which then does not read the field again before the headers hook."""
    from proxycore.http import Request
    from proxycore.layers.http._commands import ReceiveHttp
    from proxycore.layers.http._events import RequestEndOfMessage, RequestHeaders, ResponseHeaders
    from proxycore.layers.http._http1 import Http1Client

    tctx.server = Server(address=("example.com", 80))
    playbook = (
        Playbook(Http1Client(tctx))
        >> RequestHeaders(1, Request.make("GET", "http://example.com/"), True)
        << commands.SendData(tctx.server, Placeholder(bytes))
        >> RequestEndOfMessage(1)
        >> events.DataReceived(tctx.server, head)
    )
    bool(playbook)  # feeds the events (what follows the head depends on its framing)
    (sent,) = [c.event for c in playbook.actual if isinstance(c, ReceiveHttp) and isinstance(c.event, ResponseHeaders)]
    assert sent.declared_size == declared


def test_the_connection_lookup_by_identity_forgets_a_connection_the_layer_drops(tctx):
    """HttpLayer._layer_of answers the client's and the last server's layer by identity:
    an answer it remembers must end with the ``connections`` entry it came from."""
    from proxycore.layers.http._commands import RegisterHttpConnection

    layer = HttpLayer(tctx, HTTPMode.regular)
    pb, server = open_and_send_checked(
        Playbook(layer, hooks=False),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    assert layer._layer_of(tctx.client) is layer.connections[tctx.client]
    http_client = layer.connections[server()]
    assert layer._layer_of(server()) is http_client  # now remembered
    list(layer.register_connection(RegisterHttpConnection(server(), "gone")))
    assert server() not in layer.connections
    assert layer._layer_of(server()) is None


@pytest.mark.parametrize("split", [None, 3, 40])
def test_a_response_body_whole_in_the_buffer_or_in_parts_reads_the_same(tctx, split):
    """A Content-Length body that came with its head is handed on without a body reader:
    what follows it is still the server's unexpected data, and a body in parts is the same."""
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    pb, server = open_and_send(
        auto(tctx),
        tctx,
        b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    )
    if split is None:
        pb = pb >> events.DataReceived(server, response + b"EXTRA") << commands.CloseConnection(server)
    else:
        pb = pb >> events.DataReceived(server, response[:split]) >> events.DataReceived(server, response[split:])
    assert pb << commands.SendData(tctx.client, response)
    assert tctx.client.state is ConnectionState.OPEN
