"""The timer for a client's next request head, shared by the HTTP/1 and HTTP/2 server layers.

A layer has no clock. It asks for a RequestTimeout and, when the Wakeup comes back,
acts only if that is still the timer it armed last: re-arming or disarming outdates
the old one, so a timer that was not needed any more fires into nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from proxycore.proxy import commands, events

# What derived_values gives for options without OptManager's cache: always empty.
_NO_DERIVED: Mapping[Any, Any] = MappingProxyType({})


def derived_values(options: Any) -> Mapping[Any, Any]:
    """The dict in which OptManager.derived keeps what it computed, for a layer to hold for
    its connection's life: reading ``options._derived`` costs a call of OptManager's
    ``__getattr__`` slot (~300 instructions) a few times per request. The dict is cleared in
    place whenever an option changes and never replaced, so what is found in it is current
    (a miss goes through the options, which fill it). Other options objects have none: an
    empty mapping, so that every read computes anew."""
    cache = getattr(options, "_derived", None)
    return cache if isinstance(cache, dict) else _NO_DERIVED


def _delays(options: Any) -> tuple[float, float]:
    return options.keepalive_timeout, options.request_head_timeout


class HeadTimer:
    """Either ``keepalive_timeout`` (idle: waiting for a request to begin) or
    ``request_head_timeout`` (a head has begun, or nothing came yet since connecting)."""

    def __init__(self, options: Any, publish_on: Any = None) -> None:
        """With ``publish_on`` (a connection), the timer is set as its ``head_timer``
        attribute for the driver to arm, instead of being yielded (see Http1Server)."""
        self.options = options
        self.derived = derived_values(options)  # (held: see derived_values)
        self.publish_on = publish_on
        self.command: commands.RequestTimeout | None = None
        self.idle = False

    def arm(self, idle: bool) -> commands.RequestTimeout | None:
        """Start the wait anew; the command to yield (None if that timeout is off, or if
        the timer is published on a connection)."""
        # Read for every request: from the options' cache of derived values (OptManager.derived,
        # read without its call), if they have one.
        try:
            delays: tuple[float, float] = self.derived[_delays]
        except KeyError:
            derived = getattr(self.options, "derived", None)
            delays = derived(_delays) if derived is not None else _delays(self.options)
        keepalive, head = delays
        delay = keepalive if idle else head
        self.idle = idle
        command = self.command = commands.RequestTimeout(delay) if delay else None
        if self.publish_on is None:
            return command
        self.publish_on.head_timer = command  # read by the driver
        return None

    def disarm(self) -> None:
        # (Once per request: the publishing is written out here and in arm, not a call.)
        self.command = None
        if self.publish_on is not None:
            self.publish_on.head_timer = None

    @property
    def running(self) -> bool:
        return self.command is not None

    @property
    def delay(self) -> float:
        return self.command.delay if self.command is not None else 0

    def fired(self, event: events.Event) -> bool:
        """Is ``event`` the Wakeup of the timer armed last?"""
        return self.command is not None and isinstance(event, events.Wakeup) and event.command is self.command
