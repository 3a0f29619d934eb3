"""Body bytes are not copied on their way through: BodyBuffer and HTTP/1 chunk framing."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxycore.layers.http._body import BodyBuffer
from proxycore.layers.http._http1 import CHUNK_COPY_LIMIT, Http1Connection
from proxycore.net import http1
from proxycore.proxy import commands
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
    return [c.data for c in layer._send_body(data) if isinstance(c, commands.SendData)]


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
