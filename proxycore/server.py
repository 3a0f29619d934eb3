"""The driver: the only code in proxycore that owns sockets.

One ConnectionHandler per client connection feeds events into its layer
stack and carries out the commands that come back, in order.  Hooks run as
tasks (a hook nobody implements is answered at once), so a slow addon never
holds up other connections or the other streams of this one.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from proxycore import commands, events
from proxycore.connection import Client, Connection, ConnectionState, Server
from proxycore.context import Context
from proxycore.flow import Flow
from proxycore.layer import Layer
from proxycore.server_hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ServerConnectedHook,
    ServerConnectErrorHook,
    ServerConnectHook,
    ServerConnectionHookData,
    ServerDisconnectedHook,
)

logger = logging.getLogger("proxycore.proxy")

READ_SIZE = 65536
WRITE_HIGH_WATER = 256 * 1024
MAX_CONNECTIONS_PER_ADDRESS = 5

LayerFactory = Callable[[Context], Layer]


class _Transport:
    """The stream pair and read task of one open connection."""

    __slots__ = ("reader", "writer", "closed")

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.closed = asyncio.Event()


def _error_text(e: OSError) -> str:
    """"Connection refused" rather than asyncio's "[Errno 111] Connect call failed (…)"."""
    if isinstance(e, socket.gaierror) and e.strerror:
        return e.strerror
    if e.errno:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


class ConnectionHandler:
    """Drives the layer stack of one client connection."""

    def __init__(
        self,
        master: Any,
        client: Client,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        make_layer: LayerFactory,
    ) -> None:
        self.master = master
        self.options = master.options
        self.client = client
        self.context = Context(client, self.options)
        self.layer = make_layer(self.context)
        self.transports: dict[Connection, _Transport] = {client: _Transport(reader, writer)}
        self._queue: collections.deque[events.Event] = collections.deque()
        self._processing = False
        self._tasks: set[asyncio.Task[Any]] = set()
        self._semaphores: dict[Any, asyncio.Semaphore] = {}
        self._client_done = asyncio.Event()
        self._pending_hooks = 0
        self._last_activity = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None
        self._log_extra = {"client": client.peername}

    # lifecycle -------------------------------------------------------------

    async def handle_client(self) -> None:
        self._arm_watchdog()
        await self._run_hook(ClientConnectedHook(self.client))
        if self.client.error:
            logger.info(f"client refused: {self.client.error}", extra=self._log_extra)
            self._close(self.client)
        else:
            self.feed(events.Start())
            await self._read_loop(self.client)
            if self.client.state is not ConnectionState.CLOSED:
                await self._client_done.wait()
        if self._watchdog is not None:
            self._watchdog.cancel()
        for connection in list(self.transports):
            self._close(connection)
        for task in list(self._tasks):
            task.cancel()
        await self._run_hook(ClientDisconnectedHook(self.client))

    # feeding events ------------------------------------------------------------

    def feed(self, event: events.Event) -> None:
        """Run ``event`` through the layers; events raised meanwhile wait their turn."""
        self._queue.append(event)
        if self._processing:
            return
        self._processing = True
        try:
            while self._queue:
                current = self._queue.popleft()
                try:
                    for command in self.layer.handle_event(current):
                        self._execute(command)
                except Exception:
                    logger.exception(
                        f"proxycore has crashed handling {current!r}; closing this connection",
                        extra=self._log_extra,
                    )
                    self._queue.clear()
                    for connection in list(self.transports):
                        self._close(connection)
                    self._client_done.set()
        finally:
            self._processing = False

    def _execute(self, command: commands.Command) -> None:
        if isinstance(command, commands.SendData):
            transport = self.transports.get(command.connection)
            if transport is not None and command.connection.state & ConnectionState.CAN_WRITE:
                transport.writer.write(command.data)
        elif isinstance(command, commands.StartHook):
            if self._hook_is_trivial(command):
                self._queue.append(events.HookCompleted(command))
            else:
                self._spawn(self._hook_task(command))
        elif isinstance(command, commands.OpenConnection):
            self._spawn(self._open_connection(command))
        elif isinstance(command, commands.CloseConnection):
            if command.half_close:
                self._half_close(command.connection)
            else:
                self._close(command.connection)
        elif isinstance(command, commands.Log):
            logger.log(command.level, command.message, extra=self._log_extra)
        elif isinstance(command, commands.RequestWakeup):
            asyncio.get_running_loop().call_later(
                command.delay, self.feed, events.Wakeup(command)
            )
        else:
            logger.error(f"unexpected command {command!r}", extra=self._log_extra)

    # hooks ---------------------------------------------------------------------

    def _hook_is_trivial(self, hook: commands.StartHook) -> bool:
        """No addon implements it and no flow is intercepted: answer without a task."""
        if self.master.addons.has_handlers(hook.name):
            return False
        return not any(isinstance(a, Flow) and a.intercepted for a in hook.args())

    async def _hook_task(self, hook: commands.StartHook) -> None:
        self._pending_hooks += 1
        try:
            await self.master.addons.handle_lifecycle(hook)
            for arg in hook.args():
                if isinstance(arg, Flow) and arg.intercepted:
                    await arg.wait_for_resume()
        finally:
            self._pending_hooks -= 1
            self._last_activity = time.monotonic()
        self.feed(events.HookCompleted(hook))

    async def _run_hook(self, hook: commands.StartHook) -> None:
        if self.master.addons.has_handlers(hook.name):
            await self.master.addons.handle_lifecycle(hook)

    # connections ---------------------------------------------------------------

    async def _read_loop(self, connection: Connection) -> None:
        transport = self.transports[connection]
        reader = transport.reader
        try:
            while True:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                self._last_activity = time.monotonic()
                self.feed(events.DataReceived(connection, data))
                await self._drain()
        except (OSError, asyncio.IncompleteReadError) as e:
            if connection.error is None and not isinstance(e, ConnectionResetError):
                connection.error = _error_text(e)
        if connection.state & ConnectionState.CAN_READ:
            connection.state &= ~ConnectionState.CAN_READ
            self.feed(events.ConnectionClosed(connection))

    async def _drain(self) -> None:
        """Backpressure: don't read more while any peer has a full write buffer."""
        for transport in list(self.transports.values()):
            if transport.writer.transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                try:
                    await transport.writer.drain()
                except OSError:
                    pass

    async def _open_connection(self, command: commands.OpenConnection) -> None:
        server: Server = command.connection
        if server.address is None:
            self.feed(events.OpenConnectionCompleted(command, "No server address given."))
            return
        data = ServerConnectionHookData(server, self.client)
        await self._run_hook(ServerConnectHook(data))
        if server.error:
            self.feed(events.OpenConnectionCompleted(command, server.error))
            return
        semaphore = self._semaphores.setdefault(
            server.address, asyncio.Semaphore(MAX_CONNECTIONS_PER_ADDRESS)
        )
        async with semaphore:
            host, port = server.address
            try:
                reader, writer = await asyncio.open_connection(host, port, limit=READ_SIZE * 4)
            except OSError as e:
                server.error = _error_text(e)
                await self._run_hook(ServerConnectErrorHook(data))
                self.feed(events.OpenConnectionCompleted(command, server.error))
                return
            now = time.time()
            server.timestamp_start = server.timestamp_tcp_setup = now
            server.peername = writer.get_extra_info("peername")[:2]
            server.sockname = writer.get_extra_info("sockname")[:2]
            server.state = ConnectionState.OPEN
            transport = self.transports[server] = _Transport(reader, writer)
            await self._run_hook(ServerConnectedHook(data))
            self.feed(events.OpenConnectionCompleted(command, None))
            await self._read_loop(server)
            # The server stopped sending; linger until the layers close our side too.
            await transport.closed.wait()
            await self._run_hook(ServerDisconnectedHook(data))

    def _half_close(self, connection: Connection) -> None:
        transport = self.transports.get(connection)
        if transport is None or not connection.state & ConnectionState.CAN_WRITE:
            return
        connection.state &= ~ConnectionState.CAN_WRITE
        try:
            if transport.writer.can_write_eof():
                transport.writer.write_eof()
        except OSError:
            pass
        if connection.state is ConnectionState.CLOSED:
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        connection.state = ConnectionState.CLOSED
        connection.timestamp_end = connection.timestamp_end or time.time()
        transport = self.transports.pop(connection, None)
        if transport is not None:
            transport.writer.close()
            transport.closed.set()
        if connection is self.client:
            self._client_done.set()

    def _spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("internal error", exc_info=task.exception(), extra=self._log_extra)

    # idle timeout ----------------------------------------------------------------

    def _arm_watchdog(self) -> None:
        timeout = getattr(self.options, "tcp_timeout", 600)
        if timeout:
            self._watchdog = asyncio.get_running_loop().call_later(timeout, self._check_idle)

    def _check_idle(self) -> None:
        timeout = self.options.tcp_timeout
        idle = time.monotonic() - self._last_activity
        if self._pending_hooks or idle < timeout:
            self._watchdog = asyncio.get_running_loop().call_later(
                max(timeout - idle, 1.0), self._check_idle
            )
            return
        logger.info(f"closing idle connection after {timeout} s", extra=self._log_extra)
        for connection in list(self.transports):
            self._close(connection)


