"""Typed options declared by addons, changed as a transaction, observed by subscribers."""

from __future__ import annotations

import copy
import os
import pathlib
import typing
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from proxycore.exceptions import OptionsError

T = TypeVar("T")


@dataclass
class _Option:
    name: str
    typespec: Any
    default: Any
    help: str
    choices: Sequence[str] | None
    value: Any
    check: Callable[[Any], None] | None = None

    def current(self) -> Any:
        return copy.copy(self.value) if isinstance(self.value, list) else self.value


_NO_OPTIONS: dict[str, _Option] = {}


def _type_name(typespec: Any) -> str:
    inner = _optional_inner(typespec)
    if inner is not None:
        return f"optional {_type_name(inner)}"
    if _is_sequence(typespec):
        return "sequence of str"
    return getattr(typespec, "__name__", None) or str(typespec)


def _optional_inner(typespec: Any) -> Any | None:
    """``X`` for ``Optional[X]`` / ``X | None``, else None."""
    args = typing.get_args(typespec)
    if args and type(None) in args and len(args) == 2:
        return next(a for a in args if a is not type(None))
    return None


def _is_sequence(typespec: Any) -> bool:
    origin = typing.get_origin(typespec)
    return origin in (list, Sequence, typing.Sequence) or typespec in (list, Sequence)


def check_value(name: str, typespec: Any, value: Any) -> Any:
    """Return ``value`` converted to the canonical form for ``typespec``, or raise OptionsError."""
    inner = _optional_inner(typespec)
    if inner is not None:
        return None if value is None else check_value(name, inner, value)
    if _is_sequence(typespec):
        if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
            raise OptionsError(f"Expected a sequence of strings for {name}, got {value!r}")
        items = list(value)
        if not all(isinstance(i, str) for i in items):
            raise OptionsError(f"Expected a sequence of strings for {name}, got {value!r}")
        return items
    if typespec is bool:
        if not isinstance(value, bool):
            raise OptionsError(f"Expected bool for {name}, got {value!r}")
        return value
    if typespec is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise OptionsError(f"Expected int for {name}, got {value!r}")
        return value
    if typespec is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise OptionsError(f"Expected float for {name}, got {value!r}")
        return float(value)
    if typespec is str:
        if not isinstance(value, str):
            raise OptionsError(f"Expected str for {name}, got {value!r}")
        return value
    return value


def in_range(low: int, high: int | None = None) -> Callable[[Any], None]:
    """A ``check`` for ``add_option``: a number from ``low`` to ``high`` (no upper bound if None)."""

    def check(value: Any) -> None:
        if value < low or (high is not None and value > high):
            raise ValueError(f"must be {low} or more" if high is None else f"must be from {low} to {high}")

    return check


PORT = in_range(0, 65535)


class _SetSpecs(list):
    """Raw ``--set`` values kept for an option no addon has declared yet."""


