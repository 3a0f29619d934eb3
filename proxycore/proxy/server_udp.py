"""Datagram endpoints for the driver: UDP listeners and UDP server connections.

UDP has no connections, so a client "connection" is a peer address: the listener keeps
one ConnectionHandler per peer and hands it that peer's datagrams, and the layers see
DataReceived events as they do for TCP (one event per datagram).  A peer that stays
silent for ``UDP_IDLE_TIMEOUT`` seconds is closed, which ends its flows.  The socket
objects here look like stream transports to ``_ConnectionProtocol``, so the handler has no
UDP-specific code beyond choosing how to open a server connection.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import socket
from typing import Any, cast

from proxycore.connection import Client, ConnectionState, TransportProtocol
from proxycore.proxy import events
from proxycore.proxy import server as _server
from proxycore.proxy.mode_specs import ProxyMode

logger = logging.getLogger("proxycore.proxy")

#: Seconds without a datagram either way after which a UDP peer's "connection" ends.
UDP_IDLE_TIMEOUT = 20
#: Datagrams kept per peer while the layers are not reading it (more are dropped, as UDP may).
QUEUE_LIMIT = 256
MAX_DATAGRAM = 65535


class _PeerTransport(asyncio.Transport):
    """One peer of a listening UDP socket, as a transport: writes are ``sendto`` that peer."""

    def __init__(self, listener: DatagramListener, peer: tuple[str, int], socket_transport: Any) -> None:
        super().__init__()
        self._listener = listener
        self._socket = socket_transport  # the listening socket this peer talks to
        self._peer = peer
        self._closing = False
        self._reading = True
        self._queue: collections.deque[bytes] = collections.deque()
        self.protocol: _server._ConnectionProtocol | None = None

    def deliver(self, data: bytes) -> None:
        if self._closing or self.protocol is None:
            return
        if self._reading and not self._queue:
            self.protocol.data_received(data)
        elif len(self._queue) < QUEUE_LIMIT:
            self._queue.append(data)

    def write(self, data: bytes | bytearray | memoryview) -> None:
        transport = self._socket
        if not self._closing and not transport.is_closing() and data:
            transport.sendto(data, self._peer)

    def close(self) -> None:
        if self._closing:
            return
        self._closing = True
        self._queue.clear()
        self._listener.forget(self._peer, self)
        if self.protocol is not None:
            asyncio.get_running_loop().call_soon(self.protocol.connection_lost, None)

    def is_closing(self) -> bool:
        return self._closing

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True
        while self._reading and self._queue and not self._closing and self.protocol is not None:
            self.protocol.data_received(self._queue.popleft())

    def can_write_eof(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass  # datagrams are sent at once or dropped by the kernel: nothing to buffer

    def get_write_buffer_size(self) -> int:
        return 0

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        if name == "peername":
            return self._peer
        return self._socket.get_extra_info(name, default)


class _ListenSocket(asyncio.DatagramProtocol):
    def __init__(self, listener: DatagramListener) -> None:
        self.listener = listener
        self.transport: Any = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.listener.received(data, addr, self.transport)

    def error_received(self, exc: Exception) -> None:
        logger.debug(f"UDP listener: {exc}")


class UdpConnectionHandler(_server.ConnectionHandler):
    """A UDP peer's handler: ends after UDP_IDLE_TIMEOUT seconds of silence."""

    def _idle_timeout(self) -> int:
        return UDP_IDLE_TIMEOUT

    def close_all(self) -> None:
        """A peer never says goodbye: when we end it (idle, shutdown) the layers hear of it
        as if it had closed, so its flows end with their hooks."""
        client = self.client
        if client.state & ConnectionState.CAN_READ:
            client.state &= ~ConnectionState.CAN_READ
            self.feed(events.ConnectionClosed(client))
        super().close_all()


