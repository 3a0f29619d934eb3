"""Typed netstrings as mitmproxy writes them in flow files.

A value is ``LENGTH ":" PAYLOAD TAG``: ``LENGTH`` is the payload size in
ASCII decimal and ``TAG`` is one byte naming the type:

=====  ==========================  =====================================
tag    Python type                 payload
=====  ==========================  =====================================
``,``  bytes                       the raw bytes
``;``  str                         UTF-8 text (mitmproxy's extension)
``#``  int                         decimal digits, optional ``-``
``^``  float                       ``repr()`` of the float
``!``  bool                        ``true`` / ``false``
``~``  None                        nothing (always ``0:~``)
``]``  list (tuples become lists)  the items, one after another
``}``  dict                        key, value, key, value, ...
=====  ==========================  =====================================

Dict entries go to the output in *reverse* insertion order, as mitmproxy's
dumper does, and :func:`loads` reverses them back.  So ``loads(dumps(d))``
iterates in the same order as ``d`` and ``dumps(loads(data)) == data`` for
anything mitmproxy (or this module) wrote.

Every problem with the input is reported as :class:`ValueError` (never
IndexError, RecursionError, ...); :class:`TnetstringError` is the subclass
used, and its ``offset`` tells where in the input the problem is.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, BinaryIO, Protocol

__all__ = ["Encoded", "TnetstringError", "dump", "dumps", "load", "loads", "pop", "read_raw"]

#: A length prefix has at most this many digits (as in mitmproxy's reader).
MAX_LENGTH_DIGITS = 12

# Reading a payload happens in slices of this size, so that a damaged length
# prefix claiming terabytes does not make us allocate terabytes up front.
_READ_CHUNK = 1 << 20

_CONTAINER_TAGS = frozenset(b"]}")
_INT_RE = re.compile(rb"-?[0-9]+")
_FLOAT_RE = re.compile(
    rb"[-+]?(?:(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]+)?|inf|infinity|nan)",
    re.IGNORECASE,
)
_HASHABLE_KEY_TYPES = (str, bytes, int, float, bool, type(None))


class TnetstringError(ValueError):
    """Malformed tnetstring data; ``offset`` is the byte position of the problem."""

    def __init__(self, message: str, offset: int | None = None) -> None:
        self.offset = offset
        self.reason = message
        if offset is not None:
            message = f"{message} (at byte offset {offset})"
        super().__init__(message)


# --------------------------------------------------------------------------- writing



class Readable(Protocol):
    """What the readers need of a file: ``read(n)`` (a binary file, or a wrapper of one)."""

    def read(self, n: int, /) -> bytes: ...


def dumps(value: Any) -> bytes:
    """Encode ``value`` (None, bool, int, float, bytes, str, list, tuple, dict)."""
    try:
        return _encode(value)
    except RecursionError:
        raise ValueError("cannot encode value: nested too deeply (or it contains itself)") from None


def dump(value: Any, file: BinaryIO) -> None:
    """Write ``dumps(value)`` to a binary file object."""
    file.write(dumps(value))


def _frame(payload: bytes, tag: bytes) -> bytes:
    return b"%d:%b%b" % (len(payload), payload, tag)


def _encode(value: Any) -> bytes:
    """Exact built-in types through a table (a flow state is ~200 values, written for every
    flow with -w); anything else, subclasses included, through the isinstance chain."""
    encoder = _ENCODERS.get(type(value))
    return encoder(value) if encoder is not None else _encode_other(value)


def _encode_str(value: str) -> bytes:
    try:
        encoded = value.encode("utf-8")
    except UnicodeEncodeError as e:
        raise ValueError(f"cannot encode str as UTF-8: {e}") from None
    return b"%d:%b;" % (len(encoded), encoded)


def _encode_bytes(value: bytes) -> bytes:
    return b"%d:%b," % (len(value), value)


def _encode_int(value: int) -> bytes:
    digits = b"%d" % value
    return b"%d:%b#" % (len(digits), digits)


def _encode_list(value: list[Any] | tuple[Any, ...]) -> bytes:
    if len(value) == 2 and type(value[0]) is bytes and type(value[1]) is bytes:
        # a header field: two frames without the loop's call (3+ per flow)
        name, data = value
        payload = (_known_bytes(name) or _bytes_frame(name)) + (_known_bytes(data) or _bytes_frame(data))
    else:
        payload = b"".join(_frames(value))
    return b"%d:%b]" % (len(payload), payload)


def _encode_dict(value: dict[Any, Any]) -> bytes:
    """Keys and values are written last-inserted first.  The keys' frames come from
    ``_key_frames`` by the tuple of keys (a flow state's dicts have the same keys in every
    flow), so only the values are encoded: half the items of a state."""
    keys = tuple(reversed(value))
    key_frames = _key_frames.get(keys)
    if key_frames is None:
        key_frames = _frames_of_keys(keys)
    value_frames = _frames(reversed(value.values()))
    # key, value, key, value ... by two slice assignments (a zip chain costs ~3x more)
    parts = key_frames + value_frames
    parts[::2] = key_frames
    parts[1::2] = value_frames
    payload = b"".join(parts)
    return b"%d:%b}" % (len(payload), payload)


#: Frames of values seen before, by value: most values of a flow state (methods, schemes,
#: header names and values, hosts, connection ids, ports) repeat from flow to flow, and a
#: lookup costs a fraction of building the frame.  One table per exact type, so that equal
#: values of other types (1, 1.0, True) never share a frame; each is emptied when full.
_FRAME_TABLE_SIZE = 4096
#: Longer str and bytes (bodies) are framed each time, not kept.
_FRAME_TABLE_MAX_LENGTH = 128
_str_frames: dict[str, bytes] = {}
_bytes_frames: dict[bytes, bytes] = {}
_int_frames: dict[int, bytes] = {}
#: The frames of a dict's keys in output order, by the tuple of those keys (only tuples
#: of exact str: keys like 1 and True are equal but framed differently).
_key_frames: dict[tuple[Any, ...], list[bytes]] = {}
_KEY_TABLE_SIZE = 512
# (the tables are emptied in place, never replaced: these stay theirs)
_known_str = _str_frames.get
_known_bytes = _bytes_frames.get
_known_int = _int_frames.get


def _frames_of_keys(keys: tuple[Any, ...]) -> list[bytes]:
    frames = _frames(keys)
    if all(type(key) is str for key in keys):
        if len(_key_frames) >= _KEY_TABLE_SIZE:
            _key_frames.clear()
        _key_frames[keys] = frames
    return frames


def _str_frame(value: str) -> bytes:
    try:
        encoded = value.encode()
    except UnicodeEncodeError as e:
        raise ValueError(f"cannot encode str as UTF-8: {e}") from None
    frame = b"%d:%b;" % (len(encoded), encoded)
    if len(value) <= _FRAME_TABLE_MAX_LENGTH:
        _keep(_str_frames, value, frame)
    return frame


def _bytes_frame(value: bytes) -> bytes:
    frame = b"%d:%b," % (len(value), value)
    if len(value) <= _FRAME_TABLE_MAX_LENGTH:
        _keep(_bytes_frames, value, frame)
    return frame


def _int_frame(value: int) -> bytes:
    digits = b"%d" % value
    frame = b"%d:%b#" % (len(digits), digits)
    _keep(_int_frames, value, frame)
    return frame


def _keep(table: dict[Any, bytes], value: Any, frame: bytes) -> None:
    """Remember ``frame`` for ``value`` in one of the frame tables, emptied when full."""
    if len(table) >= _FRAME_TABLE_SIZE:
        table.clear()
    table[value] = frame


def _frames(values: Iterable[Any]) -> list[bytes]:
    """The frames of ``values``, in order.  The common types are handled in this loop
    rather than by a call each, and str, bytes and int frames come from the tables above
    when seen before (a flow state has ~170 values, and -w writes one state per flow)."""
    frames: list[bytes] = []
    add = frames.append
    for value in values:
        kind = type(value)
        if kind is str:
            add(_known_str(value) or _str_frame(value))
        elif kind is bytes:
            add(_known_bytes(value) or _bytes_frame(value))
        elif value is None:
            add(b"0:~")
        elif kind is float:
            text = repr(value).encode()  # (ASCII; the argument-less call is the fast one)
            add(b"%d:%b^" % (len(text), text))
        elif kind is int:
            add(_known_int(value) or _int_frame(value))
        elif kind is dict:
            add(_encode_dict(value) if value else b"0:}")
        elif kind is list or kind is tuple:
            add(_encode_list(value) if value else b"0:]")
        elif kind is bool:
            add(b"4:true!" if value else b"5:false!")
        elif kind is Encoded:
            add(value.frame)
        else:
            add(_encode(value))
    return frames


_ENCODERS: dict[type, Any] = {
    str: _encode_str,
    bytes: _encode_bytes,
    int: _encode_int,
    bool: lambda value: b"4:true!" if value else b"5:false!",
    type(None): lambda value: b"0:~",
    float: lambda value: _frame(repr(value).encode("ascii"), b"^"),
    list: _encode_list,
    tuple: _encode_list,
    dict: _encode_dict,
}


class Encoded:
    """A value encoded before, which :func:`dumps` writes as it is: a flow writer puts a
    connection's frame from the previous flow in the state instead of its dict."""

    __slots__ = ("frame",)

    def __init__(self, frame: bytes) -> None:
        self.frame = frame


