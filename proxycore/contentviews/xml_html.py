"""The XML/HTML view: a forgiving pretty-printer that only changes whitespace.

The document is split into tags and text, then written one element per line,
indented by nesting depth.  Short elements (``<b>text</b>``, ``<div></div>``) stay
on one line, void HTML elements do not open a level, and nothing is validated, so
broken markup is shown as well as it can be.
"""

from __future__ import annotations

import re
import textwrap
from collections.abc import Iterator

from proxycore.contentviews.api import Contentview, Metadata

_TAG_NAME = re.compile(r"[a-zA-Z0-9._:\-]+(?!=)")
VOID_ELEMENTS = frozenset(
    "area base br col embed hr img input keygen link meta param source track wbr".split()
)
#: elements whose content is not indented
FLAT_ELEMENTS = frozenset({"xml", "doctype", "html"})
INDENT = "  "
MAX_DEPTH = 16


class Text:
    def __init__(self, data: str) -> None:
        self.data = data

    @property
    def text(self) -> str:
        return self.data.strip()


class Tag:
    def __init__(self, data: str) -> None:
        self.data = data

    @property
    def name(self) -> str:
        found = _TAG_NAME.search(self.data)
        return found.group(0).lower() if found else "<empty>"

    @property
    def is_comment(self) -> bool:
        return self.data.startswith("<!--")

    @property
    def is_cdata(self) -> bool:
        return self.data.startswith("<![CDATA[")

    @property
    def is_closing(self) -> bool:
        return self.data.startswith("</")

    @property
    def is_self_closing(self) -> bool:
        return self.is_comment or self.is_cdata or self.data.endswith("/>") or self.name in VOID_ELEMENTS

    @property
    def is_opening(self) -> bool:
        return not self.is_closing and not self.is_self_closing

    @property
    def complete(self) -> bool:
        if self.is_comment:
            return self.data.endswith("-->")
        if self.is_cdata:
            return self.data.endswith("]]>")
        return self.data.endswith(">")  # wrong for an unescaped ">" in an attribute; good enough


Token = Text | Tag


def tokenize(doc: str) -> Iterator[Token]:
    """Text between tags (whitespace-only text is dropped) and tags, in order."""
    pos = 0
    token: Token = Text("")
    while pos < len(doc):
        if isinstance(token, Text):
            end = doc.find("<", pos)
            end = len(doc) if end < 0 else end
            token.data = doc[pos:end]
            pos = end
            if token.text:
                yield token
            token = Tag("")
        else:
            end = doc.find(">", pos)
            end = len(doc) if end < 0 else end
            token.data += doc[pos : end + 1]
            pos = end + 1
            if token.complete:
                yield token
                token = Text("")
    if token.data.strip():
        yield token


def _indented(data: str, prefix: str) -> str:
    # The padding lets dedent() line up continuation lines of a multi-line text
    # with its first line.
    return textwrap.indent(textwrap.dedent(" " * 32 + data).strip(), prefix[:32])


def _inline_text(a: Token | None, b: Token | None, c: Token | None) -> bool:
    """``<x>short text</x>``"""
    return (
        isinstance(a, Tag)
        and isinstance(b, Text)
        and isinstance(c, Tag)
        and a.is_opening
        and "\n" not in b.data
        and c.is_closing
        and a.name == c.name
    )


def _inline(window: tuple[Token | None, ...]) -> bool:
    prev2, prev1, token, next1, next2 = window
    if isinstance(token, Text):
        return _inline_text(prev1, token, next1)
    if isinstance(token, Tag):
        if _inline_text(prev2, prev1, token) or _inline_text(token, next1, next2):
            return True
        if isinstance(next1, Tag) and token.is_opening and next1.is_closing and token.name == next1.name:
            return True  # the start of <x></x>
        if isinstance(prev1, Tag) and prev1.is_opening and token.is_closing and prev1.name == token.name:
            return True  # the end of <x></x>
    return False


class _Nesting:
    def __init__(self) -> None:
        self.open: list[str] = []
        self.indent = ""

    def push(self, name: str) -> None:
        if len(self.open) > MAX_DEPTH:
            return
        self.open.append(name)
        if name not in FLAT_ELEMENTS:
            self.indent += INDENT

    def pop(self, name: str) -> None:
        if name not in self.open:
            return  # a stray closing tag changes nothing
        removed = 0
        while True:
            top = self.open.pop()
            if top not in FLAT_ELEMENTS:
                removed += len(INDENT)
            if top == name:
                break
        # As in mitmproxy, closing only flat elements (e.g. </html>) resets the indentation.
        self.indent = self.indent[:-removed] if removed else ""


def _windows(tokens: Iterator[Token]) -> Iterator[tuple[Token | None, ...]]:
    """(two before, the token, two after) for every token, None past either end."""
    items: list[Token | None] = [None, None, *tokens, None, None]
    for i in range(2, len(items) - 2):
        yield tuple(items[i - 2 : i + 3])


def format_xml(tokens: Iterator[Token]) -> str:
    out: list[str] = []
    nesting = _Nesting()
    for window in _windows(tokens):
        token = window[2]
        if isinstance(token, Tag):
            if token.is_opening:
                out.append(_indented(token.data, nesting.indent))
                if not _inline(window):
                    out.append("\n")
                nesting.push(token.name)
            elif token.is_closing:
                nesting.pop(token.name)
                out.append(token.data if _inline(window) else _indented(token.data, nesting.indent))
                out.append("\n")
            else:
                out.append(_indented(token.data, nesting.indent) + "\n")
        elif isinstance(token, Text):
            if _inline(window):
                out.append(token.text)
            else:
                out.append(_indented(token.data, nesting.indent) + "\n")
    return "".join(out)


def looks_like_xml(data: bytes) -> bool:
    """The first non-whitespace byte is ``<``."""
    stripped = data.lstrip(b" \t\r\n")
    return stripped.startswith(b"<")


class XmlHtmlContentview(Contentview):
    name = "XML/HTML"
    syntax_highlight = "xml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        if metadata.http_message is not None:
            doc = metadata.http_message.get_text(strict=False) or ""
        else:
            doc = data.decode("utf-8", "backslashreplace")
        return format_xml(tokenize(doc))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        if not data:
            return 0
        if metadata.content_type in ("text/xml", "text/html"):
            return 1
        return 0.4 if looks_like_xml(data) else 0


xml_html = XmlHtmlContentview()
