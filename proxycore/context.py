"""The shared state a stack of layers works on for one client connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxycore.connection import Client, Server

if TYPE_CHECKING:
    from proxycore.commands import StartHook
    from proxycore.layer import Layer


class Context:
    """Client, current server, options and the layer stack of one proxied connection.

    ``fork()`` gives a child (an HTTP stream, an upstream connection) its own
    ``layers`` list and the freedom to point ``server`` elsewhere while sharing
    the client and options.
    """

    __slots__ = ("client", "server", "options", "layers", "hook_is_trivial")

    def __init__(self, client: Client, options: Any) -> None:
        self.client = client
        self.options = options
        self.server = Server(address=None)
        self.layers: list[Layer] = []
        # Set by the driver: tells a layer that a hook has nobody to run it (no addon
        # implements it, no flow is intercepted), so the layer can carry on without
        # the round trip. None (as in tests) means every hook is yielded.
        self.hook_is_trivial: Callable[[StartHook], bool] | None = None

    def fork(self) -> Context:
        forked = object.__new__(Context)
        forked.client = self.client
        forked.options = self.options
        forked.server = self.server
        forked.layers = list(self.layers)
        forked.hook_is_trivial = self.hook_is_trivial
        return forked

    def __repr__(self) -> str:
        return f"Context(client={self.client!r}, server={self.server!r}, layers={self.layers!r})"
