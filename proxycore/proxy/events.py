"""Events: what the driver (or a parent layer) feeds into a layer."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from proxycore.connection import Connection
from proxycore.proxy import commands


class Event:
    """Base class of everything a layer can be told."""

    __slots__ = ()
    if TYPE_CHECKING:  # every event class is a dataclass
        __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]

    @property
    def __dict__(self) -> dict[str, Any]:  # type: ignore[override]  # a view, not the storage
        """The fields by name, as ``vars(event)`` gives them for mitmproxy's unslotted events
        (its Playbook test helper compares events that way)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}


@dataclass(slots=True)
class Start(Event):
    """The layer has been put into the stack and may now act."""


@dataclass(slots=True)
class ConnectionEvent(Event):
    connection: Connection


@dataclass(slots=True)
class DataReceived(ConnectionEvent):
    """Bytes arrived from ``connection``."""

    data: bytes

    def __repr__(self) -> str:
        target = type(self.connection).__name__.lower()
        return f"DataReceived({target}, {self.data!r})"


@dataclass(slots=True)
class ConnectionClosed(ConnectionEvent):
    """The peer will send no more data (its read side ended; may be a half-close)."""


@dataclass(slots=True, repr=False)
class CommandCompleted(Event):
    """The reply to a blocking command; matched to it by identity."""

    command: commands.Command
    reply: Any

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.command!r}, reply={self.reply!r})"


@dataclass(slots=True, repr=False)
class OpenConnectionCompleted(CommandCompleted):
    """``reply`` is None on success, else an error message."""

    command: commands.OpenConnection
    reply: str | None


@dataclass(slots=True, repr=False)
class HookCompleted(CommandCompleted):
    """All addons handled the hook (and an intercepted flow was resumed)."""

    command: commands.StartHook
    reply: None = None


@dataclass(slots=True, repr=False)
class Wakeup(CommandCompleted):
    """The delay asked for with RequestWakeup has passed."""

    command: commands.RequestWakeup
    reply: None = None


@dataclass(slots=True)
class MessageInjected(Event):
    """An addon asked to inject a message into a live flow (TCP/WebSocket)."""

    flow: Any
    message: Any


#: Which event answers which blocking command (mitmproxy's table of the same name).
command_reply_subclasses: dict[type[commands.Command], type[CommandCompleted]] = {
    commands.OpenConnection: OpenConnectionCompleted,
    commands.StartHook: HookCompleted,
    commands.RequestWakeup: Wakeup,
}
