"""The HTTP flow model: Headers, Request, Response and HTTPFlow, shaped like mitmproxy.http.

Everything is stored as bytes, the way it came off the wire (``message.data``),
and exposed as str properties, so addons written for mitmproxy work unchanged
while the proxy's hot path never re-encodes what it only forwards.
"""

from __future__ import annotations

import codecs
import copy
import re
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from itertools import chain
from typing import TYPE_CHECKING, Any, Generic, Self, TypeVar

from proxycore.connection import Client, Server
from proxycore.flow import Flow
from proxycore.net import encoding

if TYPE_CHECKING:
    from proxycore.net.http.cookies import CookieAttrs
    from proxycore.websocket import WebSocketData

_REASON_OVERRIDES = {
    413: "Payload Too Large",
    414: "URI Too Long",
    416: "Range Not Satisfiable",
    418: "I'm a teapot",
}


# The phrases mitmproxy's status code table has where Python's differs.
_MITMPROXY_REASONS = {
    408: "Request Time-out",
    413: "Payload Too Large",
    416: "Requested Range not satisfiable",
    418: "I'm a teapot",
    422: "Unprocessable Content",
    444: "No Response",
    499: "Client Closed Request",
    504: "Gateway Time-out",
    505: "HTTP Version not supported",
    507: "Insufficient Storage Space",
}
_STATUS_REASONS: dict[int, str] | None = None
_STANDARD_PHRASES: dict[int, str] | None = None

K = TypeVar("K")
V = TypeVar("V")


def _replace_all(
    fields: Iterable[tuple[K, V]], same: Callable[[K], bool], key: K, values: Iterable[V]
) -> tuple[tuple[K, V], ...]:
    """``set_all`` as mitmproxy does it: each field of that key takes the next new value in
    its own place and keeps its own spelling (``Set-Cookie`` stays so after a replay's
    refresh); fields left over go, values left over are appended under ``key``."""
    pending = list(values)
    result: list[tuple[K, V]] = []
    for k, v in fields:
        if not same(k):
            result.append((k, v))
        elif pending:
            result.append((k, pending.pop(0)))
    result.extend((key, value) for value in pending)
    return tuple(result)


def status_reason(code: int) -> str:
    """mitmproxy's reason phrase for a status code, "" for codes it does not know
    (shown for HTTP/2 and HTTP/3 responses, and used for imported HAR responses)."""
    global _STATUS_REASONS
    if _STATUS_REASONS is None:
        _STATUS_REASONS = {**_standard_phrases(), **_MITMPROXY_REASONS}
    return _STATUS_REASONS.get(code, "")


def reason_phrase(status_code: int) -> str:
    """Standard reason phrase for a status code ("Unknown" when there is none)."""
    if status_code in _REASON_OVERRIDES:
        return _REASON_OVERRIDES[status_code]
    return (_STANDARD_PHRASES or _standard_phrases()).get(status_code, "Unknown")


def _standard_phrases() -> dict[int, str]:
    """``http.HTTPStatus``'s phrases, read at the first use: the enum (60 members) is made by
    importing ``http``, which a start has no other reason to do."""
    global _STANDARD_PHRASES
    if _STANDARD_PHRASES is None:
        import http as _stdlib_http

        _STANDARD_PHRASES = {s.value: s.phrase for s in _stdlib_http.HTTPStatus}
    return _STANDARD_PHRASES


def _b(value: str | bytes) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, str):
        return value.encode("utf-8", "surrogateescape")
    raise TypeError(f"expected str or bytes, not {type(value).__name__}")


def _s(value: bytes) -> str:
    return value.decode("utf-8", "surrogateescape")


_LINE_BREAK_OR_NUL = re.compile(rb"[\r\n\x00]")
_TUPLE, _PAIR, _BYTES = {tuple}, {2}, {bytes}  # (what Headers.from_state's fast path wants)
# Header names as looked up (str or bytes) -> their lower-case bytes; bounded (see _lower_key).
_LOWER_KEYS: dict[str | bytes, bytes] = {}
_NO_VALUES: list[bytes] = []
# Headers' index: the fields tuple it was built from, the raw values by lower-case name,
# and the fields as bytes when a parser read them in the form Headers.raw_block gives.
_Index = tuple[tuple[tuple[bytes, bytes], ...], dict[bytes, list[bytes]], bytes | None]


def _lower_key(name: str | bytes) -> bytes:
    """The lower-case bytes of a header name, remembered for the next lookup of it."""
    lower = _b(name).lower()
    if len(_LOWER_KEYS) < 512:
        _LOWER_KEYS[name] = lower
    return lower


def _wire(value: str | bytes, what: str) -> bytes:
    """``value`` as bytes for a message head. CR, LF or NUL in it would split the head
    differently for the next hop (header or request injection), so they are refused."""
    data = _b(value)
    if _LINE_BREAK_OR_NUL.search(data):
        raise ValueError(f"{what} must not contain CR, LF or NUL: {data[:60]!r}")
    return data


