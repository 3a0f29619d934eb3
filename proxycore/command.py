"""Commands: addon methods callable by name, with arguments given as strings or values."""

from __future__ import annotations

import inspect
import pathlib
import shlex
import typing
from collections.abc import Callable, Sequence
from typing import Any

from proxycore.exceptions import CommandError


def command(name: str | None = None) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Mark an addon method as the command ``name`` (default: its name with _ as .)."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func.command_name = name or func.__name__.replace("_", ".")  # type: ignore[attr-defined]
        return func

    return decorator


def argument(name: str, type: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Override the type of one argument (e.g. a choice); kept for mitmproxy compatibility."""

    def decorator(func: Callable[..., Any]) -> Callable[..., Any]:
        func.__annotations__[name] = type
        return func

    return decorator


class CommandManager:
    def __init__(self, master: Any) -> None:
        self.master = master
        self.commands: dict[str, Callable[..., Any]] = {}

    def collect_commands(self, addon: Any) -> None:
        for attr in dir(addon):
            if attr.startswith("__"):
                continue
            try:
                value = getattr(addon, attr)
            except Exception:
                continue
            name = getattr(value, "command_name", None)
            if isinstance(name, str) and callable(value):
                self.add(name, value)

    def add(self, path: str, func: Callable[..., Any]) -> None:
        self.commands[path] = func

    def get(self, path: str) -> Callable[..., Any]:
        try:
            return self.commands[path]
        except KeyError:
            raise CommandError(f"Unknown command: {path}") from None

    def keys(self) -> list[str]:
        return sorted(self.commands)

    def call(self, path: str, *args: Any) -> Any:
        return self.get(path)(*args)

    def call_strings(self, path: str, args: Sequence[str]) -> Any:
        func = self.get(path)
        params = list(inspect.signature(func).parameters.values())
        hints = typing.get_type_hints(func)
        converted: list[Any] = []
        remaining = list(args)
        for param in params:
            hint = hints.get(param.name, str)
            if param.kind is param.VAR_POSITIONAL:
                converted.extend(self._convert(path, hint, a) for a in remaining)
                remaining = []
                break
            if not remaining:
                if param.default is param.empty:
                    raise CommandError(f"{path}: missing argument {param.name}")
                break
            if _is_sequence(hint) and param is params[-1]:
                converted.append(self._convert(path, hint, remaining))
                remaining = []
            else:
                converted.append(self._convert(path, hint, remaining.pop(0)))
        if remaining:
            raise CommandError(f"{path}: too many arguments")
        return func(*converted)

    def execute(self, cmdstr: str) -> Any:
        parts = shlex.split(cmdstr)
        if not parts:
            raise CommandError("No command given")
        return self.call_strings(parts[0], parts[1:])

    def _convert(self, path: str, hint: Any, value: Any) -> Any:
        from proxycore.flow import Flow

        if _is_sequence(hint):
            (inner,) = typing.get_args(hint) or (str,)
            values = value if isinstance(value, list) else [value]
            if inner is Flow or (isinstance(inner, type) and issubclass(inner, Flow)):
                return self._resolve_flows(path, values)
            return [self._convert(path, inner, v) for v in values]
        if hint is Flow or (isinstance(hint, type) and issubclass(hint, Flow)):
            flows = self._resolve_flows(path, [value])
            if len(flows) != 1:
                raise CommandError(f"{path}: expected exactly one flow for {value!r}")
            return flows[0]
        try:
            if hint is bool:
                if value.lower() not in ("true", "false"):
                    raise ValueError
                return value.lower() == "true"
            if hint is int:
                return int(value)
            if hint is bytes:
                return value.encode()
            if hint is pathlib.Path:
                return pathlib.Path(value).expanduser()
        except ValueError:
            raise CommandError(f"{path}: invalid {getattr(hint, '__name__', hint)} value {value!r}") from None
        return value

    def _resolve_flows(self, path: str, specs: list[str]) -> list[Any]:
        view = getattr(self.master, "view", None)
        if view is None:
            raise CommandError(f"{path}: no flow view to resolve {specs!r}")
        flows: list[Any] = []
        for spec in specs:
            flows.extend(view.resolve(spec))
        return flows

    def dump(self) -> str:
        lines = []
        for name in self.keys():
            func = self.commands[name]
            params = " ".join(inspect.signature(func).parameters)
            doc = (inspect.getdoc(func) or "").splitlines()
            lines.append(f"{name} {params}".rstrip())
            if doc:
                lines.append(f"    {doc[0]}")
        return "\n".join(lines)


def _is_sequence(hint: Any) -> bool:
    return typing.get_origin(hint) in (list, Sequence, typing.Sequence, tuple)
