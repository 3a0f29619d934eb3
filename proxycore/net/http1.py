"""HTTP/1.x wire format: head parsing and assembly, body framing (RFC 9112).

Pure functions and small incremental body readers; the HTTP/1 layers use them
and nothing here knows about connections or flows beyond the model classes.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from typing import Any

from proxycore.http import (
    Headers,
    Request,
    RequestLine,
    Response,
    _Index,
    field_index,
    parsed_request,
    parsed_response,
)

MAX_CHUNK_LINE = 4096
# Bytes of trailer fields after the last chunk (a head has head_size_limit instead).
MAX_TRAILER_SIZE = 64 * 1024

_TOKEN_TEXT = rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+"
_TOKEN = re.compile(_TOKEN_TEXT)
_VERSION = re.compile(rb"HTTP/[0-9]\.[0-9]")
# The usual methods and versions, which match _TOKEN and _VERSION: recognised by a set
# lookup, as a regex call costs several times more (twice per proxied request each).
_COMMON_METHODS = frozenset({b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"PATCH", b"CONNECT"})
_COMMON_VERSIONS = frozenset({b"HTTP/1.1", b"HTTP/1.0"})
# Control characters other than HTAB: never part of a field value or reason phrase.
_BAD_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f]")
# The same in a whole head, where CR and LF end lines (and are checked apart).
_BAD_HEAD_BYTE = re.compile(rb"[\x00-\x08\x0b\x0c\x0e-\x1f]")
# A request target is visible characters (raw bytes >= 0x80 tolerated, as by mitmproxy).
_BAD_TARGET = re.compile(rb"[\x00-\x20\x7f]")
# The first blank line ends a head, as in h11: lines end with LF, optionally after CR.
_HEAD_END = re.compile(rb"\n\r?\n")
HEAD_END = _HEAD_END  # (for the layers, which search with it inline)
# One header field line: name, and value without surrounding blanks (CR and control bytes
# are checked on the whole head before; in a CRLF head every CR ends a line).
_FIELD_LINE = re.compile(rb"^(%s):[ \t]*((?:[^\r\n]*[^\r\n \t])?)[ \t]*\r?$" % _TOKEN_TEXT, re.MULTILINE)
_LEADING_BLANK_LINES = re.compile(rb"(?:\r?\n)+")
# The usual head, all in CRLF, read in one pass per part: a start line, then field lines
# whose every byte is allowed (no control byte but HTAB, no CR or LF inside a line, a
# token at the start of each line: no obs-fold), each ending in CRLF. A head these do not
# cover wholly goes to _split_head, which accepts the same heads and says what is wrong.
# The target is split here already when it is the usual absolute form, ``http://``, an
# authority without "/" or "?" and a path that begins with "/" or nothing (groups 2-3; the
# target group 4 then None); any other target is group 4. The two branches together accept
# exactly a run of visible bytes, as the target of _split_head's lines.
_REQUEST_LINE = re.compile(
    rb"(%s) (?:http://([\x21-\x2e\x30-\x3e\x40-\x7e\x80-\xff]+)((?:/[\x21-\x7e\x80-\xff]*)?)"
    rb"|([\x21-\x7e\x80-\xff]+)) (HTTP/[0-9]\.[0-9])\r\n" % _TOKEN_TEXT
)
# Methods whose absolute-form line _REQUEST_LINE splits is read without _request_line (a
# CONNECT's target is an authority: it goes there).
_SPLIT_METHODS = _COMMON_METHODS - {b"CONNECT"}
_STATUS_LINE = re.compile(rb"(HTTP/[0-9]\.[0-9]) ([0-9]{3})(?: ([\t\x20-\xff]*))?\r\n")
_CRLF_FIELD_LINE = re.compile(
    rb"^(%s):[ \t]*((?:[\t\x20-\xff]*[\x21-\xff])?)[ \t]*\r\n" % _TOKEN_TEXT, re.MULTILINE
)
# The same lines in the form Headers.raw_block gives them, ``name: value`` with one space
# and no blank after the value (as nearly every client and server sends them): tried
# first, as when every line matches, the head's own bytes serve to send the fields on.
_CANONICAL_FIELD_LINE = re.compile(
    rb"^(%s): ((?:[\x21-\xff](?:[\t\x20-\xff]*[\x21-\xff])?)?)\r\n" % _TOKEN_TEXT, re.MULTILINE
)
# Status lines most responses have (up to the LF that ends them, as a head's partition
# gives them), and what _STATUS_LINE makes of them.
_USUAL_STATUS_LINES: dict[bytes, tuple[bytes, int, bytes]] = {
    b"%s %d %s\r" % (version, status, reason): (version, status, reason)
    for version in (b"HTTP/1.1", b"HTTP/1.0")
    for status, reason in (
        (200, b"OK"), (204, b"No Content"), (206, b"Partial Content"), (301, b"Moved Permanently"),
        (302, b"Found"), (304, b"Not Modified"), (404, b"Not Found"),
    )
}
_DIGITS = re.compile(r"[0-9]{1,18}")
_PORT = re.compile(r"[0-9]{1,5}")
# An ASCII host name: letters, digits and the unreserved/sub-delims a reg-name may hold.
_HOST_CHARS = re.compile(r"[A-Za-z0-9\-._~!$&'()*+,;=]+")
_QUOTED = rb'"(?:[\t \x21\x23-\x5b\x5d-\x7e\x80-\xff]|\\[\t \x21-\x7e\x80-\xff])*"'
# chunk-size [chunk-ext] OWS: hex digits only (no 0x, no _, no sign), extensions as
# RFC 9112 7.1.1 names them, nothing else.
_CHUNK_LINE = re.compile(
    rb"([0-9A-Fa-f]{1,16})((?:;[ \t]*%s(?:[ \t]*=[ \t]*(?:%s|%s))?[ \t]*)*)"
    % (_TOKEN_TEXT, _TOKEN_TEXT, _QUOTED)
)
# Transfer codings a response may name before its final "chunked".
_KNOWN_CODINGS = frozenset({"gzip", "x-gzip", "deflate", "compress", "x-compress"})


class ProtocolError(ValueError):
    """The peer sent something that is not HTTP/1; the message says what."""


def _field(line: bytes, what: str) -> tuple[bytes, bytes]:
    """One ``name: value`` line of a trailer section, checked strictly."""
    if line[:1] in (b" ", b"\t"):
        raise ProtocolError("obsolete line folding (obs-fold) is not allowed")
    name, sep, value = line.partition(b":")
    if not sep or not _TOKEN.fullmatch(name):
        raise ProtocolError(f"invalid {what} line: {line[:80]!r}")
    value = value.strip(b" \t")
    if _BAD_VALUE.search(value):
        raise ProtocolError(f"control character in {what} value: {line[:80]!r}")
    return name, value


def _bare_line_break(head: bytes) -> None:
    """Say where a head mixes line endings (only called once that is known)."""
    for line in head.split(b"\r\n") if b"\r\n" in head else head.split(b"\n"):
        if b"\r" in line:
            raise ProtocolError(f"bare CR in message head: {line[:80]!r}")
        if b"\n" in line:
            raise ProtocolError(f"bare LF in a CRLF message head: {line[:80]!r}")
    raise ProtocolError("bare CR or LF in message head")  # pragma: no cover - unreachable


def _no_obs_fold(head: bytes) -> None:
    if b"\n " in head or b"\n\t" in head:
        raise ProtocolError("obsolete line folding (obs-fold) is not allowed")


def _split_head(head: bytes) -> tuple[bytes, list[tuple[bytes, bytes]]]:
    """First line and fields of a head (with or without its final blank line).

    Lines end in CRLF, or all in bare LF (lenient as mitmproxy and h11: that cannot
    change framing). A bare LF in a CRLF head, any bare CR, NUL or other control
    character but HTAB are errors: other parsers on the path would split such a head
    differently (request smuggling). Checked on the whole head at once, which is much
    cheaper than line by line.
    """
    bad = _BAD_HEAD_BYTE.search(head)
    if bad:
        line = head[head.rfind(b"\n", 0, bad.start()) + 1 :].split(b"\n", 1)[0]
        what = "NUL byte" if bad.group() == b"\x00" else "control character"
        raise ProtocolError(f"{what} in message head: {line[:80]!r}")
    crlf = head.count(b"\r\n")
    cr = head.count(b"\r")
    if (crlf and (cr != crlf or head.count(b"\n") != crlf)) or (not crlf and cr):
        _bare_line_break(head)
    sep = b"\r\n" if crlf else b"\n"
    end = len(head)
    for _ in range(2):  # the blank line that ends the head
        if head.endswith(sep, 0, end):
            end -= len(sep)
    first, found, rest = head[:end].partition(sep)
    if not first:
        _no_obs_fold(head)
        raise ProtocolError("empty start line")
    if not found:
        return first, []
    # All field lines at once: one match per valid line (anchored at its start), so a
    # line that is not ``token ":" value`` (a folded one, say) leaves the count short.
    fields = _FIELD_LINE.findall(rest)
    if len(fields) != rest.count(sep) + 1:
        _no_obs_fold(head)
        for line in rest.split(sep):
            if not _FIELD_LINE.fullmatch(line):
                raise ProtocolError(f"invalid header line: {line[:80]!r}")
        raise ProtocolError("invalid header section")  # pragma: no cover - a line fails above
    return first, fields


def _check_host(host: str, authority: bytes) -> None:
    """A host must be something we can connect to: an IP literal or a name IDNA accepts."""
    if host.isascii():
        if not _HOST_CHARS.fullmatch(host):
            raise ProtocolError(f"invalid host in authority: {authority!r}")
        labels = host.split(".")
        if labels[-1] == "" and len(labels) > 1:
            labels.pop()  # a trailing dot: the root
        if all(0 < len(label) < 64 for label in labels):
            return  # all the IDNA codec would check in an ASCII name, without its cost
        raise ProtocolError(f"invalid host name (empty or long label) in authority: {authority!r}")
    if any(not c.isprintable() or c.isspace() or c in "/\\@:?#[]%" for c in host):
        raise ProtocolError(f"invalid host in authority: {authority!r}")
    try:
        host.encode("idna")
    except UnicodeError:
        raise ProtocolError(f"invalid host name (IDNA) in authority: {authority!r}") from None


def _idna_to_unicode(host: str) -> str:
    """``xn--`` labels name a Unicode host; the flow keeps it so, as mitmproxy's does (the
    wire keeps the ASCII form: Host header and request line are not rewritten)."""
    if "xn--" not in host.lower():
        return host
    try:
        return host.encode("ascii").decode("idna")
    except UnicodeError:
        return host


# Authorities parsed lately: clients name the same few hosts again and again, and checking
# one costs about as much as the rest of a request line. Bounded: cleared when full.
_AUTHORITIES: dict[tuple[bytes, int | None], tuple[str, int]] = {}
_AUTHORITIES_MAX = 1024


def parse_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    """Split ``host[:port]`` (IPv6 in brackets) into host and port; ProtocolError if either
    is not something a connection can be made to."""
    key = (authority, default_port)
    parsed = _AUTHORITIES.get(key)
    if parsed is None:
        parsed = _parse_authority(authority, default_port)
        if len(_AUTHORITIES) >= _AUTHORITIES_MAX:
            _AUTHORITIES.clear()
        _AUTHORITIES[key] = parsed
    return parsed


def _parse_authority(authority: bytes, default_port: int | None) -> tuple[str, int]:
    try:
        text = authority.decode("ascii" if authority.isascii() else "utf-8")
    except UnicodeError:
        raise ProtocolError(f"invalid authority: {authority!r}") from None
    host, port_str = text, None
    if text.startswith("["):
        end = text.find("]")
        if end == -1:
            raise ProtocolError(f"invalid authority: {authority!r}")
        host, rest = text[1:end], text[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise ProtocolError(f"invalid authority: {authority!r}")
            port_str = rest[1:]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ProtocolError(f"invalid IPv6 address in authority: {authority!r}") from None
    else:
        if ":" in text:
            host, _, port_str = text.rpartition(":")
        if not host:
            raise ProtocolError(f"invalid host in authority: {authority!r}")
        _check_host(host, authority)
        host = _idna_to_unicode(host)
    if port_str:  # "host:" has the default port, as an empty port in a URI does
        if not _PORT.fullmatch(port_str) or not 0 < int(port_str) < 65536:
            raise ProtocolError(f"invalid port in authority: {authority!r}")
        port = int(port_str)
    elif default_port is None:
        raise ProtocolError(f"missing port in authority: {authority!r}")
    else:
        port = default_port
    return host.lower(), port


# Request lines and field blocks of CRLF heads read lately, by their bytes, with what
# parse_request_head made of them: a keep-alive client sends the same line and fields
# again and again, and reading them costs most of a parse. What a head's bytes parse to
# depends on nothing else, so a head whose start line and fields are both known is the
# same head as before. The keys are what ``head.partition(b"\n")`` gives: the first line
# up to its LF (so ending in CR) and the rest of the head, its fields and the blank line
# (``b"\r\n"`` or ending in CRLF CRLF): a head made of a known line and a known rest is a
# CRLF head. A known rest serves with a new line too (and a known line with new fields),
# so a client asking for other paths with the same fields reads them once. Only what
# parsed is kept (an error is found anew each time); each memo is bounded in entries and
# key size, and cleared when full (at most ~2.7 MiB each with the largest keys).
_REQUEST_LINES: dict[bytes, RequestLine] = {}
_REQUEST_FIELDS: dict[bytes, _Index] = {}  # (fields without a second Host field)
_RESPONSE_FIELDS: dict[bytes, _Index] = {}
_MEMO_ENTRIES = 128
_MEMO_KEY_BYTES = 4096


def _remember(memo: dict[bytes, Any], key: bytes, value: Any) -> None:
    """Keep ``value`` for ``key`` in one of the head memos, within their bounds."""
    if len(key) <= _MEMO_KEY_BYTES:
        if len(memo) >= _MEMO_ENTRIES:
            memo.clear()
        memo[key] = value


def parse_request_head(head: bytes) -> Request:
    """Parse a request head (without the final blank line) into a Request without content."""
    first, _, rest = head.partition(b"\n")
    known = _REQUEST_LINES.get(first)
    index = _REQUEST_FIELDS.get(rest)
    if known is not None and index is not None:  # a line and fields read before, each in a CRLF head
        return parsed_request(known, index)
    match = _REQUEST_LINE.match(head)
    # (a known rest ends in CRLF CRLF, and the line matched ends in CR: no endswith)
    if match is not None and (index is not None or head.endswith(b"\r\n\r\n")):
        if index is None:
            # The usual CRLF head: each field line matched once, anchored at its start, and
            # a line that is not one (or a bare LF) leaves the count of LFs ahead.
            start = match.end()
            lines = head.count(b"\n") - 2
            block: bytes | None = head[start:-2]
            fields = _CANONICAL_FIELD_LINE.findall(head, start)
            if len(fields) != lines:
                fields = _CRLF_FIELD_LINE.findall(head, start)
                block = None
            if len(fields) != lines:
                return _parse_any_request_head(head)
        if known is None:
            known = _matched_line(match)
            _remember(_REQUEST_LINES, first, known)
        if index is None:  # (after the line's checks, as on the general path)
            index = _request_fields(fields, block)
            _remember(_REQUEST_FIELDS, rest, index)
        return parsed_request(known, index)
    return _parse_any_request_head(head)


def _parse_any_request_head(head: bytes) -> Request:
    """What parse_request_head does with every head: CRLF or bare LF, and says what is wrong."""
    first, fields = _split_head(head)
    parts = first.split(b" ")
    if len(parts) != 3:
        raise ProtocolError(f"bad HTTP request line: {first[:100]!r}")
    method, target, version = parts
    if method not in _COMMON_METHODS and not _TOKEN.fullmatch(method):
        raise ProtocolError(f"bad HTTP request method: {method[:40]!r}")
    if not target or _BAD_TARGET.search(target):
        raise ProtocolError(f"bad HTTP request target: {target[:100]!r}")
    if version not in _COMMON_VERSIONS and not _VERSION.fullmatch(version):
        raise ProtocolError(f"bad HTTP version: {version[:40]!r}")
    line = _request_line(method, target, version)
    return parsed_request(line, _request_fields(fields))


def _matched_line(match: re.Match[bytes]) -> RequestLine:
    """_request_line of a line _REQUEST_LINE matched, without splitting an absolute-form
    ``http://`` target again: what _request_line makes of it, more cheaply (the regex has
    split it; each split costs a call of ~0.5-1k)."""
    method, authority, path, target, version = match.groups()
    if target is not None or method not in _SPLIT_METHODS:
        return _request_line(method, target or b"http://" + authority + path, version)
    key = (authority, 80)
    known = _AUTHORITIES.get(key)  # (parse_authority's cache read without its call)
    host, port = known if known is not None else parse_authority(authority, 80)
    return (host, port, method, b"http", authority, path or b"/", version)


def _request_line(method: bytes, target: bytes, version: bytes) -> RequestLine:
    """What parsed_request takes of a checked request line: where the request goes
    (ProtocolError for a target or authority that is not one), method and version."""
    scheme = authority = path = b""
    host, port = "", 0
    if method.upper() == b"CONNECT":
        authority = target
        host, port = parse_authority(target, None)
    elif target[0] == 47 or target == b"*":  # ("/"; a target is never empty)
        path = target
    else:
        if target.startswith(b"http://"):  # the usual absolute form: no split, no lower()
            scheme, rest = b"http", target[7:]
        else:
            scheme, sep, rest = target.partition(b"://")
            scheme = scheme.lower()
            if not sep or scheme not in (b"http", b"https"):
                raise ProtocolError(f"bad HTTP request target: {target[:100]!r}")
        # The authority ends at the first "/" or "?"; a path that is only a query gets "/".
        authority, slash, path = rest.partition(b"/")
        # (count, not ``in``: bytes ``in`` first tries its operand as an int, and making
        # and dropping that TypeError costs ~1.4k more, once per request line)
        if authority.count(b"?"):
            authority, _, query = authority.partition(b"?")
            path = b"/?" + query + slash + path
        else:
            path = slash + path or b"/"
        key = (authority, 443 if scheme == b"https" else 80)
        known = _AUTHORITIES.get(key)  # (parse_authority's cache read without its call)
        host, port = known if known is not None else parse_authority(*key)
    return (host, port, method, scheme, authority, path, version)


def _request_fields(fields: list[tuple[bytes, bytes]], block: bytes | None = None) -> _Index:
    """The index of a request's checked fields (``block``: their lines, if in
    Headers.raw_block's form); ProtocolError for a second Host field."""
    # Every field was checked more strictly than the model would: its checks are skipped.
    index = field_index(fields, block)
    if len(fields) > 1:
        hosts = index[1].get(b"host")
        if hosts is not None and len(hosts) > 1:
            raise ProtocolError("more than one Host header")  # RFC 9112 3.2: which one routes?
    return index


