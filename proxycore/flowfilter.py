"""The flow filter language used by view filters, intercept, save filters and the web API.

An expression such as ``~d example\\.com & !(~c 200 | ~c 304)`` is turned by
:func:`parse` into a :class:`Filter`, a callable ``filter(flow) -> bool``.
The language is mitmproxy's (see the flow format spec, section 4):

* operators start with ``~``; some take no argument (``~q``), most take a
  regular expression (``~d host``) and ``~c`` takes a status code;
* a word without an operator is a URL regex, so ``example`` is ``~u example``;
* ``!`` is "not", ``&`` is "and", ``|`` is "or" and parentheses group;
  ``!`` binds tightest, then ``&``, then ``|``, and terms written side by side
  are and-ed last, so ``~q | ~s ~e`` is ``(~q | ~s) & ~e``;
* arguments are unquoted (anything up to whitespace, ``(``, ``)``, ``~`` or a
  quote, taken literally) or quoted with ``"`` or ``'``, where a backslash
  escapes the next character (``\\n``, ``\\t``, ``\\r`` and ``\\f`` give
  whitespace).

Every regex is searched (not anchored) case-insensitively, unless the
environment variable ``MITMPROXY_CASE_SENSITIVE_FILTERS`` is ``1`` when the
expression is parsed.  Bodies, headers, methods and content types are matched
as bytes, everything else as text.

The parser is a little more lenient than mitmproxy's where that cannot change
the meaning of an expression mitmproxy accepts: ``(~q)``, ``~q&~s`` and
side-by-side terms inside parentheses are accepted.  It is stricter where
mitmproxy's grammar silently reads a stray operator as a URL regex: ``~q |``
and ``& ~q`` are errors.
"""

from __future__ import annotations

import functools
import os
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from proxycore.exceptions import OptionsError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow, Message
from proxycore.tcp import TCPFlow
from proxycore.utils import saferegex

__all__ = [
    "And",
    "Filter",
    "FilterError",
    "IntPredicate",
    "Not",
    "OPERATORS",
    "Or",
    "Predicate",
    "RegexPredicate",
    "Token",
    "help",
    "match",
    "match_all",
    "parse",
    "quote",
    "tokenize",
]

CASE_SENSITIVE_ENV = "MITMPROXY_CASE_SENSITIVE_FILTERS"
MAX_NESTING = 50

# The separators pyparsing uses by default, which is what mitmproxy's grammar splits on.
_WHITESPACE = " \t\r\n"
# Characters that end an unquoted word (bare regex or operator argument).
_WORD_STOP = frozenset(_WHITESPACE + "()~'\"")
# Characters that end an operator name such as "~hq".
_NAME_STOP = _WORD_STOP | frozenset("&|!")
_DIGITS = frozenset("0123456789")
_QUOTE_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "f": "\f"}


class FilterError(ValueError):
    """A filter expression that cannot be parsed or compiled.

    ``expression`` is the text given to :func:`parse`, ``position`` the index
    of the offending character in it (``len(expression)`` for "ended too
    early") and ``reason`` the bare explanation.
    """

    def __init__(self, reason: str, expression: str, position: int) -> None:
        self.reason = reason
        self.expression = expression
        self.position = position
        if expression == "":
            message = "Empty filter expression"
        else:
            message = f"Invalid filter expression: {expression!r}: {reason} at position {position}"
        super().__init__(message)


# ---------------------------------------------------------------------------
# Filter objects


class Filter:
    """A compiled filter: call it with a flow to learn whether it matches.

    ``repr(filter)`` is a normalised expression that parses back to an
    equivalent filter; ``pattern`` is the text the filter was parsed from
    (or that normalised expression for filters built by hand).
    """

    # Binding strength when rendered: leaves 4, "!" 3, "&" 2, "|" 1.
    precedence: ClassVar[int] = 4

    _pattern: str | None = None

    def __call__(self, flow: Flow) -> bool:
        raise NotImplementedError

    def render(self) -> str:
        """The normalised filter expression."""
        raise NotImplementedError

    @property
    def pattern(self) -> str:
        return self._pattern if self._pattern is not None else self.render()

    @pattern.setter
    def pattern(self, value: str) -> None:
        self._pattern = value

    def __repr__(self) -> str:
        return self.render()

    def __str__(self) -> str:
        """What the filter matches, in words, as mitmproxy says it ("url matches /foo/i")."""
        return describe(self)

    def dump(self, indent: int = 0, fp: Any = None) -> None:
        """Print the filter as an indented tree, one node a line (mitmproxy's debugging aid)."""
        print_tree(self, indent, fp)

    def _render_child(self, child: Filter) -> str:
        text = child.render()
        return f"({text})" if child.precedence < self.precedence else text


