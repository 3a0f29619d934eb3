"""The driver: the only code in proxycore that owns sockets.

One ConnectionHandler per client connection feeds events into its layer
stack and carries out the commands that come back, in order.  Hooks run as
tasks (a hook nobody implements is answered at once), so a slow addon never
holds up other connections or the other streams of this one.
"""

from __future__ import annotations

import asyncio
import collections
import errno
import ipaddress
import logging
import os
import socket
import sys
import time
from collections.abc import Callable, Iterator
from typing import Any, Protocol, cast

from proxycore import platform
from proxycore.connection import Client, Connection, ConnectionState, Server, TransportProtocol
from proxycore.flow import Flow
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import Layer
from proxycore.proxy.mode_specs import ProxyMode, TransparentMode
from proxycore.proxy.server_hooks import (
    ClientConnectedHook,
    ClientDisconnectedHook,
    ServerConnectedHook,
    ServerConnectErrorHook,
    ServerConnectHook,
    ServerConnectionHookData,
    ServerDisconnectedHook,
)
from proxycore.utils.human import format_address

logger = logging.getLogger("proxycore.proxy")

READ_SIZE = 65536
WRITE_HIGH_WATER = 256 * 1024
# Writes larger than this go to the transport in pieces of WRITE_PIECE bytes (memoryview
# slices), only while its buffer is below WRITE_HIGH_WATER: asyncio copies what a send
# leaves over, so one 64 MiB write would otherwise cost two more copies of the body.
WRITE_PIECE = 1024 * 1024  # a 1 MiB body still goes out in one write
# What the layers write to one peer while handling one event goes out as one write when it
# adds up to at most this (a response head and a small body: one send instead of two).
COALESCE_LIMIT = 64 * 1024
MAX_CONNECTIONS_PER_ADDRESS = 5
# A head timer whose loop timer fires at most this early (the loop's clock resolution) is due.
HEAD_TIMER_SLACK = 0.001
LISTEN_BACKLOG = 1024
# File descriptors kept for everything but client connections (listeners, logs, flow files).
FD_RESERVE = 64
# The soft file-descriptor limit a listener raises the process's to (if the hard one allows).
FD_LIMIT_TARGET = 65536
# Seconds without accepting after the process ran out of file descriptors.
ACCEPT_PAUSE = 1.0
# At most one "connection limit reached" warning per listener in this many seconds: under a
# sustained overload every close lets one waiting client in and the limit is hit again.
LIMIT_WARNING_INTERVAL = 10.0
OUT_OF_RESOURCES = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# Set in worker processes (--workers): their listeners share the port, the kernel spreads
# new connections over them.
REUSE_PORT = False
# Set in worker processes: listening sockets the primary bound and handed down, by the
# (host, port) they serve, so that all workers take connections from one queue; and the
# question asked before each accept: how long to leave a waiting connection to the other
# workers (see proxycore/workers/balance.py).
SHARED_SOCKETS: dict[tuple[str, int], list[socket.socket]] = {}
ACCEPT_GATE: Callable[[], float] | None = None
# Set in worker processes: called before the driver writes to any peer, so that what a
# worker holds for the primary (the flows finished in this loop pass) is in the primary's
# socket before a client hears more (see proxycore/workers/child.py, PrimaryLink).
BEFORE_WRITES: Callable[[], None] | None = None
# Enum members the per-request path compares with, as module globals: on Python 3.11 every
# attribute read on an Enum class goes through EnumType.__getattr__'s slot (~600 instructions
# against ~30 for a global), and a keep-alive request read them three times.
_OPEN = ConnectionState.OPEN
_DataReceived = events.DataReceived
_new_object = object.__new__
_CAN_WRITE = ConnectionState.CAN_WRITE
_UDP = TransportProtocol.UDP

LayerFactory = Callable[[Context], Layer]


class _ConnectionProtocol(asyncio.Protocol):
    """Hands one connection's socket events to its handler; no buffering of its own."""

    handler: ConnectionHandler
    connection: Connection

    def __init__(self, handler: ConnectionHandler | None, connection: Connection | None) -> None:
        """Handler and connection are None for an accepted client until the listener adopts it."""
        if handler is not None and connection is not None:
            self.handler = handler
            self.connection = connection
        self.transport: asyncio.Transport | None = None
        self.closed = asyncio.Event()
        self.read_while_full = 0  # bytes read from this peer while we could not write to it
        self.adopt: Callable[[_ConnectionProtocol], None] | None = None
        # Large writes not yet handed to the transport, and what to do once they are.
        self.pending: collections.deque[memoryview] = collections.deque()
        # Whether we want to read.  uvloop starts reading after connection_made even if it
        # paused there, so what arrives meanwhile waits here (and the EOF after it).
        self.reading = True
        self.held: list[bytes] = []
        self.held_eof = False
        self.after_pending: str | None = None  # "close" or "eof"

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # Duck-typed: uvloop's transports have asyncio.Transport's methods but are no subclass.
        stream = cast(asyncio.Transport, transport)
        self.transport = stream
        stream.set_write_buffer_limits(high=WRITE_HIGH_WATER)
        if self.adopt is not None:
            self.adopt(self)

    def data_received(self, data: bytes) -> None:
        if not self.reading:
            self.held.append(data)
            if self.transport is not None:
                self.transport.pause_reading()
            return
        handler = self.handler
        if type(handler) is not ConnectionHandler or handler._full_writers:
            handler.data_received(self.connection, data)  # a subclass's, or with backpressure
            return
        # ConnectionHandler.data_received when no peer is full, written out: a call less
        # per socket read.
        handler._last_activity = time.monotonic()
        connection = self.connection
        if connection is handler.client:
            handler._client_silent = False
        # DataReceived(connection, data) without its Python __init__ frame (~0.5k
        # instructions; tests/speed/test_driver_events.py checks the two are alike).
        event = _new_object(_DataReceived)
        event.connection = connection
        event.data = data
        handler._queue.append(event)
        if not handler._processing:
            handler._process(False)  # (positional: a keyword argument makes the call unspecialized)

    def eof_received(self) -> bool:
        if not self.reading:
            self.held_eof = True
            return True
        self.handler.read_closed(self.connection, None)
        return True  # keep our writing side open: the layers decide when to close it

    def write(self, data: bytes) -> None:
        """Write ``data``; a large one (or any behind one) waits here until the transport has room."""
        transport = self.transport
        assert transport is not None
        if not self.pending and len(data) <= WRITE_PIECE:
            transport.write(data)
            return
        self.pending.append(memoryview(data).cast("B"))
        self.flush()

    def flush(self) -> None:
        """Hand pending data to the transport, one piece at a time, up to its high-water mark."""
        transport = self.transport
        pending = self.pending
        while pending and transport is not None and not transport.is_closing():
            if transport.get_write_buffer_size() > WRITE_HIGH_WATER:
                return  # pause_writing was called: resume_writing goes on
            view = pending[0]
            if len(view) > WRITE_PIECE:
                pending[0] = view[WRITE_PIECE:]
                view = view[:WRITE_PIECE]
            else:
                pending.popleft()
            transport.write(view)
        pending.clear()
        after, self.after_pending = self.after_pending, None
        if transport is not None and after == "close":
            transport.close()
        elif transport is not None and after == "eof" and not transport.is_closing():
            try:
                transport.write_eof()
            except OSError:
                pass

    def close_when_written(self, after: str) -> None:
        """Close (or half-close, ``eof``) once pending data is out; at once if there is none."""
        if self.after_pending != "close":
            self.after_pending = after
        self.flush()

    def hold(self) -> None:
        """Deliver nothing until ``set_reading(True)``, without pausing the transport.

        For the moment between a connection's start and the layers hearing of it: nothing
        usually arrives then, so pausing and resuming would only cost two epoll_ctl calls.
        What does arrive is held, and only then is the transport paused (data_received)."""
        self.reading = False

    def set_reading(self, reading: bool) -> None:
        transport = self.transport
        if transport is None or reading == self.reading:
            return
        self.reading = reading
        if not reading:
            transport.pause_reading()
            return
        while self.held and self.reading:
            self.handler.data_received(self.connection, self.held.pop(0))
        if self.reading and self.held_eof:
            self.held_eof = False
            self.handler.read_closed(self.connection, None)
        elif self.reading and not transport.is_closing():
            transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.pending.clear()
        self.closed.set()
        if not hasattr(self, "handler"):
            return  # refused before any handler adopted it (transparent mode failure)
        self.handler.read_closed(self.connection, exc)
        self.handler.lost(self.connection)
        self.handler.writable(self, True)

    def pause_writing(self) -> None:
        self.handler.writable(self, False)

    def resume_writing(self) -> None:
        self.flush()
        if self.transport is not None and self.transport.get_write_buffer_size() <= WRITE_HIGH_WATER:
            self.handler.writable(self, True)


