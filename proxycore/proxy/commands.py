"""Commands: what a layer asks the driver (or its parent layer) to do.

A command whose ``blocking`` is True suspends the layer that yielded it until
the matching :class:`~proxycore.proxy.events.CommandCompleted` arrives.  When the
command passes up through parent layers it carries the issuing layer in
``blocking`` instead of True, so that only that one layer pauses.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import TYPE_CHECKING, Literal, TypeVar, dataclass_transform

from proxycore.connection import Connection, Server
from proxycore.hooks import Hook

if TYPE_CHECKING:
    from proxycore.proxy.layer import Layer


class Command:
    """Base class of everything a layer can ask for."""

    #: False, True (blocks), or once passed up, the layer that blocks on it
    blocking: bool | Layer = False

    def __repr__(self) -> str:
        fields = ", ".join(
            f"{k}={v!r}" for k, v in vars(self).items() if k != "blocking"
        )
        return f"{type(self).__name__}({fields})"


class RequestWakeup(Command):
    """Send a Wakeup event back after ``delay`` seconds (the only clock a layer has)."""

    def __init__(self, delay: float) -> None:
        self.delay = delay


class RequestTimeout(RequestWakeup):
    """A wakeup that arms a timeout (e.g. for a request head): usually outdated before it
    fires, so Playbook lists it only when asked to (``timeouts=True``)."""


class ConnectionCommand(Command):
    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class SendData(ConnectionCommand):
    """Write ``data`` to ``connection``."""

    def __init__(self, connection: Connection, data: bytes) -> None:
        self.connection = connection
        self.data = data

    def __repr__(self) -> str:
        target = type(self.connection).__name__.lower()
        return f"SendData({target}, {self.data!r})"


class OpenConnection(ConnectionCommand):
    """Connect to ``connection.address``; replied with OpenConnectionCompleted."""

    connection: Server
    blocking = True

    def __init__(self, connection: Server) -> None:
        self.connection = connection
        self.blocking = True


class PauseReading(ConnectionCommand):
    """Stop reading from ``connection`` until a ResumeReading for it: a layer that holds as
    much unsent data from a peer as it will buffer asks for this instead of buffering more."""


class ResumeReading(ConnectionCommand):
    """Read from ``connection`` again after a PauseReading."""


class CloseConnection(ConnectionCommand):
    """Close ``connection`` fully, or only our write side when ``half_close``."""

    def __init__(self, connection: Connection, half_close: bool = False) -> None:
        self.connection = connection
        self.half_close = half_close


class CloseTcpConnection(CloseConnection):
    """mitmproxy's name for a close that may be a half-close (sends FIN only)."""


class StartHook(Command, Hook):
    """Run an addon hook.  Subclasses are dataclasses whose fields are the hook's arguments."""

    # The class attribute is what a new hook reads (no __post_init__ per hook: four per
    # request); Layer._run sets the instance's own when it pauses on it.
    blocking = True

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(a) for a in self.args())})"


LogLevel = Literal["error", "warn", "info", "alert", "debug"]

LOG_LEVELS: dict[str, int] = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "alert": logging.INFO + 1,
    "debug": logging.DEBUG,
}


class Log(Command):
    """Emit a log line; ``level`` is a logging level number (strings are accepted too)."""

    def __init__(self, message: str, level: int | str = logging.INFO) -> None:
        self.message = message
        self.level = LOG_LEVELS[level] if isinstance(level, str) else level

    def __repr__(self) -> str:
        return f"Log({self.message!r}, {logging.getLevelName(self.level).lower()})"


H = TypeVar("H")


@dataclass_transform(eq_default=False)
def hook_dataclass(cls: type[H]) -> type[H]:
    """Decorator for StartHook subclasses: a dataclass that keeps identity equality.

    Commands are matched to their replies by identity, so field-based __eq__
    would be wrong (and slow); the test harness compares fields itself.
    """
    return dataclasses.dataclass(eq=False, repr=False)(cls)