def parse_response_head(head: bytes) -> Response:
    """Parse a response head (without the final blank line) into a Response without content."""
    # The usual status lines are known by a dict lookup of the first line: less than the
    # regex match and its groups cost. Any other goes through _STATUS_LINE.
    first, _, rest = head.partition(b"\n")
    start = len(first) + 1
    usual = _USUAL_STATUS_LINES.get(first)
    if usual is not None:
        version, status, reason = usual
    else:
        line = _STATUS_LINE.match(head)
        if line is None:
            return _parse_any_response_head(head)
        version, status_digits, reason_or_none = line.groups()
        status, reason = int(status_digits), reason_or_none or b""
    index = _RESPONSE_FIELDS.get(rest)  # (fields read before: see _REQUEST_LINES)
    if index is not None:
        return parsed_response(version, status, reason, index)
    if head.endswith(b"\r\n\r\n"):
        lines = head.count(b"\n") - 2  # (the fields as in parse_request_head)
        block: bytes | None = head[start:-2]
        fields = _CANONICAL_FIELD_LINE.findall(head, start)
        if len(fields) != lines:
            fields = _CRLF_FIELD_LINE.findall(head, start)
            block = None
        if len(fields) == lines:
            index = field_index(fields, block)
            _remember(_RESPONSE_FIELDS, rest, index)
            return parsed_response(version, status, reason, index)
    return _parse_any_response_head(head)