def _same_address(a: tuple[str, int], b: Any) -> bool:
    """Same host and port, an IPv4-mapped IPv6 address counting as its IPv4 form."""
    if not b or a[1] != b[1]:
        return False

    def plain(host: str) -> str:
        try:
            ip = ipaddress.ip_address(host)
        except ValueError:
            return host
        mapped = getattr(ip, "ipv4_mapped", None)
        return str(mapped or ip)

    return plain(a[0]) == plain(b[0])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("", 0))
        port: int = s.getsockname()[1]
        return port


def _error_text(e: OSError) -> str:
    """"Connection refused" rather than asyncio's "[Errno 111] Connect call failed (…)"."""
    if isinstance(e, socket.gaierror) and e.strerror:
        return e.strerror
    if e.errno:
        return os.strerror(e.errno)
    return str(e) or type(e).__name__


def _log_info(message: str, extra: dict[str, Any]) -> None:
    """One connection event in the log (as mitmdump shows them), at no cost with -q."""
    if logger.isEnabledFor(logging.INFO):
        logger.info(message, extra=extra)


def _server_where(server: Server) -> str:
    """``host:port``, with the peer's IP in brackets when the address was a name."""
    assert server.address is not None
    where = format_address(server.address)
    if server.peername and server.peername[0] != server.address[0]:
        where += f" ({format_address(server.peername)})"
    return where


TRACE_LIMIT = 300  # characters of an event or command a proxy_debug line shows


def _short(item: object) -> str:
    text = repr(item)
    if len(text) <= TRACE_LIMIT:
        return text
    return f"{text[:TRACE_LIMIT]}... ({len(text)} characters)"


class _Writes(Protocol):
    """What the pass writer flushes: a ConnectionHandler, or a worker's link to its primary."""

    def flush_writes(self) -> None: ...


class _PassWriter:
    """Writes, at the end of each event-loop pass, what the layers of every handler sent in it.

    A send to a peer that sleeps in its event loop wakes it (on loopback the sender pays for
    that wakeup). Sends spread over a pass, between the layers' work on each connection, wake
    the peer once per send; sends bunched after the work find it awake. Within a pass
    nothing waits: the writes go out before the loop polls for more to read."""

    def __init__(self) -> None:
        self.handlers: list[_Writes] = []  # to write at the end of the pass
        self.loop: asyncio.AbstractEventLoop | None = None  # the loop a run is scheduled on

    def add(self, handler: _Writes, loop: asyncio.AbstractEventLoop | None) -> None:
        """Write ``handler``'s sends at the end of this pass of ``loop`` (None: outside any
        loop, a synchronous caller: write now). (ConnectionHandler._process does the same
        written out: it adds a handler after every read that sends.)"""
        if loop is None:
            handler.flush_writes()
            return
        if self.loop is not loop:  # none scheduled on this loop (or an old loop's, never run)
            self.loop = loop
            self.handlers = []
            loop.call_soon(self.run)
        self.handlers.append(handler)

    def run(self) -> None:
        """Write what the handlers added since the run was scheduled sent."""
        handlers, self.handlers, self.loop = self.handlers, [], None
        for handler in handlers:
            handler.flush_writes()


