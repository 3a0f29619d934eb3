"""YAML text for the form, query and image views, byte for byte as mitmproxy prints it.

mitmproxy renders these views with ruamel.yaml's round-trip dumper (YAML 1.2, 80
columns, block style).  The data is always a flat mapping from strings to a string
or a list of strings, so instead of depending on a YAML library this module
implements just that: the choice between plain, single- and double-quoted scalars,
simple and explicit (``? key``) keys, and folding of long scalars at 80 columns,
following the rules of ruamel.yaml's emitter.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass

WIDTH = 80
INDENT = 2
#: keys at least this long (counting the 5 characters of an implicit ``!!str`` tag) get ``? ``
MAX_SIMPLE_KEY = 128
_BREAKS = "\n\x85\u2028\u2029"
_BLANKS = "\0 \t\r\n\x85\u2028\u2029"

# YAML 1.2 core schema: plain scalars that would load as something other than a string,
# keyed by the first characters each pattern can start with.
_IMPLICIT = (
    ("tTfF", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$")),
    (
        "-+0123456789.",
        re.compile(
            r"^(?:[-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+]?[0-9]+)?"
            r"|[-+]?[0-9][0-9_]*[eE][-+]?[0-9]+"
            r"|[-+]?\.[0-9_]+(?:[eE][-+][0-9]+)?"
            r"|[-+]?\.(?:inf|Inf|INF)"
            r"|\.(?:nan|NaN|NAN))$"
        ),
    ),
    ("-+0123456789", re.compile(r"^(?:[-+]?0b[0-1_]+|[-+]?0o?[0-7_]+|[-+]?[0-9_]+|[-+]?0x[0-9a-fA-F_]+)$")),
    ("<", re.compile(r"^(?:<<)$")),
    ("~nN", re.compile(r"^(?:~|null|Null|NULL)$")),
    (
        "0123456789",
        re.compile(
            r"^(?:[0-9]{4}-[0-9]{2}-[0-9]{2}"
            r"|[0-9]{4}-[0-9][0-9]?-[0-9][0-9]?(?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9]{2}:[0-9]{2}"
            r"(?:\.[0-9]*)?(?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9]{2})?))?)$"
        ),
    ),
    ("=", re.compile(r"^(?:=)$")),
    ("!&*", re.compile(r"^(?:!|&|\*)$")),
)


def dumps(data: Mapping[str, str | list[str]]) -> str:
    """A flat mapping as a YAML block mapping; an empty mapping gives ``""``."""
    if not data:
        return ""
    writer = _Writer()
    for key, value in data.items():
        writer.entry(key, value)
    return writer.finish()


def _loads_as_string(value: str) -> bool:
    """Would ``value``, written plain, load back as a string?"""
    if not value:
        return False  # the empty plain scalar is null
    return not any(value[0] in first and pattern.match(value) for first, pattern in _IMPLICIT)


@dataclass
class _Analysis:
    empty: bool
    multiline: bool
    plain: bool  # allowed as a plain scalar in block context
    single: bool  # allowed single-quoted


def _analyze(text: str) -> _Analysis:
    """Which scalar styles can represent ``text`` (ruamel's analysis, block context only)."""
    if not text:
        return _Analysis(empty=True, multiline=False, plain=True, single=True)
    indicators = text.startswith(("---", "..."))
    line_breaks = special = False
    leading_space = leading_break = trailing_space = trailing_break = False
    break_space = space_break = False
    previous_space = previous_break = False
    after_blank = True
    last = len(text) - 1
    for i, ch in enumerate(text):
        before_blank = i == last or text[i + 1] in _BLANKS
        if i == 0:
            if ch in "#,[]{}&*!|>'\"%@`":
                indicators = True
            elif ch in "?:" and before_blank:
                indicators = True
            elif ch == "-" and before_blank:
                indicators = True
        elif (ch == ":" and before_blank) or (ch == "#" and after_blank):
            indicators = True
        if ch in _BREAKS:
            line_breaks = True
        if not (ch == "\n" or "\x20" <= ch <= "\x7e"):
            printable = (
                ch == "\x85"
                or "\xa0" <= ch <= "\ud7ff"
                or "\ue000" <= ch <= "\ufffd"
                or "\U00010000" <= ch <= "\U0010ffff"
            ) and ch != "\ufeff"
            if not printable:
                special = True
        if ch == " ":
            leading_space = leading_space or i == 0
            trailing_space = trailing_space or i == last
            break_space = break_space or previous_break
            previous_space, previous_break = True, False
        elif ch in _BREAKS:
            leading_break = leading_break or i == 0
            trailing_break = trailing_break or i == last
            space_break = space_break or previous_space
            previous_space, previous_break = False, True
        else:
            previous_space = previous_break = False
        after_blank = ch in _BLANKS
    plain = single = True
    if leading_space or leading_break or trailing_space or trailing_break:
        plain = False
    if break_space or special or space_break:
        plain = single = False
    if line_breaks or indicators:
        plain = False
    return _Analysis(empty=False, multiline=line_breaks, plain=plain, single=single)


def _style(text: str, analysis: _Analysis, simple_key: bool) -> str:
    """``""`` (plain), ``"'"`` or ``'"'``."""
    if _loads_as_string(text) and analysis.plain and not (simple_key and (analysis.empty or analysis.multiline)):
        return ""
    if "'" in text or "\n" in text:
        return '"'
    if analysis.single and not (simple_key and analysis.multiline):
        return "'"
    return '"'


_ESCAPES = {
    "\0": "0",
    "\x07": "a",
    "\x08": "b",
    "\t": "t",
    "\n": "n",
    "\x0b": "v",
    "\x0c": "f",
    "\r": "r",
    "\x1b": "e",
    '"': '"',
    "\\": "\\",
    "\x85": "N",
    "\xa0": "_",
    "\u2028": "L",
    "\u2029": "P",
}


def _double_quote_safe(ch: str) -> bool:
    if ch in '"\\\x85\u2028\u2029\ufeff':
        return False
    return (
        "\x20" <= ch <= "\x7e"
        or "\xa0" <= ch <= "\ud7ff"
        or "\ue000" <= ch <= "\ufffd"
        or "\U00010000" <= ch <= "\U0010ffff"
    )


def _escape(ch: str) -> str:
    if ch in _ESCAPES:
        return "\\" + _ESCAPES[ch]
    code = ord(ch)
    if code <= 0xFF:
        return f"\\x{code:02X}"
    if code <= 0xFFFF:
        return f"\\u{code:04X}"
    return f"\\U{code:08X}"


def _runs(text: str, singles: str = "") -> Iterator[tuple[int, int, str]]:
    """``text`` as (start, end, kind) runs for the scalar writers: maximal runs of spaces
    (kind ``" "``), of line breaks (``"\\n"``) and of other characters (``""``); each
    character of ``singles`` is a run of its own, with itself as the kind."""

    def kind_of(ch: str) -> str:
        return " " if ch == " " else "\n" if ch in _BREAKS else ch if ch in singles else ""

    start = 0
    while start < len(text):
        kind = kind_of(text[start])
        end = start + 1
        if kind in ("", " ", "\n"):  # a ``singles`` character stands alone
            while end < len(text) and kind_of(text[end]) == kind:
                end += 1
        yield start, end, kind
        start = end


class _Writer:
    """Emitter state: the output so far, the column, the current indentation, and
    whether the last thing written was whitespace / only indentation."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.column = 0
        self.indent = 0
        self.whitespace = True
        self.indention = True

    # -------------------------------------------------------------- primitives
    def write(self, text: str) -> None:
        self.parts.append(text)
        self.column += len(text)

    def line_break(self, char: str = "\n") -> None:
        self.parts.append(char)
        self.column = 0
        self.whitespace = True
        self.indention = True

    def write_indent(self) -> None:
        if not self.indention or self.column > self.indent or (self.column == self.indent and not self.whitespace):
            self.line_break()
        if self.column < self.indent:
            self.whitespace = True
            self.write(" " * (self.indent - self.column))

    def indicator(self, text: str, need_space: bool, whitespace: bool = False, indention: bool = False) -> None:
        self.write(text if self.whitespace or not need_space else " " + text)
        self.whitespace = whitespace
        self.indention = self.indention and indention

    def breaks(self, text: str) -> None:
        """A run of line breaks inside a scalar, then indentation for what follows."""
        if text[0] == "\n":
            self.line_break()
        for ch in text:
            self.line_break("\n" if ch == "\n" else ch)
        self.write_indent()

    # -------------------------------------------------------------- structure
    def entry(self, key: str, value: str | list[str]) -> None:
        self.indent = 0
        self.write_indent()
        key_analysis = _analyze(key)
        if len(key) + 5 < MAX_SIMPLE_KEY and not key_analysis.multiline:
            self.scalar(key, key_analysis, simple_key=True)
            self.indicator(":", False)
        else:
            self.indicator("?", True, indention=True)
            self.scalar(key, key_analysis, simple_key=False)
            self.indent = 0
            self.write_indent()
            self.indicator(":", True, indention=True)
        if isinstance(value, list):
            self.sequence(value)
        else:
            self.scalar(value, _analyze(value), simple_key=False)

    def sequence(self, items: list[str]) -> None:
        # Right after "key:" the dashes stay in the key's column; after "? key\n:" they indent.
        seq_indent = INDENT if self.indention else 0
        for item in items:
            self.indent = seq_indent
            self.write_indent()
            self.indicator("-", True, indention=True)
            self.indent = seq_indent + INDENT
            self.write_indent()
            self.scalar(item, _analyze(item), simple_key=False, indent=seq_indent + INDENT)

    def scalar(self, text: str, analysis: _Analysis, simple_key: bool, indent: int = INDENT) -> None:
        self.indent = indent
        style = _style(text, analysis, simple_key)
        split = not simple_key
        if style == '"':
            self.double_quoted(text, split)
        elif style == "'":
            self.single_quoted(text, split)
        else:
            self.plain(text, split)

    def finish(self) -> str:
        self.indent = 0
        self.write_indent()
        return "".join(self.parts)

    # -------------------------------------------------------------- scalar styles
    def plain(self, text: str, split: bool) -> None:
        if not text:
            return
        if not self.whitespace:
            self.write(" ")
        self.whitespace = self.indention = False
        for start, end, kind in _runs(text):
            run = text[start:end]
            if kind == " ":
                if end - start == 1 and self.column >= WIDTH and split:
                    self.write_indent()
                    self.whitespace = self.indention = False
                else:
                    self.write(run)
            elif kind == "\n":
                self.breaks(run)
                self.whitespace = self.indention = False
            else:
                if len(run) + self.column > WIDTH and self.column > self.indent:
                    self.write_indent()  # a word too long for the line gets a line of its own
                self.write(run)

    def single_quoted(self, text: str, split: bool) -> None:
        self.indicator("'", True)
        for start, end, kind in _runs(text, singles="'"):
            run = text[start:end]
            if kind == " ":
                if end - start == 1 and self.column > WIDTH and split and start != 0 and end != len(text):
                    self.write_indent()
                else:
                    self.write(run)
            elif kind == "\n":
                self.breaks(run)
            elif kind == "'":
                self.write("''")
            else:
                self.write(run)
        self.indicator("'", False)

    def double_quoted(self, text: str, split: bool) -> None:
        self.indicator('"', True)
        start = 0
        for end in range(len(text) + 1):
            ch = text[end] if end < len(text) else None
            if ch is None or not _double_quote_safe(ch):
                if start < end:
                    self.write(text[start:end])
                    start = end
                if ch is not None:
                    self.write(_escape(ch))
                    start = end + 1
            if (
                split
                and 0 < end < len(text) - 1
                and (ch == " " or start >= end)
                and self.column + (end - start) > WIDTH
            ):
                backslash = self._fold_needs_backslash(text, start, end)
                self.write(text[start:end] + ("\\" if backslash else ""))
                start = max(start, end)
                self.write_indent()
                self.whitespace = self.indention = False
                if text[start] == " ":
                    if backslash:
                        self.write("\\")  # keeps the space, which would otherwise fold away
                    else:
                        start += 1  # the line break reads back as this space
        self.indicator('"', False)

    @staticmethod
    def _fold_needs_backslash(text: str, start: int, end: int) -> bool:
        """A fold inside a double-quoted scalar needs a trailing ``\\`` unless the
        line break can stand for the space it replaces."""
        space = text.find(" ", end)
        if space < 0:
            return True
        newline = text.find("\n", end, space)
        if newline >= 0:
            space = newline
        if space + 1 >= len(text):
            return True
        if text[space] == "\n" and text[space + 1] != " ":
            return True
        chunk = text[end:space]
        return not (
            '"' not in chunk
            and "'" not in chunk
            and text[space + 1] not in " \n"
            and text[end - 1 : end + 1] != "  "
            and start != end
        )