class Headers:
    """Ordered, case-insensitive multi-dict of header fields, stored as (bytes, bytes).

    ``h[name]`` joins repeated fields with ", "; ``h[name] = v`` replaces them
    all, keeping the first one's position; ``get_all``/``set_all`` handle
    fields that must stay separate, such as Set-Cookie.
    """

    __slots__ = ("_fields", "_index")

    def __init__(self, fields: Iterable[tuple[bytes | str, bytes | str]] = (), **headers: str | bytes) -> None:
        named = tuple(
            (_wire(name.replace("_", "-"), "header name"), _wire(value, "header value"))
            for name, value in headers.items()
        )
        # As mitmproxy: a header given by keyword replaces fields of that name.
        replaced = {name.lower() for name, _ in named}
        self._fields: tuple[tuple[bytes, bytes], ...] = (
            *(
                (_wire(k, "header name"), _wire(v, "header value"))
                for k, v in fields
                if not replaced or _b(k).lower() not in replaced
            ),
            *named,
        )
        self._index: _Index | None = None

    def _table(self) -> dict[bytes, list[bytes]]:
        """The raw values by lower-case name. The index belongs to one fields tuple
        (compared by identity), so every way of changing the fields, which always assigns
        a new tuple, leaves it behind without bookkeeping. The lookups (get, [], ``in``,
        get_all) each check it inline: the framing code reads a dozen fields per request."""
        fields = self._fields
        table: dict[bytes, list[bytes]] = {}
        for k, v in fields:
            key = k.lower()
            values = table.get(key)
            if values is None:
                table[key] = [v]
            else:
                values.append(v)
        self._index = (fields, table, None)
        return table

    def raw_block(self) -> bytes:
        """The fields as a head carries them: a ``name: value`` line each, ending in CRLF
        (b"" without fields; not the blank line that ends a head). Fields a parser read in
        exactly this form and that were not changed since (the index belongs to their
        tuple: see _table) give the bytes it read."""
        index = self._index
        if index is not None and index[0] is self._fields and index[2] is not None:
            return index[2]
        fields = self._fields
        if not fields:
            return b""
        return b"\r\n".join(map(b": ".join, fields)) + b"\r\n"  # (joined in C, field by field)

    @property
    def fields(self) -> tuple[tuple[bytes, bytes], ...]:
        """The raw (name, value) pairs in order: a tuple, as in mitmproxy, so that a caller
        cannot change the headers behind the methods' back; assign a new sequence instead."""
        return self._fields

    @fields.setter
    def fields(self, value: Iterable[tuple[bytes, bytes]]) -> None:
        self._fields = tuple((_wire(k, "header name"), _wire(v, "header value")) for k, v in value)

    # mapping protocol
    def __getitem__(self, name: str | bytes) -> str:
        index = self._index
        table = index[1] if index is not None and index[0] is self._fields else self._table()
        values = table.get(_LOWER_KEYS.get(name) or _lower_key(name))
        if values is None:
            raise KeyError(name)
        if len(values) == 1:
            return values[0].decode("utf-8", "surrogateescape")
        return ", ".join(_s(v) for v in values)

    def __setitem__(self, name: str | bytes, value: str | bytes) -> None:
        key = _wire(name, "header name")
        value = _wire(value, "header value")
        lower = key.lower()
        new: list[tuple[bytes, bytes]] = []
        placed = False
        for k, v in self.fields:
            if k.lower() == lower:
                if not placed:
                    new.append((k, value))
                    placed = True
            else:
                new.append((k, v))
        if not placed:
            new.append((key, value))
        self._fields = tuple(new)  # every pair already checked: no second pass

    def __delitem__(self, name: str | bytes) -> None:
        lower = _b(name).lower()
        before = len(self._fields)
        self._fields = tuple((k, v) for k, v in self._fields if k.lower() != lower)
        if len(self._fields) == before:
            raise KeyError(name)

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, (str, bytes)):
            return False
        index = self._index
        table = index[1] if index is not None and index[0] is self._fields else self._table()
        return (_LOWER_KEYS.get(name) or _lower_key(name)) in table

    def __iter__(self) -> Iterator[str]:
        seen: set[bytes] = set()
        for k, _ in self.fields:
            lower = k.lower()
            if lower not in seen:
                seen.add(lower)
                yield _s(k)

    def __len__(self) -> int:
        return len({k.lower() for k, _ in self.fields})

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Headers):
            return self.fields == other.fields
        return NotImplemented

    def __repr__(self) -> str:
        return f"Headers[{', '.join(f'({_s(k)!r}, {_s(v)!r})' for k, v in self.fields)}]"

    def __bytes__(self) -> bytes:
        """The header block as on the wire: each field ends with CRLF (as in mitmproxy)."""
        return b"".join(b"%s: %s\r\n" % (k, v) for k, v in self._fields)

    def get(self, name: str | bytes, default: Any = None) -> Any:
        index = self._index
        table = index[1] if index is not None and index[0] is self._fields else self._table()
        values = table.get(_LOWER_KEYS.get(name) or _lower_key(name))
        if values is None:
            return default
        if len(values) == 1:
            return values[0].decode("utf-8", "surrogateescape")
        return ", ".join(_s(v) for v in values)

    def keys(self) -> list[str]:
        return list(self)

    def values(self) -> list[str]:
        return [self[k] for k in self]

    def items(self, multi: bool = False) -> list[tuple[str, str]]:
        if multi:
            return [(_s(k), _s(v)) for k, v in self.fields]
        return [(k, self[k]) for k in self]

    def get_raw(self, lower_name: bytes) -> list[bytes] | None:
        """The values of a field as on the wire, by its lower-case name as bytes (None:
        absent; the list is the index's own, not to be changed). For the framing code,
        which reads a few fields of every message: no name conversion, no decoding."""
        index = self._index
        table = index[1] if index is not None and index[0] is self._fields else self._table()
        return table.get(lower_name)

    def get_all(self, name: str | bytes) -> list[str]:
        index = self._index
        table = index[1] if index is not None and index[0] is self._fields else self._table()
        values = table.get(_LOWER_KEYS.get(name) or _lower_key(name))
        if values is None:  # (Transfer-Encoding, read twice per message, is mostly absent)
            return []
        return [v.decode("utf-8", "surrogateescape") for v in values]

    def set_all(self, name: str | bytes, values: Iterable[str | bytes]) -> None:
        key = _wire(name, "header name")
        lower = key.lower()
        new_values = [_wire(v, "header value") for v in values]
        self._fields = _replace_all(self.fields, lambda k: k.lower() == lower, key, new_values)

    def add(self, name: str | bytes, value: str | bytes) -> None:
        self._fields = (*self._fields, (_wire(name, "header name"), _wire(value, "header value")))

    def insert(self, index: int, name: str | bytes, value: str | bytes) -> None:
        fields = list(self._fields)
        fields.insert(index, (_wire(name, "header name"), _wire(value, "header value")))
        self._fields = tuple(fields)

    def clear(self) -> None:
        self._fields = ()

    def pop(self, name: str | bytes, *default: Any) -> Any:
        try:
            value = self[name]
        except KeyError:
            if default:
                return default[0]
            raise
        del self[name]
        return value

    def setdefault(self, name: str | bytes, default: str | bytes) -> str:
        if name not in self:
            self[name] = default
        return self[name]

    def update(self, other: Mapping[str, str] | Iterable[tuple[str, str]] = (), **kw: str) -> None:
        pairs = other.items() if isinstance(other, Mapping) else other
        for k, v in [*pairs, *kw.items()]:
            self[k] = v

    def copy(self) -> Headers:
        h = Headers()
        h.fields = list(self.fields)
        return h

    def get_state(self) -> list[tuple[bytes, bytes]]:
        return list(self.fields)

    @classmethod
    def from_state(cls, state: Iterable[tuple[bytes | str, bytes | str]]) -> Headers:
        fields = tuple(state)
        # Pairs of bytes (a state from get_state, or from a worker): checked all at once
        # rather than field by field (the primary of --workers makes four per flow).
        if cls is Headers and {*map(type, fields)} == _TUPLE and {*map(len, fields)} == _PAIR:
            flat: list[Any] = [*chain.from_iterable(fields)]
            if {*map(type, flat)} == _BYTES and not _LINE_BREAK_OR_NUL.search(b"".join(flat)):
                return _bare_headers(fields, None)
        return cls((name, value) for name, value in fields)