class Not(Filter):
    """``!filter``."""

    precedence = 3

    def __init__(self, filter: Filter) -> None:
        self.filter = filter

    def __call__(self, flow: Flow) -> bool:
        return not self.filter(flow)

    def render(self) -> str:
        return "!" + self._render_child(self.filter)

    @property
    def itm(self) -> Filter:
        """mitmproxy's name for the negated filter."""
        return self.filter


class _Junction(Filter):
    """Common part of And and Or: an n-ary list of filters."""

    _symbol: ClassVar[str]

    def __init__(self, filters: Sequence[Filter]) -> None:
        flat: list[Filter] = []
        for f in filters:
            flat.extend(f.filters if type(f) is type(self) else [f])
        self.filters: list[Filter] = flat

    def render(self) -> str:
        return self._symbol.join(self._render_child(f) for f in self.filters)

    @property
    def lst(self) -> list[Filter]:
        """mitmproxy's name for the joined filters."""
        return self.filters


class And(_Junction):
    """``a & b & ...`` (also what side-by-side terms mean)."""

    precedence = 2
    _symbol = " & "

    def __call__(self, flow: Flow) -> bool:
        return all(f(flow) for f in self.filters)


class Or(_Junction):
    """``a | b | ...``."""

    precedence = 1
    _symbol = " | "

    def __call__(self, flow: Flow) -> bool:
        return any(f(flow) for f in self.filters)


class _Operator(NamedTuple):
    """One operator of the language.  (A NamedTuple: immutable, compared and shown by value as
    the frozen dataclass it was, for a fifth of the ~3 M instructions making one costs.)"""

    code: str
    arg: str  # "", "regex" or "int"
    description: str
    test: Callable[..., bool]
    binary: bool = False  # regex compiled from UTF-8 bytes, searched in bytes
    flags: int = 0

    @property
    def syntax(self) -> str:
        return f"~{self.code} {self.arg}" if self.arg else f"~{self.code}"


class Predicate(Filter):
    """An operator without argument, such as ``~q`` or ``~marked``."""

    def __init__(self, operator: _Operator) -> None:
        self.operator = operator

    @property
    def code(self) -> str:
        return self.operator.code

    def __call__(self, flow: Flow) -> bool:
        return bool(self.operator.test(flow))

    def render(self) -> str:
        return "~" + self.operator.code


class RegexPredicate(Predicate):
    """An operator with a regex argument, such as ``~d example\\.com``.

    ``expr`` is the regex as written (after unquoting), ``regex`` the compiled
    pattern (a bytes pattern for body, header, method and content-type tests), run by
    :mod:`proxycore.utils.saferegex` so that no pattern can backtrack for minutes.
    """

    def __init__(self, operator: _Operator, expr: str, regex: saferegex.Pattern) -> None:
        super().__init__(operator)
        self.expr = expr
        self.regex = regex

    def __call__(self, flow: Flow) -> bool:
        return bool(self.operator.test(self.regex, flow))

    def render(self) -> str:
        return f"~{self.operator.code} {quote(self.expr)}"


class IntPredicate(Predicate):
    """An operator with an integer argument: ``~c 404``."""

    def __init__(self, operator: _Operator, num: int) -> None:
        super().__init__(operator)
        self.num = num

    def __call__(self, flow: Flow) -> bool:
        return bool(self.operator.test(self.num, flow))

    def render(self) -> str:
        return f"~{self.operator.code} {self.num}"