def _parse_any_response_head(head: bytes) -> Response:
    """What parse_response_head does with every head (see _parse_any_request_head)."""
    first, fields = _split_head(head)
    version, _, rest = first.partition(b" ")
    status, _, reason = rest.partition(b" ")
    if version not in _COMMON_VERSIONS and not _VERSION.fullmatch(version):
        raise ProtocolError(f"bad HTTP response line: {first[:100]!r}")
    if not (len(status) == 3 and status.isdigit()):  # three ASCII digits (bytes.isdigit)
        raise ProtocolError(f"bad HTTP status code: {status[:40]!r}")
    return parsed_response(version, int(status), reason, field_index(fields))


# Body framing ---------------------------------------------------------------

UNTIL_EOF = -1
CHUNKED = -2


# Single plain Content-Length values read lately, as _content_length reads them: int()
# of bytes costs more than the rest of the framing decision (bounded as the head memos).
_LENGTHS: dict[bytes, int] = {}


def _content_length(headers: Headers) -> int | None:
    """The Content-Length, if any: ASCII digits only; repeated values must all agree."""
    values = headers.get_raw(b"content-length")
    if values is None:
        return None
    if len(values) == 1 and len(values[0]) <= 18 and values[0].isdigit():  # (bytes: ASCII digits)
        plain = int(values[0])  # the usual single plain value, without the set below
        _remember(_LENGTHS, values[0], plain)
        return plain
    value = ", ".join(_text(v) for v in values)  # (as headers.get joins repeated fields)
    sizes = {v.strip(" \t") for v in value.split(",")}
    if len(sizes) != 1:
        raise ProtocolError("conflicting Content-Length headers")
    (size,) = sizes
    if not _DIGITS.fullmatch(size):
        raise ProtocolError(f"invalid Content-Length: {size[:40]!r}")
    return int(size)


