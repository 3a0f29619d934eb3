"""The shared state a stack of layers works on for one client connection."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore.connection import Client, Server

if TYPE_CHECKING:
    from proxycore.options import Options
    from proxycore.proxy.layer import Layer


class Context:
    """Client, current server, options and the layer stack of one proxied connection.

    ``fork()`` gives a child (an HTTP stream, an upstream connection) its own
    ``layers`` list and the freedom to point ``server`` elsewhere while sharing
    the client and options.
    """

    __slots__ = ("client", "server", "options", "layers")

    client: Client
    server: Server
    options: Options
    layers: list[Layer]

    def __init__(self, client: Client, options: Options) -> None:
        self.client = client
        self.options = options
        self.server = Server(address=None)
        self.layers = []

    def fork(self) -> Context:
        forked = object.__new__(Context)
        forked.client = self.client
        forked.options = self.options
        forked.server = self.server
        forked.layers = list(self.layers)
        return forked

    def __repr__(self) -> str:
        return f"Context(client={self.client!r}, server={self.server!r}, layers={self.layers!r})"
