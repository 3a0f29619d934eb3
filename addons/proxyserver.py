"""Starts and stops the proxy listeners named by the ``mode`` option."""

from __future__ import annotations

import logging
from typing import Any

from proxycore import command
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.server import ProxyListener

logger = logging.getLogger("proxycore.proxyserver")

DEFAULT_PORTS = {"regular": 8080}


def _top_layer(mode: str) -> Any:
    from proxycore.layers.modes import HttpProxy

    if mode == "regular":
        return HttpProxy
    from proxycore.exceptions import OptionsError

    raise OptionsError(f"mode {mode!r} is not supported yet (only 'regular' is)")


class Proxyserver:
    """Owns the listeners; (re)binds them when the relevant options change while running."""

    def __init__(self) -> None:
        self.listeners: list[ProxyListener] = []
        self._running = False

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        if "mode" in updated:
            for spec in ctx.options.mode:
                _top_layer(spec.split("@", 1)[0])
        if self._running and updated & {"mode", "listen_host", "listen_port", "server"}:
            import asyncio

            asyncio.get_running_loop().create_task(self._restart())

    async def running(self) -> None:
        self._running = True
        await self._restart()

    async def _restart(self) -> None:
        from proxycore import ctx

        await self._stop()
        options = ctx.options
        if not options.server:
            return
        for spec in options.mode:
            mode, _, listen = spec.partition("@")
            host, port = options.listen_host, options.listen_port
            if listen:
                h, _, p = listen.rpartition(":")
                host, port = (h or host), int(p)
            if port is None:
                port = DEFAULT_PORTS.get(mode, 8080)
            listener = ProxyListener(ctx.master, _top_layer(mode), mode)
            try:
                await listener.start(host, port)
            except OSError as e:
                logger.error(f"Error starting proxy server: {e}")
                ctx.master.exit_code = 1
                ctx.master.shutdown()
                return
            self.listeners.append(listener)
            shown = f"{host}:{port}" if host else f"*:{port}"
            logger.info(f"HTTP(S) proxy listening at {shown}.")

    # injection ---------------------------------------------------------------------

    def inject_event(self, event: Any) -> None:
        """Hand an event to the connection that carries ``event.flow``."""
        from proxycore.exceptions import CommandError

        client = event.flow.client_conn
        for listener in self.listeners:
            for handler in listener.handlers.values():
                if handler.client is client:
                    handler.feed(event)
                    return
        raise CommandError("Flow is not from a live connection.")

    @command.command("inject.websocket")
    def inject_websocket(self, flow: Flow, to_client: bool, message: bytes, is_text: bool = True) -> None:
        """Send a WebSocket message to the client or the server of a live flow."""
        from proxycore.events import MessageInjected
        from proxycore.exceptions import CommandError
        from proxycore.websocket import Opcode, WebSocketMessage

        if not isinstance(flow, HTTPFlow) or flow.websocket is None:
            raise CommandError("Not a WebSocket flow.")
        opcode = Opcode.TEXT if is_text else Opcode.BINARY
        self.inject_event(MessageInjected(flow, WebSocketMessage(opcode, not to_client, message)))

    @command.command("inject.tcp")
    def inject_tcp(self, flow: Flow, to_client: bool, message: bytes) -> None:
        """Send bytes to the client or the server of a live TCP flow."""
        from proxycore.events import MessageInjected
        from proxycore.exceptions import CommandError
        from proxycore.tcp import TCPFlow, TCPMessage

        if not isinstance(flow, TCPFlow):
            raise CommandError("Not a TCP flow.")
        self.inject_event(MessageInjected(flow, TCPMessage(not to_client, message)))

    @command.command("proxyserver.active_connections")
    def active_connections(self) -> int:
        """Number of client connections the listeners are serving."""
        return sum(len(listener.handlers) for listener in self.listeners)

    def listen_addrs(self) -> list[tuple[str, int]]:
        return [addr for listener in self.listeners for addr in listener.addresses]

    async def _stop(self) -> None:
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            await listener.stop()

    async def done(self) -> None:
        self._running = False
        await self._stop()