def _text(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")  # (as Headers gives field values)


def transfer_codings(headers: Headers) -> list[str] | None:
    """The transfer codings named by Transfer-Encoding (lower case), None without it;
    ProtocolError for an empty element or one that is not a plain token."""
    raw = headers.get_raw(b"transfer-encoding")
    if not raw:
        return None
    codings = []
    for value in map(_text, raw):
        for item in value.split(","):
            coding = item.strip(" \t").lower()
            if not coding.isascii() or not _TOKEN.fullmatch(coding.encode()):
                raise ProtocolError(f"invalid Transfer-Encoding: {value[:60]!r}")
            codings.append(coding)
    return codings


def is_chunked(headers: Headers) -> bool:
    """Whether a message we send is framed by chunks: ``chunked`` is its final coding."""
    values = headers.get_raw(b"transfer-encoding")
    if not values:
        return False
    return values[-1].rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked"


def request_body_size(request: Request) -> int:
    """Bytes of body that follow a request head: a size, or CHUNKED.

    A proxy must not guess here (RFC 9112 6.3): a request is chunked only when
    Transfer-Encoding is exactly ``chunked``, and never also has a Content-Length."""
    headers = request.data.headers
    index = headers._index  # (as Headers.get_raw reads it, without a call)
    table = index[1] if index is not None and index[0] is headers._fields else headers._table()
    if b"transfer-encoding" not in table:  # the usual request: only Content-Length, if any
        lengths = table.get(b"content-length")
        if lengths is None:
            return 0
        known = _LENGTHS.get(lengths[0]) if len(lengths) == 1 else None
        return known if known is not None else _content_length(headers) or 0
    codings = transfer_codings(headers)
    assert codings is not None
    if codings != ["chunked"]:
        raise ProtocolError(f"unsupported Transfer-Encoding in request: {', '.join(codings)[:60]}")
    if b"content-length" in table:
        raise ProtocolError("request has both Transfer-Encoding and Content-Length")
    if request.http_version != "HTTP/1.1":
        raise ProtocolError("Transfer-Encoding is only allowed in HTTP/1.1")
    return CHUNKED


_RESPONSE_CODINGS = _KNOWN_CODINGS | {"chunked"}


def response_body_size(request_method: str, response: Response) -> int:
    """Bytes of body after a response head: a size, CHUNKED or UNTIL_EOF (RFC 9112 6.3).

    Known codings before a final ``chunked`` (``gzip, chunked``) are chunked; known
    codings without ``chunked`` run until the server closes; ``chunked`` anywhere but
    last, twice, or an unknown coding is an error."""
    return body_size_after(request_method.upper().encode("utf-8", "surrogateescape"), response)


def body_size_after(method: bytes, response: Response) -> int:
    """response_body_size with the request method as the layers hold it: bytes, in upper
    case already (no decoding per response)."""
    data = response.data
    headers = data.headers
    index = headers._index  # (as Headers.get_raw reads it, without a call)
    table = index[1] if index is not None and index[0] is headers._fields else headers._table()
    status = data.status_code
    if b"transfer-encoding" not in table:  # the usual response: its Content-Length, if any
        lengths = table.get(b"content-length")
        if lengths is None:
            size = UNTIL_EOF
        else:
            known = _LENGTHS.get(lengths[0]) if len(lengths) == 1 else None
            # (checked even where there is no body, as below; never None: the field is there)
            size = known if known is not None else _content_length(headers) or 0
        if method == b"HEAD" or 100 <= status < 200 or status in (204, 304) or (method == b"CONNECT" and 200 <= status < 300):
            return 0
        return size
    # Checked even where there is no body: a bad value is a broken (or hostile) server.
    codings = transfer_codings(headers)
    assert codings is not None  # (the field is there)
    declared = _content_length(headers)
    *first, last = codings
    if last not in _RESPONSE_CODINGS or any(c not in _KNOWN_CODINGS for c in first):
        raise ProtocolError(f"unsupported Transfer-Encoding in response: {', '.join(codings)[:60]}")
    if method == b"HEAD" or 100 <= status < 200 or status in (204, 304) or (method == b"CONNECT" and 200 <= status < 300):
        return 0
    if declared is not None:
        raise ProtocolError("response has both Transfer-Encoding and Content-Length")
    return CHUNKED if last == "chunked" else UNTIL_EOF


def outgoing_framing(headers: Headers, bodiless: bool, ended: bool = False) -> str:
    """How a message we send delimits its body: "none" (``bodiless``, or ``ended``, a
    request that ends with its head, without a Content-Length), "chunked" when chunked
    is its final coding, "length" with a Content-Length, else "eof"."""
    if bodiless:
        return "none"
    index = headers._index  # (as Headers.get_raw reads it, without a call)
    table = index[1] if index is not None and index[0] is headers._fields else headers._table()
    if ended and b"content-length" not in table:
        return "none"
    codings = table.get(b"transfer-encoding")
    if codings is not None and codings[-1].rsplit(b",", 1)[-1].strip(b" \t").lower() == b"chunked":
        return "chunked"
    return "length" if b"content-length" in table else "eof"


@dataclass(slots=True)
class BodyData:
    data: bytes


@dataclass(frozen=True, slots=True)
class BodyEnd:
    trailers: Headers | None = None


# The end of a body without trailers (every Content-Length body): one object for all.
_END = BodyEnd()


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
        self._trailer_size = 0

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
                out.append(_END)
            return out, data[len(take) :]
        return self._feed_chunked(data, out)

    def eof(self) -> list[BodyData | BodyEnd]:
        """The peer closed; only an EOF-delimited body ends cleanly here."""
        if self.done:
            return []
        if self.size == UNTIL_EOF:
            self.done = True
            return [_END]
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
            if self._state == "crlf":  # exactly CRLF after chunk data
                crlf = buf[pos : pos + 2]
                if crlf != b"\r\n"[: len(crlf)]:
                    raise ProtocolError("missing CRLF after chunk data")
                if len(crlf) < 2:
                    break
                pos += 2
                self._state = "size"
                continue
            end = buf.find(b"\n", pos)
            if end == -1:
                if len(buf) - pos > MAX_CHUNK_LINE:
                    raise ProtocolError("chunk header line too long")
                break
            if end == pos or buf[end - 1] != 0x0D:  # 0x0D: CR
                raise ProtocolError("chunk line not ended by CRLF")
            line = buf[pos : end - 1]
            pos = end + 1
            if self._state == "size":
                if len(line) > MAX_CHUNK_LINE:
                    raise ProtocolError("chunk header line too long")
                match = _CHUNK_LINE.fullmatch(line.rstrip(b" \t"))
                if match is None:
                    raise ProtocolError(f"invalid chunk size line: {line[:40]!r}")
                size = int(match.group(1), 16)
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
                self._trailer_size += len(line) + 2
                if self._trailer_size > MAX_TRAILER_SIZE:
                    raise ProtocolError("trailer section too large")
                if b"\r" in line or b"\x00" in line:
                    raise ProtocolError(f"bare CR or NUL in trailer line: {line[:80]!r}")
                self._trailers.append(_field(line, "trailer"))
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
    return b"%s %s %s\r\n%s\r\n" % (method, target, version, request.data.headers.raw_block())


def assemble_origin_request_head(request: Request) -> bytes:
    """The head we send to an origin server: always origin-form (or authority for CONNECT)."""
    data = request.data
    method = data.method
    # (only a 7-byte method is CONNECT in any case: the others are not copied by upper())
    target = data.authority if len(method) == 7 and method.upper() == b"CONNECT" else data.path or b"/"
    version = data.http_version
    if version not in _COMMON_VERSIONS and not version.startswith(b"HTTP/1"):
        version = b"HTTP/1.1"
    headers = data.headers
    index = headers._index  # (raw_block written out for fields sent as the parser read them)
    block = index[2] if index is not None and index[0] is headers._fields else None
    if block is None:
        block = headers.raw_block()
    return b"".join((method, b" ", target, b" ", version, b"\r\n", block, b"\r\n"))  # (less than % costs)


def assemble_response_head(response: Response) -> bytes:
    data = response.data
    version = data.http_version
    if version not in _COMMON_VERSIONS and not version.startswith(b"HTTP/1"):
        version = b"HTTP/1.1"
    headers = data.headers
    index = headers._index  # (raw_block written out, as in assemble_origin_request_head)
    block = index[2] if index is not None and index[0] is headers._fields else None
    if block is None:
        block = headers.raw_block()
    return b"%s %d %s\r\n%s\r\n" % (version, data.status_code, data.reason, block)


def _header_block(headers: Headers) -> bytes:
    return headers.raw_block()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data) if data else b""


