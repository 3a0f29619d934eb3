"""The MessagePack view: the decoded value as YAML.

A small decoder of its own (the format is a dozen type tags), so that no package is
needed.  Binary values, extension types and trailing bytes are errors, as in mitmproxy.
Nesting is limited so that hostile input cannot exhaust the stack.
"""

from __future__ import annotations

import struct
from typing import Any

from proxycore.contentviews import yamltree
from proxycore.contentviews.api import Contentview, Metadata

MAX_DEPTH = 256
CONTENT_TYPES = ("application/msgpack", "application/x-msgpack")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def take(self, count: int) -> bytes:
        end = self.position + count
        if end > len(self.data):
            raise ValueError("MessagePack data ends early")
        chunk = self.data[self.position : end]
        self.position = end
        return chunk

    def number(self, fmt: str) -> Any:
        return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]

    def value(self, depth: int = 0) -> Any:
        if depth > MAX_DEPTH:
            raise ValueError("MessagePack data nested too deeply")
        tag = self.take(1)[0]
        if tag <= 0x7F:
            return tag
        if tag >= 0xE0:
            return tag - 0x100
        if 0x80 <= tag <= 0x8F:
            return self.mapping(tag & 0x0F, depth)
        if 0x90 <= tag <= 0x9F:
            return self.array(tag & 0x0F, depth)
        if 0xA0 <= tag <= 0xBF:
            return self.text(tag & 0x1F)
        simple = {0xC0: None, 0xC2: False, 0xC3: True}
        if tag in simple:
            return simple[tag]
        numbers = {0xCA: ">f", 0xCB: ">d", 0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q",
                   0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
        if tag in numbers:
            return self.number(numbers[tag])
        lengths = {0xD9: ">B", 0xDA: ">H", 0xDB: ">I"}
        if tag in lengths:
            return self.text(self.number(lengths[tag]))
        if tag in (0xDC, 0xDD):
            return self.array(self.number(">H" if tag == 0xDC else ">I"), depth)
        if tag in (0xDE, 0xDF):
            return self.mapping(self.number(">H" if tag == 0xDE else ">I"), depth)
        if tag in (0xC4, 0xC5, 0xC6):
            raise ValueError("MessagePack binary data cannot be shown as YAML")
        raise ValueError(f"unsupported MessagePack type 0x{tag:02x}")

    def text(self, length: int) -> str:
        try:
            return self.take(length).decode("utf-8")
        except UnicodeDecodeError as e:
            raise ValueError(f"MessagePack string is not UTF-8: {e}") from None

    def array(self, count: int, depth: int) -> list[Any]:
        if count > len(self.data) - self.position:
            raise ValueError("MessagePack array longer than the data")
        return [self.value(depth + 1) for _ in range(count)]

    def mapping(self, count: int, depth: int) -> dict[Any, Any]:
        if 2 * count > len(self.data) - self.position:
            raise ValueError("MessagePack map longer than the data")
        out: dict[Any, Any] = {}
        for _ in range(count):
            key = self.value(depth + 1)
            if isinstance(key, dict | list):
                raise ValueError("MessagePack map with a collection as key")
            out[key] = self.value(depth + 1)
        return out


def decode(data: bytes) -> Any:
    """One MessagePack value filling ``data``; ValueError otherwise."""
    reader = _Reader(data)
    value = reader.value()
    if reader.position != len(data):
        raise ValueError(f"{len(data) - reader.position} bytes after the MessagePack value")
    return value


class MsgPackContentview(Contentview):
    name = "MsgPack"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return yamltree.dumps(decode(data))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return 1 if metadata.content_type in CONTENT_TYPES else 0


msgpack = MsgPackContentview()