# mitmproxy has a class per operator (FHeadRequest for ~hq, ...), which scripts and tests
# check with isinstance: each operator's filters are made as a subclass of that name.
_MITMPROXY_CLASS_NAMES = {
    "e": "FErr", "marked": "FMarked", "http": "FHTTP", "websocket": "FWebSocket", "tcp": "FTCP",
    "udp": "FUDP", "dns": "FDNS", "q": "FReq", "s": "FResp", "all": "FAll", "a": "FAsset",
    "t": "FContentType", "tq": "FContentTypeRequest", "ts": "FContentTypeResponse",
    "h": "FHead", "hq": "FHeadRequest", "hs": "FHeadResponse",
    "b": "FBod", "bq": "FBodRequest", "bs": "FBodResponse", "m": "FMethod", "d": "FDomain",
    "u": "FUrl", "src": "FSrc", "dst": "FDst", "replay": "FReplay", "replayq": "FReplayClient",
    "replays": "FReplayServer", "meta": "FMeta", "marker": "FMarker", "comment": "FComment",
    "c": "FCode",
}
_CLASSES_BY_CODE: dict[str, type[Predicate]] = {}


def _predicate_class(code: str, base: type[Predicate]) -> type[Predicate]:
    """The class filters of operator ``code`` are made as (mitmproxy's name, or ``base``)."""
    cls = _CLASSES_BY_CODE.get(code)
    if cls is None:
        name = _MITMPROXY_CLASS_NAMES.get(code)
        if name is None:
            return base
        cls = _CLASSES_BY_CODE[code] = type(name, (base,), {"__doc__": f"Filters of ``~{code}``."})
        globals()[name] = cls
    return cls


def quote(text: str) -> str:
    """``text`` as a filter argument: unquoted when that reads back the same, else quoted."""
    if text and text[0] not in "!&|" and not any(c in _WORD_STOP for c in text):
        return text
    out = []
    for c in text:
        if c in '\\"':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\r":
            out.append("\\r")
        elif c == "\t":
            out.append("\\t")
        elif c == "\f":
            out.append("\\f")
        else:
            out.append(c)
    return '"' + "".join(out) + '"'


# ---------------------------------------------------------------------------
# What each operator looks at


def _flow_type(flow: Any) -> str | None:
    return getattr(flow, "type", None)


def _is_dns(flow: Any) -> bool:
    return _flow_type(flow) == "dns"


def _has_messages(flow: Any) -> bool:
    """TCP and UDP flows: a plain list of messages with ``from_client``."""
    return isinstance(flow, TCPFlow) or _flow_type(flow) == "udp"


def _body(message: Message) -> bytes | None:
    """Decoded body, or the raw one when it cannot be decoded."""
    try:
        return message.get_content(strict=False)
    except Exception:
        return message.raw_content


def _search_body(regex: re.Pattern[bytes], message: Message | None) -> bool:
    if message is None:
        return False
    content = _body(message)
    return content is not None and regex.search(content) is not None


def _search_messages(regex: re.Pattern[bytes], messages: Any, from_client: bool | None) -> bool:
    for msg in messages or ():
        if from_client is not None and bool(msg.from_client) != from_client:
            continue
        if msg.content is not None and regex.search(msg.content):
            return True
    return False


def _search_dns(regex: re.Pattern[bytes], message: Any) -> bool:
    return message is not None and regex.search(str(message).encode("utf-8", "replace")) is not None


def _body_test(
    request_side: bool, response_side: bool
) -> Callable[[re.Pattern[bytes], Flow], bool]:
    direction = None if request_side and response_side else request_side

    def test(regex: re.Pattern[bytes], flow: Flow) -> bool:
        if isinstance(flow, HTTPFlow):
            if request_side and _search_body(regex, flow.request):
                return True
            if response_side and _search_body(regex, flow.response):
                return True
            return flow.websocket is not None and _search_messages(
                regex, flow.websocket.messages, direction
            )
        if _has_messages(flow):
            return _search_messages(regex, getattr(flow, "messages", ()), direction)
        if _is_dns(flow):
            return (request_side and _search_dns(regex, getattr(flow, "request", None))) or (
                response_side and _search_dns(regex, getattr(flow, "response", None))
            )
        return False

    return test


def _header_block(message: Message | None) -> bytes | None:
    if message is None:
        return None
    return b"".join(name + b": " + value + b"\r\n" for name, value in message.headers.fields)


