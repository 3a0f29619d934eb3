"""Addons may change a message's framing fields in any hook: the HTTP/1 layers honour what
the message says when they use it (Connection, Transfer-Encoding, Content-Length), also
when an addon replaced the headers or the whole request/response.

These guard the layers' reading of those fields against caching a message's state from
before a hook."""

from proxycore.connection import ConnectionState, Server
from proxycore.http import Headers, HTTPFlow, Request, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply

GET = b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n"
GET_UP = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"


def _request(tctx, side_effect_headers=None, side_effect_request=None, request=GET):
    """Up to the request's hooks answered (with the given side effects) and the server opened."""
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)
    pb = (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=side_effect_headers)
        << HttpRequestHook(flow)
        >> reply(side_effect=side_effect_request)
        << commands.OpenConnection(server)
        >> reply(None)
    )
    return pb, flow, server


def _keeps_serving(pb, tctx, server):
    """The client connection and the server connection are both still in use."""
    return (
        pb
        >> events.DataReceived(tctx.client, GET)
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpRequestHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(server, GET_UP)
    )


def test_connection_close_set_in_requestheaders_closes_both_sides():
    tctx = make_context()

    def close(flow):
        flow.request.headers["Connection"] = "close"

    pb, flow, server = _request(tctx, side_effect_headers=close)
    assert (
        pb
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
        >> events.DataReceived(server, OK)
        << HttpResponseHeadersHook(flow)
        << commands.CloseConnection(server)  # (the server side reads on while the hook runs)
        >> reply(to=HttpResponseHeadersHook)
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, OK)
        << commands.CloseConnection(tctx.client)
    )


def test_a_request_replaced_in_the_request_hook_is_framed_and_closed_as_it_says():
    tctx = make_context()

    def replace(flow):
        flow.request = Request.make(
            "POST", "http://example.com/new", b"abc", {"Host": "example.com", "Connection": "close"}
        )

    pb, flow, server = _request(tctx, side_effect_request=replace)
    assert (
        pb
        << commands.SendData(
            server,
            b"POST /new HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\ncontent-length: 3\r\n\r\nabc",
        )
        >> events.DataReceived(server, OK)
        << HttpResponseHeadersHook(flow)
        << commands.CloseConnection(server)  # (the server side reads on while the hook runs)
        >> reply(to=HttpResponseHeadersHook)
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, OK)
    )
    # The client's own request (what its connection layer parsed) asked for no close.
    assert tctx.client.state is ConnectionState.OPEN


def test_transfer_encoding_set_in_the_request_hook_frames_the_body_in_chunks():
    tctx = make_context()

    def chunked(flow):
        del flow.request.headers["Content-Length"]
        flow.request.headers["Transfer-Encoding"] = "chunked"

    post = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"
    pb, flow, server = _request(tctx, side_effect_request=chunked, request=post)
    assert (
        pb
        << commands.SendData(
            server,
            b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
        >> events.DataReceived(server, OK)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, OK)
    )
    assert _keeps_serving(pb, tctx, server)


def test_content_length_of_a_body_set_in_the_request_hook_is_sent():
    tctx = make_context()

    def body(flow):
        flow.request.content = b"new body"

    pb, flow, server = _request(tctx, side_effect_request=body)
    assert (
        pb
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\ncontent-length: 8\r\n\r\nnew body")
    )


def _response(tctx, headers_effect=None, response_effect=None, response=OK):
    pb, flow, server = _request(tctx)
    pb = (
        pb
        << commands.SendData(server, GET_UP)
        >> events.DataReceived(server, response)
        << HttpResponseHeadersHook(flow)
        >> reply(side_effect=headers_effect)
        << HttpResponseHook(flow)
        >> reply(side_effect=response_effect)
    )
    return pb, flow, server


def test_connection_close_set_in_responseheaders_closes_the_client():
    tctx = make_context()

    def close(flow):
        flow.response.headers["Connection"] = "close"

    pb, flow, server = _response(tctx, headers_effect=close)
    assert (
        pb
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        << commands.CloseConnection(tctx.client)
    )


def test_connection_close_set_in_the_response_hook_closes_the_client():
    tctx = make_context()

    def close(flow):
        flow.response.headers.add("Connection", "close")

    pb, flow, server = _response(tctx, response_effect=close)
    assert (
        pb
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi")
        << commands.CloseConnection(tctx.client)
    )
    assert server().state is ConnectionState.OPEN  # the server's own response did not ask


def test_connection_close_removed_in_the_response_hook_keeps_the_client():
    tctx = make_context()

    def keep(flow):
        del flow.response.headers["Connection"]

    closing = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nhi"
    pb, flow, server = _request(tctx)
    assert (
        pb
        << commands.SendData(server, GET_UP)
        >> events.DataReceived(server, closing)
        << HttpResponseHeadersHook(flow)
        << commands.CloseConnection(server)  # the server said close: that connection ends
        >> reply(to=HttpResponseHeadersHook)
        << HttpResponseHook(flow)
        >> reply(side_effect=keep)
        << commands.SendData(tctx.client, OK)
    )
    assert tctx.client.state is ConnectionState.OPEN


def test_a_response_replaced_in_the_response_hook_is_framed_and_closed_as_it_says():
    tctx = make_context()

    def replace(flow):
        flow.response = Response.make(
            201, b"", Headers([(b"Transfer-Encoding", b"chunked"), (b"Connection", b"close")])
        )
        flow.response.raw_content = b"abc"

    pb, flow, server = _response(tctx, response_effect=replace)
    assert (
        pb
        << commands.SendData(
            tctx.client,
            b"HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\nabc\r\n0\r\n\r\n",
        )
        << commands.CloseConnection(tctx.client)
    )


def test_response_headers_replaced_in_the_response_hook_frame_the_body():
    tctx = make_context()

    def replace(flow):
        flow.response.headers = Headers([(b"Transfer-Encoding", b"chunked")])

    pb, flow, server = _response(tctx, response_effect=replace)
    assert (
        pb
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n")
    )
    assert _keeps_serving(pb, tctx, server)


def test_content_length_removed_in_the_response_hook_ends_the_body_by_closing():
    tctx = make_context()

    def unframed(flow):
        del flow.response.headers["Content-Length"]

    pb, flow, server = _response(tctx, response_effect=unframed)
    assert (
        pb
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\n\r\nhi")
        << commands.CloseConnection(tctx.client)
    )


def test_a_body_changed_in_the_response_hook_gets_its_content_length():
    tctx = make_context()

    def body(flow):
        flow.response.content = b"changed!"

    pb, flow, server = _response(tctx, response_effect=body)
    assert (
        pb
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nchanged!")
    )
    assert _keeps_serving(pb, tctx, server)


def test_trailers_set_on_a_response_framed_by_length_are_dropped_not_kept_for_the_next():
    tctx = make_context()

    def trailers(flow):
        flow.response.trailers = Headers([(b"X-Trailer", b"1")])

    pb, flow, server = _response(tctx, response_effect=trailers)
    assert pb << commands.SendData(tctx.client, OK)  # no chunks: no place for trailers
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n"
    assert (
        _keeps_serving(pb, tctx, server)
        >> events.DataReceived(server, chunked)
        << HttpResponseHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpResponseHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(tctx.client, chunked)  # the last chunk without the earlier trailers
    )
