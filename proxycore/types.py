"""Command argument types: what a command parameter accepts and how it is parsed from text.

The names match mitmproxy's ``mitmproxy.types`` so that addon scripts can annotate
``path: types.Path``, ``cuts: types.CutSpec`` or ``marker: types.Marker`` unchanged.
Each type has a handler with the ``display`` name the command catalogue shows
(``flow[]``, ``cut[]``, ``path``...), a ``parse`` from one command-line word and an
``is_valid`` check for values a command returns.
"""

from __future__ import annotations

import codecs
import os
import pathlib
import re
import typing
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from proxycore import flow as flowmod
from proxycore.exceptions import CommandError
from proxycore.utils import emoji

if TYPE_CHECKING:
    from proxycore.command import CommandManager


class Path(str):
    """A file system path; ``~`` is expanded when parsed."""

    display = "path"


class Cmd(str):
    """The name of a command."""

    display = "cmd"


class CmdArgs(str):
    """The arguments following a command name."""

    display = "arg"


class Unknown(str):
    """A word that no parameter expects."""

    display = "unknown"


class Space(str):
    """Whitespace between words."""

    display = "space"


class CutSpec(Sequence[str]):
    """Comma-separated cut specifications such as ``request.method,response.status_code``."""

    display = "cut[]"


class Data(Sequence[Sequence[str | bytes]]):
    """Rows of cells (str or bytes): what ``cut`` returns."""

    display = "data[][]"


class Marker(str):
    """A flow marker: an emoji name like ``:red_circle:``, a letter or digit, true or false."""

    display = "marker"


class Choice:
    """One of the values the command ``options_command`` returns (e.g. ``flow.set.options``)."""

    display = "choice"

    def __init__(self, options_command: str) -> None:
        self.options_command = options_command

    def __repr__(self) -> str:
        return f"Choice({self.options_command!r})"

    def __instancecheck__(self, instance: Any) -> bool:
        return False  # values are always checked against the options command instead



# Markers a command accepts: "true" and "false" (the default marker / none) and every name;
# made with the marker table, at the first use (``__getattr__`` below).
ALL_MARKERS: list[str]


def _all_markers() -> list[str]:
    value: list[str] | None = globals().get("ALL_MARKERS")
    if value is None:
        value = globals()["ALL_MARKERS"] = ["true", "false", *emoji.markers()]
    return value


def __getattr__(name: str) -> Any:
    if name == "ALL_MARKERS":
        return _all_markers()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

# Cut specifications that completion offers; any attribute path works.
CUT_PREFIXES: tuple[str, ...] = (
    "request.method",
    "request.scheme",
    "request.host",
    "request.http_version",
    "request.port",
    "request.path",
    "request.url",
    "request.text",
    "request.content",
    "request.raw_content",
    "request.timestamp_start",
    "request.timestamp_end",
    "request.header[",
    "response.status_code",
    "response.reason",
    "response.text",
    "response.content",
    "response.timestamp_start",
    "response.timestamp_end",
    "response.raw_content",
    "response.header[",
    "client_conn.peername.port",
    "client_conn.peername.host",
    "client_conn.tls_version",
    "client_conn.sni",
    "client_conn.tls_established",
    "server_conn.address.port",
    "server_conn.address.host",
    "server_conn.ip_address.host",
    "server_conn.tls_version",
    "server_conn.sni",
    "server_conn.tls_established",
)

_ESCAPE = re.compile(
    r"""\\(?:[\\'"abfnrtv]|[0-7]{1,3}|x..|N\{[^}]+\}|u....|U........)""",
)


def unescape(text: str) -> str:
    """Python string escapes (``\\n``, ``\\x41``, ``\\u00e9``...) in a command word, decoded."""

    def decode(match: re.Match[str]) -> str:
        try:
            return codecs.decode(match.group(0), "unicode-escape")
        except UnicodeDecodeError as e:
            raise ValueError(f"Invalid escape sequence {match.group(0)!r}") from e

    return _ESCAPE.sub(decode, text)