def last_chunk(trailers: Headers | None) -> bytes:
    if trailers:
        return b"0\r\n" + _header_block(trailers) + b"\r\n"
    return b"0\r\n\r\n"


def connection_close(http_version: str, headers: Headers) -> bool:
    """Whether a message asks to close the connection after it."""
    return _closes(http_version == "HTTP/1.1", headers.get("connection"))


def message_closes(message: Request | Response) -> bool:
    """connection_close of a message as it stands (its version compared undecoded)."""
    data = message.data
    values = data.headers.get_raw(b"connection")
    if values is None:  # the usual case: nothing to decode
        return data.http_version != b"HTTP/1.1"
    return _closes(data.http_version == b"HTTP/1.1", ", ".join(map(_text, values)))


def exchange_closes(request: Request, response: Response) -> bool:
    """``message_closes(request) or message_closes(response)`` in one call: asked twice
    per exchange, where both are HTTP/1.1 without a Connection field as a rule."""
    asked = request.data
    headers = asked.headers
    index = headers._index  # (as Headers.get_raw reads it, without a call)
    table = index[1] if index is not None and index[0] is headers._fields else headers._table()
    if b"connection" in table or asked.http_version != b"HTTP/1.1":
        if message_closes(request):
            return True
    answer = response.data
    headers = answer.headers
    index = headers._index
    table = index[1] if index is not None and index[0] is headers._fields else headers._table()
    if b"connection" in table or answer.http_version != b"HTTP/1.1":
        return message_closes(response)
    return False