def _encode_other(value: Any) -> bytes:
    # bool is checked before int: True must never become ``1:1#``.
    if value is None:
        return b"0:~"
    if value is True:
        return b"4:true!"
    if value is False:
        return b"5:false!"
    if isinstance(value, int):
        return _frame(b"%d" % value, b"#")
    if isinstance(value, float):
        return _frame(repr(float(value)).encode("ascii"), b"^")
    if isinstance(value, bytes):
        return _frame(value, b",")
    if isinstance(value, str):
        try:
            encoded = value.encode("utf-8")
        except UnicodeEncodeError as e:
            raise ValueError(f"cannot encode str as UTF-8: {e}") from None
        return _frame(encoded, b";")
    if isinstance(value, (list, tuple)):
        return _frame(b"".join([_encode(item) for item in value]), b"]")
    if isinstance(value, dict):
        parts = []
        for key, item in reversed(value.items()):
            parts.append(_encode(key))
            parts.append(_encode(item))
        return _frame(b"".join(parts), b"}")
    if isinstance(value, Encoded):
        return value.frame
    raise ValueError(f"cannot encode object of type {type(value).__name__}: {value!r:.80}")


# --------------------------------------------------------------------------- parsing


def loads(data: bytes | bytearray | memoryview) -> Any:
    """Decode exactly one value; trailing bytes are an error."""
    buf = bytes(data)
    if not buf:
        raise TnetstringError("not a tnetstring: empty input", 0)
    try:
        value, end = _parse_fast(buf, 0, 0)
        if end == len(buf):
            return value
    except Exception:
        pass  # the careful parser below names the problem and where it is
    value, end = _parse(buf, 0, len(buf))
    if end != len(buf):
        raise TnetstringError(f"{len(buf) - end} trailing byte(s) after the value", end)
    return value


