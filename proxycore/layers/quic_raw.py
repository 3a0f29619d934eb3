"""Raw QUIC (``reverse:quic://``): both QUIC handshakes, then every stream relayed as a TCP flow.

QUIC that is not HTTP/3 has no message format the proxy knows, so each stream is treated
as mitmproxy does: a byte stream with its own TCPFlow (``tcp_start``/``tcp_message``/
``tcp_end`` hooks), handled by a TCPLayer that sees a stand-in client and server
connection per stream. A stream keeps its id on both QUIC connections (we are the client
toward the server, so client-initiated ids line up, and server-initiated ones too).

The server's handshake comes first, with the client's ALPN offers, so that the client can
be answered with the protocol the server chose (``quic_start_client`` sees it in
``context.server.alpn``). A reset stream is reset on the other side with the same code; a
closed QUIC connection closes the other one with the same code and reason. QUIC DATAGRAM
frames are not relayed.
"""

from __future__ import annotations

import dataclasses
import uuid
from typing import Any

from proxycore.connection import Client, ConnectionState, Server, TransportProtocol
from proxycore.layers.quic import (
    KEEPALIVE_SECONDS,
    MAX_HELLO_DATAGRAMS,
    InitialInfo,
    QuicEndpoint,
    read_client_hello,
    start_client_side,
    start_server_side,
    starts_like_quic,
)
from proxycore.layers.tcp import TCPLayer
from proxycore.layers.tls import TlsEstablishedClientHook, TlsEstablishedServerHook
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer


@dataclasses.dataclass
class _Stream:
    layer: TCPLayer
    client: Client  # stand-ins: what the TCPLayer (and the flow) see for this stream
    server: Server
    fin_sent: set[str] = dataclasses.field(default_factory=set)  # "client"/"server": our FIN went out


