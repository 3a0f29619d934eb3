"""The ``[/flow-filter]/subject/replacement`` patterns of modify_headers, modify_body,
map_remote and map_local, in one place so all four read them the same way.

The first character of a pattern is its separator and may be any character:
``|~d example.com|/api|/v2`` and ``/~d example.com//api//v2`` would both work
if the parts did not contain the separator. With two parts the filter matches
every flow; with three, the first is a flow filter expression. The replacement
is everything after the second (or third) separator, so only a pattern with a
filter may contain the separator in its replacement.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, NamedTuple, Protocol, TypeVar

from proxycore.exceptions import OptionsError

if TYPE_CHECKING:  # imported by parse_spec: a start without patterns never compiles a filter
    from proxycore import flowfilter

_SIMPLE_ESCAPES = {
    "\\": 0x5C, "'": 0x27, '"': 0x22, "a": 0x07, "b": 0x08, "f": 0x0C,
    "n": 0x0A, "r": 0x0D, "t": 0x09, "v": 0x0B,
}
_OCTAL = frozenset("01234567")
_HEX = frozenset("0123456789abcdefABCDEF")


class SpecError(ValueError):
    """A pattern that cannot be used; the message says why, for an OptionsError."""


class Spec(NamedTuple):
    matches: flowfilter.Filter
    subject: str
    replacement: str


class _Rule(Protocol):
    @property  # read-only, so that NamedTuple rules qualify
    def matches(self) -> flowfilter.Filter: ...


T = TypeVar("T")
R = TypeVar("R", bound=_Rule)


def parse_option(option_name: str, values: Sequence[str], parse: Callable[[str], T]) -> list[T]:
    """Every pattern of a list option parsed with ``parse``, or an OptionsError naming the bad one.

    All four pattern addons call this from ``configure`` so a bad pattern is reported the same way.
    """
    rules = []
    for value in values:
        try:
            rules.append(parse(value))
        except SpecError as e:
            raise OptionsError(f"Cannot parse {option_name} option {value}: {e}") from None
    return rules


def matching(rules: Iterable[R], flow: Any) -> Iterator[R]:
    """The rules whose filter matches ``flow``, in option order.

    Lazy: each filter sees the flow as the rules before it left it (wrap in ``list`` to
    evaluate every filter first).
    """
    return (rule for rule in rules if rule.matches(flow))


class RuleAddon(Generic[R]):
    """Base of the pattern addons (map_local, map_remote, modify_body, modify_headers):
    the rules parsed from their option; their hooks only run while there are any."""

    def __init__(self) -> None:
        self.rules: list[R] = []

    @property
    def hooks_active(self) -> bool:
        return bool(self.rules)


def parse_spec(option: str) -> Spec:
    """Split a pattern into (compiled filter, subject, replacement)."""
    if not option:
        raise SpecError("Empty pattern (expected [/flow-filter]/subject/replacement)")
    from proxycore import flowfilter

    sep, rest = option[0], option[1:]
    parts = rest.split(sep, 2)
    if len(parts) == 2:
        return Spec(flowfilter.match_all, parts[0], parts[1])
    if len(parts) == 3:
        try:
            flt = flowfilter.parse(parts[0])
        except ValueError as e:
            raise SpecError(str(e)) from None
        return Spec(flt, parts[1], parts[2])
    raise SpecError("Invalid number of parameters (2 or 3 are expected)")


def format_spec(subject: str, replacement: str, filter_expr: str | None = None, sep: str = "/") -> str:
    """The pattern text that ``parse_spec`` reads back as these parts."""
    parts = [subject, replacement] if filter_expr is None else [filter_expr, subject, replacement]
    return sep + sep.join(parts)


def unescape(text: str) -> bytes:
    """Python-style backslash escapes (``\\n``, ``\\x00``, ``\\\\`` ...) to bytes, UTF-8 otherwise.

    Unknown escapes such as ``\\d`` are kept as they are, so regular expressions
    can be written naturally.
    """
    out = bytearray()
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c != "\\":
            out += _encode(c)
            i += 1
            continue
        if i + 1 == n:
            raise SpecError(f"Trailing backslash in {text!r}")
        e = text[i + 1]
        if e in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[e])
            i += 2
        elif e == "\n":  # a line continuation, as in Python literals
            i += 2
        elif e == "x":
            digits = text[i + 2 : i + 4]
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise SpecError(f"Invalid \\x escape at position {i} in {text!r}")
            out.append(int(digits, 16))
            i += 4
        elif e in _OCTAL:
            j = i + 1
            while j < n and j < i + 4 and text[j] in _OCTAL:
                j += 1
            out.append(int(text[i + 1 : j], 8) & 0xFF)
            i = j
        else:
            out += b"\\" + _encode(e)
            i += 2
    return bytes(out)


def _encode(char: str) -> bytes:
    try:  # undecodable bytes from the command line come back as they were given
        return char.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return char.encode("utf-8", "surrogatepass")


def check_regex(pattern: str | bytes) -> None:
    try:
        re.compile(pattern)
    except (re.error, OverflowError, RecursionError) as e:
        raise SpecError(f"Invalid regular expression {pattern!r} ({e})") from None


class ModifySpec(NamedTuple):
    """A modify_headers/modify_body rule; ``@path`` replacements are read on every use."""

    matches: flowfilter.Filter
    subject: bytes
    replacement_str: str

    def read_replacement(self) -> bytes:
        """The replacement bytes; raises OSError if an ``@file`` cannot be read."""
        if self.replacement_str.startswith("@"):
            return Path(self.replacement_str[1:]).expanduser().read_bytes()
        return unescape(self.replacement_str)


def parse_modify_spec(option: str, subject_is_regex: bool) -> ModifySpec:
    matches, subject_text, replacement = parse_spec(option)
    subject = unescape(subject_text)
    if subject_is_regex:
        check_regex(subject)
    spec = ModifySpec(matches, subject, replacement)
    try:
        spec.read_replacement()
    except (OSError, ValueError) as e:
        raise SpecError(f"Invalid file path: {replacement[1:]} ({e})") from None
    return spec