def pop(data: bytes | bytearray | memoryview) -> tuple[Any, bytes]:
    """Decode the first value of ``data``; return it and the bytes after it."""
    buf = bytes(data)
    if not buf:
        raise TnetstringError("not a tnetstring: empty input", 0)
    value, end = _parse(buf, 0, len(buf))
    return value, buf[end:]


def _header(buf: bytes, pos: int, limit: int) -> tuple[int, int, int]:
    """Parse ``LENGTH:`` at ``pos``; return (payload start, payload end, tag byte)."""
    colon = buf.find(b":", pos, min(limit, pos + MAX_LENGTH_DIGITS + 1))
    if colon < 0:
        if pos >= limit:
            raise TnetstringError("expected a value, found the end of the data", pos)
        digits = buf[pos : min(limit, pos + MAX_LENGTH_DIGITS + 1)]
        if digits.isdigit() and len(digits) > MAX_LENGTH_DIGITS:
            raise TnetstringError("length prefix is absurdly long", pos)
        if digits.isdigit():
            raise TnetstringError("data ends inside a length prefix", pos)
        raise TnetstringError(f"missing or invalid length prefix: {digits[:16]!r}", pos)
    digits = buf[pos:colon]
    if not digits or not digits.isdigit():
        raise TnetstringError(f"invalid length prefix: {digits[:16]!r}", pos)
    start = colon + 1
    end = start + int(digits)
    if end >= limit:
        raise TnetstringError(
            f"value announces {int(digits)} bytes of payload plus a type tag, "
            f"but only {max(limit - start, 0)} byte(s) remain",
            pos,
        )
    return start, end, buf[end]