class DatagramListener:
    """Bound UDP sockets (IPv4 and IPv6 when listening everywhere) serving one proxy mode:
    the ProxyListener of datagrams."""

    def __init__(self, master: Any, make_layer: _server.LayerFactory, mode: ProxyMode | str) -> None:
        self.master = master
        self.make_layer = make_layer
        self.mode = mode if isinstance(mode, ProxyMode) else ProxyMode.parse(mode)
        self.transports: list[Any] = []
        self.peers: dict[tuple[str, int], _PeerTransport] = {}
        self.handlers: dict[asyncio.Task[None], _server.ConnectionHandler] = {}
        self.last_exception: Exception | None = None

    async def start(self, host: str, port: int) -> None:
        """Bind ``host`` (all interfaces, IPv4 and IPv6, if empty) on ``port``."""
        loop = asyncio.get_running_loop()
        infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_DGRAM, flags=socket.AI_PASSIVE)
        sockets: list[socket.socket] = []
        try:
            for family, kind, proto, _, address in dict.fromkeys(infos):
                sock = socket.socket(family, kind, proto)
                sockets.append(sock)
                if family == socket.AF_INET6:
                    sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
                if port == 0 and len(sockets) > 1:  # the other family: the port the first one got
                    address = (address[0], sockets[0].getsockname()[1], *address[2:])
                try:
                    sock.bind(address)
                except OSError as e:
                    reason = (e.strerror or str(e)).lower()
                    raise OSError(e.errno, f"error while attempting to bind on address {address!r}: {reason}") from None
        except OSError:
            for sock in sockets:
                sock.close()
            raise
        for sock in sockets:
            transport, _ = await loop.create_datagram_endpoint(lambda: _ListenSocket(self), sock=sock)
            self.transports.append(transport)

    @property
    def is_running(self) -> bool:
        return bool(self.transports)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return [t.get_extra_info("sockname")[:2] for t in self.transports]

    def to_json(self) -> dict[str, Any]:
        return _server.listener_json(self)

    def received(self, data: bytes, peer: tuple[str, int], socket_transport: Any) -> None:
        peer = (peer[0], peer[1])  # IPv6 addresses come with flow info and scope id
        transport = self.peers.get(peer)
        if transport is None:
            limit = _server.connection_limit(getattr(self.master.options, "max_connections", 0))
            if len(self.peers) >= limit:
                return  # at the limit: drop, as a full socket buffer would
            transport = self._new_peer(peer, socket_transport)
        transport.deliver(data)

    def _new_peer(self, peer: tuple[str, int], socket_transport: Any) -> _PeerTransport:
        transport = _PeerTransport(self, peer, socket_transport)
        sockname = tuple(socket_transport.get_extra_info("sockname")[:2])
        client = Client(
            peername=peer,
            sockname=sockname,
            state=ConnectionState.OPEN,
            proxy_mode=self.mode,
            transport_protocol=TransportProtocol.UDP,
        )
        handler = UdpConnectionHandler(self.master, client, self.make_layer)
        protocol = _server._ConnectionProtocol(None, None)
        protocol.adopt = handler.adopt_client
        transport.protocol = protocol
        self.peers[peer] = transport
        protocol.connection_made(transport)
        task = asyncio.get_running_loop().create_task(handler.run())
        self.handlers[task] = handler
        task.add_done_callback(self._handler_done)
        return transport

    def forget(self, peer: tuple[str, int], transport: _PeerTransport) -> None:
        if self.peers.get(peer) is transport:
            del self.peers[peer]

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self.handlers.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("internal error", exc_info=task.exception())

    async def stop(self) -> None:
        if not self.transports:
            return
        for handler in list(self.handlers.values()):
            handler.close_all()
        if self.handlers:
            await asyncio.wait(list(self.handlers), timeout=5)
        for task in list(self.handlers):
            task.cancel()
        for transport in self.transports:
            transport.close()
        self.transports = []


class DualListener:
    """TCP and UDP on the same port, for modes that serve both (``dns``, ``reverse:dns://``)."""

    def __init__(self, master: Any, make_layer: _server.LayerFactory, mode: ProxyMode | str) -> None:
        self.tcp = _server.ProxyListener(master, make_layer, mode)
        self.udp = DatagramListener(master, make_layer, mode)
        self.mode = self.tcp.mode
        self.last_exception: Exception | None = None

    async def start(self, host: str, port: int) -> None:
        await self.tcp.start(host, port)
        try:
            await self.udp.start(host, self.tcp.addresses[0][1])
        except OSError:
            await self.tcp.stop()
            raise

    @property
    def is_running(self) -> bool:
        return self.tcp.is_running

    @property
    def addresses(self) -> list[tuple[str, int]]:
        return self.tcp.addresses

    @property
    def handlers(self) -> dict[asyncio.Task[None], _server.ConnectionHandler]:
        return {**self.tcp.handlers, **self.udp.handlers}

    def to_json(self) -> dict[str, Any]:
        return _server.listener_json(self)

    async def stop(self) -> None:
        await self.udp.stop()
        await self.tcp.stop()


class _ServerDatagram(asyncio.DatagramProtocol):
    """A connected UDP socket to a server, feeding a ``_ConnectionProtocol``."""

    def __init__(self, protocol: _server._ConnectionProtocol) -> None:
        self.protocol = protocol
        self.wrapper: _ConnectedTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have asyncio's methods but are no subclass.
        self.wrapper = _ConnectedTransport(cast(asyncio.DatagramTransport, transport))
        self.protocol.connection_made(self.wrapper)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        if self.wrapper is not None and self.wrapper.is_reading():
            self.protocol.data_received(data)

    def error_received(self, exc: Exception) -> None:
        """ICMP port unreachable and the like: the server is gone."""
        if hasattr(self.protocol, "handler"):
            self.protocol.handler.read_closed(self.protocol.connection, exc)
        if self.wrapper is not None:
            self.wrapper.close()

    def connection_lost(self, exc: Exception | None) -> None:
        self.protocol.connection_lost(exc)


class _ConnectedTransport(asyncio.Transport):
    """A connected DatagramTransport with the stream transport calls the driver makes.
    Paused reading drops datagrams: UDP has no way to ask the sender to wait."""

    def __init__(self, transport: asyncio.DatagramTransport) -> None:
        super().__init__()
        self._transport = transport
        self._reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if data and not self._transport.is_closing():
            self._transport.sendto(data)

    def close(self) -> None:
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def is_reading(self) -> bool:
        return self._reading

    def pause_reading(self) -> None:
        self._reading = False

    def resume_reading(self) -> None:
        self._reading = True

    def can_write_eof(self) -> bool:
        return False

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)


async def open_datagram(
    protocol: _server._ConnectionProtocol, host: str, port: int, local_addr: tuple[str, int] | None = None
) -> asyncio.Transport:
    """Connect a UDP socket to ``(host, port)``; the transport ``protocol`` was made with."""
    _, adapter = await asyncio.get_running_loop().create_datagram_endpoint(
        lambda: _ServerDatagram(protocol), remote_addr=(host, port), local_addr=local_addr
    )
    assert adapter.wrapper is not None
    return adapter.wrapper
