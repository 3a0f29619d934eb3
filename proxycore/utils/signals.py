"""A minimal synchronous signal: observers of the flow view and the event store subscribe here.

The view and the event store must not know who is watching them (the web API,
a future console, tests), so they announce changes through signals instead.
A receiver that raises is logged and does not stop the others: a broken web
client must never break the proxy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("proxycore.utils.signals")


class Signal:
    def __init__(self) -> None:
        self.receivers: list[Callable[..., Any]] = []

    def connect(self, receiver: Callable[..., Any]) -> None:
        if receiver not in self.receivers:
            self.receivers.append(receiver)

    def disconnect(self, receiver: Callable[..., Any]) -> None:
        if receiver in self.receivers:
            self.receivers.remove(receiver)

    def send(self, *args: Any, **kwargs: Any) -> None:
        for receiver in list(self.receivers):
            try:
                receiver(*args, **kwargs)
            except Exception:
                logger.exception(f"Signal receiver {receiver!r} failed")


def wire(pairs: list[tuple[Signal, Callable[..., Any]]], on: bool) -> None:
    """Connect (``on``) or disconnect each receiver from its signal."""
    for signal, receiver in pairs:
        (signal.connect if on else signal.disconnect)(receiver)