def _header_test(
    request_side: bool, response_side: bool
) -> Callable[[re.Pattern[bytes], Flow], bool]:
    def test(regex: re.Pattern[bytes], flow: Flow) -> bool:
        if not isinstance(flow, HTTPFlow):
            return False
        messages = ([flow.request] if request_side else []) + (
            [flow.response] if response_side else []
        )
        for message in messages:
            block = _header_block(message)
            if block is not None and regex.search(block):
                return True
        return False

    return test


def _content_type_matches(regex: re.Pattern[bytes], message: Message | None) -> bool:
    if message is None:
        return False
    return any(
        name.lower() == b"content-type" and regex.search(value) is not None
        for name, value in message.headers.fields
    )


def _content_type_test(
    request_side: bool, response_side: bool
) -> Callable[[re.Pattern[bytes], Flow], bool]:
    def test(regex: re.Pattern[bytes], flow: Flow) -> bool:
        if not isinstance(flow, HTTPFlow):
            return False
        return (request_side and _content_type_matches(regex, flow.request)) or (
            response_side and _content_type_matches(regex, flow.response)
        )

    return test


_ASSET_TYPE_PATTERNS = (
    rb"text/javascript",
    rb"application/x-javascript",
    rb"application/javascript",
    rb"text/css",
    rb"image/.*",
    rb"font/.*",
    rb"application/font.*",
)


@functools.cache
def _asset_types() -> list[re.Pattern[bytes]]:
    """The patterns of ``~a``, compiled by its first use (not by every import)."""
    return [re.compile(p) for p in _ASSET_TYPE_PATTERNS]


def _is_asset(flow: Flow) -> bool:
    if not isinstance(flow, HTTPFlow) or flow.response is None:
        return False
    return any(_content_type_matches(p, flow.response) for p in _asset_types())


def _no_response(flow: Flow) -> bool:
    if isinstance(flow, HTTPFlow) or _is_dns(flow):
        return getattr(flow, "response", None) is None
    return False


def _has_response(flow: Flow) -> bool:
    if isinstance(flow, HTTPFlow) or _is_dns(flow):
        return getattr(flow, "response", None) is not None
    return False


def _method(regex: re.Pattern[bytes], flow: Flow) -> bool:
    if not isinstance(flow, HTTPFlow) or flow.request is None:
        return False
    return regex.search(flow.request.data.method) is not None


def _domain(regex: re.Pattern[str], flow: Flow) -> bool:
    if not isinstance(flow, HTTPFlow) or flow.request is None:
        return False
    request = flow.request
    return regex.search(request.host) is not None or regex.search(request.pretty_host) is not None


def _url(regex: re.Pattern[str], flow: Flow) -> bool:
    if isinstance(flow, HTTPFlow):
        return flow.request is not None and regex.search(flow.request.pretty_url) is not None
    if _is_dns(flow):
        request = getattr(flow, "request", None)
        questions = getattr(request, "questions", None)
        if not questions:
            return False
        return regex.search(str(questions[0].name)) is not None
    return False


def _address_text(address: Any) -> str | None:
    if not address:
        return None
    return f"{address[0]}:{address[1]}"


def _src(regex: re.Pattern[str], flow: Flow) -> bool:
    text = _address_text(getattr(flow.client_conn, "peername", None))
    return text is not None and regex.search(text) is not None


def _dst(regex: re.Pattern[str], flow: Flow) -> bool:
    text = _address_text(getattr(flow.server_conn, "address", None))
    return text is not None and regex.search(text) is not None


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    return "" if value is None else str(value)


def _marker(regex: re.Pattern[str], flow: Flow) -> bool:
    return regex.search(_text(flow.marked)) is not None


def _comment(regex: re.Pattern[str], flow: Flow) -> bool:
    return regex.search(_text(flow.comment)) is not None


def _meta(regex: re.Pattern[str], flow: Flow) -> bool:
    text = "\n".join(f"{key}: {value}" for key, value in (flow.metadata or {}).items())
    return regex.search(text) is not None


def _status_code(num: int, flow: Flow) -> bool:
    return (
        isinstance(flow, HTTPFlow)
        and flow.response is not None
        and flow.response.status_code == num
    )