def _as_headers(value: Headers | Mapping[str, str] | Iterable[tuple[Any, Any]] | None) -> Headers:
    if isinstance(value, Headers):
        return value
    if value is None:
        return Headers()
    if isinstance(value, Mapping):
        return Headers(value.items())
    return Headers(value)


class MultiDictView(Generic[K, V]):
    """A live, editable multi-dict over a list of (str, str) pairs kept elsewhere.

    Used for query strings, cookies and forms: every change is written back
    through ``setter`` at once, so ``flow.request.query["a"] = "1"`` edits the path.
    """

    def __init__(
        self,
        getter: Callable[[], list[tuple[K, V]]],
        setter: Callable[[list[tuple[K, V]]], None],
    ) -> None:
        self._getter = getter
        self._setter = setter

    @property
    def fields(self) -> tuple[tuple[K, V], ...]:
        return tuple(self._getter())

    def __getitem__(self, key: K) -> V:
        for k, v in self._getter():
            if k == key:
                return v
        raise KeyError(key)

    def __setitem__(self, key: K, value: V) -> None:
        self.set_all(key, [value])

    def __delitem__(self, key: K) -> None:
        if key not in self:
            raise KeyError(key)
        self._setter([(k, v) for k, v in self._getter() if k != key])

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._getter())

    def __iter__(self) -> Iterator[K]:
        seen: list[K] = []
        for k, _ in self._getter():
            if k not in seen:
                seen.append(k)
        return iter(seen)

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, MultiDictView):
            return self.fields == other.fields
        if isinstance(other, Mapping):
            return dict(self.items()) == dict(other)
        return NotImplemented

    def __repr__(self) -> str:
        return f"MultiDictView{list(self._getter())!r}"

    def get(self, key: K, default: Any = None) -> Any:
        try:
            return self[key]
        except KeyError:
            return default

    def get_all(self, key: K) -> list[V]:
        return [v for k, v in self._getter() if k == key]

    def set_all(self, key: K, values: Sequence[V]) -> None:
        self._setter(list(_replace_all(self._getter(), lambda k: k == key, key, values)))

    def add(self, key: K, value: V) -> None:
        self._setter([*self._getter(), (key, value)])

    def keys(self) -> list[K]:
        return list(self)

    def values(self) -> list[V]:
        return [self[k] for k in self]

    def items(self, multi: bool = False) -> list[tuple[K, V]]:
        if multi:
            return list(self._getter())
        return [(k, self[k]) for k in self]

    def update(self, other: Mapping[K, V]) -> None:
        for k, v in other.items():
            self[k] = v


class _BytesMultiDictView(MultiDictView[bytes, bytes]):
    """``multipart_form``: bytes keys and values as in mitmproxy; str keys are looked up as UTF-8."""

    def __getitem__(self, key: str | bytes) -> bytes:
        return super().__getitem__(_b(key))

    def __delitem__(self, key: str | bytes) -> None:
        super().__delitem__(_b(key))

    def __contains__(self, key: object) -> bool:
        return super().__contains__(_b(key) if isinstance(key, str) else key)

    def get_all(self, key: str | bytes) -> list[bytes]:
        return super().get_all(_b(key))

    def set_all(self, key: str | bytes, values: Sequence[str | bytes]) -> None:
        super().set_all(_b(key), [_b(v) for v in values])

    def add(self, key: str | bytes, value: str | bytes) -> None:
        super().add(_b(key), _b(value))


class MessageData:
    """Raw fields requests and responses share, as they appear on the wire."""

    __slots__ = ("http_version", "headers", "content", "trailers", "timestamp_start", "timestamp_end")

    http_version: bytes
    headers: Headers
    content: bytes | None
    trailers: Headers | None
    timestamp_start: float
    timestamp_end: float | None

    def _fields(self) -> Iterator[str]:
        for cls in type(self).__mro__:
            yield from getattr(cls, "__slots__", ())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MessageData):
            return NotImplemented
        return type(self) is type(other) and all(
            getattr(self, n, None) == getattr(other, n, None) for n in self._fields()
        )

    # mutable, so not hashable (typeshed declares object.__hash__ as a method)
    __hash__ = None  # type: ignore[assignment]

    def get_state(self) -> dict[str, Any]:
        """The fields that are set, headers and trailers as their (name, value) pairs."""
        state: dict[str, Any] = {}
        for name in self._fields():
            if hasattr(self, name):
                value = getattr(self, name)
                state[name] = value.fields if isinstance(value, Headers) else value
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        for name, value in state.items():
            if name in ("headers", "trailers") and value is not None:
                value = Headers(value)
            setattr(self, name, value)

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Self:
        data = cls()
        data.set_state(state)
        return data


class RequestData(MessageData):
    """A request's raw fields: where it goes (host, port) and its request line."""

    __slots__ = ("host", "port", "method", "scheme", "authority", "path")

    host: str
    port: int
    method: bytes
    scheme: bytes
    authority: bytes
    path: bytes


class ResponseData(MessageData):
    """A response's raw fields: its status line."""

    __slots__ = ("status_code", "reason")

    status_code: int
    reason: bytes


_CHARSET = re.compile(r";\s*charset\s*=\s*([^\s;]+)", re.IGNORECASE)


def parse_content_type(value: str) -> tuple[str, str, dict[str, str]] | None:
    """``text/html; charset=UTF-8`` -> ``("text", "html", {"charset": "UTF-8"})``; None if no ``/``."""
    kind, _, params = value.partition(";")
    main, slash, sub = kind.partition("/")
    if not slash:
        return None
    parameters: dict[str, str] = {}
    if params:
        for clause in params.split(";"):
            name, eq, val = clause.partition("=")
            if eq:
                parameters[name.strip()] = val.strip()
    return main.lower(), sub.lower(), parameters


