"""Connection lifecycle hooks, started by the driver around sockets it opens."""

from __future__ import annotations

from dataclasses import dataclass

from proxycore.connection import Client, Server
from proxycore.proxy.commands import StartHook, hook_dataclass


@hook_dataclass
class ClientConnectedHook(StartHook):
    """A client connected; an addon may set ``client.error`` to refuse it."""

    name = "client_connected"
    client: Client


@hook_dataclass
class ClientDisconnectedHook(StartHook):
    name = "client_disconnected"
    client: Client


@dataclass
class ServerConnectionHookData:
    """Argument of the server_* hooks: the server connection and the client it serves."""

    server: Server
    client: Client


@hook_dataclass
class ServerConnectHook(StartHook):
    """About to connect upstream; an addon may set ``data.server.error`` to prevent it."""

    name = "server_connect"
    data: ServerConnectionHookData


@hook_dataclass
class ServerConnectedHook(StartHook):
    name = "server_connected"
    data: ServerConnectionHookData


@hook_dataclass
class ServerDisconnectedHook(StartHook):
    name = "server_disconnected"
    data: ServerConnectionHookData


@hook_dataclass
class ServerConnectErrorHook(StartHook):
    """Connecting upstream failed; ``data.server.error`` says why."""

    name = "server_connect_error"
    data: ServerConnectionHookData
