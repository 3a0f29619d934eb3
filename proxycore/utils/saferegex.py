"""Regexes from users (filter expressions) that cannot freeze the proxy.

Python's ``re`` backtracks: ``(a+)+$`` against a few dozen ``a`` takes seconds to
minutes, and a filter runs on the event loop, so one such search stops the proxy
and the web API.  Here every pattern is first checked by ``re`` (so the accepted
syntax and its error messages stay mitmproxy's), then handed to RE2, which
matches in linear time.  Only patterns RE2 cannot express (backreferences,
lookaround, ``\\Z``...) are run by ``re``, and those are refused when they repeat
a repetition, the shape behind catastrophic backtracking.

Where RE2 differs from ``re`` on text patterns: ``\\w``, ``\\d``, ``\\s`` and ``\\b``
are ASCII-only, and ``$`` does not match before a final newline.
"""

from __future__ import annotations

import functools
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # typeshed knows these modules only by their old, deprecated names
    import sre_constants
    import sre_parse as sre_parser
else:
    import re._constants as sre_constants
    import re._parser as sre_parser


@functools.cache
def _re2() -> Any | None:
    """RE2, imported with the first pattern: it maps ~2.5 MB (libstdc++ and its own library)
    that a proxy without filters never uses."""
    try:
        import re2
    except ImportError:  # pragma: no cover - google-re2 is a dependency; kept optional for odd platforms
        return None
    return re2


class Pattern:
    """A compiled pattern: ``pattern`` and ``flags`` as ``re`` has them, ``search`` run by
    RE2 when ``linear`` (else by ``re``)."""

    __slots__ = ("pattern", "flags", "linear", "search")

    def __init__(self, checked: re.Pattern[Any], linear: Any | None) -> None:
        self.pattern = checked.pattern
        self.flags = checked.flags
        self.linear = linear is not None
        self.search = (linear or checked).search

    def __repr__(self) -> str:
        return f"saferegex.Pattern({self.pattern!r}, linear={self.linear})"


class SlowPatternError(ValueError):
    """A pattern that only the backtracking engine can run, with nested repetition."""


_INLINE_FLAGS = ((re.IGNORECASE, "i"), (re.DOTALL, "s"), (re.MULTILINE, "m"))
_SUPPORTED_FLAGS = re.IGNORECASE | re.DOTALL | re.MULTILINE
_REPEATS = (sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT)


def compile(pattern: str | bytes, flags: int = 0) -> Pattern:
    """``pattern`` compiled for searching: RE2 where possible, else a checked ``re`` pattern.

    Raises ``re.error`` for invalid syntax (as ``re.compile`` would) and
    :class:`SlowPatternError` for a backtracking-only pattern with nested repetition.
    """
    checked = re.compile(pattern, flags)
    linear = _re2_compile(pattern, flags)
    if linear is None and has_nested_repetition(pattern, flags):
        raise SlowPatternError(
            "pattern repeats a repetition (such as (a+)+) and needs features the linear-time "
            "engine lacks, so it could take exponential time; rewrite it without the nesting"
        )
    return Pattern(checked, linear)


def _re2_compile(pattern: str | bytes, flags: int) -> Any | None:
    re2 = _re2()
    if re2 is None or flags & ~_SUPPORTED_FLAGS:
        return None
    options = re2.Options()
    options.log_errors = False
    if isinstance(pattern, bytes):
        if flags & re.IGNORECASE and not pattern.isascii():
            return None  # re folds ASCII only in bytes; RE2's Latin-1 mode folds more
        options.encoding = re2.Options.Encoding.LATIN1  # one byte, one character, as in re
    prefix = "".join(letter for flag, letter in _INLINE_FLAGS if flags & flag)
    if prefix:
        inline = f"(?{prefix})"
        pattern = inline.encode() + pattern if isinstance(pattern, bytes) else inline + pattern
    try:
        return re2.compile(pattern, options)
    except Exception:  # re2.error: syntax RE2 does not have, repeats over 1000, too big
        return None


def has_nested_repetition(pattern: str | bytes, flags: int = 0) -> bool:
    """Whether a variable repetition sits inside another repetition (``(a+)+``, ``(a|b*)*``)."""
    # typeshed declares str only; re's parser reads bytes patterns just as well
    tree = sre_parser.parse(pattern, flags)  # type: ignore[arg-type]
    return _nested(tree.data, inside_repeat=False)


def _nested(items: list[tuple[Any, Any]], inside_repeat: bool) -> bool:
    for op, av in items:
        if op in _REPEATS:
            low, high, body = av
            repeats = high > 1 and high != low
            if repeats and inside_repeat:
                return True
            if _nested(body.data, inside_repeat or high > 1):
                return True
        else:
            for child in _children(op, av):
                if _nested(child, inside_repeat):
                    return True
    return False


def _children(op: Any, av: Any) -> list[list[tuple[Any, Any]]]:
    """The sub-patterns of one parsed item (groups, branches, assertions)."""
    if op is sre_constants.SUBPATTERN:
        return [av[3].data]
    if op is sre_constants.BRANCH:
        return [branch.data for branch in av[1]]
    if op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
        return [av[1].data]
    if op is sre_constants.ATOMIC_GROUP:
        return [av.data]
    if op is sre_constants.GROUPREF_EXISTS:
        return [branch.data for branch in av[1:] if branch is not None]
    return []
