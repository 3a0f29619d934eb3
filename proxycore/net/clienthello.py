"""Reading a TLS ClientHello before any handshake, to learn SNI and ALPN offers.

The proxy must decide what to do with a TLS connection (intercept or pass it
through, which certificate to present, which protocols to offer upstream)
from the client's first flight alone. This parser reassembles the ClientHello
from however many records and chunks it arrives in, and reads the fields that
matter. For any input it returns a result, ``None`` (need more bytes), or
raises ``ValueError``: nothing else, since the input comes straight off the
network and callers treat ``ValueError`` as "not (valid) TLS".

Wire formats: RFC 8446 section 5.1 (records), 4.1.2 (ClientHello), 4.2
(extensions); RFC 6066 section 3 (server_name); RFC 7301 section 3.1 (ALPN).
"""

from __future__ import annotations

import dataclasses
import struct
from typing import Any

RECORD_HEADER = 5
HANDSHAKE_HEADER = 4
HANDSHAKE = 0x16
CLIENT_HELLO = 0x01
# A TLSCiphertext may carry up to 2^14 + 2048 bytes; a plaintext record (which
# a ClientHello is) only 2^14, so anything beyond the larger bound is nonsense.
MAX_RECORD = 2**14 + 2048
MAX_PLAIN_RECORD = 2**14
# The handshake length field allows 2^24 - 1, but real hellos are a few KiB
# (about 2 KiB with a post-quantum key share); refuse to buffer more than this.
MAX_HELLO = 2**16

EXT_SERVER_NAME = 0
EXT_ALPN = 16
SNI_HOST_NAME = 0
_HOST_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789-_.")


def starts_like_tls(data: bytes) -> bool:
    """The first bytes form a TLS handshake record header.

    mitmproxy accepts record versions 3.0 to 3.3; 3.4 is accepted here as well
    because nothing else could plausibly start with these bytes, and a client
    that (wrongly) puts TLS 1.3's number in the record header is still TLS.
    """
    return len(data) >= 3 and data[0] == HANDSHAKE and data[1] == 0x03 and data[2] <= 0x04


def get_client_hello(data: bytes) -> bytes | None:
    """The ClientHello body (after its 4-byte handshake header), or None if incomplete.

    ``data`` is everything the client has sent so far. Records are checked as
    soon as their header is in, so garbage is rejected without waiting for
    more bytes; bytes after the end of the ClientHello are ignored.
    """
    message = bytearray()
    needed: int | None = None  # full handshake message length, once known
    pos = 0
    while len(data) - pos >= RECORD_HEADER:
        content_type, major, minor = data[pos], data[pos + 1], data[pos + 2]
        length = int.from_bytes(data[pos + 3 : pos + 5], "big")
        if content_type != HANDSHAKE:
            raise ValueError(f"expected a TLS handshake record, got content type {content_type}")
        if major != 3:
            raise ValueError(f"unsupported TLS record version {major}.{minor}")
        if length == 0 or length > MAX_RECORD:
            raise ValueError(f"invalid TLS record length {length}")
        start = pos + RECORD_HEADER
        message += data[start : start + length]
        if message and message[0] != CLIENT_HELLO:
            raise ValueError(f"expected a ClientHello, got handshake message type {message[0]}")
        if needed is None and len(message) >= HANDSHAKE_HEADER:
            needed = HANDSHAKE_HEADER + int.from_bytes(message[1:4], "big")
            if needed > MAX_HELLO:
                raise ValueError(f"ClientHello of {needed} bytes is too large")
        if needed is not None and len(message) >= needed:
            return bytes(message[HANDSHAKE_HEADER:needed])
        pos = start + length
    return None