_OPERATOR_LIST = [
    # no argument
    _Operator("all", "", "Every flow", lambda f: True),
    _Operator("a", "", "Asset response: JavaScript, CSS, image or font content type", _is_asset),
    _Operator("e", "", "Flow has an error", lambda f: bool(f.error)),
    _Operator("http", "", "HTTP flow", lambda f: isinstance(f, HTTPFlow)),
    _Operator("tcp", "", "TCP flow", lambda f: isinstance(f, TCPFlow)),
    _Operator("udp", "", "UDP flow", lambda f: _flow_type(f) == "udp"),
    _Operator("dns", "", "DNS flow", _is_dns),
    _Operator(
        "websocket",
        "",
        "HTTP flow upgraded to WebSocket",
        lambda f: isinstance(f, HTTPFlow) and f.websocket is not None,
    ),
    _Operator("q", "", "Request that has no response (yet)", _no_response),
    _Operator("s", "", "Flow that has a response", _has_response),
    _Operator("marked", "", "Marked flow", lambda f: bool(f.marked)),
    _Operator("replay", "", "Replayed flow", lambda f: f.is_replay is not None),
    _Operator("replayq", "", "Flow whose request was replayed", lambda f: f.is_replay == "request"),
    _Operator(
        "replays", "", "Flow whose response was replayed", lambda f: f.is_replay == "response"
    ),
    # regex argument, searched in bytes
    _Operator(
        "b",
        "regex",
        "Request or response body, WebSocket or TCP/UDP messages",
        _body_test(True, True),
        binary=True,
        flags=re.DOTALL,
    ),
    _Operator(
        "bq",
        "regex",
        "Request body, or messages sent by the client",
        _body_test(True, False),
        binary=True,
        flags=re.DOTALL,
    ),
    _Operator(
        "bs",
        "regex",
        "Response body, or messages sent by the server",
        _body_test(False, True),
        binary=True,
        flags=re.DOTALL,
    ),
    _Operator(
        "h",
        "regex",
        'Request or response header, as "name: value" lines',
        _header_test(True, True),
        binary=True,
        flags=re.MULTILINE,
    ),
    _Operator(
        "hq",
        "regex",
        'Request header, as "name: value" lines',
        _header_test(True, False),
        binary=True,
        flags=re.MULTILINE,
    ),
    _Operator(
        "hs",
        "regex",
        'Response header, as "name: value" lines',
        _header_test(False, True),
        binary=True,
        flags=re.MULTILINE,
    ),
    _Operator(
        "t",
        "regex",
        "Content-Type of request or response",
        _content_type_test(True, True),
        binary=True,
    ),
    _Operator(
        "tq", "regex", "Content-Type of the request", _content_type_test(True, False), binary=True
    ),
    _Operator(
        "ts", "regex", "Content-Type of the response", _content_type_test(False, True), binary=True
    ),
    _Operator("m", "regex", "Request method", _method, binary=True),
    # regex argument, searched in text
    _Operator("d", "regex", "Request host, or the host the client asked for", _domain),
    _Operator("u", "regex", "URL (a regex without operator means the same)", _url),
    _Operator("src", "regex", 'Client address, as "host:port"', _src),
    _Operator("dst", "regex", 'Server address, as "host:port"', _dst),
    _Operator("marker", "regex", "Marker of a marked flow", _marker),
    _Operator("comment", "regex", "Flow comment", _comment, flags=re.MULTILINE),
    _Operator("meta", "regex", 'Flow metadata, as "key: value" lines', _meta, flags=re.MULTILINE),
    # integer argument
    _Operator("c", "int", "HTTP response status code", _status_code),
]
OPERATORS: dict[str, _Operator] = {op.code: op for op in _OPERATOR_LIST}

help: list[tuple[str, str]] = sorted((op.syntax, op.description) for op in _OPERATOR_LIST)
help.extend(
    [
        ("!", "not: the expression after it does not match"),
        ("&", "and: both sides match (also the meaning of terms written side by side)"),
        ("|", "or: either side matches"),
        ("(...)", "grouping"),
    ]
)


# ---------------------------------------------------------------------------
# Tokenizer