class RawQuicLayer(Layer):
    """Relays the streams of one QUIC connection to a QUIC server (see module docstring)."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        context.client.tls = context.server.tls = True
        self.hello: list[bytes] = []
        self.info: InitialInfo | None = None
        self.client_side: QuicEndpoint | None = None
        self.server_side: QuicEndpoint | None = None
        self.client_data: Any = None
        self.server_data: Any = None
        self.streams: dict[int, _Stream] = {}
        self.command_sources: dict[commands.Command, _Stream] = {}
        self.closed = False
        self.keepalive: commands.RequestWakeup | None = None

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start) or self.closed and not isinstance(event, events.CommandCompleted):
            return
        if isinstance(event, events.CommandCompleted):
            stream = self.command_sources.pop(event.command, None)
            if stream is not None:
                yield from self.to_stream(stream, event)
                yield from self.flush()  # what the stream wrote once its hook was done
            elif isinstance(event, events.Wakeup) and event.command is self.keepalive:
                self.keepalive = None
                if self.client_side is not None and self.open_streams():
                    self.client_side.quic.send_ping(0)  # see KEEPALIVE_SECONDS
                    yield from self.process()
            elif isinstance(event, events.Wakeup):
                for endpoint in (self.client_side, self.server_side):
                    if endpoint is not None and endpoint.timer_fired(event):
                        yield from self.process()
        elif isinstance(event, events.DataReceived) and event.connection is self.context.client:
            if self.client_side is not None:
                self.client_side.receive(event.data)
                yield from self.process()
            elif self.info is None:
                yield from self.read_hello(event.data)
            else:
                self.hello.append(event.data)  # the server's handshake is still running
        elif isinstance(event, events.DataReceived) and event.connection is self.context.server:
            if self.server_side is not None:
                self.server_side.receive(event.data)
                yield from self.process()
        elif isinstance(event, events.ConnectionClosed):
            yield from self.shut_down(0, f"{'client' if event.connection is self.context.client else 'server'} gone")

    def read_hello(self, data: bytes) -> CommandGenerator[None]:
        if not self.hello and not starts_like_quic(data):
            yield from self.give_up("Client sent a datagram that does not start a QUIC connection.")
            return
        self.hello.append(data)
        try:
            self.info = read_client_hello(self.hello)
        except ValueError as e:
            yield from self.give_up(f"Client QUIC handshake failed: {e}")
            return
        if self.info is None:
            if len(self.hello) >= MAX_HELLO_DATAGRAMS:
                yield from self.give_up("Client QUIC handshake failed: ClientHello incomplete")
            return
        self.context.client.sni = self.info.client_hello.sni
        self.context.client.alpn_offers = list(self.info.client_hello.alpn_protocols)
        server = self.context.server
        if not server.connected:  # connection_strategy=lazy: the socket is ours to open
            err = yield commands.OpenConnection(server)
            if err:
                yield from self.give_up(f"Cannot connect to {server.address}: {err}")
                return
        started = yield from start_server_side(self.context, self.context.client.alpn_offers)
        if started is None:
            yield from self.give_up("")
            return
        self.server_side, self.server_data = started
        yield from self.process()

    def give_up(self, message: str) -> CommandGenerator[None]:
        self.closed = True
        if message:
            yield commands.Log(message, "info")
        yield commands.CloseConnection(self.context.client)
        if self.context.server.connected:
            yield commands.CloseConnection(self.context.server)

    def process(self) -> CommandGenerator[None]:
        """Both connections' events in turn, until neither has any; then send what is due."""
        from aioquic.quic import events as quic_events

        busy = True
        while busy and not self.closed:
            busy = False
            for endpoint in (self.server_side, self.client_side):
                if endpoint is None:
                    continue
                for event in endpoint.events():
                    busy = True
                    from_client = endpoint is self.client_side
                    if isinstance(event, quic_events.HandshakeCompleted):
                        yield from self.handshake_done(endpoint, event)
                    elif isinstance(event, quic_events.StreamDataReceived):
                        yield from self.stream_data(from_client, event.stream_id, event.data, event.end_stream)
                    elif isinstance(event, quic_events.StreamReset):
                        yield from self.stream_reset(from_client, event.stream_id, event.error_code)
                    elif isinstance(event, quic_events.ConnectionTerminated):
                        who = "client" if from_client else "server"
                        yield from self.shut_down(event.error_code, event.reason_phrase or f"closed by {who}")
                        return
        yield from self.flush()
        if self.keepalive is None and not self.closed and self.open_streams():
            self.keepalive = commands.RequestWakeup(KEEPALIVE_SECONDS)
            yield self.keepalive

    def open_streams(self) -> bool:
        return any(s.layer.flow is not None and s.layer.flow.live for s in self.streams.values())

    def flush(self) -> CommandGenerator[None]:
        for endpoint in (self.server_side, self.client_side):
            if endpoint is not None:
                yield from endpoint.flush()

    def handshake_done(self, endpoint: QuicEndpoint, event: Any) -> CommandGenerator[None]:
        import time

        conn = endpoint.conn
        conn.alpn = (event.alpn_protocol or "").encode() or None
        conn.tls_version = "QUICv1"
        conn.timestamp_tls_setup = time.time()
        if endpoint is self.server_side:
            yield TlsEstablishedServerHook(self.server_data)
            assert self.info is not None
            hello, self.hello = self.hello, []
            started = yield from start_client_side(self.context, self.info, hello)
            if started is None:
                yield from self.shut_down(0x100, "no QUIC settings for the client")
                return
            self.client_side, self.client_data = started
        else:
            yield TlsEstablishedClientHook(self.client_data)

    def stream(self, stream_id: int) -> tuple[_Stream, list[commands.Command]]:
        """The stream's relay, made (and started) on first sight."""
        existing = self.streams.get(stream_id)
        if existing is not None:
            return existing, []
        context = self.context.fork()
        vclient = dataclasses.replace(
            self.context.client, id=str(uuid.uuid4()), transport_protocol=TransportProtocol.TCP,
            state=ConnectionState.OPEN,
        )
        vserver = dataclasses.replace(
            self.context.server, id=str(uuid.uuid4()), transport_protocol=TransportProtocol.TCP,
            state=ConnectionState.OPEN,
        )
        context.client, context.server = vclient, vserver
        self.open_on_other_side(stream_id)
        stream = self.streams[stream_id] = _Stream(TCPLayer(context), vclient, vserver)
        started = list(self.to_stream(stream, events.Start()))  # the flow exists, its hook waits
        if stream.layer.flow is not None:
            # mitmproxy's keys: the HTTP/3 frames view and the dumper read them.
            stream.layer.flow.metadata.update(
                quic_is_unidirectional=bool(stream_id & 0x2),
                quic_initiator="client" if stream_id & 0x1 == 0 else "server",
                quic_stream_id_client=stream_id,
                quic_stream_id_server=stream_id,
            )
        if stream_id & 0x2:
            # Unidirectional: the side that did not open it never sends on it.
            silent = vserver if stream_id & 0x1 == 0 else vclient
            silent.state &= ~ConnectionState.CAN_READ
            started += self.to_stream(stream, events.ConnectionClosed(silent))
        return stream, started

    def open_on_other_side(self, stream_id: int) -> None:
        """QUIC endpoints open their streams in id order (aioquic takes a skipped id for one
        already closed): open this one, and any lower one of its kind not seen yet, on the
        connection where we are the opener."""
        other = self.server_side if stream_id & 0x1 == 0 else self.client_side
        if other is None:
            return
        unidirectional = bool(stream_id & 0x2)
        while (next_id := other.quic.get_next_available_stream_id(unidirectional)) <= stream_id:
            _quietly(lambda n=next_id: other.quic.send_stream_data(n, b"", False))

    def stream_data(self, from_client: bool, stream_id: int, data: bytes, end: bool) -> CommandGenerator[None]:
        stream, started = self.stream(stream_id)
        yield from started
        conn = stream.client if from_client else stream.server
        if data:
            yield from self.to_stream(stream, events.DataReceived(conn, data))
        if end:
            conn.state &= ~ConnectionState.CAN_READ
            yield from self.to_stream(stream, events.ConnectionClosed(conn))

    def stream_reset(self, from_client: bool, stream_id: int, code: int) -> CommandGenerator[None]:
        stream = self.streams.get(stream_id)
        other = self.server_side if from_client else self.client_side
        if other is not None:
            _quietly(lambda: other.quic.reset_stream(stream_id, code))
        if stream is not None:
            conn = stream.client if from_client else stream.server
            conn.error = f"stream reset by the {'client' if from_client else 'server'} (error code {code:#x})"
            conn.state &= ~ConnectionState.CAN_READ
            yield from self.to_stream(stream, events.ConnectionClosed(conn))

    def to_stream(self, stream: _Stream, event: events.Event) -> CommandGenerator[None]:
        """Feed a stream's TCPLayer; its writes and closes become QUIC stream operations."""
        stream_id = next(i for i, s in self.streams.items() if s is stream)
        for command in stream.layer.handle_event(event):
            if command.blocking:
                self.command_sources[command] = stream
            if isinstance(command, commands.SendData) and command.connection in (stream.client, stream.server):
                endpoint = self.client_side if command.connection is stream.client else self.server_side
                if endpoint is not None:
                    _quietly(lambda e=endpoint, c=command: e.quic.send_stream_data(stream_id, c.data, False))
            elif isinstance(command, commands.CloseConnection) and command.connection in (stream.client, stream.server):
                side = "client" if command.connection is stream.client else "server"
                endpoint = self.client_side if side == "client" else self.server_side
                if side not in stream.fin_sent and endpoint is not None:
                    stream.fin_sent.add(side)
                    _quietly(lambda e=endpoint: e.quic.send_stream_data(stream_id, b"", True))
                if not command.half_close:
                    command.connection.state = ConnectionState.CLOSED
            elif isinstance(command, commands.OpenConnection):
                continue  # the stand-in server is open from the start
            else:
                yield command

    def shut_down(self, code: int, reason: str) -> CommandGenerator[None]:
        """One side ended: end the other with the same code and reason, and every stream."""
        if self.closed:
            return
        self.closed = True
        for endpoint in (self.client_side, self.server_side):
            if endpoint is not None:
                endpoint.quic.close(error_code=code, reason_phrase=reason)
                yield from endpoint.flush()
        for stream in list(self.streams.values()):
            for conn in (stream.client, stream.server):
                if conn.state & ConnectionState.CAN_READ:
                    conn.state &= ~ConnectionState.CAN_READ
                    yield from self.to_stream(stream, events.ConnectionClosed(conn))
        yield commands.Log(f"QUIC connection ended: {reason}", "debug")
        yield commands.CloseConnection(self.context.client)
        yield commands.CloseConnection(self.context.server)


def _quietly(action: Any) -> None:
    """aioquic refuses writes on streams that were reset or finished: nothing to do then."""
    try:
        action()
    except (ValueError, AssertionError, RuntimeError):
        pass