_HTML_META_CHARSET = re.compile(rb"""<meta[^>]+charset=['"]?([^'">]+)""", re.IGNORECASE)
_XML_DECLARED_ENCODING = re.compile(rb"""<\?xml[^\?>]+encoding=['"]([^'"\?>]+)""", re.IGNORECASE)
_CSS_CHARSET_RULE = re.compile(rb"""@charset "([^"]+)";""", re.IGNORECASE)
_BOM_CHARSETS = (
    (b"\x00\x00\xfe\xff", "utf-32be"),
    (b"\xff\xfe\x00\x00", "utf-32le"),
    (b"\xfe\xff", "utf-16be"),
    (b"\xff\xfe", "utf-16le"),
    (codecs.BOM_UTF8, "utf-8-sig"),
)


def infer_content_encoding(content_type: str, content: bytes = b"") -> str:
    """The character set of a body, decided as mitmproxy decides it.

    A byte order mark wins, then the Content-Type charset; without one, JSON, HTML,
    XML, JavaScript and CSS default to UTF-8 (HTML/XML/CSS first look for an in-document
    declaration) and everything else to latin-1.  GB2312/GBK become their superset GB18030.
    """
    charset: str | None = None
    for bom, name in _BOM_CHARSETS:
        if content.startswith(bom):
            charset = name
            break
    else:
        parsed = parse_content_type(content_type)
        if parsed:
            charset = parsed[2].get("charset")
    if not charset and "json" in content_type:
        charset = "utf8"
    if not charset and "html" in content_type:
        found = _HTML_META_CHARSET.search(content)
        charset = found.group(1).decode("ascii", "ignore") if found else "utf8"
    if not charset and "xml" in content_type:
        found = _XML_DECLARED_ENCODING.search(content)
        charset = found.group(1).decode("ascii", "ignore") if found else "utf8"
    if not charset and ("javascript" in content_type or "ecmascript" in content_type):
        charset = "utf8"
    if not charset and "text/css" in content_type:
        found = _CSS_CHARSET_RULE.match(content)
        charset = found.group(1).decode("ascii", "ignore") if found else "utf8"
    if not charset:
        charset = "latin-1"
    if charset.lower() in ("gb2312", "gbk"):
        charset = "gb18030"
    return charset


class Message:
    """What requests and responses share: version, headers, body, trailers, timestamps."""

    data: MessageData
    stream: bool | Callable[[bytes], bytes | Iterable[bytes]] = False

    def copy(self) -> Self:
        """An independent copy (headers and body included), as mitmproxy's ``copy()``."""
        return copy.deepcopy(self)

    @property
    def http_version(self) -> str:
        return _s(self.data.http_version)

    @http_version.setter
    def http_version(self, value: str | bytes) -> None:
        self.data.http_version = _wire(value, "HTTP version")

    @property
    def is_http10(self) -> bool:
        return self.data.http_version == b"HTTP/1.0"

    @property
    def is_http11(self) -> bool:
        return self.data.http_version == b"HTTP/1.1"

    @property
    def is_http2(self) -> bool:
        return self.data.http_version == b"HTTP/2.0"

    @property
    def is_http3(self) -> bool:
        return self.data.http_version == b"HTTP/3"

    @property
    def headers(self) -> Headers:
        return self.data.headers

    @headers.setter
    def headers(self, value: Headers) -> None:
        self.data.headers = _as_headers(value)

    @property
    def trailers(self) -> Headers | None:
        return self.data.trailers

    @trailers.setter
    def trailers(self, value: Headers | None) -> None:
        self.data.trailers = None if value is None else _as_headers(value)

    @property
    def timestamp_start(self) -> float:
        return self.data.timestamp_start

    @timestamp_start.setter
    def timestamp_start(self, value: float) -> None:
        self.data.timestamp_start = value

    @property
    def timestamp_end(self) -> float | None:
        return self.data.timestamp_end

    @timestamp_end.setter
    def timestamp_end(self, value: float | None) -> None:
        self.data.timestamp_end = value

    # body ------------------------------------------------------------------

    @property
    def raw_content(self) -> bytes | None:
        """The body as sent (still Content-Encoded); None if it was not kept (streamed)."""
        return self.data.content

    @raw_content.setter
    def raw_content(self, value: bytes | None) -> None:
        self.data.content = value

    def get_content(self, strict: bool = True) -> bytes | None:
        content = self.data.content
        if content is None:
            return None
        coding = self.headers.get("content-encoding")
        if not coding:
            return content
        try:
            return encoding.decode(content, coding)
        except ValueError:
            if strict:
                raise
            return content

    def set_content(self, value: bytes | None) -> None:
        if value is None:
            self.data.content = None
            return
        if not isinstance(value, bytes):
            raise TypeError(f"content must be bytes, not {type(value).__name__}")
        coding = self.headers.get("content-encoding")
        if coding:
            try:
                value = encoding.encode(value, coding)
            except ValueError:
                del self.headers["content-encoding"]
        self.data.content = value
        if "transfer-encoding" not in self.headers:
            self.headers["content-length"] = str(len(value))

    content = property(get_content, set_content)

    def _charset(self, content: bytes) -> str:
        return infer_content_encoding(self.headers.get("content-type", ""), content)

    def get_text(self, strict: bool = True) -> str | None:
        content = self.get_content(strict)
        if content is None:
            return None
        charset = self._charset(content)
        try:
            return content.decode(charset)
        except (UnicodeDecodeError, LookupError) as e:
            if strict:
                raise ValueError(f"cannot decode the body as {charset}: {e}") from e
            return content.decode("utf-8", "surrogateescape")

    def set_text(self, text: str | None) -> None:
        if text is None:
            self.set_content(None)
            return
        charset = self._charset(b"")
        try:
            data = text.encode(charset)
        except (UnicodeEncodeError, LookupError):
            # Say so in Content-Type (other parameters keep their place), as mitmproxy does;
            # a missing or unreadable Content-Type becomes text/plain.
            data = text.encode("utf-8", "surrogateescape")
            kind, sub, params = parse_content_type(self.headers.get("content-type", "")) or ("text", "plain", {})
            params["charset"] = "utf-8"
            self.headers["content-type"] = "; ".join([f"{kind}/{sub}", *(f"{k}={v}" for k, v in params.items())])
        self.set_content(data)

    text = property(get_text, set_text)

    def json(self, **kwargs: Any) -> Any:
        content = self.get_content(strict=False)
        if content is None:
            raise TypeError("Message content is not available (streamed or missing).")
        import json

        return json.loads(content, **kwargs)

    def decode(self, strict: bool = True) -> None:
        """Remove the Content-Encoding, keeping the decoded body.

        Without a body (streamed, or the answer to HEAD) nothing changes, as the
        Content-Length could not be made right."""
        if not self.data.content:
            return
        decoded = self.get_content(strict)
        self.headers.pop("content-encoding", None)
        self.set_content(decoded)

    def encode(self, coding: str) -> None:
        self.decode(strict=False)
        if coding not in ("gzip", "deflate", "br", "zstd", "identity"):
            raise ValueError(f"invalid content encoding {coding!r}")
        self.headers["content-encoding"] = coding
        self.set_content(self.data.content)

    def _common_state(self) -> dict[str, Any]:
        d = self.data
        return {
            "http_version": d.http_version,
            "headers": d.headers.get_state(),
            "content": d.content,
            "trailers": d.trailers.get_state() if d.trailers is not None else None,
            "timestamp_start": d.timestamp_start,
            "timestamp_end": d.timestamp_end,
        }

    def _set_common_state(self, state: Mapping[str, Any]) -> None:
        d = self.data
        d.http_version = _b(state["http_version"])
        d.headers = Headers.from_state(state["headers"])
        d.content = state["content"]
        d.trailers = Headers.from_state(state["trailers"]) if state.get("trailers") is not None else None
        d.timestamp_start = state["timestamp_start"]
        d.timestamp_end = state["timestamp_end"]


