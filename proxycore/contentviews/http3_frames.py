"""The HTTP/3 Frames view: the frames in one message of a raw QUIC stream that carries HTTP/3.

``reverse:quic://`` in front of an HTTP/3 server relays each QUIC stream as a TCP flow
(docs/modes.md); its messages are pieces of the stream, and a frame may span several. The
view reads the flow's messages of the same direction from the start, cuts them into frames
(RFC 9114 section 7.1: type and length as QUIC varints), and shows those that end in the
given message: HEADERS decoded (static QPACK table), SETTINGS by name, anything else as a
hex dump. A unidirectional stream starts with its stream type, shown first.
"""

from __future__ import annotations

from typing import Any

from proxycore.contentviews.api import Contentview, Metadata
from proxycore.contentviews.hexdump import hex_dump

FRAME_NAMES = {0x0: "DATA", 0x1: "HEADERS", 0x3: "CANCEL_PUSH", 0x4: "SETTINGS", 0x5: "PUSH_PROMISE",
               0x7: "GOAWAY", 0xD: "MAX_PUSH_ID"}
STREAM_TYPES = {0x0: "Control Stream", 0x1: "Push Stream", 0x2: "QPACK Encoder Stream",
                0x3: "QPACK Decoder Stream"}
SETTING_NAMES = {0x1: "QPACK_MAX_TABLE_CAPACITY", 0x6: "MAX_FIELD_SECTION_SIZE", 0x7: "QPACK_BLOCKED_STREAMS",
                 0x8: "ENABLE_CONNECT_PROTOCOL", 0x33: "H3_DATAGRAM", 0x2B603742: "ENABLE_WEBTRANSPORT"}
H3_ALPNS = (b"h3", b"h3-29", b"h3-32")


def read_varint(data: bytes | bytearray, offset: int) -> tuple[int, int] | None:
    """A QUIC variable-length integer at ``offset`` and the offset after it; None if cut off."""
    if offset >= len(data):
        return None
    length = 1 << (data[offset] >> 6)
    if offset + length > len(data):
        return None
    value = data[offset] & 0x3F
    for byte in data[offset + 1 : offset + length]:
        value = (value << 8) | byte
    return value, offset + length


def describe_frame(kind: int, payload: bytes) -> str:
    name = FRAME_NAMES.get(kind, f"0x{kind:x}")
    if kind == 0x1:
        try:
            import pylsqpack

            fields = pylsqpack.Decoder(4096, 16).feed_header(0, payload)[1]
        except Exception as e:  # the dynamic table is on another stream; anything may fail
            name = f"HEADERS (cannot decode: {e})"
        else:
            lines = [f"{k.decode(errors='backslashreplace')}: {v.decode(errors='backslashreplace')}" for k, v in fields]
            return "HEADERS Frame\n" + "\n".join(lines)
    elif kind == 0x4:
        settings, offset = [], 0
        while offset < len(payload):
            key = read_varint(payload, offset)
            value = read_varint(payload, key[1]) if key else None
            if key is None or value is None:
                name = "SETTINGS (truncated)"
                break
            settings.append(f"{SETTING_NAMES.get(key[0], f'0x{key[0]:x}')}: 0x{value[0]:x}")
            offset = value[1]
        else:
            return "SETTINGS Frame\n" + "\n".join(settings)
    return f"{name} Frame\n" + hex_dump.prettify(payload, Metadata())


def frames_by_message(flow: Any, from_client: bool) -> dict[int, list[str]]:
    """Every complete frame of one direction, keyed by the index (in ``flow.messages``) of
    the message in which it ends."""
    unidirectional = bool(flow.metadata.get("quic_is_unidirectional"))
    buf = bytearray()
    seen_type = False
    out: dict[int, list[str]] = {}
    for index, message in enumerate(flow.messages):
        if message.from_client != from_client:
            continue
        buf += message.content
        if unidirectional and not seen_type:
            parsed = read_varint(buf, 0)
            if parsed is None:
                continue
            seen_type = True
            out.setdefault(index, []).append(STREAM_TYPES.get(parsed[0], f"0x{parsed[0]:x} Stream"))
            del buf[: parsed[1]]
        while True:
            kind = read_varint(buf, 0)
            size = read_varint(buf, kind[1]) if kind else None
            if kind is None or size is None or len(buf) < size[1] + size[0]:
                break
            payload = bytes(buf[size[1] : size[1] + size[0]])
            out.setdefault(index, []).append(describe_frame(kind[0], payload))
            del buf[: size[1] + size[0]]
    return out


class Http3FramesContentview(Contentview):
    name = "HTTP/3 Frames"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        flow, message = metadata.flow, metadata.tcp_message
        if flow is None or message is None or not hasattr(flow, "messages"):
            raise ValueError("the HTTP/3 frames view shows messages of raw QUIC streams (TCP flows)")
        index = next(i for i, m in enumerate(flow.messages) if m is message)
        return "\n\n".join(frames_by_message(flow, message.from_client).get(index, []))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        flow = metadata.flow
        is_stream = flow is not None and metadata.tcp_message is not None and "quic_is_unidirectional" in flow.metadata
        return 2.0 if is_stream and flow.client_conn.alpn in H3_ALPNS else 0.0


http3_frames = Http3FramesContentview()
