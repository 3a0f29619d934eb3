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
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.proxy.mode_specs import ProxyMode, ReverseMode
from proxycore.proxy.server import LayerFactory, ProxyListener
from proxycore.utils.human import format_address

logger = logging.getLogger("proxycore.proxyserver")


def listen_failure(mode: ProxyMode, host: str, port: int, e: OSError) -> str:
    """What to tell a user whose listener cannot bind (the ``--workers`` primary too)."""
    message = f"{mode.description} failed to listen on {host or '*'}:{port} with {e}"
    if e.errno == errno.EADDRINUSE and mode.custom_listen_port is None:
        message += f"\nTry specifying a different port by using `--mode {mode.full_spec}@{port + 2}`."
    return message

# The schemes a reverse proxy serves; DTLS is not implemented.
REVERSE_SCHEMES = ("http", "https", "tls", "tcp", "udp", "dns", "http3", "quic")
SUPPORTED_MODES = ("regular", "upstream", "reverse", "transparent", "socks5", "dns")
# Modes whose packets come through mitmproxy-rs (proxycore.proxy.server_rs).
RS_MODES = ("wireguard", "tun", "local")


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
    if mode.type_name == "dns":
        from proxycore.layers.dns import DNSLayer

        return DNSLayer
    if mode.type_name in RS_MODES:
        return modes.TransparentProxy  # the tunnel tells each stream's destination
    return factories[mode.type_name]


def make_listener(master: Any, mode: ProxyMode) -> Any:
    """A TCP listener, a UDP one, or both on one port, as the mode's transport says.
    A reverse proxy to https:// has its UDP half (for HTTP/3 clients) only while the
    ``http3`` option is on."""
    if mode.type_name in RS_MODES:
        from proxycore.proxy.server_rs import LISTENERS

        return LISTENERS[type(mode)](master, top_layer(mode), mode)
    transport = mode.transport_protocol
    if isinstance(mode, ReverseMode) and mode.scheme == "https":
        transport = "both" if getattr(master.options, "http3", True) else "tcp"
    elif isinstance(mode, ReverseMode) and mode.scheme not in ("udp", "dns", "http3", "quic"):
        transport = "tcp"
    if transport == "tcp":
        cls: Any = ProxyListener
    else:  # the UDP listeners are imported by the first UDP mode, not at every start
        from proxycore.proxy.server_udp import DatagramListener, DualListener

        cls = {"udp": DatagramListener, "both": DualListener}[transport]
    if isinstance(mode, ReverseMode) and mode.scheme in ("https", "http3", "quic") and transport != "tcp":
        preload_http3()
    return cls(master, top_layer(mode), mode)


def preload_http3() -> None:
    """aioquic costs about 0.1 s to import: pay it when a listener that serves HTTP/3
    starts, not while the first QUIC client waits (and never for proxies without one)."""
    import aioquic.h3.connection  # noqa: F401
    import aioquic.quic.connection  # noqa: F401

    import proxycore.layers.http._http3  # noqa: F401


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
        if mode.type_name not in SUPPORTED_MODES + RS_MODES:
            problem = f"{mode.type_name} mode is not supported by proxycore"
            raise OptionsError(f"Invalid proxy mode specification: {spec} ({problem})")
        if mode.type_name == "transparent" and platform.original_addr is None:
            raise OptionsError("Transparent mode not supported on this platform.")
        modes.append(mode)
    return modes


# What a listener serves: its mode and the address it binds (port 0: any free port).
ListenerKey = tuple[ProxyMode, str, int]
_SERVER_OPTIONS = ("mode", "listen_host", "listen_port", "server")