def escaped_to_bytes(text: str) -> bytes:
    """A command word with byte escapes (``\\x00``) as bytes."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # "\\8" stays as it is
            return codecs.escape_decode(text.encode("utf-8", "surrogateescape"))[0]
    except ValueError as e:
        raise ValueError(f"Invalid escape sequence: {e}") from e


def _is_flow_type(t: Any) -> bool:
    return isinstance(t, type) and issubclass(t, flowmod.Flow)


def _is_str_seq(value: Any) -> bool:
    if isinstance(value, (str, bytes)):
        return False
    try:
        return all(isinstance(v, str) for v in value)
    except TypeError:
        return False


def _is_flows(value: Any) -> bool:
    try:
        return all(isinstance(v, flowmod.Flow) for v in value)
    except TypeError:
        return False


def _is_data(value: Any) -> bool:
    try:
        return all(isinstance(cell, (str, bytes)) for row in value for cell in row)
    except TypeError:
        return False


def _parse_bool(manager: CommandManager, t: Any, s: str) -> bool:
    if s == "true":
        return True
    if s == "false":
        return False
    raise ValueError(f"Booleans are 'true' or 'false', got {s}")


def _resolve(manager: CommandManager, s: str) -> Sequence[flowmod.Flow]:
    try:
        return manager.call_strings("view.flows.resolve", [s])
    except CommandError as e:
        raise ValueError(str(e)) from e


def _parse_flow(manager: CommandManager, t: Any, s: str) -> flowmod.Flow:
    flows = _resolve(manager, s)
    if len(flows) != 1:
        raise ValueError(f"Command requires one flow, specification matched {len(flows)}.")
    return flows[0]


def _parse_choice(manager: CommandManager, t: Choice, s: str) -> str:
    if s not in manager.execute(t.options_command):
        raise ValueError("Invalid choice.")
    return s


def _choice_valid(manager: CommandManager, t: Choice, value: Any) -> bool:
    try:
        return value in manager.execute(t.options_command)
    except CommandError:
        return False


def _parse_marker(manager: CommandManager, t: Any, s: str) -> str:
    if s == "true":
        return ":default:"
    if s == "false":
        return ""
    if s not in emoji.markers():
        raise ValueError("Invalid choice.")
    return s


def _no_parse(manager: CommandManager, t: Any, s: str) -> Any:
    raise ValueError("data cannot be passed as argument")


def _parse_cmd(manager: CommandManager, t: Any, s: str) -> str:
    if s not in manager.commands:
        raise ValueError(f"Unknown command: {s}")
    return s


class TypeHandler(typing.NamedTuple):
    display: str
    parse: Callable[[CommandManager, Any, str], Any]
    is_valid: Callable[[CommandManager, Any, Any], bool]


def _of(cls: type | tuple[type, ...]) -> Callable[[CommandManager, Any, Any], bool]:
    return lambda manager, t, value: isinstance(value, cls)


# Keyed by annotation; flows and sequences are matched by handler() below.
_HANDLERS: dict[Any, TypeHandler] = {
    str: TypeHandler("str", lambda m, t, s: unescape(s), _of(str)),
    int: TypeHandler("int", lambda m, t, s: int(s), lambda m, t, v: isinstance(v, int) and not isinstance(v, bool)),
    bool: TypeHandler("bool", _parse_bool, lambda m, t, v: v in (True, False)),
    bytes: TypeHandler("bytes", lambda m, t, s: escaped_to_bytes(s), _of(bytes)),
    Path: TypeHandler("path", lambda m, t, s: Path(os.path.expanduser(s)), _of(str)),
    # Addons written for proxycore may use pathlib; they get a pathlib.Path.
    pathlib.Path: TypeHandler(
        "path", lambda m, t, s: pathlib.Path(os.path.expanduser(s)), _of((str, os.PathLike))
    ),
    Cmd: TypeHandler("cmd", _parse_cmd, lambda m, t, v: v in m.commands),
    CmdArgs: TypeHandler("arg", lambda m, t, s: s, _of(str)),
    Unknown: TypeHandler("unknown", lambda m, t, s: s, lambda m, t, v: False),
    Space: TypeHandler("space", lambda m, t, s: s, _of(str)),
    Marker: TypeHandler("marker", _parse_marker, lambda m, t, v: v in _all_markers()),
    CutSpec: TypeHandler("cut[]", lambda m, t, s: s.split(","), lambda m, t, v: _is_str_seq(v)),
    Data: TypeHandler("data[][]", _no_parse, lambda m, t, v: _is_data(v)),
    Choice: TypeHandler("choice", _parse_choice, _choice_valid),
    "flow": TypeHandler("flow", _parse_flow, _of(flowmod.Flow)),
    "flow[]": TypeHandler("flow[]", lambda m, t, s: _resolve(m, s), lambda m, t, v: _is_flows(v)),
    "str[]": TypeHandler(
        "str[]", lambda m, t, s: [x.strip() for x in s.split(",")], lambda m, t, v: _is_str_seq(v)
    ),
}

_SEQUENCE_ORIGINS = (list, tuple, Sequence, typing.Sequence)


def handler(t: Any) -> TypeHandler | None:
    """The handler for annotation ``t``, or None if commands cannot take or return it."""
    if isinstance(t, Choice):
        return _HANDLERS[Choice]
    if _is_flow_type(t):
        return _HANDLERS["flow"]
    if typing.get_origin(t) in _SEQUENCE_ORIGINS:
        args = typing.get_args(t)
        inner = args[0] if args else str
        if _is_flow_type(inner):
            return _HANDLERS["flow[]"]
        if inner is str:
            return _HANDLERS["str[]"]
        if typing.get_origin(inner) in _SEQUENCE_ORIGINS:
            return _HANDLERS[Data]
        return None
    try:
        return _HANDLERS.get(t)
    except TypeError:  # unhashable annotation
        return None


def typename(t: Any) -> str:
    """The catalogue name of annotation ``t`` (``flow[]``, ``cut[]``...)."""
    found = handler(t)
    if found is None:
        raise CommandError(f"unsupported type: {getattr(t, '__name__', t)}")
    return found.display
