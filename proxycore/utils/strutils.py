"""str/bytes conversions and escaping that scripts use (``mitmproxy.utils.strutils``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import overload

from proxycore.types import escaped_to_bytes
from proxycore.utils.textutils import (
    cut_after_lines,
    escape_bytes,
    escape_control,
    is_mostly_binary,
)

# One escaped form per byte value, computed once.
_ESCAPED = [escape_bytes(bytes([b])) for b in range(256)]


@overload
def always_bytes(str_or_bytes: None, *encode_args: str) -> None: ...
@overload
def always_bytes(str_or_bytes: str | bytes, *encode_args: str) -> bytes: ...
def always_bytes(str_or_bytes: str | bytes | None, *encode_args: str) -> bytes | None:
    """Bytes as they are, str encoded (with ``encode_args``), None stays None."""
    if str_or_bytes is None or isinstance(str_or_bytes, bytes):
        return str_or_bytes
    if isinstance(str_or_bytes, str):
        return str_or_bytes.encode(*encode_args)
    raise TypeError(f"Expected str or bytes, but got {type(str_or_bytes).__name__}.")


@overload
def always_str(str_or_bytes: None, *decode_args: str) -> None: ...
@overload
def always_str(str_or_bytes: str | bytes, *decode_args: str) -> str: ...
def always_str(str_or_bytes: str | bytes | None, *decode_args: str) -> str | None:
    """str as it is, bytes decoded (with ``decode_args``), None stays None."""
    if str_or_bytes is None or isinstance(str_or_bytes, str):
        return str_or_bytes
    if isinstance(str_or_bytes, bytes):
        return str_or_bytes.decode(*decode_args)
    raise TypeError(f"Expected str or bytes, but got {type(str_or_bytes).__name__}.")


def escape_control_characters(text: str, keep_spacing: bool = True) -> str:
    """Control characters replaced by "." (tab, CR and LF kept unless ``keep_spacing`` is false)."""
    if not isinstance(text, str):
        raise ValueError(f"text type must be unicode but is {type(text).__name__}")
    return escape_control(text, keep_spacing)


def bytes_to_escaped_str(data: bytes, keep_spacing: bool = False, escape_single_quotes: bool = False) -> str:
    """Printable ASCII as is, other bytes as Python escapes; the inverse of escaped_str_to_bytes."""
    if not isinstance(data, bytes):
        raise ValueError(f"data must be bytes, but is {data.__class__.__name__}")
    out = []
    for b in data:
        if keep_spacing and b in (9, 10, 13):
            out.append(chr(b))
        elif escape_single_quotes and b == 0x27:
            out.append("\\'")
        else:
            out.append(_ESCAPED[b])
    return "".join(out)


def escaped_str_to_bytes(data: str) -> bytes:
    """Python escapes (``\\x00``, ``\\n``) in ``data`` decoded to bytes."""
    if not isinstance(data, str):
        raise ValueError(f"data must be str, but is {data.__class__.__name__}")
    return escaped_to_bytes(data)


def is_mostly_bin(s: bytes) -> bool:
    """Whether ``s`` looks like binary data rather than text (judged from its start)."""
    return is_mostly_binary(s)


def is_xml(s: bytes) -> bool:
    """Whether the first character after XML whitespace is "<"."""
    stripped = s.lstrip(b" \t\r\n")
    return stripped[:1] == b"<"


def clean_hanging_newline(t: str) -> str:
    """``t`` without one trailing newline (editors add one to the files users load)."""
    return t[:-1] if t and t[-1] == "\n" else t


def hexdump(s: bytes) -> Iterator[tuple[str, str, str]]:
    """(offset, hex bytes, printable text) for each 16-byte row of ``s``."""
    for start in range(0, len(s), 16):
        row = s[start : start + 16]
        hex_part = " ".join(f"{b:02x}" for b in row).ljust(47)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        yield f"{start:010x}", hex_part, text


def cut_after_n_lines(content: str, n: int) -> str:
    """The first ``n`` lines of ``content``."""
    assert n > 0
    return cut_after_lines(content, n)
