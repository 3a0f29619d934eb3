"""Views that show key/value data as YAML: URL-encoded and multipart forms, query strings."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable

from proxycore.contentviews import yamlout
from proxycore.contentviews.api import Contentview, Metadata
from proxycore.http import Request, parse_content_type
from proxycore.utils.textutils import escape_bytes


def merge_repeated(pairs: Iterable[tuple[str, str]]) -> dict[str, str | list[str]]:
    """Pairs to a mapping; a key seen more than once maps to the list of its values."""
    merged: dict[str, str | list[str]] = {}
    for key, value in pairs:
        seen = merged.get(key)
        if not seen:  # absent or an empty value, which a later one replaces
            merged[key] = value
        elif isinstance(seen, list):
            seen.append(value)
        else:
            merged[key] = [seen, value]
    return merged


def _escaped(pairs: Iterable[tuple[bytes, bytes]]) -> Iterable[tuple[str, str]]:
    return ((escape_bytes(k), escape_bytes(v)) for k, v in pairs)


def decode_multipart(content_type: str | None, data: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value) of each part, the way mitmproxy splits a multipart body.

    A part's value is everything after its first empty line, with the line breaks
    removed; a part without an empty line raises ValueError.  Without a usable
    boundary there are no parts."""
    parsed = parse_content_type(content_type or "")
    if not parsed:
        return []
    try:
        boundary = parsed[2]["boundary"].encode("ascii")
    except (KeyError, UnicodeError):
        return []
    fields = []
    for part in data.split(b"--" + boundary):
        lines = part.splitlines()
        if len(lines) < 2 or lines[0].startswith(b"--"):
            continue
        name = re.search(rb'\bname="([^"]+)"', lines[1])
        if name:
            blank = lines.index(b"", 2)  # ValueError if the headers never end
            fields.append((name.group(1), b"".join(lines[blank + 1 :])))
    return fields


class URLEncodedContentview(Contentview):
    name = "URL-encoded"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        # Like mitmproxy, parse the bytes directly: non-ASCII data does not fit this view.
        pairs = urllib.parse.parse_qsl(data, keep_blank_values=True)
        return yamlout.dumps(merge_repeated(_escaped(pairs)))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(bool(data) and metadata.content_type == "application/x-www-form-urlencoded")


class MultipartContentview(Contentview):
    name = "Multipart Form"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        if metadata.http_message is None:
            raise ValueError("Not an HTTP message")
        parts = decode_multipart(metadata.http_message.headers["content-type"], data)
        return yamlout.dumps(merge_repeated(_escaped(parts)))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(bool(data) and metadata.content_type == "multipart/form-data")


class QueryContentview(Contentview):
    """The query string of a request without a body (not offered in the view list)."""

    name = "Query"
    syntax_highlight = "yaml"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        if not isinstance(metadata.http_message, Request):
            raise ValueError("Not an HTTP request.")
        return yamlout.dumps(merge_repeated(metadata.http_message.query.items(multi=True)))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        has_query = isinstance(metadata.http_message, Request) and bool(metadata.http_message.query)
        return 0.3 * float(not data and has_query)


urlencoded = URLEncodedContentview()
multipart = MultipartContentview()
query = QueryContentview()