class ConnectionHandler:
    """Drives the layer stack of one client connection.

    Subclasses that have no client socket (client and stream replay) use the public seam
    only: ``log_as``, ``watched_hooks`` with :meth:`hook_finished`, :meth:`run_detached`,
    and ``read_closed``/``close_all``.  Everything starting with ``_`` is the driver's own
    (tests/proxy/test_driver_seam.py checks that addons keep out of it)."""

    watched_hooks: tuple[type[commands.StartHook], ...] = ()
    """Hooks that always run as a task, even with no addon for them, and after which
    :meth:`hook_finished` is called: how a replay learns that its flow is over."""

    def __init__(self, master: Any, client: Client, make_layer: LayerFactory, log_as: Any = None) -> None:
        """``log_as`` names the connection in log records (default: the client's address)."""
        self.master = master
        self.options = master.options
        self.client = client
        self.context = Context(client, self.options)
        self.context.instant_hook = self._instant_hook
        # Read before every hook, so the instance's own (a class attribute read through an
        # instance is not specialized on 3.11: ~0.25k instructions, four hooks a request):
        # the subclass's class value, or what a subclass set before calling this.
        self.watched_hooks = self.watched_hooks
        # The addon manager's memo of what each hook class needs (emptied in place, never
        # replaced): read by _instant_hook before every hook without going through master.
        self._hook_plans: dict[type, Any] = master.addons.hook_plans
        self.layer = make_layer(self.context)
        self.protocols: dict[Connection, _ConnectionProtocol] = {}
        # id(connection) -> its protocol, for SendData: looking a Connection up in
        # ``protocols`` runs its Python ``__hash__``, twice per request. Filled from
        # ``protocols`` on a miss, emptied whenever the driver adds or removes a protocol.
        self._send_targets: dict[int, _ConnectionProtocol] = {}
        self._queue: collections.deque[events.Event] = collections.deque()
        self._processing = False
        self._unsent: dict[_ConnectionProtocol, list[bytes]] = {}  # SendData of this feed()
        self._unsent_size = 0  # bytes in _unsent
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hook_tasks: set[asyncio.Task[Any]] = set()
        self._hooks_started: set[commands.StartHook] = set()  # by _instant_hook, not done yet
        self._semaphores: dict[Any, asyncio.Semaphore] = {}
        self._client_done = asyncio.Event()
        self._client_gone = False  # _client_done.is_set() without its Python call
        self._full_writers: set[_ConnectionProtocol] = set()
        self._paused_by_layers: set[Connection] = set()  # PauseReading without ResumeReading yet
        self._pending_hooks = 0
        self._last_activity = time.monotonic()
        self._watchdog: asyncio.TimerHandle | None = None
        self._client_silent = True  # no byte from the client and none to it yet
        # Wakeups the layers asked for; cancelled with the connection, so that a pending
        # timeout does not keep the handler (and its flows) alive after the client left.
        self._wakeups: dict[commands.RequestWakeup, asyncio.TimerHandle] = {}
        # The HTTP/1 request-head timer the layers publish on the client (client.head_timer).
        # The timer in force and when it is due; one loop timer serves them all (see
        # _sync_head_timer), so a keep-alive request does not cost a call_later and a cancel.
        self._head_timer: tuple[commands.RequestTimeout, float] | None = None
        self._head_timer_handle: asyncio.TimerHandle | None = None
        self._log_extra: dict[str, Any] = {"client": client.peername if log_as is None else log_as}
        # Read once per connection, as mitmproxy reads it once per layer: a switch applies to
        # connections that start after it, and feed() pays no option lookup.
        self._trace = bool(getattr(self.options, "proxy_debug", False))
        # The loop this handler runs on, once known: asking asyncio for it costs a getpid()
        # system call each time (its check for a fork), and a request asked up to three times.
        self._loop: asyncio.AbstractEventLoop | None = None

    def _running_loop(self) -> asyncio.AbstractEventLoop | None:
        """The running loop, remembered as this handler's; None outside a loop."""
        try:
            self._loop = asyncio.get_running_loop()
        except RuntimeError:
            return None
        return self._loop

    def adopt_client(self, protocol: _ConnectionProtocol) -> None:
        """Take over the accepted client socket; reading waits until ``run`` starts the layers."""
        protocol.handler = self
        protocol.connection = self.client
        self.protocols[self.client] = protocol
        self._send_targets.clear()
        assert protocol.transport is not None
        protocol.hold()  # nothing reaches the layers before Start

    # lifecycle -------------------------------------------------------------

    async def run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._arm_watchdog()
        head_timeout = getattr(self.options, "request_head_timeout", 0)
        silence = None
        if head_timeout:
            silence = asyncio.get_running_loop().call_later(head_timeout, self._check_silent, head_timeout)
        _log_info("client connect", self._log_extra)
        await self._run_hook(ClientConnectedHook(self.client))
        if self.client.error:
            logger.info(f"client refused: {self.client.error}", extra=self._log_extra)
            self._close(self.client)
        elif self.client.state & ConnectionState.CAN_READ:
            self.feed(events.Start())
            self._update_reading()
        await self._client_done.wait()
        if self._watchdog is not None:
            self._watchdog.cancel()
        if silence is not None:
            silence.cancel()
        for timer in self._wakeups.values():
            timer.cancel()
        self._wakeups.clear()
        self._head_timer = None
        if self._head_timer_handle is not None:
            self._head_timer_handle.cancel()
            self._head_timer_handle = None
        self.close_all()
        # Connection tasks end with their sockets; hook tasks run to the end, so the last
        # hooks (websocket_end, tcp_end, error...) reach addons even when the client left first.
        for task in list(self._tasks):
            if task not in self._hook_tasks:
                task.cancel()
        _log_info("client disconnect", self._log_extra)
        await self._run_hook(ClientDisconnectedHook(self.client))

    def close_all(self) -> None:
        for connection in list(self.protocols):
            self._close(connection)
        self._client_gone = True
        self._client_done.set()

    async def run_detached(self, done: asyncio.Event) -> None:
        """Drive the layers of a handler without a client socket (a replay) until ``done``
        is set or the layers give up (a crash, the idle timeout); then close every
        connection and wait for the hooks still running, so that they all reach addons
        before the caller goes on (e.g. to the next replay)."""
        self._loop = asyncio.get_running_loop()
        self._arm_watchdog()
        self.feed(events.Start())
        waiters = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(self._client_done.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:  # also when cancelled (shutdown): no socket is left behind
            for waiter in waiters:
                waiter.cancel()
            self.close_all()
            if self._watchdog is not None:
                self._watchdog.cancel()
        await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def hook_finished(self, hook: commands.StartHook) -> None:
        """Called after a hook of ``watched_hooks`` ran (all addons, and any interception
        resumed) and its completion went back to the layers.  Override; the default does nothing."""

    # socket events -------------------------------------------------------------

    def data_received(self, connection: Connection, data: bytes) -> None:
        """Bytes read from ``connection`` (_ConnectionProtocol.data_received has its usual
        case written out: change both)."""
        self._last_activity = time.monotonic()
        if connection is self.client:
            self._client_silent = False
        if self._full_writers:  # (a Connection's hash is Python code: skip it when nothing is full)
            protocol = self.protocols.get(connection)
            if protocol is not None and protocol in self._full_writers:
                protocol.read_while_full += len(data)
                if protocol.read_while_full > WRITE_HIGH_WATER:
                    self._update_reading()
        self._queue.append(events.DataReceived(connection, data))  # feed(), without its call
        if not self._processing:
            self._process(False)

    def read_closed(self, connection: Connection, exc: Exception | None) -> None:
        """EOF or a lost connection: the layers hear about it once."""
        if exc is not None and connection.error is None and not isinstance(exc, ConnectionResetError):
            if isinstance(exc, OSError):
                connection.error = _error_text(exc)
        if connection.state & ConnectionState.CAN_READ:
            connection.state &= ~ConnectionState.CAN_READ
            self.feed(events.ConnectionClosed(connection))
            if connection.state is ConnectionState.CLOSED and connection in self.protocols:
                self._close(connection)  # we had sent our FIN already: done both ways

    def lost(self, connection: Connection) -> None:
        """The socket is gone both ways (reset, or closed after our close())."""
        if connection in self.protocols:
            self._close(connection)

    def writable(self, protocol: _ConnectionProtocol, ok: bool) -> None:
        """Backpressure: while a peer's write buffer is full, read from no one else.

        The full peer itself is still read, a little: its FIN (a client that gave up on
        an endless response) must reach the layers, or we would wait on it forever."""
        if ok:
            self._full_writers.discard(protocol)
            protocol.read_while_full = 0
        else:
            self._full_writers.add(protocol)
        self._update_reading()

    def _update_reading(self) -> None:
        others_full = bool(self._full_writers)
        for protocol in list(self.protocols.values()):  # delivering held data may change it
            transport = protocol.transport
            if transport is None or transport.is_closing():
                continue
            if protocol.connection in self._paused_by_layers:
                pause = True
            elif protocol in self._full_writers:
                pause = protocol.read_while_full > WRITE_HIGH_WATER
            else:
                pause = others_full
            protocol.set_reading(not pause)

    # feeding events ------------------------------------------------------------

    def feed(self, event: events.Event) -> None:
        """Run ``event`` through the layers; events raised meanwhile wait their turn.

        What the layers send goes out at the end of this loop pass (see _PassWriter)."""
        self._queue.append(event)
        if not self._processing:
            self._process(False)

    def flush_writes(self) -> None:
        """Write what the layers sent (called by _PassWriter once per loop pass)."""
        if not self._unsent or self._processing:
            return
        if BEFORE_WRITES is not None:
            BEFORE_WRITES()
        batches, self._unsent = self._unsent, {}  # (a write may add to the new one)
        size, self._unsent_size = self._unsent_size, 0  # the bytes of all batches
        self._processing = True  # events a write raises (a paused peer's held bytes) wait
        try:
            alone = len(batches) == 1  # (usually: then its size is known without a sum)
            for protocol, chunks in batches.items():
                # _write's usual cases, without its call: nothing of the peer pending, one
                # small send or a few (a response's head and body) joined into one.
                transport = protocol.transport
                if transport is None or protocol.pending or transport.is_closing():
                    self._write(protocol, chunks)
                elif len(chunks) == 1:
                    if len(chunks[0]) <= WRITE_PIECE:
                        transport.write(chunks[0])
                    else:
                        self._write(protocol, chunks)
                elif (
                    (size if alone else sum(map(len, chunks))) <= COALESCE_LIMIT  # (<= WRITE_PIECE)
                    and protocol.connection.transport_protocol is not _UDP
                ):
                    transport.write(b"".join(chunks))
                else:
                    self._write(protocol, chunks)
        finally:
            self._processing = False
        if self._queue:
            self._process(True)

    def _process(self, flush: bool) -> None:
        """Run the queued events; with ``flush``, also write what they send, until both are
        done. Without, what they send goes out at the end of this loop pass (_PassWriter).

        The per-event work of the driver is written out here rather than in calls (a Python
        call costs ~1k instructions, and a keep-alive request is two socket reads)."""
        self._processing = True
        trace = self._trace
        queue = self._queue
        targets = self._send_targets
        try:
            while queue or (flush and self._unsent):
                if not queue:
                    self._flush_unsent()  # may raise events (a paused peer's held bytes)
                    continue
                current = queue.popleft()
                try:
                    issued = self._traced(current) if trace else self.layer.handle_event(current)
                    for command in issued:
                        if not isinstance(command, commands.SendData):
                            self._execute(command)
                            continue
                        # Sending: a request's most frequent command, so not in _execute.
                        connection = command.connection
                        protocol = targets.get(id(connection))
                        if protocol is None or protocol.connection is not connection:
                            protocol = self.protocols.get(connection)
                            if protocol is not None:
                                targets[id(connection)] = protocol
                        state = connection.state  # (identity tests: Flag's & runs Python code)
                        if protocol is None or not (state is _OPEN or state is _CAN_WRITE):
                            continue  # nowhere to send it: the peer is gone or closed for writing
                        data = command.data
                        unsent = self._unsent.get(protocol)
                        if unsent is None:
                            self._unsent[protocol] = [data]
                        else:
                            unsent.append(data)
                        self._unsent_size += len(data)
                        if connection is self.client:
                            self._client_silent = False  # a server-first protocol: the client may wait
                except Exception:
                    logger.exception(
                        f"proxycore has crashed handling {current!r}; closing this connection",
                        extra=self._log_extra,
                    )
                    queue.clear()
                    self.close_all()
            # The request-head timer the HTTP/1 layer published on the client: disarmed by
            # a head, re-armed by each response (see _arm_head_timer).
            timer = getattr(self.client, "head_timer", None)
            if timer is None:
                self._head_timer = None  # the loop timer, if any, fires into nothing
            else:
                current_timer = self._head_timer
                if current_timer is None or current_timer[0] is not timer:
                    self._arm_head_timer(timer)
        finally:
            self._processing = False
        if flush:
            return  # all written
        if self._unsent_size > WRITE_HIGH_WATER:
            # A body in flight: write it now, so that a full peer pauses our reading before
            # the loop delivers more (uvloop reads a socket up to 32 times in one pass, and
            # 8 MB held here until the pass ended). Batching only helps small sends.
            self.flush_writes()
        elif self._unsent:
            loop = self._loop or self._running_loop()
            if loop is None:
                self.flush_writes()  # outside any loop (a synchronous caller): now
                return
            writer = _pass_writer  # _PassWriter.add, without its call
            if writer.loop is loop:
                writer.handlers.append(self)
            else:  # the first handler of this pass: the run is scheduled
                writer.loop = loop
                writer.handlers = [self]
                loop.call_soon(writer.run)

    def _traced(self, event: events.Event) -> Iterator[commands.Command]:
        """``proxy_debug``: the layers' work on ``event`` with one debug line per event in
        and per command out, each naming a layer (the issuing one for a blocking command,
        else the deepest of the connection's stack) and, through the record, the connection."""
        logger.debug(f"[{self.layer!r}] >> {_short(event)}", extra=self._log_extra)
        for command in self.layer.handle_event(event):
            origin = command.blocking if isinstance(command.blocking, Layer) else self._deepest_layer()
            logger.debug(f"[{origin!r}] << {_short(command)}", extra=self._log_extra)
            yield command

    def _deepest_layer(self) -> Layer:
        layers = self.context.layers
        return layers[-1] if layers else self.layer

    def _arm_head_timer(self, timer: Any) -> None:
        """Arm a new timer the HTTP/1 layer published on the client (the layer does not
        yield it as a command: see Http1Server.head_timer).

        Every keep-alive request replaces the timer (disarmed with the head, armed idle
        after the response). The loop timer is only moved when the new one is due earlier:
        one due later is re-armed for the rest of its time when the loop timer fires."""
        if not isinstance(timer, commands.RequestTimeout) or self._client_gone:
            self._head_timer = None  # the loop timer, if any, fires into nothing
            return
        loop = self._loop or asyncio.get_running_loop()
        due = loop.time() + timer.delay
        self._head_timer = (timer, due)
        handle = self._head_timer_handle
        if handle is not None and handle.when() <= due:
            return
        if handle is not None:
            handle.cancel()
        self._head_timer_handle = loop.call_at(due, self._head_timer_fired)

    def _head_timer_fired(self) -> None:
        self._head_timer_handle = None
        current = self._head_timer
        if current is None:
            return
        timer, due = current
        loop = self._loop or asyncio.get_running_loop()
        if loop.time() < due - HEAD_TIMER_SLACK:
            self._head_timer_handle = loop.call_at(due, self._head_timer_fired)  # a later timer
            return
        self._head_timer = None
        if getattr(self.client, "head_timer", None) is timer:
            self.feed(events.Wakeup(timer))

    def _flush_unsent(self, only: _ConnectionProtocol | None = None) -> None:
        """Write what the layers sent, joined per peer when small (see COALESCE_LIMIT)."""
        if BEFORE_WRITES is not None:
            BEFORE_WRITES()
        if only is not None:
            chunks = self._unsent.pop(only, None)
            batches = {only: chunks} if chunks else {}
            self._unsent_size -= sum(map(len, chunks)) if chunks else 0
        else:
            batches, self._unsent = self._unsent, {}  # (a write may add to the new one)
            self._unsent_size = 0
        for protocol, chunks in batches.items():
            self._write(protocol, chunks)

    def _write(self, protocol: _ConnectionProtocol, chunks: list[bytes]) -> None:
        """Write what the layers sent to one peer, joined when small (see COALESCE_LIMIT)."""
        transport = protocol.transport
        if transport is None or transport.is_closing():
            return  # the peer is gone (connection_lost)
        if len(chunks) == 1:
            chunk = chunks[0]
            if not protocol.pending and len(chunk) <= WRITE_PIECE:
                transport.write(chunk)  # protocol.write's common case, without its call
            else:
                protocol.write(chunk)
        elif (
            protocol.connection.transport_protocol != TransportProtocol.UDP  # datagrams stay apart
            and sum(map(len, chunks)) <= COALESCE_LIMIT
        ):
            protocol.write(b"".join(chunks))
        else:
            for chunk in chunks:
                protocol.write(chunk)

    def _execute(self, command: commands.Command) -> None:
        """Carry out a command other than SendData (which _process does itself)."""
        if isinstance(command, commands.StartHook):
            if command in self._hooks_started:
                self._hooks_started.discard(command)  # its task answers it
            elif self._hook_is_trivial(command):
                self._queue.append(events.HookCompleted(command))
            else:
                self._hook_tasks.add(self._spawn(self._hook_task(command)))
        elif isinstance(command, commands.OpenConnection):
            self._spawn(self._open_connection(command))
        elif isinstance(command, commands.CloseConnection):
            if command.half_close:
                self._half_close(command.connection)
            else:
                self._close(command.connection)
        elif isinstance(command, commands.PauseReading):
            self._paused_by_layers.add(command.connection)
            self._update_reading()
        elif isinstance(command, commands.ResumeReading):
            self._paused_by_layers.discard(command.connection)
            self._update_reading()
        elif isinstance(command, commands.Log):
            logger.log(command.level, command.message, extra=self._log_extra)
        elif isinstance(command, commands.RequestWakeup):
            if not self._client_gone:
                self._wakeups[command] = asyncio.get_running_loop().call_later(
                    command.delay, self._wake, command
                )
        else:
            logger.error(f"unexpected command {command!r}", extra=self._log_extra)

    def _wake(self, command: commands.RequestWakeup) -> None:
        del self._wakeups[command]
        self.feed(events.Wakeup(command))

    # hooks ---------------------------------------------------------------------

    def _instant_hook(self, hook: commands.StartHook) -> bool:
        """Asked by the layers before they pause for a hook (context.instant_hook): True if
        the hook is done already, so the layer goes on without waiting for our reply.

        That is the case when nobody listens, and when every handler is a plain function
        that returned (they run here and now, without a task) and left no flow intercepted.
        Otherwise what remains runs in a task that answers the hook when the layer yields it.
        Watched hooks are never instant: they go the task path that ends in hook_finished."""
        if self.watched_hooks and isinstance(hook, self.watched_hooks):
            return False
        plan = self._hook_plans.get(hook.__class__)  # (the memo of AddonManager.hook_plan)
        if plan is None:
            plan = self.master.addons.hook_plan(hook.__class__)
        name, gates = plan
        if name is not None:  # a one-argument hook (every HTTP hook): no list of arguments
            arg = getattr(hook, name)
            if gates is not None:
                for gate in gates:
                    if gate(arg):
                        break
                else:  # nobody listens, or every gate said no (three, four of a request's
                    # four HTTP hooks in proxydump -q): done unless the flow is intercepted,
                    # for then _execute starts the task that waits for its resume
                    return not (isinstance(arg, Flow) and arg.intercepted)
            args = [arg]
        else:
            args = hook.args()
            if gates is not None:
                for gate in gates:
                    if gate(*args):
                        break
                else:
                    return not _intercepted(args)
        rest = self.master.addons.handle_now(hook)
        if rest is None and not _intercepted(args):
            return True
        self._hooks_started.add(hook)
        self._hook_tasks.add(self._spawn(self._hook_task(hook, ran=True, rest=rest)))
        return False

    def _hook_is_trivial(self, hook: commands.StartHook) -> bool:
        """No addon implements it (or every handler's ``gate`` says this one is not for it),
        no flow is intercepted and the handler does not watch it: answer without a task."""
        if self.watched_hooks and isinstance(hook, self.watched_hooks):
            return False
        handlers = self.master.addons.handlers(hook.name)
        args = hook.args()
        if handlers and not _all_gated_off(handlers, args):
            return False
        return not _intercepted(args)

    async def _hook_task(self, hook: commands.StartHook, ran: bool = False, rest: Any = None) -> None:
        """Run the hook (or, when ``ran``, what handle_now left of it), wait while a flow is
        intercepted, then answer the layer."""
        self._pending_hooks += 1
        try:
            if not ran:
                await self.master.addons.handle_lifecycle(hook)
            elif rest is not None:
                await rest
            for arg in hook.args():
                if isinstance(arg, Flow) and arg.intercepted:
                    await arg.wait_for_resume()
        finally:
            self._pending_hooks -= 1
            self._last_activity = time.monotonic()
        self.feed(events.HookCompleted(hook))
        if self.watched_hooks and isinstance(hook, self.watched_hooks):
            self.hook_finished(hook)

    async def _run_hook(self, hook: commands.StartHook) -> None:
        if self.master.addons.has_handlers(hook.name):
            await self.master.addons.handle_lifecycle(hook)

    # connections ---------------------------------------------------------------

    async def _open_connection(self, command: commands.OpenConnection) -> None:
        server: Server = command.connection
        if server.address is None:
            self.feed(events.OpenConnectionCompleted(command, "No server address given."))
            return
        data = ServerConnectionHookData(server, self.client)
        await self._run_hook(ServerConnectHook(data))
        if server.error:
            _log_info(
                f"server connection to {format_address(server.address)} killed before connect: {server.error}",
                self._log_extra,
            )
            self.feed(events.OpenConnectionCompleted(command, server.error))
            return
        semaphore = self._semaphores.get(server.address)
        if semaphore is None:  # (not setdefault: that would build a Semaphore every time)
            semaphore = self._semaphores[server.address] = asyncio.Semaphore(MAX_CONNECTIONS_PER_ADDRESS)
        async with semaphore:
            host, port = server.address
            protocol = _ConnectionProtocol(self, server)
            try:
                source = getattr(self.options, "connect_addr", None)
                local_addr = (source, 0) if source else None
                if server.transport_protocol == TransportProtocol.UDP:
                    from proxycore.proxy.server_udp import open_datagram

                    transport = await open_datagram(protocol, host, port, local_addr)
                else:
                    transport, _ = await asyncio.get_running_loop().create_connection(
                        lambda: protocol, host, port, local_addr=local_addr
                    )
            except (OSError, ValueError) as e:  # ValueError: a host name IDNA refuses (set by an addon)
                server.error = _error_text(e) if isinstance(e, OSError) else f"invalid host: {e}"
                _log_info(f"error establishing server connection: {server.error}", self._log_extra)
                await self._run_hook(ServerConnectErrorHook(data))
                self.feed(events.OpenConnectionCompleted(command, server.error))
                return
            if self._client_gone:  # the client left while we were connecting
                transport.close()
                return
            now = time.time()
            server.timestamp_start = now
            if server.transport_protocol == TransportProtocol.TCP:
                server.timestamp_tcp_setup = now  # as in mitmproxy, which leaves it unset for UDP
            server.peername = transport.get_extra_info("peername")[:2]
            server.sockname = transport.get_extra_info("sockname")[:2]
            server.state = ConnectionState.OPEN
            self.protocols[server] = protocol
            self._send_targets.clear()
            protocol.hold()  # the layers learn about the connection first
            where = _server_where(server)
            _log_info(f"server connect {where}", self._log_extra)
            await self._run_hook(ServerConnectedHook(data))
            self.feed(events.OpenConnectionCompleted(command, None))
            if self.protocols.get(server) is protocol:
                self._update_reading()
            # Linger until the connection is gone on both sides. The task is cancelled when
            # the client's side ends first: the server still gets its disconnect line and hook.
            try:
                await protocol.closed.wait()
            finally:
                _log_info(f"server disconnect {where}", self._log_extra)
                await self._run_hook(ServerDisconnectedHook(data))

    def _half_close(self, connection: Connection) -> None:
        protocol = self.protocols.get(connection)
        if protocol is None or not connection.state & ConnectionState.CAN_WRITE:
            return
        connection.state &= ~ConnectionState.CAN_WRITE
        self._flush_unsent(protocol)
        transport = protocol.transport
        if protocol.pending:
            protocol.close_when_written("eof")
            transport = None
        try:
            if transport is not None and transport.can_write_eof():
                transport.write_eof()
        except OSError:
            pass
        if connection.state is ConnectionState.CLOSED:
            self._close(connection)

    def _close(self, connection: Connection) -> None:
        connection.state = ConnectionState.CLOSED
        connection.timestamp_end = connection.timestamp_end or time.time()
        protocol = self.protocols.pop(connection, None)
        if protocol is not None:
            self._send_targets.clear()
            self._full_writers.discard(protocol)
            self._flush_unsent(protocol)
            if protocol.transport is not None:
                protocol.close_when_written("close")
            else:
                protocol.closed.set()
        if connection is self.client:
            self._client_gone = True
            self._client_done.set()

    def _spawn(self, coro: Any) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        self._hook_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error("internal error", exc_info=task.exception(), extra=self._log_extra)

    # timeouts ------------------------------------------------------------------------

    def _check_silent(self, timeout: int) -> None:
        """request_head_timeout for a client that has not said a word: before its first
        bytes no layer can time a request head (none knows yet what protocol it speaks)."""
        if self._client_silent and not self._client_gone:
            logger.debug(f"closing client connection silent for {timeout} s", extra=self._log_extra)
            self.close_all()

    def _idle_timeout(self) -> int:
        """Seconds of silence after which the connection is closed (0: never)."""
        return getattr(self.options, "tcp_timeout", 600)

    def _arm_watchdog(self) -> None:
        timeout = self._idle_timeout()
        if timeout:
            self._watchdog = asyncio.get_running_loop().call_later(timeout, self._check_idle)

    def _check_idle(self) -> None:
        timeout = self._idle_timeout()
        idle = time.monotonic() - self._last_activity
        if self._pending_hooks or idle < timeout:
            self._watchdog = asyncio.get_running_loop().call_later(
                max(timeout - idle, 1.0), self._check_idle
            )
            return
        logger.info(f"closing idle connection after {timeout} s", extra=self._log_extra)
        self.close_all()


class _ClientSlots:
    """Client connections open in this process, held against the connection limit.

    Counted per process, as file descriptors are.  A listener over the limit waits for a
    slot instead of accepting: new clients wait in the kernel's backlog meanwhile."""

    def __init__(self) -> None:
        self.count = 0
        self._waiters: list[asyncio.Future[None]] = []
        self.publish: Callable[[int], None] | None = None  # told every new count (workers)

    def taken(self) -> None:
        self.count += 1
        if self.publish is not None:
            self.publish(self.count)

    def full(self, limit: int) -> bool:
        return self.count >= limit

    async def wait_for_room(self, limit: int) -> None:
        while self.count >= limit:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            await waiter

    def release(self) -> None:
        self.count -= 1
        if self.publish is not None:
            self.publish(self.count)
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)


