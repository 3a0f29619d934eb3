"""The WBXML view: Exchange ActiveSync's binary XML shown as XML, as mitmproxy shows it.

WBXML (WAP binary XML) replaces tags by one-byte tokens in numbered code pages; ActiveSync
(MS-ASWBXML) uses UTF-8, no string table, no attributes and 25 code pages of its own
(``wbxml_pages``).  Like mitmproxy we print the tags without namespaces, indented by four
spaces (``xml.dom.minidom``'s pretty printer).  Unlike mitmproxy's, a string that runs off
the end of the data is an error, not a hang, and strings are decoded as UTF-8.
"""

from __future__ import annotations

from typing import Any
from xml.dom import DOMException, minidom

from proxycore.contentviews.api import Contentview, Metadata
from proxycore.contentviews.wbxml_pages import tag_table

CONTENT_TYPES = ("application/vnd.wap.wbxml", "application/vnd.ms-sync.wbxml")
SWITCH_PAGE, END, STR_I, OPAQUE = 0x00, 0x01, 0x03, 0xC3
# Global tokens ActiveSync does not use; meeting one is an error.
UNSUPPORTED = frozenset({0x02, 0x04, 0x40, 0x41, 0x42, 0x43, 0x44, 0x80, 0x81, 0x82, 0x83, 0x84,
                         0xC0, 0xC1, 0xC2, 0xC4})
_TAGS = tag_table()
MAX_DEPTH = 256  # the pretty printer recurses once per level


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data = data
        self.position = 0

    def more(self) -> bool:
        return self.position < len(self.data)

    def byte(self) -> int:
        if not self.more():
            raise ValueError("WBXML data ends early")
        self.position += 1
        return self.data[self.position - 1]

    def mb_uint32(self) -> int:
        """WBXML's multi-byte integer: 7 bits per byte, high bit set on all but the last."""
        value = 0
        for _ in range(5):
            b = self.byte()
            value = value << 7 | (b & 0x7F)
            if not b & 0x80:
                return value
        raise ValueError("WBXML integer too long")

    def inline_string(self) -> str:
        end = self.data.find(b"\0", self.position)
        if end < 0:
            raise ValueError("WBXML string without its terminating NUL")
        text = self.data[self.position : end]
        self.position = end + 1
        return text.decode("utf-8", "replace")

    def opaque(self) -> str:
        length = self.mb_uint32()
        text = self.data[self.position : self.position + length]
        self.position += length
        return text.decode("utf-8", "replace")


def to_xml(data: bytes) -> str:
    """ActiveSync WBXML -> pretty-printed XML; ValueError if it is not such WBXML."""
    try:
        return _to_xml(data)
    except DOMException as e:  # text or a second element outside the root element
        raise ValueError(str(e) or type(e).__name__) from None


def _to_xml(data: bytes) -> str:
    if not data:
        raise ValueError("Empty WBXML body passed")
    reader = _Reader(data)
    reader.byte()  # version: any
    reader.mb_uint32()  # public identifier: any
    if reader.mb_uint32() != 0x6A:
        raise ValueError("only UTF-8 encoded WBXML is supported")
    if reader.mb_uint32() != 0:
        raise ValueError("WBXML data contains a string table")
    document = minidom.Document()
    # Any: minidom's stubs type appendChild per node kind; here it is the document or an element.
    node: Any = document
    page = depth = 0
    while reader.more():
        token = reader.byte()
        if token == SWITCH_PAGE:
            page = reader.byte()
            if page >= len(_TAGS):
                raise ValueError(f"unknown code page {page:#x}")
        elif token == END:
            if node.parentNode is None:
                raise ValueError("END token out of sequence")
            node = node.parentNode
            depth -= 1
        elif token == OPAQUE:
            node.appendChild(document.createCDATASection(reader.opaque()))
        elif token == STR_I:
            node.appendChild(document.createTextNode(reader.inline_string()))
        elif token in UNSUPPORTED:
            raise ValueError(f"unsupported global token {token:#x}")
        else:
            if token & 0x80:
                raise ValueError(f"token {token & 0x3F:#x} has attributes")
            name = _TAGS[page].get(token & 0x3F)
            if name is None:
                raise ValueError(f"unknown tag {token & 0x3F:#x} in code page {page}")
            element = document.createElement(name)
            node.appendChild(element)
            if token & 0x40:
                node = element
                depth += 1
                if depth > MAX_DEPTH:
                    raise ValueError(f"WBXML nested deeper than {MAX_DEPTH} elements")
    return document.toprettyxml(indent="    ", newl="\n")


class WBXMLContentview(Contentview):
    name = "WBXML"
    syntax_highlight = "xml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return to_xml(data)

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(bool(data) and metadata.content_type in CONTENT_TYPES)


wbxml = WBXMLContentview()