def _scalar(buf: bytes, start: int, end: int, tag: int, pos: int) -> Any:
    payload = buf[start:end]
    if tag == 0x2C:  # ,
        return payload
    if tag == 0x3B:  # ;
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError as e:
            raise TnetstringError(
                f"str payload is not valid UTF-8: {e.reason}", start + e.start
            ) from None
    if tag == 0x23:  # #
        if not _INT_RE.fullmatch(payload):
            raise TnetstringError(f"invalid integer literal: {payload[:32]!r}", pos)
        try:
            return int(payload)
        except ValueError:  # more digits than Python converts by default
            raise TnetstringError(f"integer literal too long ({len(payload)} bytes)", pos) from None
    if tag == 0x5E:  # ^
        if not _FLOAT_RE.fullmatch(payload):
            raise TnetstringError(f"invalid float literal: {payload[:32]!r}", pos)
        return float(payload)
    if tag == 0x21:  # !
        if payload == b"true":
            return True
        if payload == b"false":
            return False
        raise TnetstringError(f"invalid boolean literal: {payload[:32]!r}", pos)
    if tag == 0x7E:  # ~
        if payload:
            raise TnetstringError("null value with a non-empty payload", pos)
        return None
    raise TnetstringError(f"unknown type tag {bytes([tag])!r}", end)


def _finish(tag: int, items: list[Any], pos: int) -> Any:
    if tag == 0x5D:  # ]
        return items
    if len(items) % 2:
        raise TnetstringError("dict has a key without a value", pos)
    result: dict[Any, Any] = {}
    # Entries are stored last-inserted first: walk backwards to restore the
    # original order.  With duplicate keys the one stored last wins, as in
    # mitmproxy's reader.
    for i in range(len(items) - 2, -1, -2):
        key = items[i]
        if not isinstance(key, _HASHABLE_KEY_TYPES):
            raise TnetstringError(f"dict key of type {type(key).__name__} is not allowed", pos)
        if key not in result:
            result[key] = items[i + 1]
    return result


class _NotFast(Exception):
    """Input the fast parser leaves to :func:`_parse` (which says what is wrong with it)."""


#: Nesting the fast parser follows by recursion; deeper values go to :func:`_parse`.
_FAST_MAX_DEPTH = 64


def _parse_fast(buf: bytes, pos: int, depth: int) -> tuple[Any, int]:
    """Decode the value at ``pos`` by plain recursion, a few times faster than :func:`_parse`.

    Accepts exactly what :func:`_parse` accepts: anything unusual (a bad literal,
    a child running past its container, deep nesting, an index out of range)
    raises, and :func:`loads` then runs the careful parser for the error message.
    Scalars inside containers are decoded in the container's loop, which saves a
    function call for most values.
    """
    colon = buf.index(b":", pos, pos + MAX_LENGTH_DIGITS + 1)
    digits = buf[pos:colon]
    if not digits.isdigit():
        raise _NotFast
    start = colon + 1
    end = start + int(digits)
    tag = buf[end]
    if tag != 0x5D and tag != 0x7D:  # ] }
        return _fast_scalar(buf[start:end], tag), end + 1
    if depth >= _FAST_MAX_DEPTH:
        raise _NotFast
    items: list[Any] = []
    append = items.append
    cursor = start
    while cursor < end:
        colon = buf.index(b":", cursor, cursor + MAX_LENGTH_DIGITS + 1)
        digits = buf[cursor:colon]
        if not digits.isdigit():
            raise _NotFast
        item_end = colon + 1 + int(digits)
        item_tag = buf[item_end]
        if item_tag == 0x3B:  # ; (the most common: every dict key)
            append(buf[colon + 1 : item_end].decode("utf-8"))
            cursor = item_end + 1
        elif item_tag == 0x2C:  # ,
            append(buf[colon + 1 : item_end])
            cursor = item_end + 1
        elif item_tag == 0x5D or item_tag == 0x7D:
            item, cursor = _parse_fast(buf, cursor, depth + 1)
            append(item)
        else:
            append(_fast_scalar(buf[colon + 1 : item_end], item_tag))
            cursor = item_end + 1
    if cursor != end:
        raise _NotFast
    if tag == 0x5D:
        return items, end + 1
    if len(items) % 2:
        raise _NotFast
    result: dict[Any, Any] = {}
    for i in range(len(items) - 2, -1, -2):  # stored last-inserted first
        key = items[i]
        if not isinstance(key, _HASHABLE_KEY_TYPES):
            raise _NotFast
        if key not in result:
            result[key] = items[i + 1]
    return result, end + 1


