"""The shared state a stack of layers works on for one client connection."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from proxycore.connection import Client, Server

if TYPE_CHECKING:
    from proxycore.options import Options
    from proxycore.proxy.layer import Layer

_new = object.__new__


class Context:
    """Client, current server, options and the layer stack of one proxied connection.

    ``fork()`` gives a child (an HTTP stream, an upstream connection) its own
    ``layers`` list and the freedom to point ``server`` elsewhere while sharing
    the client and options.
    """

    __slots__ = ("client", "server", "options", "layers", "instant_hook")

    client: Client
    server: Server
    options: Options
    layers: list[Layer]

    def __init__(self, client: Client, options: Options) -> None:
        self.client = client
        self.options = options
        self.server = Server(address=None)
        self.layers: list[Layer] = []
        # Set by the driver: whether a hook would be answered at once (no addon listens, no
        # flow intercepted); layers then go on without pausing for it (see Layer._run).
        self.instant_hook: Callable[[Any], bool] | None = None

    def fork(self) -> Context:
        # (Once per request, for each HTTP stream: object.__new__ from a module global and
        # a slice copy cost less than the attribute lookups and the list() call.)
        forked = _new(Context)
        forked.client = self.client
        forked.options = self.options
        forked.server = self.server
        forked.layers = self.layers[:]
        forked.instant_hook = self.instant_hook
        return forked

    def __repr__(self) -> str:
        return f"Context(client={self.client!r}, server={self.server!r}, layers={self.layers!r})"