def _default_port(scheme: str) -> int:
    return 443 if scheme == "https" else 80


def _host_of(hostport: str) -> str:
    """The host of a Host header or authority: brackets and port taken off."""
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _hostport(scheme: str, host: str | None, port: int) -> str:
    host = host or ""  # mitmproxy allows request.host = None
    host = f"[{host}]" if ":" in host else host
    return host if port == _default_port(scheme) else f"{host}:{port}"


class Request(Message):
    """An HTTP request; ``host``/``port`` say where it goes, the Host header what it asks for."""

    data: RequestData

    def __init__(
        self,
        host: str,
        port: int,
        method: bytes | str,
        scheme: bytes | str,
        authority: bytes | str,
        path: bytes | str,
        http_version: bytes | str,
        headers: Headers | Iterable[tuple[bytes, bytes]] | Mapping[str, str],
        content: bytes | None,
        trailers: Headers | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        self.data = d = RequestData()
        d.host = host.decode("idna") if isinstance(host, bytes) else host
        d.port = port
        d.method = _wire(method, "method")
        d.scheme = _wire(scheme, "scheme")
        d.authority = _wire(authority, "authority")
        d.path = _wire(path, "path")
        d.http_version = _wire(http_version, "HTTP version")
        d.headers = _as_headers(headers)
        d.content = content
        d.trailers = None if trailers is None else _as_headers(trailers)
        d.timestamp_start = timestamp_start
        d.timestamp_end = timestamp_end
        self.stream = False

    def __repr__(self) -> str:
        where = f"{self.host}:{self.port}" if self.host else ""
        return f"Request({self.method} {where}{self.path})"

    @classmethod
    def make(
        cls,
        method: str,
        url: str,
        content: bytes | str = b"",
        headers: Headers | Mapping[str, str] | Iterable[tuple[Any, Any]] = (),
    ) -> Request:
        """An HTTP/1.1 request for ``url`` (for replays and addons), made as mitmproxy makes it."""
        parts = urllib.parse.urlsplit(url)
        scheme = parts.scheme or "http"
        if not parts.hostname:
            raise ValueError(f"invalid URL: {url!r}")
        port = parts.port or _default_port(scheme)
        path = parts.path or "/"
        if parts.query:
            path += "?" + parts.query
        request = cls(
            parts.hostname,
            port,
            method.upper(),
            scheme,
            "",
            path,
            "HTTP/1.1",
            _as_headers(headers),
            b"",
            None,
            time.time(),
            time.time(),
        )
        # As mitmproxy's: no Host header is added, and the body always gets its
        # Content-Length (0 included).
        if isinstance(content, str):
            content = content.encode()
        request.content = content
        return request

    @property
    def first_line_format(self) -> str:
        """The request target's form: "authority" (CONNECT), "absolute" (a proxy request
        naming its host) or "relative" (origin form)."""
        if self.method == "CONNECT":
            return "authority"
        return "absolute" if self.authority else "relative"

    # simple fields -------------------------------------------------------------

    @property
    def method(self) -> str:
        # Upper case when read, as is on the wire ("post" set by a script reads as POST).
        return _s(self.data.method).upper()

    @method.setter
    def method(self, value: str | bytes) -> None:
        self.data.method = _wire(value, "method")

    @property
    def scheme(self) -> str:
        return _s(self.data.scheme)

    @scheme.setter
    def scheme(self, value: str | bytes) -> None:
        self.data.scheme = _wire(value, "scheme")

    @property
    def authority(self) -> str:
        try:  # an internationalised name reads as Unicode, as in mitmproxy
            return self.data.authority.decode("idna")
        except UnicodeError:
            return _s(self.data.authority)

    @authority.setter
    def authority(self, value: str | bytes) -> None:
        if isinstance(value, str):
            try:
                value = value.encode("idna")
            except UnicodeError:
                value = _b(value)
        self.data.authority = _wire(value, "authority")

    @property
    def path(self) -> str:
        return _s(self.data.path)

    @path.setter
    def path(self, value: str | bytes) -> None:
        self.data.path = _wire(value, "path")

    @property
    def host(self) -> str:
        return self.data.host

    @host.setter
    def host(self, value: str | bytes) -> None:
        if isinstance(value, bytes):
            value = value.decode("idna")  # b"xn--..." is the ASCII form of a Unicode name
        if value is not None:  # None: no host (mitmproxy allows it, e.g. for OPTIONS *)
            _wire(value, "host")
        self.data.host = value
        self._update_host_references()

    @property
    def port(self) -> int:
        return self.data.port

    @port.setter
    def port(self, value: int) -> None:
        if not isinstance(value, int) or isinstance(value, bool):
            raise ValueError(f"invalid port: {value!r}")
        self.data.port = value
        self._update_host_references()

    def _update_host_references(self) -> None:
        """Keep Host header and authority pointing where host/port now point."""
        hostport = _hostport(self.scheme or "http", self.data.host, self.data.port)
        if self.data.authority:
            self.authority = hostport  # IDNA-encoded, as the wire wants it
        if "host" in self.headers:
            self.headers["Host"] = hostport

    @property
    def host_header(self) -> str | None:
        data = self.data  # (asked per request by the onboarding addon's gate)
        if data.http_version in (b"HTTP/2.0", b"HTTP/3"):  # (is_http2 or is_http3)
            return self.authority or data.headers.get("host")
        return data.headers.get("host") or self.authority or None

    @host_header.setter
    def host_header(self, value: str | None) -> None:
        if value is None:
            self.headers.pop("host", None)
            if self.is_http2 or self.is_http3:
                self.authority = ""
        elif self.is_http2 or self.is_http3:
            self.authority = value
            if "host" in self.headers:
                self.headers["host"] = value
        else:
            self.headers["Host"] = value

    @property
    def _url_path(self) -> str:
        # ``OPTIONS * HTTP/1.1`` asks about the server itself: its URL has no path
        return "" if self.data.path == b"*" else self.path

    @property
    def url(self) -> str:
        if self.data.method.upper() == b"CONNECT" or not self.data.scheme:
            return self.authority or f"{self.host}:{self.port}"
        return f"{self.scheme}://{_hostport(self.scheme, self.host, self.port)}{self._url_path}"

    @url.setter
    def url(self, value: str | bytes) -> None:
        if isinstance(value, bytes):
            value = value.decode("utf-8", "surrogateescape")
        _wire(value, "URL")  # urlsplit would silently drop CR, LF and tabs
        parts = urllib.parse.urlsplit(value)
        if not parts.scheme or not parts.hostname:
            raise ValueError(f"invalid URL: {value!r}")
        self.scheme = parts.scheme
        self.data.host = parts.hostname
        self.data.port = parts.port or _default_port(parts.scheme)
        self.path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._update_host_references()

    @property
    def pretty_host(self) -> str:
        """The host the client asked for (Host header or authority), else ``host``."""
        hostport = self.host_header
        if not hostport:
            return self.host
        return _host_of(hostport)

    @property
    def pretty_url(self) -> str:
        # (each value read once: the flow store asks this of every flow it writes)
        data = self.data
        if data.method.upper() == b"CONNECT":
            return self.url
        hostport = self.host_header
        if not hostport or not data.scheme:
            return self.url
        scheme = _s(data.scheme)
        # A Host header without a port means the scheme's default port, as in mitmproxy.
        pretty_port = _default_port(scheme)
        if ":" in hostport.rsplit("]", 1)[-1]:
            try:
                pretty_port = int(hostport.rsplit(":", 1)[1])
            except ValueError:
                pass
        return f"{scheme}://{_hostport(scheme, _host_of(hostport), pretty_port)}{self._url_path}"

    # views ---------------------------------------------------------------------

    @property
    def path_components(self) -> tuple[str, ...]:
        path = urllib.parse.urlsplit(self.path).path
        return tuple(urllib.parse.unquote(p) for p in path.split("/") if p)

    @path_components.setter
    def path_components(self, components: Iterable[str]) -> None:
        query = urllib.parse.urlsplit(self.path).query
        path = "/" + "/".join(urllib.parse.quote(c, safe="") for c in components)
        self.path = path + (f"?{query}" if query else "")

    def _get_query(self) -> list[tuple[str, str]]:
        query = urllib.parse.urlsplit(self.path).query
        return urllib.parse.parse_qsl(query, keep_blank_values=True)

    def _set_query(self, pairs: list[tuple[str, str]]) -> None:
        base = self.path.split("?", 1)[0]
        query = urllib.parse.urlencode(pairs)
        self.path = f"{base}?{query}" if query else base

    @property
    def query(self) -> MultiDictView[str, str]:
        return MultiDictView(self._get_query, self._set_query)

    @query.setter
    def query(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_query(list(value.items()) if isinstance(value, Mapping) else list(value))

    def _get_cookies(self) -> list[tuple[str, str]]:
        from proxycore.net.http.cookies import parse_cookie_header

        return [pair for header in self.headers.get_all("cookie") for pair in parse_cookie_header(header)]

    def _set_cookies(self, pairs: list[tuple[str, str]]) -> None:
        if pairs:
            self.headers["cookie"] = "; ".join(f"{k}={v}" for k, v in pairs)
        else:
            self.headers.pop("cookie", None)

    @property
    def cookies(self) -> MultiDictView[str, str]:
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_cookies(list(value.items()) if isinstance(value, Mapping) else list(value))

    def _get_urlencoded_form(self) -> list[tuple[str, str]]:
        if "application/x-www-form-urlencoded" not in self.headers.get("content-type", "").lower():
            return []
        content = self.get_content(strict=False) or b""
        return urllib.parse.parse_qsl(content.decode("latin-1"), keep_blank_values=True)

    def _set_urlencoded_form(self, pairs: list[tuple[str, str]]) -> None:
        self.headers["content-type"] = "application/x-www-form-urlencoded"
        self.set_content(urllib.parse.urlencode(pairs).encode())

    @property
    def urlencoded_form(self) -> MultiDictView[str, str]:
        return MultiDictView(self._get_urlencoded_form, self._set_urlencoded_form)

    @urlencoded_form.setter
    def urlencoded_form(self, value: Iterable[tuple[str, str]] | Mapping[str, str]) -> None:
        self._set_urlencoded_form(list(value.items()) if isinstance(value, Mapping) else list(value))

    def _get_multipart_form(self) -> list[tuple[bytes, bytes]]:
        from proxycore.net.http import multipart  # looked up at call time: tests patch it

        content_type = self.headers.get("content-type", "")
        if "multipart/form-data" not in content_type.lower():
            return []
        try:
            return multipart.decode_multipart(content_type, self.get_content(strict=False) or b"")
        except ValueError:
            return []

    def _set_multipart_form(self, pairs: Sequence[tuple[bytes | str, bytes | str]]) -> None:
        from proxycore.net.http import multipart

        content_type = "multipart/form-data; boundary=proxycore-boundary"
        self.headers["content-type"] = content_type
        self.set_content(multipart.encode_multipart(content_type, [(_b(k), _b(v)) for k, v in pairs]))

    @property
    def multipart_form(self) -> MultiDictView[bytes, bytes]:
        return _BytesMultiDictView(self._get_multipart_form, self._set_multipart_form)

    @multipart_form.setter
    def multipart_form(self, value: Iterable[tuple[Any, Any]] | Mapping[Any, Any]) -> None:
        self._set_multipart_form(list(value.items()) if isinstance(value, Mapping) else list(value))

    def anticache(self) -> None:
        """Strip headers that let a server answer 304, so the full body is seen."""
        for header in ("if-modified-since", "if-none-match"):
            self.headers.pop(header, None)

    def anticomp(self) -> None:
        """Ask for an uncompressed body."""
        self.headers["accept-encoding"] = "identity"

    def constrain_encoding(self) -> None:
        """Limit Accept-Encoding to codings proxycore can decode."""
        accept = self.headers.get("accept-encoding")
        if accept:
            supported = [c for c in re.split(r"\s*,\s*", accept) if c.split(";")[0].strip() in ("gzip", "deflate", "br", "zstd", "identity")]
            self.headers["accept-encoding"] = ", ".join(supported) or "identity"

    def get_state(self) -> dict[str, Any]:
        state = self._common_state()
        d = self.data
        # (item by item: update() with keywords builds a dict of them first, ~40 % more;
        # -w writes the state of every flow)
        state["host"] = d.host
        state["port"] = d.port
        state["method"] = d.method
        state["scheme"] = d.scheme
        state["authority"] = d.authority
        state["path"] = d.path
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._set_common_state(state)
        d = self.data
        host = state["host"]
        d.host = host.decode("idna") if isinstance(host, bytes) else host
        d.port = state["port"]
        d.method = _b(state["method"])
        d.scheme = _b(state["scheme"])
        d.authority = _b(state["authority"])
        d.path = _b(state["path"])

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Request:
        if cls.__init__ is not Request.__init__:  # a subclass with its own: let it run
            request = cls("", 0, b"", b"", b"", b"", b"HTTP/1.1", Headers(), None, None, 0.0, None)
        else:  # set_state sets every field: no placeholder values checked and dropped
            request = _new(cls)
            request.data = RequestData()
            request.stream = False
        request.set_state(state)
        return request


class Response(Message):
    """An HTTP response."""

    data: ResponseData

    def __init__(
        self,
        http_version: bytes | str,
        status_code: int,
        reason: bytes | str,
        headers: Headers | Iterable[tuple[bytes, bytes]] | Mapping[str, str],
        content: bytes | None,
        trailers: Headers | None,
        timestamp_start: float,
        timestamp_end: float | None,
    ) -> None:
        self.data = d = ResponseData()
        d.http_version = _b(http_version)
        d.status_code = status_code
        d.reason = _wire(reason, "reason")
        d.headers = _as_headers(headers)
        d.content = content
        d.trailers = None if trailers is None else _as_headers(trailers)
        d.timestamp_start = timestamp_start
        d.timestamp_end = timestamp_end
        self.stream = False

    def __repr__(self) -> str:
        """mitmproxy's form: ``Response(200, text/html, 1.2k)`` or ``Response(204, no content)``."""
        from proxycore.utils.human import pretty_size

        content = self.data.content
        if not content:
            return f"Response({self.status_code}, no content)"
        return f"Response({self.status_code}, {self.headers.get('content-type', 'unknown content type')}, {pretty_size(len(content))})"

    @classmethod
    def make(
        cls,
        status_code: int = 200,
        content: bytes | str = b"",
        headers: Headers | Mapping[str, str] | Iterable[tuple[Any, Any]] = (),
    ) -> Response:
        """A complete HTTP/1.1 response with the standard reason and a Content-Length."""
        now = time.time()
        response = cls(
            b"HTTP/1.1", status_code, reason_phrase(status_code), _as_headers(headers), b"", None, now, now
        )
        if isinstance(content, str):
            content = content.encode()
        elif not isinstance(content, bytes):
            raise TypeError(f"Expected content to be str or bytes, but is {type(content).__name__}.")
        response.content = content
        return response

    @property
    def status_code(self) -> int:
        return self.data.status_code

    @status_code.setter
    def status_code(self, value: int) -> None:
        self.data.status_code = value

    @property
    def reason(self) -> str:
        return self.data.reason.decode("iso-8859-1")

    @reason.setter
    def reason(self, value: str | bytes) -> None:
        self.data.reason = _wire(
            value if isinstance(value, bytes) else value.encode("iso-8859-1", "replace"), "reason"
        )

    def _get_cookies(self) -> list[tuple[str, tuple[str | None, CookieAttrs]]]:
        """(name, (value, attributes)) per cookie set, parsed as mitmproxy does."""
        from proxycore.net.http.cookies import parse_set_cookie_headers

        headers = self.headers.get_all("set-cookie")
        return [(name, (value, attrs)) for name, value, attrs in parse_set_cookie_headers(headers)]

    def _set_cookies(self, pairs: list[tuple[str, tuple[str | None, Any]]]) -> None:
        values = []
        for name, (value, attributes) in pairs:
            fields = attributes.fields if hasattr(attributes, "fields") else list(attributes.items())
            attr_text = "".join(f"; {k}" if v is None else f"; {k}={v}" for k, v in fields)
            values.append(f"{name}={value or ''}{attr_text}")
        self.headers.set_all("set-cookie", values)

    @property
    def cookies(self) -> MultiDictView[str, tuple[str | None, CookieAttrs]]:
        return MultiDictView(self._get_cookies, self._set_cookies)

    @cookies.setter
    def cookies(self, value: Iterable[tuple[str, Any]] | Mapping[str, Any]) -> None:
        self._set_cookies(list(value.items()) if isinstance(value, Mapping) else list(value))

    def refresh(self, now: float | None = None) -> None:
        """Shift date-like headers so a replayed response looks fresh."""
        now = time.time() if now is None else now
        delta = now - (self.timestamp_start or now)
        from email.utils import formatdate, parsedate_to_datetime

        for header in ("date", "expires", "last-modified"):
            if header in self.headers:
                try:
                    stamp = parsedate_to_datetime(self.headers[header]).timestamp() + delta
                except (TypeError, ValueError):
                    continue
                self.headers[header] = formatdate(stamp, usegmt=True)
        from proxycore.net.http import cookies as cookie_module

        cookies = self.headers.get_all("set-cookie")
        if cookies:
            refreshed = []
            for c in cookies:
                try:
                    refreshed.append(cookie_module.refresh_set_cookie_header(c, delta))
                except ValueError:
                    refreshed.append(c)
            self.headers.set_all("set-cookie", refreshed)

    def get_state(self) -> dict[str, Any]:
        state = self._common_state()
        d = self.data
        state["status_code"] = d.status_code
        state["reason"] = d.reason
        return state

    def set_state(self, state: Mapping[str, Any]) -> None:
        self._set_common_state(state)
        self.data.status_code = state["status_code"]
        self.data.reason = _b(state["reason"])

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> Response:
        if cls.__init__ is not Response.__init__:  # as Request.from_state
            response = cls(b"HTTP/1.1", 0, b"", Headers(), None, None, 0.0, None)
        else:
            response = _new(cls)
            response.data = ResponseData()
            response.stream = False
        response.set_state(state)
        return response


_COOKIE_EXPIRES = re.compile(r";\s*expires\s*=\s*([^;]*)", re.IGNORECASE)


def _shift_cookie_expiry(header: str, delta: float) -> str:
    """A Set-Cookie value with its Expires moved by ``delta`` seconds (dropped if unreadable)."""
    from email.utils import formatdate, parsedate_to_datetime

    def shift(match: re.Match[str]) -> str:
        try:
            stamp = parsedate_to_datetime(match.group(1).strip()).timestamp() + delta
        except (TypeError, ValueError, IndexError):
            return ""
        return f"; Expires={formatdate(stamp, usegmt=True)}"

    return _COOKIE_EXPIRES.sub(shift, header)


class HTTPFlow(Flow):
    """One HTTP request/response exchange (possibly upgraded to WebSocket)."""

    type = "http"
    request: Request
    response: Response | None

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        # (Flow's own, not super(): CPython 3.11 makes a super object per call, once per request)
        Flow.__init__(self, client_conn, server_conn, live)
        # set right after construction; typed as always there, as in mitmproxy
        self.request = None  # type: ignore[assignment]
        self.response = None
        self.websocket: WebSocketData | None = None
        # Server playback: the recorded conversation that answers this flow's WebSocket
        # (set with a recorded 101 response by an addon; never saved).
        self.websocket_playback: WebSocketData | None = None

    def __repr__(self) -> str:
        return f"<HTTPFlow {self.request!r} -> {self.response!r}>"

    @property
    def timestamp_start(self) -> float:
        return self.request.timestamp_start

    def state_with(self, client_conn: Any, server_conn: Any) -> dict[str, Any]:
        state = Flow.state_with(self, client_conn, server_conn)
        state["request"] = self.request.get_state() if self.request is not None else None
        state["response"] = self.response.get_state() if self.response is not None else None
        state["websocket"] = self.websocket.get_state() if self.websocket is not None else None
        return state

    def set_state_with(self, state: dict[str, Any], client_conn: Client, server_conn: Server) -> None:
        request = state["request"]
        response = state.get("response")
        websocket = state.get("websocket")
        self.request = Request.from_state(request)
        self.response = Response.from_state(response) if response is not None else None
        if websocket is not None:
            from proxycore.websocket import WebSocketData

            self.websocket = WebSocketData.from_state(websocket)
        else:
            self.websocket = None
        Flow.set_state_with(self, state, client_conn, server_conn)


# What the HTTP/1 head parser builds (proxycore.net.http1). Module functions, not class
# methods: CPython 3.11 calls a classmethod through a slower, unspecialised path, and
# these run for every request and response.


# object.__new__ without its two lookups per call: an instance of a class whose __init__
# the parser's constructors below must not run.
_new = object.__new__


def field_index(fields: Iterable[tuple[bytes, bytes]], block: bytes | None = None) -> _Index:
    """The index of (bytes, bytes) pairs a parser has already checked more strictly than
    ``_wire`` would, for Headers it makes (parsed_request, parsed_response): built at once,
    as the framing code reads it next for every message. ``block``, if given, is the
    fields as ``raw_block`` gives them: what the parser read was already in that form, so
    sending them unchanged costs no serialising."""
    checked = tuple(fields)
    table: dict[bytes, list[bytes]] = {}
    for k, v in checked:  # (as Headers._table, without its call; ``in`` costs less than get())
        key = k.lower()
        if key in table:
            table[key].append(v)
        else:
            table[key] = [v]
    return (checked, table, block)


# A request line as the HTTP/1 parser keeps it: host, port, method, scheme, authority,
# path and version.
RequestLine = tuple[str, int, bytes, bytes, bytes, bytes, bytes]


def _bare_headers(fields: Any, index: _Index | None) -> Headers:
    """Headers holding ``fields`` (pairs of bytes its caller checked) and ``index`` as they
    are: no __init__ checking each field again."""
    headers = _new(Headers)
    headers._fields = fields
    headers._index = index
    return headers


def parsed_request(line: RequestLine, index: _Index) -> Request:
    """A request from a head the HTTP/1 parser has checked more strictly than ``_wire``
    would (no CR, LF or NUL anywhere in it): no second check of each field. Its Headers
    have the fields and index of ``index`` (see field_index), which requests may share:
    neither is ever changed in place (a change assigns a new tuple, which leaves the
    index behind), so the parser can hand the same to every head with the same fields."""
    request = _new(Request)  # (no __init__ to run)
    request.data = d = RequestData()  # (no __init__ of its own: a class call costs less than _new)
    d.host, d.port, d.method, d.scheme, d.authority, d.path, d.http_version = line
    d.headers = _bare_headers(index[0], index)
    d.content = None
    d.trailers = None
    d.timestamp_start = 0.0
    d.timestamp_end = None
    request.stream = False
    return request


def parsed_response(http_version: bytes, status_code: int, reason: bytes, index: _Index) -> Response:
    """A response from a head the HTTP/1 parser has checked (see parsed_request)."""
    response = _new(Response)
    response.data = d = ResponseData()
    d.http_version = http_version
    d.status_code = status_code
    d.reason = reason
    d.headers = _bare_headers(index[0], index)
    d.content = None
    d.trailers = None
    d.timestamp_start = 0.0
    d.timestamp_end = None
    response.stream = False
    return response
