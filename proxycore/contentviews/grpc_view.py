"""The gRPC view: each length-prefixed message of a gRPC body through the Protobuf view.

A gRPC body is a series of frames: one flag byte (0 plain, 1 compressed with the
``grpc-encoding`` of the message: gzip, deflate or identity), a 4-byte big-endian length,
and that many bytes of protobuf.  Messages are shown as YAML documents separated by
``---``, as mitmproxy shows them; the message type comes from ``protobuf_definitions``
and the request path (``/package.Service/Method``) when definitions are given.
"""

from __future__ import annotations

import zlib

from proxycore.contentviews.api import Contentview, Metadata
from proxycore.contentviews.protobuf_view import prettify_message, schema_message

CONTENT_TYPES = ("application/grpc", "application/grpc+proto", "application/prpc")
# A compressed message may not inflate beyond this (a small frame must not become gigabytes).
MAX_DECOMPRESSED = 64 * 1024 * 1024


def _decompress(data: bytes, encoding: str) -> bytes:
    if encoding == "identity":
        return data
    if encoding == "gzip":
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
    elif encoding == "deflate":
        inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    else:
        raise ValueError(f"unsupported compression: {encoding}")
    try:
        out = inflater.decompress(data, MAX_DECOMPRESSED)
    except zlib.error as e:
        raise ValueError(f"cannot decompress gRPC message: {e}") from None
    if not inflater.eof:
        if len(out) >= MAX_DECOMPRESSED:
            raise ValueError(f"gRPC message inflates beyond {MAX_DECOMPRESSED} bytes")
        raise ValueError("truncated compressed gRPC message")
    return out


def frames(data: bytes, encoding: str) -> list[bytes]:
    """The (decompressed) protobuf messages of a gRPC body; ValueError if it is not one."""
    messages = []
    position = 0
    while position < len(data):
        flag = data[position]
        if flag not in (0, 1):
            raise ValueError("invalid gRPC: first byte is not a boolean")
        if position + 5 > len(data):
            raise ValueError("invalid gRPC: not enough bytes")
        length = int.from_bytes(data[position + 1 : position + 5], "big")
        start = position + 5
        if start + length > len(data):
            raise ValueError("invalid gRPC: not enough data")
        message = data[start : start + length]
        messages.append(_decompress(message, encoding) if flag else message)
        position = start + length
    return messages


class GRPCContentview(Contentview):
    name = "gRPC"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        http = metadata.http_message
        encoding = (http.headers.get("grpc-encoding") if http is not None else None) or ""
        known = schema_message(metadata)
        return "\n---\n\n".join(prettify_message(m, known) for m in frames(data, encoding))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(metadata.content_type in CONTENT_TYPES)


grpc = GRPCContentview()