def _closes(http11: bool, connection: str | None) -> bool:
    """Whether a message of HTTP/1.1 (or not) with this Connection value (repeated fields
    joined with ", ", or None) asks to close the connection after it."""
    if connection is None:  # the usual case, without building the token set
        return not http11
    tokens = {t.strip().lower() for t in connection.split(",")}
    if "close" in tokens:
        return True
    if http11:
        return False
    return "keep-alive" not in tokens


def find_head_end(buffer: bytes | bytearray, start: int = 0) -> int:
    """Index just past the first blank line (LF, optional CR, LF), which ends a head,
    or -1 if there is none at or after ``start`` yet.

    To scan each byte once while a head arrives, pass ``head_scan_start(len(old))``
    of the buffer searched last time."""
    match = _HEAD_END.search(buffer, start)
    return match.end() if match else -1


def head_scan_start(searched: int) -> int:
    """Where to resume the search for a head's end in a buffer that had ``searched``
    bytes without one: the end may begin in its last two bytes."""
    return max(0, searched - 2)


def leading_blank_lines(buffer: bytes | bytearray) -> int:
    """Bytes of empty lines before a request line, which a server ignores (RFC 9112 2.2)."""
    match = _LEADING_BLANK_LINES.match(buffer)
    return match.end() if match else 0