@dataclass(frozen=True)
class Token:
    """One lexical unit.

    ``kind`` is one of ``( ) ! & |``, ``op`` (``text`` is the operator code,
    ``arg`` its argument if it takes one), ``word`` (a bare regex in ``text``)
    or ``end``.  ``pos`` is where it starts; ``arg_pos`` where the argument does.
    """

    kind: str
    pos: int
    text: str = ""
    quoted: bool = False
    arg: str | None = None
    arg_pos: int = 0
    arg_quoted: bool = False


class _Lexer:
    def __init__(self, expr: str) -> None:
        self.expr = expr
        self.i = 0

    def error(self, reason: str, pos: int) -> FilterError:
        return FilterError(reason, self.expr, pos)

    def skip_whitespace(self) -> None:
        expr, i = self.expr, self.i
        while i < len(expr) and expr[i] in _WHITESPACE:
            i += 1
        self.i = i

    def quoted(self) -> str:
        expr, start = self.expr, self.i
        quote_char = expr[start]
        out: list[str] = []
        i = start + 1
        while i < len(expr):
            c = expr[i]
            if c == "\\":
                if i + 1 >= len(expr):
                    break
                nxt = expr[i + 1]
                out.append(_QUOTE_ESCAPES.get(nxt, nxt))
                i += 2
            elif c == quote_char:
                self.i = i + 1
                return "".join(out)
            else:
                out.append(c)
                i += 1
        raise self.error(f"unterminated {quote_char} quote", start)

    def run(self, stop: frozenset[str]) -> str:
        expr, start = self.expr, self.i
        i = start
        while i < len(expr) and expr[i] not in stop:
            i += 1
        self.i = i
        return expr[start:i]

    def operator(self) -> Token:
        start = self.i
        self.i += 1
        name = self.run(_NAME_STOP)
        op = OPERATORS.get(name)
        if op is None:
            if not name:
                raise self.error("'~' must be followed by an operator name", start)
            raise self.error(self._unknown(name), start)
        if not op.arg:
            return Token("op", start, name)
        self.skip_whitespace()
        arg_pos = self.i
        if arg_pos >= len(self.expr) or self.expr[arg_pos] in "()~":
            kind = "an integer" if op.arg == "int" else "a regular expression"
            raise self.error(f"~{name} needs {kind} as argument", arg_pos)
        if self.expr[arg_pos] in "'\"":
            return Token("op", start, name, arg=self.quoted(), arg_pos=arg_pos, arg_quoted=True)
        return Token("op", start, name, arg=self.run(_WORD_STOP), arg_pos=arg_pos)

    @staticmethod
    def _unknown(name: str) -> str:
        for code, op in sorted(OPERATORS.items(), key=lambda item: -len(item[0])):
            if op.arg and name.startswith(code) and len(name) > len(code):
                return (
                    f"unknown operator '~{name}' (separate operator and argument "
                    f"with a space: '~{code} {name[len(code) :]}')"
                )
        return f"unknown operator '~{name}'"

    def tokens(self) -> list[Token]:
        result: list[Token] = []
        expr = self.expr
        while True:
            self.skip_whitespace()
            if self.i >= len(expr):
                result.append(Token("end", len(expr)))
                return result
            c, pos = expr[self.i], self.i
            if c in "()!&|":
                self.i += 1
                result.append(Token(c, pos))
            elif c == "~":
                result.append(self.operator())
            elif c in "'\"":
                result.append(Token("word", pos, self.quoted(), quoted=True))
            else:
                result.append(Token("word", pos, self.run(_WORD_STOP)))


def tokenize(expr: str) -> list[Token]:
    """Split ``expr`` into tokens (the last one is always ``end``); FilterError if it cannot."""
    return _Lexer(expr).tokens()


# ---------------------------------------------------------------------------
# Parser


def _ignore_case() -> int:
    return 0 if os.environ.get(CASE_SENSITIVE_ENV) == "1" else re.IGNORECASE


