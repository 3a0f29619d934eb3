"""Body bytes are not copied on their way through: BodyBuffer, the HTTP/1 readers and chunk framing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import Server
from proxycore.http import Request
from proxycore.layers.http._body import PREALLOCATE_LIMIT, BodyBuffer
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    ResponseData,
)
from proxycore.layers.http._http1 import CHUNK_COPY_LIMIT, Http1Client, Http1Connection, Http1Server
from proxycore.net import http1
from proxycore.proxy import commands, events
from proxycore.testing import make_context


@given(st.lists(st.binary(max_size=300), max_size=12))
def test_body_buffer_returns_the_chunks_joined(chunks):
    buf = BodyBuffer()
    for chunk in chunks:
        buf.append(chunk)
    assert len(buf) == sum(map(len, chunks))
    assert bool(buf) == any(chunks)
    assert buf.take() == b"".join(chunks)
    assert not buf and buf.take() == b""


def test_body_buffer_hands_over_a_single_chunk_itself():
    chunk = b"y" * 100_000
    buf = BodyBuffer()
    buf.append(chunk)
    assert buf.take() is chunk


def test_body_buffer_result_is_not_copied_on_take():
    """getvalue() of a BytesIO that owns its buffer returns that buffer: taking the body
    twice from the same BytesIO would give the same object, so nothing was copied."""
    buf = BodyBuffer()
    for _ in range(4):
        buf.append(b"z" * 70_000)
    inner = buf._io
    assert inner is not None
    body = buf.take()
    assert body is inner.getvalue() and body == b"z" * 280_000


def test_body_buffer_clear():
    buf = BodyBuffer()
    buf.append(b"a")
    buf.append(b"b")
    buf.clear()
    assert not buf and buf.take() == b""


def _sent(layer: Http1Connection, data: bytes) -> list[bytes]:
    layer.state = "wait"  # (not a tunnel: framed)
    return [c.data for c in layer._send_data(ResponseData(1, data)) if isinstance(c, commands.SendData)]


def test_large_chunk_is_framed_around_the_body_object():
    layer = Http1Connection(make_context(), make_context().client)
    layer.send_framing = "chunked"
    data = b"q" * (CHUNK_COPY_LIMIT + 1)
    sent = _sent(layer, data)
    assert any(part is data for part in sent)
    assert b"".join(sent) == http1.chunk(data)


def test_small_chunk_is_one_write():
    layer = Http1Connection(make_context(), make_context().client)
    layer.send_framing = "chunked"
    assert _sent(layer, b"hello") == [http1.chunk(b"hello")]
    layer.send_framing = "length"
    data = b"r" * (CHUNK_COPY_LIMIT + 1)
    assert _sent(layer, data)[0] is data


def test_body_buffer_expected_size_is_filled_in_place():
    """With the size announced, the second chunk makes room for the whole body and the
    result is that very object: no reallocation while the chunks come, no copy at the end."""
    buf = BodyBuffer()
    buf.expect(210_000)
    buf.append(b"a" * 70_000)
    assert buf._io is None  # one chunk alone is kept as it is
    buf.append(b"b" * 70_000)
    inner = buf._io
    assert inner is not None
    room = inner.getbuffer().nbytes
    assert room == 210_000  # all of it at once
    buf.append(b"c" * 70_000)
    body = buf.take()
    assert body == b"a" * 70_000 + b"b" * 70_000 + b"c" * 70_000
    assert body is inner.getvalue()


def test_body_buffer_expected_but_short_or_long():
    """The announced size is a hint: fewer or more bytes still give exactly what came."""
    short = BodyBuffer()
    short.expect(1000)
    short.append(b"x" * 10)
    short.append(b"y" * 10)
    assert short.take() == b"x" * 10 + b"y" * 10
    long = BodyBuffer()
    long.expect(15)
    long.append(b"x" * 10)
    long.append(b"y" * 10)
    assert long.take() == b"x" * 10 + b"y" * 10
    huge = BodyBuffer()
    huge.expect(PREALLOCATE_LIMIT + 1)  # not reserved: a declared size alone costs nothing
    huge.append(b"x")
    huge.append(b"y")
    assert huge._io is not None and huge._io.getbuffer().nbytes == 2
    assert huge.take() == b"xy"


def _received_data(layer: Http1Connection, data: bytes) -> list[bytes]:
    cmds = list(layer.handle_event(events.DataReceived(layer.conn, data)))
    return [c.event.data for c in cmds if isinstance(c, ReceiveHttp) and isinstance(c.event, (RequestData, ResponseData))]


def test_response_body_chunks_pass_through_the_client_layer_uncopied():
    ctx = make_context()
    ctx.server = Server(address=("example.com", 80))
    layer = Http1Client(ctx)
    request = Request.make("GET", "http://example.com/")
    list(layer.handle_event(RequestHeaders(1, request, end_stream=True)))
    list(layer.handle_event(RequestEndOfMessage(1)))
    assert _received_data(layer, b"HTTP/1.1 200 OK\r\nContent-Length: 200000\r\n\r\nab") == [b"ab"]
    chunk = b"m" * 100_000
    assert _received_data(layer, chunk)[0] is chunk
    # the end of the body and bytes after it: the body part is handed on, the rest is read
    # as after any response (here: unexpected data, the connection is dropped)
    assert _received_data(layer, b"n" * 99_998 + b"HTTP/1.1") == [b"n" * 99_998]
    assert layer.state == "done"


def test_request_body_chunks_pass_through_the_server_layer_uncopied():
    layer = Http1Server(make_context())
    list(layer.handle_event(events.Start()))
    head = b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 200000\r\n\r\n"
    assert _received_data(layer, head) == []
    chunk = b"p" * 150_000
    assert _received_data(layer, chunk)[0] is chunk
    assert _received_data(layer, b"q" * 50_000) == [b"q" * 50_000]
    assert layer.state == "wait" and not layer.buf


def test_a_subclass_of_a_sent_event_takes_the_general_path():
    """HTTP events to send are dispatched by exact type (Http1Connection._senders); an
    instance of a subclass goes through _send and is framed the same."""

    class MyData(ResponseData):
        pass

    layer = Http1Server(make_context())
    layer.state, layer.send_framing = "wait", "chunked"
    assert type(layer)._senders.get(MyData) is None
    sent = [c.data for c in layer.handle_event(MyData(1, b"hello")) if isinstance(c, commands.SendData)]
    assert sent == [http1.chunk(b"hello")]
    direct = [c.data for c in layer.handle_event(ResponseData(1, b"hello")) if isinstance(c, commands.SendData)]
    assert direct == sent
