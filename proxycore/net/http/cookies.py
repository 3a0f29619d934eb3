"""Cookie and Set-Cookie header parsing, as permissive as mitmproxy's.

Malformed input is kept rather than rejected: duplicate cookies stay, quoted values
are unquoted (with backslash escapes), a Set-Cookie header may set several cookies
separated by commas, and an ``expires`` date may contain the comma after its weekday.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

_WEEKDAYS = frozenset(
    "mon tue wed thu fri sat sun monday tuesday wednesday thursday friday saturday sunday".split()
)


class CookieAttrs:
    """A cookie's attributes in order; names match case-insensitively, a repeated
    attribute reads as its last value, a flag (``Secure``) has the value None."""

    def __init__(self, fields: Iterable[tuple[str, str | None]] = ()) -> None:
        self.fields: list[tuple[str, str | None]] = list(fields)

    def get(self, name: str, default: str | None = None) -> str | None:
        values = [v for k, v in self.fields if k.lower() == name.lower()]
        return values[-1] if values else default

    def __getitem__(self, name: str) -> str | None:
        if name not in self:
            raise KeyError(name)
        return self.get(name)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and any(k.lower() == name.lower() for k, _ in self.fields)

    def __iter__(self) -> Iterator[str]:
        seen: set[str] = set()
        for k, _ in self.fields:
            if k.lower() not in seen:
                seen.add(k.lower())
                yield k

    def __len__(self) -> int:
        return len(list(iter(self)))

    def items(self) -> list[tuple[str, str | None]]:
        return [(k, self.get(k)) for k in self]

    def __eq__(self, other: object) -> bool:
        if isinstance(other, CookieAttrs):
            return self.fields == other.fields
        return NotImplemented

    def __repr__(self) -> str:
        return f"CookieAttrs({self.fields!r})"


def _read_until(s: str, start: int, stops: str) -> tuple[str, int]:
    if start == len(s):
        return "", start + 1
    for i in range(start, len(s)):
        if s[i] in stops:
            return s[start:i], i
    return s[start:], len(s)


def _read_quoted(s: str, start: int) -> tuple[str, int]:
    """A double-quoted string starting at ``start``; backslash escapes any character."""
    out = []
    escaped = False
    i = start
    for i in range(start + 1, len(s)):
        ch = s[i]
        if escaped:
            out.append(ch)
            escaped = False
        elif ch == '"':
            break
        elif ch == "\\":
            escaped = True
        else:
            out.append(ch)
    return "".join(out), i + 1


def _read_value(s: str, start: int, stops: str) -> tuple[str, int]:
    if start >= len(s):
        return "", start
    if s[start] == '"':
        return _read_quoted(s, start)
    return _read_until(s, start, stops)


def parse_cookie_header(line: str) -> list[tuple[str, str]]:
    """``a=1; b="two"`` -> ``[("a", "1"), ("b", "two")]``."""
    pairs = []
    pos = 0
    while True:
        name, pos = _read_until(line, pos, ";=")
        name = name.lstrip()
        value = ""
        if pos < len(line) and line[pos] == "=":
            value, pos = _read_value(line, pos + 1, ";")
        if name or value:
            pairs.append((name, value))
        pos += 1
        if pos >= len(line):
            return pairs


def parse_set_cookie_header(line: str) -> list[tuple[str, str | None, CookieAttrs]]:
    """Every cookie a Set-Cookie value sets, as (name, value, attributes)."""
    cookies: list[list[tuple[str, str | None]]] = []
    pairs: list[tuple[str, str | None]] = []
    pos = 0
    while True:
        name, pos = _read_until(line, pos, ";=,")
        name = name.lstrip()
        if pos < len(line) and line[pos] == "=":
            value, pos = _read_value(line, pos + 1, ";,")
            if name.lower() == "expires" and pos < len(line) and line[pos] == ",":
                if value.strip().lower() in _WEEKDAYS:  # "Wed, 09 Jun 2021 ..."
                    rest, pos = _read_value(line, pos + 1, ";,")
                    value = value + "," + rest
            pairs.append((name, value))
        elif name:
            pairs.append((name, None))
        if pos < len(line) and line[pos] == ",":  # the next cookie starts
            cookies.append(pairs)
            pairs = []
        pos += 1
        if pos >= len(line):
            break
    if pairs or not cookies:
        cookies.append(pairs)
    return [(pairs[0][0], pairs[0][1], CookieAttrs(pairs[1:])) for pairs in cookies if pairs]


def parse_set_cookie_headers(lines: Iterable[str]) -> list[tuple[str, str | None, CookieAttrs]]:
    return [cookie for line in lines for cookie in parse_set_cookie_header(line)]


def refresh_set_cookie_header(header: str, delta: float) -> str:
    """A Set-Cookie value with its Expires moved ``delta`` seconds later (mitmproxy's name;
    a response replayed later keeps its cookies' lifetimes)."""
    from proxycore.http import _shift_cookie_expiry

    return _shift_cookie_expiry(header, delta)
