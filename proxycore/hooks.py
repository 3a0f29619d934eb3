"""Hook definitions: the names and arguments addons implement.

Every hook is a small dataclass; its fields are the arguments handed to an
addon's method of the same ``name``.  Hooks that layers start are also
blocking commands (see :class:`proxycore.proxy.commands.StartHook`); lifecycle
hooks such as ``configure`` are only ever dispatched by the master.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

all_hooks: dict[str, type[Hook]] = {}
#: The argument names (dataclass fields) of each hook class, filled by arg_names().
ARG_NAMES: dict[type, tuple[str, ...]] = {}


def arg_names(cls: type) -> tuple[str, ...]:
    """The names of a hook class's arguments, in order (``dataclasses.fields`` is slow;
    this is asked for every hook)."""
    names = ARG_NAMES.get(cls)
    if names is None:
        names = ARG_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


@dataclasses.dataclass(eq=False)
class Hook:
    """Base of every hook; subclasses set ``name`` and declare their arguments as fields."""

    name: ClassVar[str]

    def args(self) -> list[Any]:
        names = ARG_NAMES.get(type(self)) or arg_names(type(self))
        if len(names) == 1:  # every HTTP hook (the flow): no comprehension for one item
            return [getattr(self, names[0])]
        return [getattr(self, name) for name in names]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("name")
        if name:
            all_hooks[name] = cls


@dataclasses.dataclass
class LoadHook(Hook):
    """Called once when an addon is added; declare options and commands on ``loader``."""

    name = "load"
    loader: Any


@dataclasses.dataclass
class RunningHook(Hook):
    """The proxy is fully up (listeners bound, all startup addons loaded)."""

    name = "running"


@dataclasses.dataclass
class ConfigureHook(Hook):
    """Options changed; ``updated`` holds the names that did."""

    name = "configure"
    updated: set[str]


@dataclasses.dataclass
class DoneHook(Hook):
    """The addon is being removed or the proxy shuts down."""

    name = "done"


@dataclasses.dataclass
class UpdateHook(Hook):
    """Flows were changed by an addon or a hook; views refresh themselves on this."""

    name = "update"
    flows: list[Any]


@dataclasses.dataclass
class AddLogHook(Hook):
    """Deprecated in mitmproxy in favour of ``logging``; kept for old addons."""

    name = "add_log"
    entry: Any