_client_slots = _ClientSlots()
_pass_writer = _PassWriter()


def connection_limit(max_connections: int) -> int:
    """``max_connections`` (0: none), kept below what the file-descriptor limit allows:
    a client connection usually needs a server connection too."""
    limit = max_connections or sys.maxsize
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):
        return limit
    if soft == resource.RLIM_INFINITY:
        return limit
    return max(1, min(limit, (soft - FD_RESERVE) // 2))


def raise_fd_limit() -> None:
    """Lift the soft file-descriptor limit to the hard one (at most FD_LIMIT_TARGET), as Go
    and nginx servers do: the usual soft limit of 1024 allows fewer than 500 proxied
    connections, while the hard limit is commonly far higher."""
    try:
        import resource

        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        target = FD_LIMIT_TARGET if hard == resource.RLIM_INFINITY else min(hard, FD_LIMIT_TARGET)
        if soft != resource.RLIM_INFINITY and soft < target:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    except (ImportError, OSError, ValueError):
        pass  # not on this platform, or not allowed: connection_limit() follows what is


def _bind(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for ``host`` (all interfaces if empty), IPv4 and IPv6 on one port."""
    shared = SHARED_SOCKETS.get((host, port))
    if shared:
        return [_nonblocking_copy(sock) for sock in shared]
    infos = socket.getaddrinfo(host or None, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    sockets: list[socket.socket] = []
    try:
        for family, kind, proto, _, address in dict.fromkeys(infos):
            sock = socket.socket(family, kind, proto)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if REUSE_PORT:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            if port == 0 and len(sockets) > 1:  # the other family: the port the first one got
                address = (address[0], sockets[0].getsockname()[1], *address[2:])
            try:
                sock.bind(address)
            except OSError as e:  # worded as asyncio's create_server (and so mitmproxy) words it
                reason = (e.strerror or str(e)).lower()
                raise OSError(e.errno, f"error while attempting to bind on address {address!r}: {reason}") from None
            sock.listen(LISTEN_BACKLOG)
            sock.setblocking(False)
    except OSError:
        for sock in sockets:
            sock.close()
        raise
    return sockets


class Listening(Protocol):
    """What the web API reads of a listener (TCP, UDP or both on one port)."""

    mode: ProxyMode
    last_exception: Exception | None

    @property
    def is_running(self) -> bool: ...

    @property
    def addresses(self) -> list[tuple[str, int]]: ...


def listener_json(listener: Listening) -> dict[str, Any]:
    """What mitmproxy's web API shows for a server (``/state`` -> ``servers``)."""
    return {
        "type": listener.mode.type_name,
        "description": listener.mode.description,
        "full_spec": listener.mode.full_spec,
        "is_running": listener.is_running,
        "last_exception": str(listener.last_exception) if listener.last_exception else None,
        "listen_addrs": listener.addresses,
    }
def _intercepted(args: list[Any]) -> bool:
    """Whether a flow among a hook's arguments is intercepted."""
    for arg in args:  # a loop, not any() over a generator: asked for every hook
        if isinstance(arg, Flow) and arg.intercepted:
            return True
    return False


def _all_gated_off(handlers: list[tuple[Any, Callable[..., Any]]], args: list[Any]) -> bool:
    """A handler may carry a cheap synchronous ``gate(*args) -> bool`` (e.g. "is this
    request for my host?"), so that an addon interested in few flows costs no task."""
    for _, handler in handlers:
        gate = getattr(handler, "gate", None)
        if gate is None or gate(*args):
            return False
    return True


def _set_once(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


async def _accept(loop: asyncio.AbstractEventLoop, sock: socket.socket) -> socket.socket:
    """The next connection; in a worker, once ACCEPT_GATE lets us take it."""
    gate = ACCEPT_GATE
    if gate is None:
        try:  # one already waiting needs no reader (uvloop's sock_accept always adds one)
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            conn, _ = await loop.sock_accept(sock)
            return conn
        conn.setblocking(False)
        return conn
    while True:
        ready = loop.create_future()
        loop.add_reader(sock.fileno(), _set_once, ready)
        try:
            await ready
        finally:
            loop.remove_reader(sock.fileno())
        delay = gate()
        if delay:
            await asyncio.sleep(delay)  # a less busy worker may take it meanwhile
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError):
            continue  # another worker took it
        conn.setblocking(False)
        return conn


def _nonblocking_copy(sock: socket.socket) -> socket.socket:
    """A second descriptor of a shared listening socket.  Not ``sock.dup()``: that sets the
    copy's timeout, which switches the one open file, shared with the other workers, to
    blocking for a moment (and a worker's accept() could then hang its event loop)."""
    copy = socket.socket(fileno=os.dup(sock.fileno()))
    copy.setblocking(False)
    return copy


def bind_shared(host: str, port: int) -> list[socket.socket]:
    """Listening sockets for worker processes to share (the primary binds them)."""
    global REUSE_PORT
    reuse, REUSE_PORT = REUSE_PORT, True  # workers may still bind further ones themselves
    try:
        return _bind(host, port)
    finally:
        REUSE_PORT = reuse


class ProxyListener:
    """Listening sockets that hand each connection to a ConnectionHandler.

    Accepting is ours (not asyncio's create_server) so that it can stop: at the
    connection limit, and for a moment when the process runs out of file descriptors
    (logged once, where asyncio would log every failed accept)."""

    def __init__(self, master: Any, make_layer: LayerFactory, mode: ProxyMode | str = "regular") -> None:
        self.master = master
        self.make_layer = make_layer
        self.mode = mode if isinstance(mode, ProxyMode) else ProxyMode.parse(mode)
        self.sockets: list[socket.socket] = []
        self._addresses: tuple[list[socket.socket], list[tuple[str, int]]] = ([], [])
        self._accept_tasks: list[asyncio.Task[None]] = []
        self._serving: set[asyncio.Task[None]] = set()  # strong references, as asyncio asks
        self.handlers: dict[asyncio.Task[None], ConnectionHandler] = {}
        self.last_exception: Exception | None = None

    async def start(self, host: str, port: int) -> None:
        raise_fd_limit()
        try:
            self.sockets = _bind(host, port)
        except OSError:
            if port != 0 or host:
                raise
            # One family refused the other's port: give both a port free on both.
            self.sockets = _bind(host, _free_port())
        loop = asyncio.get_running_loop()
        self._accept_tasks = [loop.create_task(self._accept_loop(sock)) for sock in self.sockets]

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        out_of_fds = False
        warned_full_at = -LIMIT_WARNING_INTERVAL
        while True:
            limit = connection_limit(getattr(self.master.options, "max_connections", 0))
            if _client_slots.full(limit):
                if loop.time() - warned_full_at >= LIMIT_WARNING_INTERVAL:
                    warned_full_at = loop.time()
                    logger.warning(
                        f"{_client_slots.count} client connections open (limit {limit}, see "
                        "max_connections): new connections wait until some close."
                    )
                await _client_slots.wait_for_room(limit)
            try:
                conn = await _accept(loop, sock)
            except OSError as e:
                if e.errno not in OUT_OF_RESOURCES:
                    if sock.fileno() == -1:
                        return  # closed by stop()
                    logger.debug(f"accept failed: {e}")
                    continue
                if not out_of_fds:
                    out_of_fds = True
                    logger.error(
                        f"Cannot accept connections: {_error_text(e)}. Pausing new connections "
                        "until descriptors are free again (raise `ulimit -n` or lower max_connections)."
                    )
                await asyncio.sleep(ACCEPT_PAUSE)
                continue
            if out_of_fds:
                out_of_fds = False
                logger.info("Accepting connections again.")
            _client_slots.taken()
            task = loop.create_task(self._serve(conn))
            self._serving.add(task)
            task.add_done_callback(self._serving.discard)

    async def _serve(self, conn: socket.socket) -> None:
        """One accepted socket: its protocol adopts it; the slot is freed when it is gone."""
        protocol = self._new_connection()
        try:
            await asyncio.get_running_loop().connect_accepted_socket(lambda: protocol, conn)
            await protocol.closed.wait()
        except OSError:
            conn.close()
        finally:
            _client_slots.release()

    @property
    def is_running(self) -> bool:
        return bool(self.sockets)

    def to_json(self) -> dict[str, Any]:
        return listener_json(self)

    @property
    def addresses(self) -> list[tuple[str, int]]:
        """Read from the sockets once per set of sockets: a bound socket keeps its address,
        and every server connection asks (proxyserver refuses connections to ourselves)."""
        sockets, addresses = self._addresses
        if sockets is not self.sockets:
            addresses = [s.getsockname()[:2] for s in self.sockets]
            self._addresses = (self.sockets, addresses)
        return list(addresses)

    def _new_connection(self) -> _ConnectionProtocol:
        protocol = _ConnectionProtocol(None, None)
        protocol.adopt = self._start_handler
        return protocol

    def _start_handler(self, protocol: _ConnectionProtocol) -> None:
        transport = protocol.transport
        assert transport is not None
        peername = transport.get_extra_info("peername")
        sockname = transport.get_extra_info("sockname")
        client = Client(
            peername=tuple(peername[:2]) if peername else None,
            sockname=tuple(sockname[:2]) if sockname else None,
            state=ConnectionState.OPEN,
            proxy_mode=self.mode,
        )
        handler = ConnectionHandler(self.master, client, self.make_layer)
        if isinstance(self.mode, TransparentMode):
            try:
                assert platform.original_addr is not None
                destination = platform.original_addr(transport.get_extra_info("socket"))
            except (OSError, AssertionError) as e:
                logger.error(f"Transparent mode failure: {e!r}", extra={"client": client.peername})
                transport.close()
                return
            if _same_address(destination, sockname):
                logger.warning(
                    f"Transparent mode failure: the connection to {destination[0]}:{destination[1]} "
                    "was not redirected (a client connected to the proxy port directly?)",
                    extra={"client": client.peername},
                )
                transport.close()
                return
            client.sockname = destination
            handler.context.server.address = destination
        handler.adopt_client(protocol)
        task = asyncio.get_running_loop().create_task(handler.run())
        self.handlers[task] = handler
        task.add_done_callback(self._handler_done)

    def _handler_done(self, task: asyncio.Task[None]) -> None:
        self.handlers.pop(task, None)
        if not task.cancelled() and task.exception() is not None:
            logger.error("internal error", exc_info=task.exception())

    async def stop(self) -> None:
        if not self.sockets:
            return
        for task in self._accept_tasks:
            task.cancel()
        await asyncio.gather(*self._accept_tasks, return_exceptions=True)
        for sock in self.sockets:
            sock.close()
        for handler in list(self.handlers.values()):
            handler.close_all()
        if self.handlers:
            await asyncio.wait(list(self.handlers), timeout=5)
        for task in list(self.handlers):
            task.cancel()
        self.sockets, self._accept_tasks = [], []