class _Reader:
    """Bounds-checked big-endian reads; running past the end is a ValueError."""

    __slots__ = ("data", "pos", "end")

    def __init__(self, data: bytes, start: int = 0, end: int | None = None) -> None:
        self.data = data
        self.pos = start
        self.end = len(data) if end is None else end

    def take(self, n: int) -> bytes:
        if n > self.end - self.pos:
            raise ValueError("truncated ClientHello")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def uint(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def vector(self, length_size: int) -> bytes:
        """A byte string preceded by its length in ``length_size`` bytes."""
        return self.take(self.uint(length_size))

    def sub(self, length_size: int) -> _Reader:
        """A reader confined to the next length-prefixed block, which is skipped here."""
        length = self.uint(length_size)
        if length > self.end - self.pos:
            raise ValueError("truncated ClientHello")
        reader = _Reader(self.data, self.pos, self.pos + length)
        self.pos += length
        return reader

    @property
    def remaining(self) -> int:
        return self.end - self.pos


@dataclasses.dataclass(init=False)
class ClientHello:
    """The fields of a ClientHello, named as in mitmproxy's ``ClientHello``.

    Made as mitmproxy makes it, ``ClientHello(message_body, dtls=False)`` (ValueError if
    the body is malformed), or from its fields by keyword."""

    legacy_version: tuple[int, int]
    random: bytes
    session_id: bytes
    cipher_suites: list[int]
    compression_methods: bytes
    extensions: list[tuple[int, bytes]]
    body: bytes = dataclasses.field(repr=False)

    def __init__(self, raw_client_hello: bytes | None = None, dtls: bool = False, **fields: Any) -> None:
        if raw_client_hello is not None:
            fields = dataclasses.asdict(parse_hello_body(raw_client_hello, dtls))
        for name in ("legacy_version", "random", "session_id", "cipher_suites", "compression_methods",
                     "extensions", "body"):
            setattr(self, name, fields[name])

    def _extension(self, ext_type: int) -> bytes | None:
        for t, ext_data in self.extensions:
            if t == ext_type:
                return ext_data
        return None

    @property
    def sni(self) -> str | None:
        """The host name from the server_name extension, if the client sent one."""
        ext_data = self._extension(EXT_SERVER_NAME)
        return None if ext_data is None else _parse_sni(ext_data)

    @property
    def alpn_protocols(self) -> list[bytes]:
        """The protocols offered via ALPN, in the client's order of preference."""
        ext_data = self._extension(EXT_ALPN)
        return [] if ext_data is None else _parse_alpn(ext_data)

    def raw_bytes(self, wrap_in_record: bool = True) -> bytes:
        """The hello inside a TLS record (its handshake header included); with
        ``wrap_in_record=False`` the message body alone, as mitmproxy returns it.

        This is what gets replayed into a fresh TLS server connection once the
        proxy has decided to intercept. A message larger than a plaintext record
        may hold (2^14 bytes, never seen in practice) is split over several
        records, since a single oversized record would be refused by OpenSSL.
        """
        if not wrap_in_record:
            return self.body
        message = bytes([CLIENT_HELLO]) + len(self.body).to_bytes(3, "big") + self.body
        # Record version 3.3, as mitmproxy writes it (any 3.x is accepted on a first flight).
        return b"".join(
            bytes([HANDSHAKE, 3, 3])
            + len(message[i : i + MAX_PLAIN_RECORD]).to_bytes(2, "big")
            + message[i : i + MAX_PLAIN_RECORD]
            for i in range(0, len(message), MAX_PLAIN_RECORD)
        )


def parse_hello_body(body: bytes, dtls: bool = False) -> ClientHello:
    """Parse a ClientHello message body (without the handshake header); ``dtls``: a DTLS
    hello, which has a cookie after the session id (RFC 6347 4.2.1).

    Structure errors are ``ValueError``, as are the things a TLS server would
    refuse anyway and that could make the proxy and the server disagree about
    the hello: bytes after the extensions, and repeated extension types.
    """
    r = _Reader(body)
    version = r.take(2)
    random = r.take(32)
    session_id = r.vector(1)
    if len(session_id) > 32:
        raise ValueError(f"session id of {len(session_id)} bytes is too long")
    if dtls:
        r.vector(1)  # the cookie: nothing the proxy decides on
    suites = r.vector(2)
    if len(suites) % 2:
        raise ValueError("odd cipher suite list length")
    compression = r.vector(1)
    extensions: list[tuple[int, bytes]] = []
    if r.remaining:  # the extensions block may be absent altogether (old clients)
        block = r.sub(2)
        if r.remaining:
            raise ValueError(f"{r.remaining} unexpected bytes after the ClientHello extensions")
        extensions = _extension_list(block.data, block.pos, block.end)
    return ClientHello(
        legacy_version=(version[0], version[1]),
        random=random,
        session_id=session_id,
        cipher_suites=list(struct.unpack(f">{len(suites) // 2}H", suites)),
        compression_methods=compression,
        extensions=extensions,
        body=body,
    )


def _extension_list(data: bytes, pos: int, end: int) -> list[tuple[int, bytes]]:
    """(type, data) of each extension in ``data[pos:end]``: type (2 bytes), length (2), data.

    Inlined offsets rather than a _Reader per field: a browser hello has 15-20 extensions,
    and this runs on every intercepted connection."""
    extensions: list[tuple[int, bytes]] = []
    seen: set[int] = set()
    while pos < end:
        if end - pos < 4:
            raise ValueError("truncated ClientHello")
        ext_type = int.from_bytes(data[pos : pos + 2], "big")
        length = int.from_bytes(data[pos + 2 : pos + 4], "big")
        pos += 4
        if length > end - pos:
            raise ValueError("truncated ClientHello")
        if ext_type in seen:
            raise ValueError(f"extension {ext_type} appears more than once")
        seen.add(ext_type)
        extensions.append((ext_type, data[pos : pos + length]))
        pos += length
    return extensions


def parse_client_hello(data: bytes) -> ClientHello | None:
    """The parsed ClientHello at the start of ``data``; None while it is incomplete."""
    body = get_client_hello(data)
    if body is None:
        return None
    hello = parse_hello_body(body)
    # Fail here on malformed SNI/ALPN, rather than later at an attribute access.
    _ = hello.sni, hello.alpn_protocols
    return hello


def _parse_sni(data: bytes) -> str | None:
    """The host_name of a server_name extension (RFC 6066 section 3), if it is usable.

    A malformed extension is a ValueError; a well-formed one whose name could
    not be a DNS name, or that holds several names, gives None (as mitmproxy
    does): the connection is still intercepted, just without an SNI. Names are
    returned in their ASCII form (IDNA A-labels, ``xn--...``), lowercased.
    """
    outer = _Reader(data)
    names = outer.sub(2)
    if outer.remaining or not names.remaining:
        raise ValueError("malformed server_name extension")
    hosts: list[bytes] = []
    while names.remaining:
        name_type = names.uint(1)
        name = names.vector(2)
        if name_type == SNI_HOST_NAME:
            hosts.append(name)
    if len(hosts) != 1:
        return None
    return _valid_host_name(hosts[0])


def _valid_host_name(name: bytes) -> str | None:
    try:
        host = name.decode("ascii").lower()
    except UnicodeDecodeError:
        return None
    labels = host[:-1].split(".") if host.endswith(".") else host.split(".")
    if (
        not host
        or len(host) > 253
        or not set(host) <= _HOST_CHARS
        or any(not label or len(label) > 63 for label in labels)
    ):
        return None
    return host


def _parse_alpn(data: bytes) -> list[bytes]:
    """The protocol names of an ALPN extension (RFC 7301 section 3.1)."""
    outer = _Reader(data)
    protocols = outer.sub(2)
    if outer.remaining or not protocols.remaining:
        raise ValueError("malformed ALPN extension")
    result = []
    while protocols.remaining:
        proto = protocols.vector(1)
        if not proto:
            raise ValueError("empty ALPN protocol name")
        result.append(proto)
    return result
