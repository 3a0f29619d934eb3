"""Writing WebSocket data frames (RFC 6455, section 5.2) without copying the payload whole.

wsproto serialises a frame by copying its payload four or five times (to a bytearray,
again for masking, then header plus payload), all at once: a 64 MiB message relayed as
one frame cost the proxy several hundred MiB. These functions yield the frame as a
short header followed by pieces of the payload of at most ``CHUNK`` bytes each, made one
at a time as the caller consumes them, so a relayed frame costs the proxy little more than
the message it already holds (plus what waits in the socket's write buffer).
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator

# Size of the pieces a frame's payload is written in.
CHUNK = 1 << 20  # a multiple of 4, so that every piece starts at mask offset 0

OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2


def frame_header(opcode: int, fin: bool, length: int, mask: bytes | None) -> bytes:
    """The header of a data frame carrying ``length`` payload bytes (``mask``: 4 bytes or None)."""
    first = (0x80 if fin else 0) | opcode
    mask_bit = 0x80 if mask is not None else 0
    if length < 126:
        head = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        head = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        head = struct.pack("!BBQ", first, mask_bit | 127, length)
    return head + (mask or b"")


def _mask_tables(mask: bytes) -> list[bytes]:
    """For each of the 4 key bytes, a bytes.translate table that XORs a byte with it."""
    return [bytes(value ^ key for value in range(256)) for key in mask]


def frame_pieces(opcode: int, fin: bool, payload: memoryview, masked: bool) -> Iterator[bytes]:
    """One data frame: its header, then its payload in pieces of at most CHUNK bytes.
    A client's frames are masked, with a fresh random key per frame."""
    mask = os.urandom(4) if masked else None
    yield frame_header(opcode, fin, len(payload), mask)
    tables = _mask_tables(mask) if mask is not None else None
    for start in range(0, len(payload), CHUNK):
        piece = payload[start : start + CHUNK]
        if tables is None:
            yield bytes(piece)
            continue
        out = bytearray(piece)
        for offset, table in enumerate(tables):
            out[offset::4] = out[offset::4].translate(table)
        yield bytes(out)