class OptManager:
    """A set of typed options.

    Reading an attribute returns the value (a copy for lists); assigning one is
    ``update``.  ``update`` checks types and choices, then tells every listener;
    if a listener raises OptionsError, every value goes back to what it was.
    """

    def __init__(self) -> None:
        object.__setattr__(self, "_options", {})
        object.__setattr__(self, "_deferred", {})
        object.__setattr__(self, "changed", [])  # callables taking the set of changed names
        object.__setattr__(self, "_subscribers", [])
        object.__setattr__(self, "_derived", {})  # see derived()

    # declaration -------------------------------------------------------------

    def add_option(
        self,
        name: str,
        typespec: Any,
        default: Any,
        help: str,
        choices: Sequence[str] | None = None,
        check: Callable[[Any], None] | None = None,
    ) -> None:
        """Declare an option.  ``check`` refines the type (a port range, say): it gets every
        non-None value before any listener sees it and raises ValueError to refuse it."""
        if name in self._options:
            raise ValueError(f"Option {name} already exists")
        self._derived.clear()
        default = check_value(name, typespec, default)
        self._options[name] = _Option(name, typespec, default, help, choices, copy.copy(default), check)
        if name in self._deferred:
            value = self._deferred.pop(name)
            if isinstance(value, _SetSpecs):  # from set(..., defer=True): parse as --set does
                self.set(*(name if v is None else f"{name}={v}" for v in value))
            else:
                self.update(**{name: value})

    # access ------------------------------------------------------------------

    def __getattr__(self, name: str) -> Any:
        # _Option.current() inlined: the HTTP layers read a few options for every request.
        options = self.__dict__.get("_options", _NO_OPTIONS)
        if name not in options:
            raise AttributeError(f"No such option: {name}")
        value = options[name].value
        return copy.copy(value) if isinstance(value, list) else value

    def derived(self, func: Callable[[Any], T]) -> T:
        """``func(self)``, computed again only after the options changed: for what the
        layers derive from options on every request (size limits), without reading and
        parsing each option again."""
        cache = self._derived
        try:
            value: T = cache[func]
        except KeyError:
            value = cache[func] = func(self)
        return value

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_") or name == "changed":
            object.__setattr__(self, name, value)
        else:
            self.update(**{name: value})

    def __contains__(self, name: object) -> bool:
        return name in self._options

    def keys(self) -> list[str]:
        return sorted(self._options)

    def items(self) -> list[tuple[str, Any]]:
        return [(k, self._options[k].current()) for k in self.keys()]

    def default(self, name: str) -> Any:
        return copy.copy(self._options[name].default)

    def has_changed(self, name: str) -> bool:
        option = self._options[name]
        return option.value != option.default

    def help(self, name: str) -> str:
        return self._options[name].help

    def typespec(self, name: str) -> Any:
        return self._options[name].typespec

    def choices(self, name: str) -> Sequence[str] | None:
        return self._options[name].choices

    # changes -----------------------------------------------------------------

    def subscribe(self, func: Callable[[OptManager, set[str]], None], names: Iterable[str]) -> None:
        """Call ``func(options, updated)`` when any of ``names`` changes."""
        wanted = set(names)
        unknown = wanted - set(self._options)
        if unknown:
            raise OptionsError(f"Cannot subscribe to unknown options: {', '.join(sorted(unknown))}")
        self._subscribers.append((func, wanted))

    def update_known(self, **kwargs: Any) -> dict[str, Any]:
        """Apply the options that exist; return the others."""
        known = {k: v for k, v in kwargs.items() if k in self._options}
        unknown = {k: v for k, v in kwargs.items() if k not in self._options}
        new_values: dict[str, Any] = {}
        for name, value in known.items():
            option = self._options[name]
            value = check_value(name, option.typespec, value)
            if option.choices is not None and value is not None and value not in option.choices:
                raise OptionsError(
                    f"Invalid value {value!r} for {name}: must be one of {', '.join(option.choices)}"
                )
            if option.check is not None and value is not None:
                try:
                    option.check(value)
                except ValueError as e:
                    raise OptionsError(f"Invalid value {value!r} for {name}: {e}") from None
            new_values[name] = value
        changed = {k for k, v in new_values.items() if self._options[k].value != v}
        if not new_values:
            return unknown
        previous = {k: self._options[k].value for k in new_values}
        for name, value in new_values.items():
            self._options[name].value = value
        self._derived.clear()
        if changed:
            try:
                self._notify(changed)
            except OptionsError:
                for name, value in previous.items():
                    self._options[name].value = value
                self._derived.clear()
                raise
        return unknown

    def update(self, **kwargs: Any) -> None:
        unknown = self.update_known(**kwargs)
        if unknown:
            raise OptionsError(f"Unknown option: {', '.join(sorted(unknown))}")

    def update_defer(self, **kwargs: Any) -> None:
        """Like update, but keep unknown options until an addon declares them, even one that
        the known options' change loads (``scripts`` with a script's own option: a worker's
        first options, a config file)."""
        unknown = {k: v for k, v in kwargs.items() if k not in self._options}
        self._deferred.update(unknown)
        self.update_known(**{k: v for k, v in kwargs.items() if k not in unknown})

    def deferred_names(self) -> list[str]:
        """Options set before any addon declared them (e.g. ``--set`` for a script's option)."""
        return sorted(self._deferred)

    def _notify(self, changed: set[str]) -> None:
        for func in list(self.changed):
            func(changed)
        for func, names in list(self._subscribers):
            if names & changed:
                func(self, changed)

    def reset(self) -> None:
        self.update(**{name: copy.copy(o.default) for name, o in self._options.items()})

    # strings -----------------------------------------------------------------

    def parse_setval(self, name: str, value: str | None, current: Any) -> Any:
        """Turn a command-line value into a typed value for ``name``."""
        option = self._options[name]
        typespec = option.typespec
        inner = _optional_inner(typespec)
        if inner is not None:
            if value is None or value == "":
                return None
            typespec = inner
        if _is_sequence(typespec):
            if value is None:
                return []
            return [*current, value] if current is not None else [value]
        if typespec is bool:
            if value is None or value.lower() == "true" or value == "":
                return True
            if value.lower() == "false":
                return False
            if value.lower() == "toggle":
                return not self._options[name].value
            raise OptionsError(f"Boolean option {name} takes true, false or toggle, not {value!r}")
        if value is None:
            raise OptionsError(f"Option {name} needs a value")
        if typespec is int:
            try:
                return int(value)
            except ValueError:
                raise OptionsError(f"Expected int for {name}, got {value!r}") from None
        if typespec is float:
            try:
                return float(value)
            except ValueError:
                raise OptionsError(f"Expected float for {name}, got {value!r}") from None
        return value

    def set(self, *specs: str, defer: bool = False) -> None:
        """Apply ``name=value`` strings; repeated sequence options accumulate, as in mitmproxy."""
        pending: dict[str, Any] = {}
        deferred: dict[str, Any] = {}
        for spec in specs:
            name, sep, raw = spec.partition("=")
            value = raw if sep else None
            if name not in self._options:
                if defer:
                    deferred.setdefault(name, _SetSpecs()).append(value)
                    continue
                raise OptionsError(f"Unknown option: {name}")
            if _is_sequence(self._options[name].typespec):
                current = pending.get(name, [])
            else:
                current = pending.get(name)
            pending[name] = self.parse_setval(name, value, current)
        self.update(**pending)
        self._deferred.update(deferred)

    def dump_options(self) -> str:
        """All options as YAML with their help as comments (what ``--options`` prints)."""
        lines: list[str] = []
        for name in self.keys():
            option = self._options[name]
            for help_line in option.help.splitlines() or [""]:
                lines.append(f"# {help_line}".rstrip())
            type_line = f"Type {_type_name(option.typespec)}."
            if option.choices:
                type_line = f"Valid values are {', '.join(option.choices)}. " + type_line
            lines.append(f"# {type_line}")
            lines.append(f"{name}: {_yaml(option.value)}")
            lines.append("")
        return "\n".join(lines)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "[]" if not value else "\n" + "\n".join(f"- {_yaml(v)}" for v in value)
    text = str(value)
    plain = text and text.strip() == text and not any(c in text for c in ":#{}[],&*!|>'\"%@`")
    if plain and text.lower() not in ("true", "false", "null", "yes", "no", "~"):
        return text
    return "'" + text.replace("'", "''") + "'"


