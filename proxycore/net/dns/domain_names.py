"""Domain names on the wire: length-prefixed labels, with RFC 1035 compression on reading.

Every parsing error is a ValueError.  Compression pointers may only point backwards
(as every real encoder does), and a name may not exceed 255 bytes, so hostile input
can neither loop nor make a name expensive to read.
"""

from __future__ import annotations

import struct

from proxycore.net.dns import types

MAX_NAME = 255
MAX_LABEL = 63
_POINTER = 0xC0


class DnsFormatError(ValueError, struct.error):
    """Malformed DNS data: a ValueError, so callers need to catch only that; also a
    ``struct.error``, which is what mitmproxy raises and its users catch."""


def _decode_label(raw: bytes) -> str:
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise DnsFormatError(f"label {raw!r} is not ASCII") from None
    if text[:4].lower() == "xn--":
        try:
            return raw.decode("idna")
        except UnicodeError:
            return text  # keep a broken punycode label as it was sent
    return text


def _encode_label(label: str) -> bytes:
    try:
        raw = label.encode("ascii")
    except UnicodeEncodeError:
        try:
            raw = label.encode("idna")
        except UnicodeError as e:
            raise ValueError(f"label {label!r} cannot be encoded: {e}") from None
    if not raw:
        raise ValueError("domain name contains an empty label")
    if len(raw) > MAX_LABEL:
        raise ValueError(f"label {label!r} is longer than {MAX_LABEL} bytes")
    return raw


def pack(name: str) -> bytes:
    """``"example.com"`` -> ``b"\\x07example\\x03com\\x00"``; ``""`` is the root.  ValueError if invalid."""
    out = bytearray()
    name = name.removesuffix(".") if name != "." else ""
    if name:
        for label in name.split("."):
            raw = _encode_label(label)
            out.append(len(raw))
            out += raw
    out.append(0)
    if len(out) > MAX_NAME:
        raise ValueError(f"domain name {name!r} is longer than {MAX_NAME} bytes")
    return bytes(out)


def unpack_from(buffer: bytes, offset: int, compressed: bool = True) -> tuple[str, int]:
    """Read the name at ``offset``; returns it and how many bytes it takes at that place."""
    labels: list[str] = []
    length = 0  # of the name as it would be written uncompressed
    position = offset
    consumed: int | None = None
    lowest = offset  # pointers must go below every place we have read from
    while True:
        if position >= len(buffer):
            raise DnsFormatError("domain name runs past the end of the data")
        size = buffer[position]
        if size & _POINTER == _POINTER:
            if not compressed:
                raise DnsFormatError("compression pointer where none is allowed")
            if position + 1 >= len(buffer):
                raise DnsFormatError("truncated compression pointer")
            target = ((size & 0x3F) << 8) | buffer[position + 1]
            if consumed is None:
                consumed = position + 2 - offset
            if target >= lowest:
                raise DnsFormatError("compression pointer does not point backwards")
            position = lowest = target
            continue
        if size & _POINTER:
            raise DnsFormatError(f"unknown label type 0x{size:02x}")
        position += 1
        if size == 0:
            break
        end = position + size
        if end > len(buffer):
            raise DnsFormatError("label runs past the end of the data")
        length += size + 1
        if length + 1 > MAX_NAME:
            raise DnsFormatError(f"domain name longer than {MAX_NAME} bytes")
        labels.append(_decode_label(bytes(buffer[position:end])))
        position = end
    if consumed is None:
        consumed = position - offset
    return ".".join(labels), consumed


def unpack(data: bytes) -> str:
    """A name that fills ``data`` exactly (record data, where no pointers are allowed)."""
    name, size = unpack_from(data, 0, compressed=False)
    if size != len(data):
        raise DnsFormatError(f"{len(data) - size} bytes after the domain name")
    return name


# Where record data holds names (which a server may compress): a layout per type, read in
# order: "n" a name, a number a fixed count of bytes; whatever follows is kept as it is.
_LAYOUTS: dict[int, tuple[str | int, ...]] = {
    **{t: ("n",) for t in (types.NS, types.MD, types.MF, types.CNAME, types.MB, types.MG, types.MR, types.PTR)},
    types.SOA: ("n", "n"),
    types.MINFO: ("n", "n"),
    types.RP: ("n", "n"),
    types.MX: (2, "n"),
    types.AFSDB: (2, "n"),
    types.RT: (2, "n"),
    types.KX: (2, "n"),
    types.SRV: (6, "n"),
}


def record_data_can_have_compression(record_type: int) -> bool:
    return record_type in _LAYOUTS


def decompress_record_data(buffer: bytes, start: int, end: int, record_type: int) -> bytes:
    """The record data at ``buffer[start:end]`` with its names written out in full.
    Data that does not fit the type's layout is returned unchanged."""
    raw = bytes(buffer[start:end])
    layout = _LAYOUTS.get(record_type)
    if layout is None:
        return raw
    out = bytearray()
    position = start
    try:
        for part in layout:
            if part == "n":
                name, size = unpack_from(buffer, position)
                out += pack(name)
                position += size
            else:
                assert isinstance(part, int)
                out += buffer[position : position + part]
                position += part
            if position > end:
                return _expand_pointers(buffer, start, end)
    except ValueError:
        return _expand_pointers(buffer, start, end)
    out += buffer[position:end]
    return bytes(out)


def _expand_pointers(buffer: bytes, start: int, end: int) -> bytes:
    """Record data that does not fit its type's layout: write out every compression pointer
    in it that leads to a valid name, keeping the other bytes (what mitmproxy does for such
    data, so both show the same bytes)."""
    out = bytearray()
    position = start
    while position < end:
        byte = buffer[position]
        if byte & _POINTER == _POINTER and position + 1 < end:
            try:
                name, size = unpack_from(buffer, position)
                out += pack(name)
                position += size
                continue
            except ValueError:
                pass
        out.append(byte)
        position += 1
    return bytes(out)
