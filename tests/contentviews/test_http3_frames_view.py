"""The HTTP/3 Frames view on raw QUIC streams (TCP flows made by reverse:quic://)."""

from __future__ import annotations

import pylsqpack
from hypothesis import given
from hypothesis import strategies as st

from proxycore import contentviews
from proxycore.contentviews.http3_frames import http3_frames, read_varint
from proxycore.tcp import TCPMessage
from proxycore.test import tflow
from tests.hypothesis_budget import budget


def varint(value: int) -> bytes:
    if value < 0x40:
        return bytes([value])
    if value < 0x4000:
        return (0x4000 | value).to_bytes(2, "big")
    return (0x80000000 | value).to_bytes(4, "big")


def frame(kind: int, payload: bytes) -> bytes:
    return varint(kind) + varint(len(payload)) + payload


def h3_stream_flow(messages: list[tuple[bool, bytes]], unidirectional: bool = False, alpn: bytes = b"h3"):
    flow = tflow.ttcpflow(messages=[])
    flow.messages = [TCPMessage(from_client, content) for from_client, content in messages]
    flow.client_conn.alpn = alpn
    flow.metadata.update(quic_is_unidirectional=unidirectional, quic_initiator="client",
                         quic_stream_id_client=0, quic_stream_id_server=0)
    return flow


def test_request_and_response_frames_split_over_messages() -> None:
    _, block = pylsqpack.Encoder().encode(0, [(b":method", b"GET"), (b":path", b"/x"), (b"user-agent", b"t")])
    request = frame(0x1, block)
    _, answer = pylsqpack.Encoder().encode(0, [(b":status", b"200")])
    response = frame(0x1, answer) + frame(0x0, b"hello")
    flow = h3_stream_flow([(True, request[:3]), (True, request[3:]), (False, response)])
    assert http3_frames.prettify(b"", contentviews.make_metadata(flow.messages[0], flow)) == ""  # frame not complete
    shown = http3_frames.prettify(b"", contentviews.make_metadata(flow.messages[1], flow))
    assert shown == "HEADERS Frame\n:method: GET\n:path: /x\nuser-agent: t"
    shown = http3_frames.prettify(b"", contentviews.make_metadata(flow.messages[2], flow))
    assert shown.startswith("HEADERS Frame\n:status: 200\n\nDATA Frame\n0000:")
    assert "hello" in shown
    result = contentviews.prettify_message(flow.messages[1], flow)  # picked by "auto"
    assert result.view_name == "HTTP/3 Frames"


def test_control_stream_type_and_settings() -> None:
    settings_payload = varint(0x1) + varint(4096) + varint(0x7) + varint(16)
    flow = h3_stream_flow([(True, varint(0x0) + frame(0x4, settings_payload))], unidirectional=True)
    shown = http3_frames.prettify(b"", contentviews.make_metadata(flow.messages[0], flow))
    assert shown == "Control Stream\n\nSETTINGS Frame\nQPACK_MAX_TABLE_CAPACITY: 0x1000\nQPACK_BLOCKED_STREAMS: 0x10"


def test_only_h3_streams_get_the_view_by_default() -> None:
    flow = h3_stream_flow([(True, b"abc")], alpn=b"echo")
    assert http3_frames.render_priority(b"abc", contentviews.make_metadata(flow.messages[0], flow)) == 0
    plain = tflow.ttcpflow()
    assert http3_frames.render_priority(b"x", contentviews.make_metadata(plain.messages[0], plain)) == 0


@budget(200, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.binary(max_size=40)), min_size=1, max_size=6), st.booleans())
def test_any_stream_bytes_give_text_or_a_value_error(messages: list[tuple[bool, bytes]], uni: bool) -> None:
    flow = h3_stream_flow(messages, unidirectional=uni)
    for message in flow.messages:
        try:
            assert isinstance(http3_frames.prettify(message.content, contentviews.make_metadata(message, flow)), str)
        except ValueError:
            pass


def test_varints() -> None:
    for value in (0, 63, 64, 16383, 16384, 2**30 - 1):
        assert read_varint(varint(value), 0) == (value, len(varint(value)))
    assert read_varint(b"\x40", 0) is None