# option files (YAML, as mitmproxy's config.yaml) -----------------------------------------


def parse_yaml(text: str) -> dict[str, Any]:
    """The mapping in an option file; OptionsError with the line for broken YAML."""
    import yaml

    if not text:
        return {}
    try:
        data = yaml.safe_load(text)
    except yaml.MarkedYAMLError as e:
        mark = e.problem_mark
        if mark is None:
            raise OptionsError("Could not parse options.") from None
        snippet = mark.get_snippet() or ""
        raise OptionsError(f"Config error at line {mark.line + 1}:\n{snippet}\n{e.problem or ''}") from None
    except yaml.YAMLError:
        raise OptionsError("Could not parse options.") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise OptionsError("Config error - no keys found.")
    return data


def load_text(opts: OptManager, text: str, cwd: str | os.PathLike[str] | None = None) -> None:
    """Apply an option file's text; options no addon declared yet are kept for later.

    Relative ``scripts`` paths are taken relative to ``cwd`` (the file's folder).
    """
    data = parse_yaml(text)
    scripts = data.get("scripts")
    if cwd is not None and isinstance(scripts, list):
        data["scripts"] = [
            str(pathlib.Path(cwd, os.path.expanduser(s)).absolute()) if isinstance(s, str) else s
            for s in scripts
        ]
    opts.update_defer(**data)


def load_paths(opts: OptManager, *paths: str | os.PathLike[str]) -> None:
    """Load option files in order (later ones win); paths that do not exist are skipped."""
    for p in paths:
        path = pathlib.Path(p).expanduser()
        if not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise OptionsError(f"Error reading {path}: {e}") from e
        try:
            load_text(opts, text, cwd=path.absolute().parent)
        except OptionsError as e:
            raise OptionsError(f"Error reading {path}: {e}") from e


def serialize(opts: OptManager, previous: str = "", defaults: bool = False) -> str:
    """YAML for the options that differ from their defaults (all with ``defaults``).

    ``previous`` is the file's earlier text: its values for options that are now at
    their default stay, keys that are not options are dropped.
    """
    import yaml

    data = parse_yaml(previous)
    for name in opts.keys():
        if defaults or opts.has_changed(name):
            data[name] = getattr(opts, name)
    data = {k: v for k, v in data.items() if k in opts}
    if not data:
        return "{}\n"
    return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True)


def save(opts: OptManager, path: str | os.PathLike[str], defaults: bool = False) -> None:
    """Write the options to ``path``, updating the file in place if it exists."""
    target = pathlib.Path(path).expanduser()
    previous = ""
    if target.is_file():
        try:
            previous = target.read_text(encoding="utf-8")
        except UnicodeDecodeError as e:
            raise OptionsError(f"Error trying to modify {target}: {e}") from e
    text = serialize(opts, previous, defaults)
    target.write_text(text, encoding="utf-8")
