"""HTTP/1.x wire format: head parsing and assembly, body framing (RFC 9112).

Pure functions and small incremental body readers; the HTTP/1 layers use them
and nothing here knows about connections or flows beyond the model classes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from proxycore.http import Headers, Request, Response

MAX_CHUNK_LINE = 4096

_TOKEN = re.compile(rb"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")
_VERSION = re.compile(rb"^HTTP/\d\.\d$")


class ProtocolError(ValueError):
    """The peer sent something that is not HTTP/1; the message says what."""


def _split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    lines = head.split(b"\r\n")
    # Tolerate bare LF line endings, as most servers do.
    if len(lines) == 1 and b"\n" in head:
        lines = head.split(b"\n")
    first, rest = lines[0], lines[1:]
    fields: list[tuple[bytes, bytes]] = []
    for line in rest:
        if not line:
            continue
        if line[0] in b" \t":
            raise ProtocolError("obsolete header line folding is not allowed")
        name, sep, value = line.partition(b":")
        if not sep or not _TOKEN.match(name):
            raise ProtocolError(f"invalid header line: {line[:80]!r}")
        fields.append((name, value.strip(b" \t")))
    return first, fields


def parse_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` (IPv6 in brackets) into host and port."""
    try:
        text = authority.decode("ascii" if authority.isascii() else "utf-8")
    except UnicodeError:
        raise ProtocolError(f"invalid authority: {authority!r}") from None
    host, port_str = text, ""
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise ProtocolError(f"invalid authority: {authority!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ProtocolError(f"invalid authority: {authority!r}")
            port_str = rest[1:]
    elif ":" in text:
        host, _, port_str = text.rpartition(":")
    if port_str:
        if not port_str.isdigit() or not 0 < int(port_str) < 65536:
            raise ProtocolError(f"invalid port in authority: {authority!r}")
        port = int(port_str)
    elif default_port is None:
        raise ProtocolError(f"missing port in authority: {authority!r}")
    else:
        port = default_port
    if not host or any(c in host for c in " /\\@"):
        raise ProtocolError(f"invalid host in authority: {authority!r}")
    return host.lower(), port


def parse_request_head(head: bytes) -> Request:
    """Parse a request head (without the final blank line) into a Request without content."""
    first, fields = _split_head(head)
    parts = first.split(b" ")
    if len(parts) != 3:
        raise ProtocolError(f"bad HTTP request line: {first[:100]!r}")
    method, target, version = parts
    if not _TOKEN.match(method):
        raise ProtocolError(f"bad HTTP request method: {method[:40]!r}")
    if not _VERSION.match(version):
        raise ProtocolError(f"bad HTTP version: {version[:40]!r}")
    scheme = authority = path = b""
    host, port = "", 0
    if method.upper() == b"CONNECT":
        authority = target
        host, port = parse_authority(target, None)
    elif target.startswith(b"/") or target == b"*":
        path = target
    else:
        scheme, sep, rest = target.partition(b"://")
        if not sep or scheme.lower() not in (b"http", b"https"):
            raise ProtocolError(f"bad HTTP request target: {target[:100]!r}")
        scheme = scheme.lower()
        slash = rest.find(b"/")
        query = rest.find(b"?")
        cut = min(i for i in (slash, query, len(rest)) if i != -1)
        authority, path = rest[:cut], rest[cut:]
        if path.startswith(b"?"):
            path = b"/" + path
        path = path or b"/"
        host, port = parse_authority(authority, 443 if scheme == b"https" else 80)
    return Request(
        host=host,
        port=port,
        method=method,
        scheme=scheme,
        authority=authority,
        path=path,
        http_version=version,
        headers=Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=0.0,
        timestamp_end=None,
    )


def parse_response_head(head: bytes) -> Response:
    first, fields = _split_head(head)
    version, _, rest = first.partition(b" ")
    status, _, reason = rest.partition(b" ")
    if not _VERSION.match(version):
        raise ProtocolError(f"bad HTTP response line: {first[:100]!r}")
    if len(status) != 3 or not status.isdigit():
        raise ProtocolError(f"bad HTTP status code: {status[:40]!r}")
    return Response(
        http_version=version,
        status_code=int(status),
        reason=reason,
        headers=Headers(fields),
        content=None,
        trailers=None,
        timestamp_start=0.0,
        timestamp_end=None,
    )


# Body framing ---------------------------------------------------------------

UNTIL_EOF = -1
CHUNKED = -2


def _content_length(headers: Headers) -> int | None:
    values = headers.get_all("content-length")
    if not values:
        return None
    sizes = {v.strip() for value in values for v in value.split(",")}
    if len(sizes) != 1:
        raise ProtocolError("conflicting Content-Length headers")
    (size,) = sizes
    if not size.isdigit():
        raise ProtocolError(f"invalid Content-Length: {size[:40]!r}")
    return int(size)


def _is_chunked(headers: Headers, what: str) -> bool | None:
    """None when there is no Transfer-Encoding, True for chunked, else an error."""
    te = headers.get_all("transfer-encoding")
    if not te:
        return None
    codings = [c.strip().lower() for v in te for c in v.split(",") if c.strip()]
    if codings == ["chunked"]:
        return True
    if what == "response" and codings and codings[-1] != "chunked":
        return False
    raise ProtocolError(f"unsupported Transfer-Encoding in {what}: {', '.join(te)}")


def request_body_size(request: Request) -> int:
    """Bytes of body that follow a request head: a size, or CHUNKED."""
    headers = request.headers
    chunked = _is_chunked(headers, "request")
    if chunked is not None:
        if "content-length" in headers:
            raise ProtocolError("request has both Transfer-Encoding and Content-Length")
        if request.http_version != "HTTP/1.1":
            raise ProtocolError("Transfer-Encoding is only allowed in HTTP/1.1")
        return CHUNKED
    return _content_length(headers) or 0


def response_body_size(request_method: str, response: Response) -> int:
    """Bytes of body after a response head: a size, CHUNKED or UNTIL_EOF (RFC 9112 §6.3)."""
    status = response.status_code
    if (
        request_method.upper() == "HEAD"
        or 100 <= status < 200
        or status in (204, 304)
        or (request_method.upper() == "CONNECT" and 200 <= status < 300)
    ):
        return 0
    headers = response.headers
    chunked = _is_chunked(headers, "response")
    if chunked is True:
        if "content-length" in headers:
            raise ProtocolError("response has both Transfer-Encoding and Content-Length")
        return CHUNKED
    if chunked is False:
        return UNTIL_EOF
    size = _content_length(headers)
    return UNTIL_EOF if size is None else size


@dataclass(slots=True)
class BodyData:
    data: bytes


@dataclass(slots=True)
class BodyEnd:
    trailers: Headers | None = None


class BodyReader:
    """Incremental body decoder; ``feed`` returns the part of the input after the body."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.remaining = size if size >= 0 else 0
        self.done = size == 0
        # chunked state: "size" line expected, "data" inside a chunk, "crlf"
        # after a chunk, "trailer" lines after the last chunk.
        self._state = "size"
        self._buf = b""
        self._trailers: list[tuple[bytes, bytes]] = []

    def feed(self, data: bytes) -> tuple[list[BodyData | BodyEnd], bytes]:
        out: list[BodyData | BodyEnd] = []
        if self.done:
            return out, data
        if self.size == UNTIL_EOF:
            if data:
                out.append(BodyData(data))
            return out, b""
        if self.size >= 0:
            take = data[: self.remaining]
            self.remaining -= len(take)
            if take:
                out.append(BodyData(take))
            if self.remaining == 0:
                self.done = True
                out.append(BodyEnd())
            return out, data[len(take) :]
        return self._feed_chunked(data, out)

    def eof(self) -> list[BodyData | BodyEnd]:
        """The peer closed; only an EOF-delimited body ends cleanly here."""
        if self.done:
            return []
        if self.size == UNTIL_EOF:
            self.done = True
            return [BodyEnd()]
        raise ProtocolError("connection closed before the end of the message body")

    def _feed_chunked(
        self, data: bytes, out: list[BodyData | BodyEnd]
    ) -> tuple[list[BodyData | BodyEnd], bytes]:
        buf = self._buf + data if self._buf else data
        self._buf = b""
        pos = 0
        while not self.done:
            if self._state == "data":
                take = min(self.remaining, len(buf) - pos)
                if take == 0:
                    break
                out.append(BodyData(buf[pos : pos + take]))
                pos += take
                self.remaining -= take
                if self.remaining == 0:
                    self._state = "crlf"
                continue
            end = buf.find(b"\n", pos)
            if end == -1:
                if len(buf) - pos > MAX_CHUNK_LINE:
                    raise ProtocolError("chunk header line too long")
                break
            line = buf[pos:end].rstrip(b"\r")
            pos = end + 1
            if self._state == "crlf":
                if line:
                    raise ProtocolError("missing CRLF after chunk data")
                self._state = "size"
            elif self._state == "size":
                size_text = line.split(b";", 1)[0].strip()
                try:
                    if not size_text or size_text.startswith((b"-", b"+", b"0x", b"0X")):
                        raise ValueError
                    size = int(size_text, 16)
                except ValueError:
                    raise ProtocolError(f"invalid chunk size: {line[:40]!r}") from None
                if size == 0:
                    self._state = "trailer"
                else:
                    self.remaining = size
                    self._state = "data"
            else:  # trailer
                if not line:
                    self.done = True
                    trailers = Headers(self._trailers) if self._trailers else None
                    out.append(BodyEnd(trailers))
                    break
                name, sep, value = line.partition(b":")
                if not sep or not _TOKEN.match(name):
                    raise ProtocolError(f"invalid trailer line: {line[:80]!r}")
                self._trailers.append((name, value.strip(b" \t")))
        rest = buf[pos:]
        if self.done:
            return out, rest
        self._buf = rest
        return out, b""


# Assembly --------------------------------------------------------------------


def assemble_request_head(request: Request) -> bytes:
    method = request.data.method
    if method.upper() == b"CONNECT":
        target = request.data.authority
    elif request.data.authority and request.data.scheme:
        # absolute-form, as when we talk to an upstream proxy
        target = request.data.scheme + b"://" + request.data.authority + request.data.path
    else:
        target = request.data.path or b"/"
    version = request.data.http_version
    if not version.startswith(b"HTTP/1"):
        version = b"HTTP/1.1"
    return b"%s %s %s\r\n%s\r\n" % (method, target, version, _header_block(request.headers))


def assemble_origin_request_head(request: Request) -> bytes:
    """The head we send to an origin server: always origin-form (or authority for CONNECT)."""
    method = request.data.method
    target = request.data.authority if method.upper() == b"CONNECT" else request.data.path or b"/"
    version = request.data.http_version
    if not version.startswith(b"HTTP/1"):
        version = b"HTTP/1.1"
    return b"%s %s %s\r\n%s\r\n" % (method, target, version, _header_block(request.headers))


def assemble_response_head(response: Response) -> bytes:
    version = response.data.http_version
    if not version.startswith(b"HTTP/1"):
        version = b"HTTP/1.1"
    return b"%s %d %s\r\n%s\r\n" % (
        version,
        response.status_code,
        response.data.reason,
        _header_block(response.headers),
    )


def _header_block(headers: Headers) -> bytes:
    return b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers.fields)


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def last_chunk(trailers: Headers | None) -> bytes:
    if trailers:
        return b"0\r\n" + _header_block(trailers) + b"\r\n"
    return b"0\r\n\r\n"


def connection_close(http_version: str, headers: Headers) -> bool:
    """Whether a message asks to close the connection after it."""
    tokens = {t.strip().lower() for v in headers.get_all("connection") for t in v.split(",")}
    if "close" in tokens:
        return True
    if http_version == "HTTP/1.1":
        return False
    return "keep-alive" not in tokens


def find_head_end(buffer: bytes, start: int = 0) -> int:
    """Index just past the blank line ending a head, or -1 if it's not complete yet."""
    idx = buffer.find(b"\r\n\r\n", start)
    if idx != -1:
        lf = buffer.find(b"\n\n", start, idx)
        return lf + 2 if lf != -1 else idx + 4
    idx = buffer.find(b"\n\n", start)
    return idx + 2 if idx != -1 else -1
