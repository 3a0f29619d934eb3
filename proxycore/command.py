"""Commands: addon methods callable by name, with arguments given as values or as text.

``@command("name")`` marks a method; the CommandManager collects marked methods when
an addon is added. Every parameter needs a type annotation that ``proxycore.types``
knows (str, int, bool, bytes, Path, Flow, Sequence[Flow], CutSpec, Marker, Choice...):
``call_strings`` parses one text word per parameter with that type, as mitmproxy does,
so ``@all`` or a filter expression becomes a list of flows (through ``view.flows.resolve``)
and ``a,b`` becomes a list of strings.
"""

from __future__ import annotations

import functools
import inspect
import logging
import re
import textwrap
import typing
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from proxycore import types
from proxycore.exceptions import CommandError

logger = logging.getLogger("proxycore.command")


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an addon method as the command ``name`` (default: its name with _ as .).

    Calling the method with arguments that do not fit its signature raises
    CommandError instead of TypeError.
    """

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        signature: inspect.Signature | None = None  # read at the first call, not at import

        @functools.wraps(func)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            nonlocal signature
            if signature is None:
                signature = inspect.signature(func)
            try:
                signature.bind(*args, **kwargs)
            except TypeError as e:
                raise CommandError(f"command argument mismatch: {e.args[0]}") from None
            return func(*args, **kwargs)

        # a function may carry attributes; typeshed's Callable declares none
        wrapper.command_name = name or func.__name__.replace("_", ".")  # type: ignore[attr-defined]
        return wrapper

    return decorator


def argument(name: str, type: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Set the type of one argument to something an annotation cannot say, e.g. a Choice."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__annotations__[name] = type
        return func

    return decorator


def typename(t: Any) -> str:
    """The catalogue name of a type (``flow[]``, ``path``...); CommandError if unsupported."""
    return types.typename(t)


class CommandParameter(NamedTuple):
    name: str
    type: Any
    kind: inspect._ParameterKind = inspect.Parameter.POSITIONAL_OR_KEYWORD

    def __str__(self) -> str:
        return f"*{self.name}" if self.kind is inspect.Parameter.VAR_POSITIONAL else self.name


class Command:
    """One command: its resolved signature, help text and argument parsing."""

    def __init__(self, manager: CommandManager, name: str, func: Callable[..., Any]) -> None:
        self.manager = manager
        self.name = name
        self.func = func
        self.signature = inspect.signature(func)
        try:
            hints = typing.get_type_hints(func)
        except Exception as e:
            raise CommandError(f"Cannot read the type annotations of {name}: {e}") from e
        doc = inspect.getdoc(func)
        self.help: str | None = "\n".join(textwrap.wrap(doc.strip())) if doc else None
        self.parameters: list[CommandParameter] = []
        for param in self.signature.parameters.values():
            t = hints.get(param.name, param.annotation)
            if types.handler(t) is None:
                raise CommandError(f"Argument {param.name} has an unknown type {t} in {func}.")
            self.parameters.append(CommandParameter(param.name, t, param.kind))
        returns = hints.get("return", self.signature.return_annotation)
        self.return_type: Any = None if returns in (inspect.Signature.empty, None, type(None)) else returns
        if self.return_type is not None and types.handler(self.return_type) is None:
            raise CommandError(f"Return type has an unknown type ({self.return_type}) in {func}.")

    def signature_help(self) -> str:
        params = " ".join(str(p) for p in self.parameters)
        returns = f" -> {typename(self.return_type)}" if self.return_type is not None else ""
        return f"{self.name} {params}{returns}"

    def prepare_args(self, args: Sequence[str]) -> list[Any]:
        """Parse one word per parameter (all remaining words for ``*args``)."""
        try:
            self.signature.bind(*args)
        except TypeError:
            raise CommandError(
                f"Command argument mismatch: \n    Expected: {self.signature.parameters}\n    Received: {list(args)}"
            ) from None
        values: list[Any] = []
        remaining = list(args)
        for param in self.parameters:
            if not remaining:
                break
            if param.kind is inspect.Parameter.VAR_POSITIONAL:
                values.extend(parsearg(self.manager, word, param.type) for word in remaining)
                remaining = []
            else:
                values.append(parsearg(self.manager, remaining.pop(0), param.type))
        return values

    def call(self, args: Sequence[str]) -> Any:
        """Run with text arguments; the result is checked against the return annotation."""
        result = self.func(*self.prepare_args(args))
        if result is None and self.return_type is None:
            return None
        found = types.handler(self.return_type)
        if found is None or not found.is_valid(self.manager, self.return_type, result):
            display = found.display if found else "nothing"
            raise CommandError(f"{self.name} returned unexpected data - expected {display}")
        return result


def parsearg(manager: CommandManager, word: str, t: Any) -> Any:
    """Convert one command word to type ``t``; CommandError with the reason if it does not fit."""
    found = types.handler(t)
    if found is None:
        raise CommandError(f"Unsupported argument type: {t}")
    try:
        return found.parse(manager, t, word)
    except ValueError as e:
        raise CommandError(str(e)) from e


# A command line: quoted strings (the closing quote may be missing), whitespace runs, and
# runs of anything else. Adjacent pieces stay separate words, as in mitmproxy.
_LEXER = re.compile(r""""[^"]*(?:"|$)|'[^']*(?:'|$)|[ \r\n\t]+|[^'" \r\n\t]+""")


def lex(cmdstr: str) -> list[str]:
    """Split a command line into its pieces, whitespace included."""
    return _LEXER.findall(cmdstr)


def words(cmdstr: str) -> list[str]:
    """The words of a command line: pieces that are not whitespace, unquoted."""
    return [unquote(p) for p in lex(cmdstr) if p.strip(" \r\n\t")]


def quote(word: str) -> str:
    """Quote a word so that ``lex`` gives it back as one piece."""
    if word and not any(c in word for c in "'\" \r\n\t"):
        return word
    if '"' not in word:
        return f'"{word}"'
    if "'" not in word:
        return f"'{word}'"
    return '"' + word.replace('"', r"\x22") + '"'


def unquote(word: str) -> str:
    if len(word) > 1 and word[0] in "'\"" and word[0] == word[-1]:
        return word[1:-1]
    return word


class CommandManager:
    def __init__(self, master: Any) -> None:
        self.master = master
        # name -> the callable (bound method); Command objects are made from it on demand.
        self.commands: dict[str, Callable[..., Any]] = {}

    def collect_commands(self, addon: Any) -> None:
        for attr in dir(addon):
            if attr.startswith("__"):
                continue
            try:
                value = getattr(addon, attr)
                name = getattr(value, "command_name", None)
            except Exception:
                continue  # a property or __getattr__ that raises is not a command
            if isinstance(name, str) and callable(value):
                try:
                    self.add(name, value)
                except CommandError as e:
                    logger.warning(f"Could not load command {name}: {e}")

    def add(self, path: str, func: Callable[..., Any]) -> None:
        module = getattr(func, "__module__", None)  # None for code exec'd without a __name__
        if not (isinstance(module, str) and module.startswith("proxycore.")):
            # A script's command is checked now, as mitmproxy does: one with a type no handler
            # knows is refused with a warning.  proxycore's own are known good (tests/model/
            # test_commands.py describes each), and checking them cost every start ~3 ms.
            Command(self, path, func)  # raises CommandError for unsupported types
        self.commands[path] = func

    def get(self, path: str) -> Callable[..., Any]:
        try:
            return self.commands[path]
        except KeyError:
            raise CommandError(f"Unknown command: {path}") from None

    def get_command(self, path: str) -> Command:
        return Command(self, path, self.get(path))

    def keys(self) -> list[str]:
        return sorted(self.commands)

    def call(self, path: str, *args: Any) -> Any:
        """Call a command with values (flows, lists...), not text."""
        return self.get(path)(*args)

    def call_strings(self, path: str, args: Sequence[str]) -> Any:
        """Call a command with one text word per parameter, parsed by type."""
        return self.get_command(path).call(args)

    def execute(self, cmdstr: str) -> Any:
        """Run a command line such as ``flow.mark @all :red_circle:``."""
        parts = words(cmdstr)
        if not parts:
            raise CommandError(f"Invalid command: {cmdstr!r}")
        return self.call_strings(parts[0], parts[1:])

    def dump(self) -> str:
        """Every command with its help as comments, as ``--commands`` prints it."""
        lines: list[str] = []
        described = [self.get_command(name) for name in self.commands]
        for cmd in sorted(described, key=lambda c: c.signature_help()):
            lines.extend(f"# {line}" for line in (cmd.help or "").splitlines())
            lines.append(cmd.signature_help())
            lines.append("")
        return "\n".join(lines)
