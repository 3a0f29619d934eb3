"""Reading a TLS ClientHello before any handshake, to learn SNI and ALPN offers.

The proxy must decide what to do with a TLS connection (intercept or pass it
through, which certificate to present, which protocols to offer upstream)
from the client's first flight alone. This parser reassembles the ClientHello
from however many records and chunks it arrives in, and reads the fields that
matter. For any input it returns a result, ``None`` (need more bytes), or
raises ``ValueError``: nothing else, since the input comes straight off the
network.
"""

from __future__ import annotations

import dataclasses
import struct

RECORD_HEADER = 5
HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
MAX_RECORD = 2**14 + 2048
MAX_HELLO = 2**16  # real hellos are a few KiB; refuse to buffer megabytes for one

EXT_SERVER_NAME = 0
EXT_ALPN = 16


def starts_like_tls(data: bytes) -> bool:
    """The first bytes form a TLS handshake record header (versions SSL 3.0 to TLS 1.3's 3.4)."""
    return len(data) >= 3 and data[0] == HANDSHAKE and data[1] == 0x03 and data[2] <= 0x04


def get_client_hello(data: bytes) -> bytes | None:
    """The ClientHello body (after its 4-byte handshake header), or None if incomplete."""
    fragments = bytearray()
    needed: int | None = None
    pos = 0
    while True:
        if len(data) - pos < RECORD_HEADER:
            return None
        content_type, major, _minor, length = struct.unpack_from("!BBBH", data, pos)
        if content_type != HANDSHAKE:
            raise ValueError(f"expected a TLS handshake record, got content type {content_type}")
        if major != 3:
            raise ValueError(f"unsupported TLS record version {major}.{_minor}")
        if length == 0 or length > MAX_RECORD:
            raise ValueError(f"invalid TLS record length {length}")
        body_start = pos + RECORD_HEADER
        fragments += data[body_start : body_start + length]
        if needed is None and len(fragments) >= 4:
            if fragments[0] != CLIENT_HELLO:
                raise ValueError(f"expected a ClientHello, got handshake message type {fragments[0]}")
            needed = 4 + int.from_bytes(fragments[1:4], "big")
            if needed > MAX_HELLO:
                raise ValueError(f"ClientHello of {needed} bytes is too large")
        if needed is not None and len(fragments) >= needed:
            return bytes(fragments[4:needed])
        if len(data) < body_start + length:
            return None
        pos = body_start + length


class _Reader:
    """Bounds-checked big-endian reads; running past the end is a ValueError."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if self.pos + n > self.end:
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        return self.take(self.uint(length_size))

    def sub(self, length_size: int) -> _Reader:
        length = self.uint(length_size)
        if self.pos + length > self.end:
            raise ValueError("truncated ClientHello")
        reader = _Reader(self.data, self.pos, self.pos + length)
        self.pos += length
        return reader

    @property
    def remaining(self) -> int:
        return self.end - self.pos


@dataclasses.dataclass
class ClientHello:
    """The fields of a ClientHello that decide how a connection is handled."""

    legacy_version: tuple[int, int]
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: bytes
    extensions: list[tuple[int, bytes]]
    body: bytes = dataclasses.field(repr=False)

    @property
    def sni(self) -> str | None:
        """The host name from the server_name extension, if the client sent one."""
        for ext_type, ext_data in self.extensions:
            if ext_type == EXT_SERVER_NAME:
                return _parse_sni(ext_data)
        return None

    @property
    def alpn_protocols(self) -> list[bytes]:
        for ext_type, ext_data in self.extensions:
            if ext_type == EXT_ALPN:
                return _parse_alpn(ext_data)
        return []

    def raw_bytes(self, wrap_in_record: bool = True) -> bytes:
        """The hello as a handshake message, by default inside a single TLS record."""
        message = bytes([CLIENT_HELLO]) + len(self.body).to_bytes(3, "big") + self.body
        if not wrap_in_record:
            return message
        if len(message) > 0xFFFF:
            raise ValueError("ClientHello too large for a single record")
        return bytes([HANDSHAKE, 3, 1]) + len(message).to_bytes(2, "big") + message


def parse_hello_body(body: bytes) -> ClientHello:
    """Parse a ClientHello message body (without the handshake header)."""
    r = _Reader(body)
    version = r.take(2)
    random = r.take(32)
    session_id = r.vector(1)
    suites = r.vector(2)
    if len(suites) % 2:
        raise ValueError("odd cipher suite list length")
    compression = r.vector(1)
    extensions: list[tuple[int, bytes]] = []
    if r.remaining:
        ext = r.sub(2)
        while ext.remaining:
            ext_type = ext.uint(2)
            extensions.append((ext_type, ext.vector(2)))
    return ClientHello(
        legacy_version=(version[0], version[1]),
        random=random,
        session_id=session_id,
        cipher_suites=[int.from_bytes(suites[i : i + 2], "big") for i in range(0, len(suites), 2)],
        compression_methods=compression,
        extensions=extensions,
        body=body,
    )


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The parsed ClientHello at the start of ``data``; None while it is incomplete."""
    body = get_client_hello(data)
    if body is None:
        return None
    hello = parse_hello_body(body)
    _ = hello.sni, hello.alpn_protocols  # malformed extensions fail here, not later
    return hello


def _parse_sni(data: bytes) -> str | None:
    names = _Reader(data).sub(2)
    while names.remaining:
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type == 0:  # host_name
            try:
                host = name.decode("ascii")
            except UnicodeDecodeError:
                raise ValueError("server name is not ASCII") from None
            if not host or any(c in host for c in "\x00/\\ ") or not host.isprintable():
                raise ValueError(f"invalid server name {host!r}")
            return host.lower()
    return None


def _parse_alpn(data: bytes) -> list[bytes]:
    protocols = _Reader(data).sub(2)
    result = []
    while protocols.remaining:
        proto = protocols.vector(1)
        if not proto:
            raise ValueError("empty ALPN protocol name")
        result.append(proto)
    return result