class _Parser:
    """Recursive descent over the token list.

    sequence := or+                      (side by side: and)
    or       := and ("|" and)*
    and      := not ("&" not)*
    not      := "!"* atom
    atom     := "(" sequence ")" | operator | word
    """

    def __init__(self, expr: str, tokens: list[Token]) -> None:
        self.expr = expr
        self.tokens = tokens
        self.index = 0

    def error(self, reason: str, pos: int) -> FilterError:
        return FilterError(reason, self.expr, pos)

    def peek(self) -> Token:
        return self.tokens[self.index]

    def next(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def parse(self) -> Filter:
        if self.peek().kind == "end":
            raise self.error("empty filter expression", 0)
        result = self.sequence(0)
        token = self.peek()
        if token.kind == ")":
            raise self.error("unbalanced ')' without matching '('", token.pos)
        return result

    def sequence(self, depth: int) -> Filter:
        items: list[Filter] = []
        while self.peek().kind not in ("end", ")"):
            items.append(self.or_(depth))
        return items[0] if len(items) == 1 else And(items)

    def or_(self, depth: int) -> Filter:
        items = [self.and_(depth)]
        while self.peek().kind == "|":
            self.operand_after(self.next())
            items.append(self.and_(depth))
        return items[0] if len(items) == 1 else Or(items)

    def and_(self, depth: int) -> Filter:
        items = [self.not_(depth)]
        while self.peek().kind == "&":
            self.operand_after(self.next())
            items.append(self.not_(depth))
        return items[0] if len(items) == 1 else And(items)

    def operand_after(self, operator: Token) -> None:
        token = self.peek()
        if token.kind in ("end", ")", "&", "|"):
            raise self.error(f"missing operand after '{operator.kind}'", token.pos)

    def not_(self, depth: int) -> Filter:
        count = 0
        while self.peek().kind == "!":
            token = self.next()
            self.operand_after(token)
            count += 1
            if depth + count > MAX_NESTING:
                raise self.error(f"expression nested deeper than {MAX_NESTING}", token.pos)
        result = self.atom(depth + count)
        for _ in range(count):
            result = Not(result)
        return result

    def atom(self, depth: int) -> Filter:
        token = self.next()
        if token.kind == "(":
            if depth >= MAX_NESTING:
                raise self.error(f"expression nested deeper than {MAX_NESTING}", token.pos)
            if self.peek().kind == ")":
                raise self.error("empty parentheses", token.pos)
            inner = self.sequence(depth + 1)
            if self.peek().kind != ")":
                raise self.error("unbalanced '(' without matching ')'", token.pos)
            self.next()
            return inner
        if token.kind == "op":
            return self.leaf(token)
        if token.kind == "word":
            return self.regex(OPERATORS["u"], token.text, token.pos, token.quoted)
        if token.kind == "end":
            raise self.error("expected a filter expression", token.pos)
        if token.kind == ")":
            raise self.error("unbalanced ')' without matching '('", token.pos)
        raise self.error(f"expected a filter expression before '{token.kind}'", token.pos)

    def leaf(self, token: Token) -> Filter:
        op = OPERATORS[token.text]
        if op.arg == "regex":
            assert token.arg is not None
            return self.regex(op, token.arg, token.arg_pos, token.arg_quoted)
        if op.arg == "int":
            assert token.arg is not None
            if token.arg_quoted or not token.arg or not set(token.arg) <= _DIGITS:
                raise self.error(f"~{op.code} needs an integer, not {token.arg!r}", token.arg_pos)
            try:
                num = int(token.arg)
            except ValueError as e:  # more digits than int() converts
                raise self.error(f"bad integer: {e}", token.arg_pos) from None
            return _predicate_class(op.code, IntPredicate)(op, num)  # type: ignore[call-arg]  # the class _predicate_class makes takes the operand
        return _predicate_class(op.code, Predicate)(op)

    def regex(self, op: _Operator, expr: str, pos: int, quoted: bool) -> Filter:
        flags = op.flags | _ignore_case()
        try:
            pattern: str | bytes = expr.encode("utf-8") if op.binary else expr
            compiled = saferegex.compile(pattern, flags)
        except re.error as e:
            # Inside an unquoted argument the regex offset maps straight onto the input.
            exact = not quoted and (not op.binary or expr.isascii())
            where = pos + e.pos if e.pos is not None and exact else pos
            raise self.error(f"invalid regular expression {expr!r}: {e.msg}", where) from None
        except saferegex.SlowPatternError as e:
            raise self.error(f"regular expression {expr!r} refused: {e}", pos) from None
        except Exception as e:  # unencodable text, overflowing repeats, deep nesting...
            raise self.error(f"invalid regular expression {expr!r}: {e}", pos) from None
        return _predicate_class(op.code, RegexPredicate)(op, expr, compiled)  # type: ignore[call-arg]  # as above: the made class takes the pattern


def parse(expr: str) -> Filter:
    """Compile a filter expression; raise FilterError (a ValueError) if it is not valid."""
    if not isinstance(expr, str):
        raise TypeError(f"filter expression must be str, not {type(expr).__name__}")
    if expr == "":
        raise FilterError("empty filter expression", expr, 0)
    result = _Parser(expr, tokenize(expr)).parse()
    result.pattern = expr
    return result


def parse_option(expression: str | None) -> Filter | None:
    """A filter option's value compiled: None when unset or empty (every flow), OptionsError if invalid."""
    if not expression:
        return None
    try:
        return parse(expression)
    except FilterError as e:
        raise OptionsError(str(e)) from None


def match(flt: str | Filter | Callable[[Flow], bool] | None, flow: Flow) -> bool:
    """Whether ``flow`` matches ``flt`` (an expression, a compiled filter, or None for "all")."""
    if isinstance(flt, str):
        flt = parse(flt)
    if flt is None:
        return True
    return bool(flt(flow))


match_all: Filter = parse("~all")
# Every operator's class exists from the start (``from mitmproxy.flowfilter import FUrl``).
for _op in _OPERATOR_LIST:
    _predicate_class(_op.code, {"": Predicate, "regex": RegexPredicate, "int": IntPredicate}[_op.arg])


# mitmproxy's names: scripts annotate with TFilter; FAnd/FOr/FNot are its junction classes.
TFilter = Filter
FAnd = And
FOr = Or
FNot = Not


# str(filter): mitmproxy's wording -----------------------------------------------------------

_WORDS = {
    "all": "all flows", "a": "is asset", "e": "has error", "marked": "is marked",
    "http": "is an HTTP Flow", "websocket": "is a Websocket Flow", "tcp": "is a TCP Flow",
    "udp": "is a UDP Flow", "dns": "is a DNS Flow", "q": "has no response", "s": "has response",
    "replay": "flow has been replayed", "replayq": "request has been replayed",
    "replays": "response has been replayed",
    "t": "content type", "tq": "req. content type", "ts": "resp. content type",
    "h": "header", "hq": "req. header", "hs": "resp. header",
    "b": "body", "bq": "body request", "bs": "body response",
    "m": "method", "d": "domain", "u": "url", "src": "source address",
    "dst": "destination address", "meta": "flow metadata", "marker": "marker",
    "comment": "comment", "c": "response code is",
}
_FLAG_LETTERS = ((re.IGNORECASE, "i"), (re.MULTILINE, "m"), (re.DOTALL, "s"))


def describe(f: Filter) -> str:
    """``f`` in words; junctions inside others are parenthesised."""

    def inner(child: Filter) -> str:
        return f"({describe(child)})" if isinstance(child, _Junction) else describe(child)

    if isinstance(f, _Junction):
        return (" and " if isinstance(f, And) else " or ").join(inner(c) for c in f.filters)
    if isinstance(f, Not):
        return f"not {inner(f.filter)}"
    if isinstance(f, Predicate) and f.code in _WORDS:
        words = _WORDS[f.code]
        if isinstance(f, RegexPredicate):
            flags = "".join(letter for flag, letter in _FLAG_LETTERS if f.regex.flags & flag)
            return f"{words} matches /{f.expr}/{flags}"
        if isinstance(f, IntPredicate):
            return f"{words} {f.num}"
        return words
    return repr(f)


def print_tree(f: Filter, indent: int = 0, fp: Any = None) -> None:
    """``f`` as a tree: "&", "|" and "!" nodes with their children indented by a tab."""
    out = fp if fp is not None else sys.stdout
    pad = "\t" * indent
    if isinstance(f, _Junction):
        print(pad + f._symbol.strip(), file=out)
        for child in f.filters:
            print_tree(child, indent + 1, out)
    elif isinstance(f, Not):
        print(pad + "!", file=out)
        print_tree(f.filter, indent + 1, out)
    else:
        print(pad + f.render(), file=out)