def _fast_scalar(payload: bytes, tag: int) -> Any:
    if tag == 0x3B:  # ;
        return payload.decode("utf-8")
    if tag == 0x2C:  # ,
        return payload
    if tag == 0x7E and not payload:  # ~
        return None
    if tag == 0x23:  # #
        if payload.isdigit() or (payload[:1] == b"-" and payload[1:].isdigit()):
            return int(payload)
    elif tag == 0x5E:  # ^
        if _FLOAT_RE.fullmatch(payload):
            return float(payload)
    elif tag == 0x21:  # !
        if payload == b"true":
            return True
        if payload == b"false":
            return False
    raise _NotFast


def _parse(buf: bytes, pos: int, limit: int) -> tuple[Any, int]:
    """Decode the value at ``pos`` (which must end before ``limit``).

    Containers are handled with an explicit stack, so deep nesting in hostile
    input cannot exhaust Python's recursion limit.
    """
    start, end, tag = _header(buf, pos, limit)
    if tag not in _CONTAINER_TAGS:
        return _scalar(buf, start, end, tag, pos), end + 1
    # each frame: [tag, items, cursor, end of payload, position of the value]
    stack: list[list[Any]] = [[tag, [], start, end, pos]]
    while True:
        frame = stack[-1]
        cursor, frame_end = frame[2], frame[3]
        if cursor == frame_end:
            stack.pop()
            value = _finish(frame[0], frame[1], frame[4])
            if not stack:
                return value, frame_end + 1
            stack[-1][1].append(value)
            continue
        start, end, tag = _header(buf, cursor, frame_end)
        frame[2] = end + 1
        if tag in _CONTAINER_TAGS:
            stack.append([tag, [], start, end, cursor])
        else:
            frame[1].append(_scalar(buf, start, end, tag, cursor))


# --------------------------------------------------------------------------- files


def _read_exactly(file: Readable, n: int) -> bytes:
    if n <= _READ_CHUNK:
        first = file.read(n)
        if len(first) == n or not first:
            return first
        chunks = [first]
        remaining = n - len(first)
    else:
        chunks = []
        remaining = n
    while remaining > 0:
        chunk = file.read(min(remaining, _READ_CHUNK))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def read_raw(file: Readable) -> bytes | None:
    """Read the bytes of exactly one value from ``file`` without decoding it.

    Returns None at a clean end of file (nothing at all left to read).  A
    value cut short by the end of the file, or a broken length prefix, raises
    :class:`TnetstringError` whose ``offset`` is relative to where this call
    started reading.  Never reads past the end of the value.
    """
    first = file.read(1)
    if not first:
        return None
    digits = b""
    c = first
    while c.isdigit():
        digits += c
        if len(digits) > MAX_LENGTH_DIGITS:
            raise TnetstringError("length prefix is absurdly long", 0)
        c = file.read(1)
    if c != b":":
        if not c:
            raise TnetstringError("file ends inside a length prefix", 0)
        if not digits:
            raise TnetstringError(f"not a tnetstring: expected a digit, found {c!r}", 0)
        raise TnetstringError(f"invalid character {c!r} in length prefix", len(digits))
    length = int(digits)
    payload = _read_exactly(file, length)
    header_len = len(digits) + 1
    if len(payload) < length:
        raise TnetstringError(
            f"file ends inside a value: {length} bytes of payload announced, "
            f"only {len(payload)} present",
            0,
        )
    tag = file.read(1)
    if not tag:
        raise TnetstringError("file ends just before the type tag of a value", header_len + length)
    return digits + b":" + payload + tag


def load(file: BinaryIO) -> Any:
    """Read and decode exactly one value from a binary file object.

    At a clean end of file this raises ``TnetstringError`` (a ValueError) with
    the message "not a tnetstring: empty file".
    """
    raw = read_raw(file)
    if raw is None:
        raise TnetstringError("not a tnetstring: empty file")
    return loads(raw)