class Proxyserver:
    """Owns the listeners; (re)binds them when the relevant options change while running.

    A change never leaves the proxy without its old listeners: new listeners are bound
    before the ones they replace are stopped (except where they need the same address),
    and if one cannot bind, the new ones are closed, the old ones keep serving and the
    options go back to the values they serve.  ``update_task`` lets a caller (the web
    API) wait for the outcome: the task's result is None or the error message.
    """

    def __init__(self) -> None:
        self.listeners: list[ProxyListener] = []
        self.update_task: asyncio.Task[str | None] | None = None
        self._keys: dict[ProxyListener, ListenerKey] = {}
        self._applied: dict[str, Any] = {}  # the option values the listeners serve
        self._running = False
        self._lock = asyncio.Lock()

    def load(self, loader: Any) -> None:
        """Nothing to declare: the server's options are core options (proxycore.options).
        Here because mitmproxy's Proxyserver declares them in ``load`` and tests call it."""

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        options = ctx.options
        if "mode" in updated or "server" in updated or "listen_host" in updated or "listen_port" in updated:
            modes = parse_modes(options.mode)
            seen: set[tuple[str, int, str]] = set()
            for mode in modes:
                host = mode.listen_host(options.listen_host)
                port = mode.listen_port(options.listen_port)
                if not port or mode.type_name in ("tun", "local"):
                    continue  # port 0: each listener gets its own free port; tun/local bind none
                # As mitmproxy: a TCP and a UDP listener may share a port (regular and wireguard).
                for transport in ("tcp", "udp") if mode.transport_protocol == "both" else (mode.transport_protocol,):
                    if (host, port, transport) in seen:
                        shown = format_address((host or "0.0.0.0", port))
                        raise OptionsError(f"Cannot spawn multiple servers on the same address: {shown}")
                    seen.add((host, port, transport))
        if updated & {"mode", "workers"}:
            _check_rs_modes_without_workers(options)
        if "connect_addr" in updated and options.connect_addr:
            import ipaddress

            try:
                ipaddress.ip_address(options.connect_addr)
            except ValueError:
                raise OptionsError(
                    f"Invalid value for connect_addr: {options.connect_addr!r}. Specify a valid IP address."
                ) from None
        if self._running and updated.intersection(_SERVER_OPTIONS):
            self.update_task = asyncio.get_running_loop().create_task(self.update_servers())

    async def running(self) -> None:
        self._running = True
        await self.update_servers(initial=True)

    def _wanted(self) -> list[ListenerKey]:
        from proxycore import ctx, workers

        options = ctx.options
        if not options.server or workers.serves_elsewhere(options):
            return []  # (with --workers, the worker processes listen)
        keys = []
        for mode in parse_modes(options.mode):
            port = mode.listen_port(options.listen_port) or 0  # None: tun and local bind no port
            keys.append((mode, mode.listen_host(options.listen_host), port))
        return keys

    async def update_servers(self, initial: bool = False) -> str | None:
        """Bring the listeners in line with the options; None, or why they could not be.

        At start (``initial``) a listener that cannot bind is kept with its error (the
        start-up check reports it); later, a failed change is undone as a whole.
        """
        from proxycore import ctx

        async with self._lock:
            wanted = self._wanted()
            current = {self._keys[li]: li for li in self.listeners if li.is_running}
            missing = [key for key in wanted if key not in current]
            unwanted = [li for key, li in current.items() if key not in wanted]
            unwanted += [li for li in self.listeners if not li.is_running]
            # A new listener on the address of one going away can only bind once it is gone.
            in_the_way = [li for li in unwanted if _blocks(li, missing)]
            for listener in in_the_way:
                await self._stop_listener(listener)
            started: dict[ListenerKey, ProxyListener] = {}
            error = None
            for key in missing:
                listener = make_listener(ctx.master, key[0])
                self._keys[listener] = key
                error = await self._start_listener(listener, key)
                if error is not None and not initial:
                    self._keys.pop(listener)
                    break
                started[key] = listener
            if error is not None and not initial:
                for listener in started.values():
                    await self._stop_listener(listener)
                    self._keys.pop(listener)
                for listener in in_the_way:
                    await self._start_listener(listener, self._keys[listener])
                self.listeners = [li for li in self.listeners if li.is_running]
                restore = {k: v for k, v in self._applied.items() if getattr(ctx.options, k) != v}
            else:
                for listener in unwanted:
                    await self._stop_listener(listener)
                    self._keys.pop(listener, None)
                everything = {**current, **started}
                self.listeners = [everything[key] for key in wanted]
                self._applied = {name: getattr(ctx.options, name) for name in _SERVER_OPTIONS}
                return None
        # Outside the lock: putting the options back schedules an update that finds nothing to do.
        ctx.options.update(**restore)
        return error

    async def _start_listener(self, listener: ProxyListener, key: ListenerKey) -> str | None:
        """Bind ``listener``; None, or the error (logged, and kept in ``last_exception``)."""
        mode, host, port = key
        try:
            await listener.start(host.strip("[]"), port)
        except OSError as e:
            listener.last_exception = e
            message = listen_failure(mode, host, port, e)
            logger.error(message)
            return message
        except (RuntimeError, ValueError, NotImplementedError) as e:  # mitmproxy-rs modes
            listener.last_exception = e
            message = str(e).split("\n\nStack backtrace:")[0]  # mitmproxy-rs appends one
            logger.error(message)
            return message
        listener.last_exception = None
        if listener.addresses:
            logger.info(f"{mode.description} listening at {_addresses(listener)}.")
        else:  # tun, local: no address of their own
            logger.info(f"{mode.description} started.")
        return None

    async def _stop_listener(self, listener: ProxyListener) -> None:
        if not listener.is_running:
            return
        addresses = _addresses(listener)
        await listener.stop()
        where = f" at {addresses}" if addresses else ""
        logger.info(f"{listener.mode.description}{where} stopped.")

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
        remote = getattr(event.flow, "inject_remote", None)  # a flow of a worker process (--workers)
        if remote is not None and event.flow.live:
            remote(event)
            return
        raise CommandError("Flow is not from a live connection.")

    @command.command("inject.websocket")
    def inject_websocket(self, flow: Flow, to_client: bool, message: bytes, is_text: bool = True) -> None:
        """Send a WebSocket message to the client or the server of a live flow."""
        from proxycore.exceptions import CommandError
        from proxycore.proxy.events import MessageInjected
        from proxycore.websocket import Opcode, WebSocketMessage

        if not isinstance(flow, HTTPFlow) or flow.websocket is None:
            raise CommandError("Not a WebSocket flow.")
        opcode = Opcode.TEXT if is_text else Opcode.BINARY
        self.inject_event(MessageInjected(flow, WebSocketMessage(opcode, not to_client, message)))

    @command.command("inject.tcp")
    def inject_tcp(self, flow: Flow, to_client: bool, message: bytes) -> None:
        """Send bytes to the client or the server of a live TCP flow."""
        from proxycore.exceptions import CommandError
        from proxycore.proxy.events import MessageInjected
        from proxycore.tcp import TCPFlow, TCPMessage

        if not isinstance(flow, TCPFlow):
            raise CommandError("Not a TCP flow.")
        self.inject_event(MessageInjected(flow, TCPMessage(not to_client, message)))

    @command.command("inject.udp")
    def inject_udp(self, flow: Flow, to_client: bool, message: bytes) -> None:
        """Send a datagram to the client or the server of a live UDP flow."""
        from proxycore.exceptions import CommandError
        from proxycore.layers.udp import UdpMessageInjected
        from proxycore.udp import UDPFlow, UDPMessage

        if not isinstance(flow, UDPFlow):
            raise CommandError("Not a UDP flow.")
        self.inject_event(UdpMessageInjected(flow, UDPMessage(not to_client, message)))

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


def _check_rs_modes_without_workers(options: Any) -> None:
    """A WireGuard server, TUN device or redirector lives in one process: each worker would
    start its own on the same port or device."""
    from proxycore import workers

    try:
        count = workers.worker_count(getattr(options, "workers", "1"))
    except ValueError:
        return  # the workers option reports its own error
    if count > 1:
        for spec in options.mode:
            name = spec.partition("@")[0].partition(":")[0].lower()
            if name in RS_MODES:
                raise OptionsError(f"{name} mode cannot be combined with workers (set workers=1)")


def _blocks(listener: ProxyListener, wanted: list[ListenerKey]) -> bool:
    """Whether ``listener`` holds an address (port 0 resolved) that one of ``wanted`` needs."""
    anywhere = ("", "0.0.0.0", "::")
    return any(
        port == p and (host == h or host in anywhere or h in anywhere)
        for _, h, p in wanted
        if p != 0
        for host, port in listener.addresses
    )


def _addresses(listener: ProxyListener) -> str:
    """``*:8080``, or several joined with " and " (each shown once)."""
    shown = dict.fromkeys(format_address(address) for address in listener.addresses)
    return " and ".join(shown)
