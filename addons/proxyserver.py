"""Starts and stops the proxy listeners, one per ``mode`` entry (mitmproxy's mode specs).

Specs are checked when the option is set (a bad one is an OptionsError with
mitmproxy's text, so proxydump prints one line and exits 1).  While running,
a change of ``mode`` starts the new listeners and stops the removed ones;
listeners whose spec did not change keep their connections.
"""

from __future__ import annotations

import asyncio
import errno
import logging
from collections.abc import Sequence
from typing import Any

from proxycore import command
from proxycore.addons.termlog import format_address
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.mode_specs import ProxyMode, ReverseMode
from proxycore.server import LayerFactory, ProxyListener

logger = logging.getLogger("proxycore.proxyserver")

# The schemes a reverse proxy serves over TCP; the UDP/QUIC/DNS ones are not implemented.
REVERSE_SCHEMES = ("http", "https", "tls", "tcp")


def top_layer(mode: ProxyMode) -> LayerFactory:
    """The first layer of every connection to a listener of ``mode``."""
    from proxycore.layers import modes

    factories: dict[str, LayerFactory] = {
        "regular": modes.HttpProxy,
        "upstream": modes.HttpUpstreamProxy,
        "reverse": modes.ReverseProxy,
        "transparent": modes.TransparentProxy,
        "socks5": modes.Socks5Proxy,
    }
    return factories[mode.type_name]


def parse_modes(specs: Sequence[str]) -> list[ProxyMode]:
    """Parse and check every spec; OptionsError naming the first bad one."""
    from proxycore import platform

    modes = []
    for spec in specs:
        try:
            mode = ProxyMode.parse(spec)
        except ValueError as e:
            raise OptionsError(f"Invalid proxy mode specification: {spec} ({e})") from None
        if isinstance(mode, ReverseMode) and mode.scheme not in REVERSE_SCHEMES:
            problem = f"reverse proxy scheme {mode.scheme} is not supported by proxycore"
            raise OptionsError(f"Invalid proxy mode specification: {spec} ({problem})")
        if mode.type_name not in ("regular", "upstream", "reverse", "transparent", "socks5"):
            problem = f"{mode.type_name} mode is not supported by proxycore"
            raise OptionsError(f"Invalid proxy mode specification: {spec} ({problem})")
        if mode.type_name == "transparent" and platform.original_addr is None:
            raise OptionsError("Transparent mode not supported on this platform.")
        modes.append(mode)
    return modes


class Proxyserver:
    """Owns the listeners; (re)binds them when the relevant options change while running."""

    def __init__(self) -> None:
        self.listeners: list[ProxyListener] = []
        self._running = False
        self._lock = asyncio.Lock()

    def load(self, loader: Any) -> None:
        """Nothing to declare: the server's options are core options (proxycore.options).
        Here because mitmproxy's Proxyserver declares them in ``load`` and tests call it."""

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        options = ctx.options
        if "listen_port" in updated and options.listen_port is not None and not 0 <= options.listen_port <= 65535:
            raise OptionsError(f"listen_port: invalid port {options.listen_port}: must be 0-65535")
        if "mode" in updated or "server" in updated or "listen_host" in updated or "listen_port" in updated:
            modes = parse_modes(options.mode)
            seen: set[tuple[str, int]] = set()
            for mode in modes:
                host = mode.listen_host(options.listen_host)
                port = mode.listen_port(options.listen_port)
                if not port:
                    continue  # port 0: each listener gets its own free port
                if (host, port) in seen:
                    shown = format_address((host or "0.0.0.0", port))
                    raise OptionsError(f"Cannot spawn multiple servers on the same address: {shown}")
                seen.add((host, port))
        if self._running and updated & {"mode", "listen_host", "listen_port", "server"}:
            restart = bool(updated & {"listen_host", "listen_port"})
            asyncio.get_running_loop().create_task(self.update_servers(restart))

    async def running(self) -> None:
        self._running = True
        await self.update_servers()

    async def update_servers(self, restart: bool = False) -> None:
        """Bring the listeners in line with the options: stop removed modes, start new ones."""
        from proxycore import ctx

        options = ctx.options
        async with self._lock:
            wanted = parse_modes(options.mode) if options.server else []
            current = {} if restart else {listener.mode: listener for listener in self.listeners}
            keep = [current[mode] for mode in wanted if mode in current]
            for listener in self.listeners:
                if listener not in keep:
                    await self._stop_listener(listener)
            self.listeners = keep
            for mode in wanted:
                if mode not in current:
                    listener = ProxyListener(ctx.master, top_layer(mode), mode)
                    await self._start_listener(listener)
                    self.listeners.append(listener)

    async def _start_listener(self, listener: ProxyListener) -> None:
        from proxycore import ctx

        mode = listener.mode
        host = mode.listen_host(ctx.options.listen_host)
        port = mode.listen_port(ctx.options.listen_port)
        assert port is not None
        try:
            await listener.start(host.strip("[]"), port)
        except OSError as e:
            listener.last_exception = e
            message = f"{mode.description} failed to listen on {host or '*'}:{port} with {e}"
            if e.errno == errno.EADDRINUSE and mode.custom_listen_port is None:
                message += f"\nTry specifying a different port by using `--mode {mode.full_spec}@{port + 2}`."
            logger.error(message)
            return
        listener.last_exception = None
        logger.info(f"{mode.description} listening at {_addresses(listener)}.")

    async def _stop_listener(self, listener: ProxyListener) -> None:
        if not listener.is_running:
            return
        addresses = _addresses(listener)
        await listener.stop()
        logger.info(f"{listener.mode.description} at {addresses} stopped.")

    def server_connect(self, data: Any) -> None:
        """Refuse to connect to one of our own listeners (a request to the proxy itself)."""
        server = data.server
        if server.address is None:
            return
        host, port = server.address[0], server.address[1]
        for listener in self.listeners:
            for listen_host, listen_port in listener.addresses:
                if port == listen_port and host in ("localhost", "127.0.0.1", "::1", listen_host):
                    server.error = (
                        "Request destination unknown. "
                        "Unable to figure out where this request should be forwarded to."
                    )
                    return

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

    @property
    def servers(self) -> list[ProxyListener]:
        """The listeners, one per mode (``mode``, ``is_running``, ``last_exception``), under
        mitmproxy's name for them."""
        return list(self.listeners)

    def listen_addrs(self) -> list[tuple[str, int]]:
        return [addr for listener in self.listeners for addr in listener.addresses]

    async def done(self) -> None:
        self._running = False
        listeners, self.listeners = self.listeners, []
        for listener in listeners:
            await listener.stop()


def _addresses(listener: ProxyListener) -> str:
    """``*:8080``, or several joined with " and " (each shown once)."""
    shown = dict.fromkeys(format_address(address) for address in listener.addresses)
    return " and ".join(shown)
