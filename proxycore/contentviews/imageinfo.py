"""Metadata of PNG, GIF, JPEG and ICO images, as the Image view lists it.

Each parser returns (name, value) pairs and raises ValueError on data it cannot read
(truncated files, wrong magic numbers, unknown JPEG markers or EXIF tags), so that
the view falls back to Raw for such data just as mitmproxy's does.
"""

from __future__ import annotations

import struct
import zlib
from typing import Any

from proxycore.contentviews.exiftags import TAG_NAMES

ImageMetadata = list[tuple[str, str]]

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


class _Reader:
    """Sequential reads from bytes; reading past the end raises ValueError."""

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos

    def read(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise ValueError(f"requested {n} bytes at offset {self.pos}, but only {len(self.data) - self.pos} available")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def unpack(self, fmt: str) -> tuple[Any, ...]:
        return struct.unpack(fmt, self.read(struct.calcsize(fmt)))

    def u8(self) -> int:
        return self.read(1)[0]

    def until_nul(self) -> bytes:
        end = self.data.find(b"\x00", self.pos)
        if end < 0:
            raise ValueError("missing NUL terminator")
        value = self.data[self.pos : end]
        self.pos = end + 1
        return value

    def rest(self) -> bytes:
        value = self.data[self.pos :]
        self.pos = len(self.data)
        return value

    @property
    def at_end(self) -> bool:
        return self.pos >= len(self.data)


# ---------------------------------------------------------------------------- PNG
def parse_png(data: bytes) -> ImageMetadata:
    r = _Reader(data)
    if r.read(8) != PNG_MAGIC:
        raise ValueError("not a PNG file")
    length, kind = r.unpack(">I4s")
    if length != 13 or kind != b"IHDR":
        raise ValueError("PNG does not start with an IHDR chunk")
    width, height = r.unpack(">II")
    r.read(5 + 4)  # the rest of IHDR and its CRC
    parts = [("Format", "Portable network graphics"), ("Size", f"{width} x {height} px")]
    while True:
        (length,) = r.unpack(">I")
        kind = r.read(4).decode("utf-8")
        body = _Reader(r.read(length))
        r.read(4)  # CRC, not checked
        parts.extend(_png_chunk(kind, body))
        if kind == "IEND" or r.at_end:
            return parts


def _png_chunk(kind: str, body: _Reader) -> ImageMetadata:
    if kind == "gAMA":
        (gamma,) = body.unpack(">I")
        return [("gamma", str(gamma / 100000))]
    if kind == "pHYs":
        x, y, _unit = body.unpack(">IIB")
        return [("aspect", f"{x} x {y}")]
    if kind == "tEXt":
        keyword = body.until_nul().decode("iso8859-1")
        return [(keyword, body.rest().decode("iso8859-1"))]
    if kind == "iTXt":
        keyword = body.until_nul().decode("utf-8")
        body.read(2)  # compression flag and method
        body.until_nul().decode("ascii")  # language tag
        body.until_nul().decode("utf-8")  # translated keyword
        return [(keyword, body.rest().decode("utf-8"))]
    if kind == "zTXt":
        keyword = body.until_nul().decode("utf-8")
        body.u8()  # compression method
        try:
            text = zlib.decompress(body.rest())
        except zlib.error as e:
            raise ValueError(f"bad zTXt chunk: {e}") from e
        return [(keyword, text.decode("iso8859-1"))]
    return []


# ---------------------------------------------------------------------------- GIF
def _gif_subblocks(r: _Reader) -> list[bytes]:
    blocks = []
    while True:
        size = r.u8()
        blocks.append(r.read(size))
        if size == 0:
            return blocks


def parse_gif(data: bytes) -> ImageMetadata:
    r = _Reader(data)
    if r.read(3) != b"GIF":
        raise ValueError("not a GIF file")
    version = r.read(3).decode("ascii")
    width, height, flags, background, _aspect = r.unpack("<HHBBB")
    if flags & 0x80:
        r.read((2 << (flags & 7)) * 3)  # global colour table
    parts = [
        ("Format", "Compuserve GIF"),
        ("Version", f"GIF{version}"),
        ("Size", f"{width} x {height} px"),
        ("background", str(background)),
    ]
    comments: list[bytes] = []
    while True:
        block_type = r.u8()
        if block_type == 0x21:  # extension
            label = r.u8()
            if label == 0xF9:  # graphic control
                if r.read(1) != b"\x04":
                    raise ValueError("bad graphic control extension")
                r.read(4)
                if r.read(1) != b"\x00":
                    raise ValueError("bad graphic control extension")
            elif label == 0xFF:  # application
                if r.u8() != 11:
                    raise ValueError("bad application extension")
                r.read(8).decode("ascii")  # application identifier
                r.read(3)  # authentication code
                _gif_subblocks(r)
            elif label == 0xFE:  # comment
                comments.extend(b for b in _gif_subblocks(r) if b)
            else:
                raise ValueError(f"unknown GIF extension {label:#x}")
        elif block_type == 0x2C:  # image
            _left, _top, _w, _h, image_flags = r.unpack("<HHHHB")
            if image_flags & 0x80:
                r.read((2 << (image_flags & 7)) * 3)
            r.u8()  # LZW minimum code size
            _gif_subblocks(r)
        elif block_type != 0x3B:
            raise ValueError(f"unknown GIF block type {block_type:#x}")
        if block_type == 0x3B or r.at_end:
            break
    # Comments are shown as Python bytes literals, as mitmproxy does.
    parts.extend(("comment", repr(c)) for c in comments)
    return parts


# ---------------------------------------------------------------------------- JPEG
_JPEG_MARKERS = {
    0x01, *range(0xC0, 0xC4), *range(0xC5, 0xC8), *range(0xD8, 0xDF), *range(0xE0, 0xF0), 0xFE,
}
_SOF0, _SOI, _EOI, _SOS, _APP0, _APP1, _COM = 0xC0, 0xD8, 0xD9, 0xDA, 0xE0, 0xE1, 0xFE


def parse_jpeg(data: bytes) -> ImageMetadata:
    r = _Reader(data)
    parts = [("Format", "JPEG (ISO 10918)")]
    while not r.at_end:
        if r.read(1) != b"\xff":
            raise ValueError("bad JPEG segment")
        marker = r.u8()
        if marker not in _JPEG_MARKERS:
            raise ValueError(f"unknown JPEG marker {marker:#x}")
        if marker in (_SOI, _EOI):
            continue
        (length,) = r.unpack(">H")
        body = _Reader(r.read(length - 2))
        if marker == _SOF0:
            _bits, height, width, components = body.unpack(">BHHB")
            body.read(3 * components)
            parts.append(("Size", f"{width} x {height} px"))
        elif marker == _APP0:
            body.read(5).decode("ascii")  # "JFIF\0"
            major, minor, units, dx, dy, thumb_x, thumb_y = body.unpack(">BBBHHBB")
            body.read(thumb_x * thumb_y * 3)
            if units not in (0, 1, 2):
                raise ValueError(f"unknown JFIF density unit {units}")
            parts.append(("jfif_version", f"({major}, {minor})"))
            parts.append(("jfif_density", f"({dx}, {dy})"))
            parts.append(("jfif_unit", str(units)))
        elif marker == _COM:
            parts.append(("comment", body.rest().decode("utf8", "backslashreplace")))
        elif marker == _APP1:
            if body.until_nul().decode("ascii") == "Exif":
                if body.read(1) != b"\x00":
                    raise ValueError("bad Exif segment")
                parts.extend(_exif_ifd0(body.rest()))
        elif marker == _SOS:
            r.rest()  # entropy-coded image data up to the end
    return parts


def _exif_ifd0(tiff: bytes) -> ImageMetadata:
    """IFD0 fields whose value does not fit in the field itself, decoded as text."""
    r = _Reader(tiff)
    order = r.read(2)
    if order not in (b"II", b"MM"):
        raise ValueError("bad TIFF byte order")
    e = "<" if order == b"II" else ">"
    _version, ifd_offset = r.unpack(e + "HI")
    r.pos = ifd_offset
    (count,) = r.unpack(e + "H")
    parts = []
    for _ in range(count):
        tag, kind, length, offset = r.unpack(e + "HHII")
        size = length * (2 if kind == 3 else 4 if kind == 4 else 1)
        if size > 4:
            name = TAG_NAMES.get(tag)
            if name is None:
                raise ValueError(f"unknown EXIF tag {tag:#x}")
            value = _Reader(tiff, offset).read(size)
            parts.append((name, value.decode("utf-8").strip("\x00")))
    r.read(4)  # offset of the next IFD
    return parts


# ---------------------------------------------------------------------------- ICO
def parse_ico(data: bytes) -> ImageMetadata:
    r = _Reader(data)
    if r.read(4) != b"\x00\x00\x01\x00":
        raise ValueError("not an ICO file")
    (count,) = r.unpack("<H")
    parts = [("Format", "ICO"), ("Number of images", str(count))]
    for i in range(count):
        width, height, _colours, reserved, _planes, bpp, _size, offset = r.unpack("<BBBBHHII")
        if reserved != 0:
            raise ValueError("bad ICO directory entry")
        is_png = _Reader(data, offset).read(8) == PNG_MAGIC
        pad = " " * 18
        parts.append(
            (
                f"Image {i + 1}",
                f"Size: {width or 256} x {height or 256}\n{pad}Bits per pixel: {bpp}\n{pad}PNG: {is_png}",
            )
        )
    return parts
