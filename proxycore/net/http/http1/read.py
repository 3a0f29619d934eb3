"""Reading HTTP/1 heads given as lines, and body framing, with mitmproxy's signatures."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable

from proxycore.http import Headers, Request, Response
from proxycore.net import http1

_VERSION = re.compile(rb"^HTTP/\d\.\d$")
# Transfer codings a message may carry (RFC 9112 §7; "x-" names are not accepted).
_CODINGS = frozenset({"chunked", "compress", "deflate", "gzip", "identity", "br", "zstd"})


def get_header_tokens(headers: Headers, key: str) -> list[str]:
    """The comma-separated tokens of every ``key`` field, in order."""
    return [t.strip() for value in headers.get_all(key) for t in value.split(",") if t.strip()]


def connection_close(http_version: str | bytes, headers: Headers) -> bool:
    """Whether the connection ends after this message (Connection header, else the version)."""
    tokens = {t.lower() for t in get_header_tokens(headers, "connection")}
    if "close" in tokens:
        return True
    if "keep-alive" in tokens:
        return False
    version = http_version.decode("ascii", "replace") if isinstance(http_version, bytes) else http_version
    return version not in ("HTTP/1.1", "HTTP/2.0")


def _transfer_codings(headers: Headers) -> list[str] | None:
    values = headers.get_all("transfer-encoding")
    if not values:
        return None
    joined = ",".join(values)
    if not joined.isascii():
        raise ValueError(f"invalid transfer-encoding header: {joined!r}")
    codings = [c.strip().lower() for c in joined.split(",") if c.strip()]
    if not codings or any(c not in _CODINGS for c in codings):
        raise ValueError(f"unknown transfer-encoding header: {joined!r}")
    return codings


def expected_http_body_size(request: Request, response: Response | None = None) -> int | None:
    """Body length after a head: a byte count, None for chunked, -1 for "until the peer closes".

    Raises ValueError for framing proxycore would refuse (unknown codings, a bad or
    repeated Content-Length)."""
    message: Request | Response = request if response is None else response
    if response is not None:
        status = response.status_code
        if (
            request.method.upper() == "HEAD"
            or 100 <= status < 200
            or status in (204, 304)
            or (request.method.upper() == "CONNECT" and 200 <= status < 300)
        ):
            return 0
    codings = _transfer_codings(message.headers)
    if codings is not None:
        if codings[-1] == "chunked":
            return None
        if response is not None or any(c != "identity" for c in codings):
            return -1
        # a request that says only "identity": framed by Content-Length, if any
    lengths = message.headers.get_all("content-length")
    if len(lengths) > 1:
        raise ValueError(f"repeated content-length headers: {lengths!r}")
    if lengths:
        size = lengths[0].strip()
        if not size.isdigit():
            raise ValueError(f"invalid content-length header: {size!r}")
        return int(size)
    return 0 if response is None else -1


def _read_headers(lines: Iterable[bytes]) -> Headers:
    """Header lines (CRLF optional) into Headers; a folded line continues the previous field,
    joined with one space (RFC 9112 5.2): the flow model refuses CR/LF inside a value."""
    fields: list[tuple[bytes, bytes]] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not fields:
                raise ValueError("a continued header line without a header before it")
            name, value = fields[-1]
            fields[-1] = (name, value + b" " + line.strip())
            continue
        name, sep, value = line.partition(b":")
        if not sep or not name.strip():
            raise ValueError(f"invalid header line: {line[:80]!r}")
        fields.append((name, value.strip()))
    return Headers(fields)


def _read_request_line(line: bytes) -> tuple[str, int, bytes, bytes, bytes, bytes, bytes]:
    """(host, port, method, scheme, authority, path, http_version) of a request line."""
    try:
        request = http1.parse_request_head(line.strip())
    except http1.ProtocolError as e:
        raise ValueError(f"bad HTTP request line: {line[:100]!r} ({e})") from None
    d = request.data
    return d.host, d.port, d.method, d.scheme, d.authority, d.path, d.http_version


def _read_response_line(line: bytes) -> tuple[bytes, int, bytes]:
    """(http_version, status_code, reason) of a status line."""
    parts = line.strip().split(b" ", 2)
    if len(parts) < 2 or not _VERSION.match(parts[0]) or not parts[1].isdigit() or len(parts[1]) != 3:
        raise ValueError(f"bad HTTP response line: {line[:100]!r}")
    return parts[0], int(parts[1]), parts[2] if len(parts) == 3 else b""


def read_request_head(lines: list[bytes]) -> Request:
    """A Request (content None) from its head's lines, request line first."""
    host, port, method, scheme, authority, path, version = _read_request_line(lines[0])
    return Request(
        host, port, method, scheme, authority, path, version,
        _read_headers(lines[1:]), None, None, time.time(), None,
    )


def read_response_head(lines: list[bytes]) -> Response:
    """A Response (content None) from its head's lines, status line first."""
    version, status, reason = _read_response_line(lines[0])
    return Response(version, status, reason, _read_headers(lines[1:]), None, None, time.time(), None)