class ProxyListener:
    """A bound TCP listener that hands each connection to a ConnectionHandler."""

    def __init__(self, master: Any, make_layer: LayerFactory, mode: str = "regular") -> None:
        self.master = master
        self.make_layer = make_layer
        self.mode = mode
        self.server: asyncio.base_events.Server | None = None
        self.handlers: set[asyncio.Task[None]] = set()

    async def start(self, host: str, port: int) -> None:
        self.server = await asyncio.start_server(
            self._handle, host or None, port, limit=READ_SIZE * 4, reuse_address=True
        )

    @property
    def addresses(self) -> list[tuple[str, int]]:
        if self.server is None:
            return []
        return [s.getsockname()[:2] for s in self.server.sockets]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername")
        sockname = writer.get_extra_info("sockname")
        client = Client(
            peername=tuple(peername[:2]) if peername else None,  # type: ignore[arg-type]
            sockname=tuple(sockname[:2]) if sockname else None,  # type: ignore[arg-type]
            state=ConnectionState.OPEN,
            proxy_mode=self.mode,
        )
        handler = ConnectionHandler(self.master, client, reader, writer, self.make_layer)
        task = asyncio.current_task()
        assert task is not None
        self.handlers.add(task)
        try:
            await handler.handle_client()
        except asyncio.CancelledError:
            for connection in list(handler.transports):
                handler._close(connection)
            raise
        finally:
            self.handlers.discard(task)

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            for task in list(self.handlers):
                task.cancel()
            if self.handlers:
                await asyncio.wait(list(self.handlers), timeout=5)
            await self.server.wait_closed()
            self.server = None
