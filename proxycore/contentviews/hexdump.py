"""Hex Dump and Hex Stream: the views for binary data.

The dump has mitmproxy's layout (from the pretty-hex crate): an address of 4, 6 or 8
hex digits depending on the data's size, 16 bytes per line in groups of four, and the
printable ASCII characters on the right.
"""

from __future__ import annotations

from proxycore.contentviews.api import Contentview, InteractiveContentview, Metadata

BYTES_PER_LINE = 16
GROUP = 4


def looks_binary(data: bytes) -> bool:
    """More than 30% of the first 100 bytes are control characters or not ASCII."""
    if not data:
        return False
    head = data[:100]
    odd = sum(1 for b in head if b < 9 or 13 < b < 32 or b > 126)
    return odd / len(head) > 0.3


def _address_digits(size: int) -> int:
    full_lines = size // BYTES_PER_LINE
    if full_lines <= 0x1000:
        return 4
    if full_lines <= 0x100000:
        return 6
    return 8


_PRINTABLE = bytes(b if 0x20 <= b < 0x7F else ord(".") for b in range(256))


def hexdump(data: bytes) -> str:
    digits = _address_digits(len(data))
    lines = []
    for offset in range(0, len(data), BYTES_PER_LINE):
        chunk = data[offset : offset + BYTES_PER_LINE]
        hexes = "  ".join(chunk[i : i + GROUP].hex(" ") for i in range(0, len(chunk), GROUP))
        width = 3 * BYTES_PER_LINE + BYTES_PER_LINE // GROUP - 2  # 16 bytes: 50 columns
        text = chunk.translate(_PRINTABLE).decode("ascii")
        lines.append(f"{offset:0{digits}x}:   {hexes.ljust(width)}   {text}")
    return "\n".join(lines)


class HexDumpContentview(Contentview):
    name = "Hex Dump"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return hexdump(data)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 0.5 if looks_binary(data) else 0


class HexStreamContentview(InteractiveContentview):
    name = "Hex Stream"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return data.hex()

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 0.4 if looks_binary(data) else 0

    def reencode(self, prettified: str, metadata: Metadata) -> bytes:
        text = prettified.rstrip("\r\n")
        if len(text) % 2:
            raise ValueError("Invalid hex string: uneven number of characters")
        try:
            return bytes.fromhex(text)
        except ValueError as e:
            raise ValueError("Invalid hex string") from e


hex_dump = HexDumpContentview()
hex_stream = HexStreamContentview()
