"""Raw TCP relay, with tcp_* hooks unless ``ignore`` (untouched passthrough)."""

from __future__ import annotations

from proxycore.connection import Connection
from proxycore.flow import Error
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.tcp import TCPFlow, TCPMessage


@hook_dataclass
class TcpStartHook(StartHook):
    name = "tcp_start"
    flow: TCPFlow


@hook_dataclass
class TcpMessageHook(StartHook):
    """A chunk arrived (``flow.messages[-1]``); an addon may change its content."""

    name = "tcp_message"
    flow: TCPFlow


@hook_dataclass
class TcpEndHook(StartHook):
    name = "tcp_end"
    flow: TCPFlow


@hook_dataclass
class TcpErrorHook(StartHook):
    name = "tcp_error"
    flow: TCPFlow


class TCPLayer(Layer):
    """Relays bytes both ways; each direction ends on its own (half-close), then both close."""

    flow: TCPFlow | None

    def __init__(self, context: Context, ignore: bool = False) -> None:
        super().__init__(context)
        self.ignore = ignore
        self.flow = None
        self.read_closed: set[str] = set()

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield from self.start()
        elif isinstance(event, events.DataReceived):
            yield from self.relay(event.connection, event.data)
        elif isinstance(event, events.ConnectionClosed):
            yield from self.side_closed(event.connection)
        elif isinstance(event, events.MessageInjected) and event.flow is self.flow and self.flow is not None:
            # A message "from the client" goes to the server, and the other way round.
            # It passes the tcp_message hook like any other message (addons may change it).
            message = event.message
            self.flow.messages.append(message)
            yield TcpMessageHook(self.flow)
            yield from self.send(not message.from_client, message.content)

    def start(self) -> CommandGenerator[None]:
        client, server = self.context.client, self.context.server
        if not self.ignore:
            self.flow = TCPFlow(client, server, live=True)
            yield TcpStartHook(self.flow)
        if not server.connected and server.timestamp_start is None:  # never opened yet
            err = yield commands.OpenConnection(server)
            if err:
                if self.flow is not None:
                    self.flow.error = Error(err)
                    self.flow.live = False
                    yield TcpErrorHook(self.flow)
                yield commands.CloseConnection(client)
                self._goto(self.state_done)
                return
        self._goto(self.state_relay)

    def state_relay(self, event: events.Event) -> CommandGenerator[None]:
        yield from TCPLayer._handle_event(self, event)

    def state_done(self, event: events.Event) -> CommandGenerator[None]:
        return
        yield

    def relay(self, connection: Connection, data: bytes) -> CommandGenerator[None]:
        from_client = connection == self.context.client
        if self.flow is not None:
            message = TCPMessage(from_client, data)
            self.flow.messages.append(message)
            yield TcpMessageHook(self.flow)
            data = message.content
        yield from self.send(not from_client, data)

    def send(self, to_client: bool, data: bytes) -> CommandGenerator[None]:
        if data:
            target = self.context.client if to_client else self.context.server
            yield commands.SendData(target, data)

    def side_closed(self, connection: Connection) -> CommandGenerator[None]:
        is_client = connection == self.context.client
        self.read_closed.add("client" if is_client else "server")
        other = self.context.server if is_client else self.context.client
        if len(self.read_closed) == 2:
            # We half-closed `connection` when `other` ended: with its FIN in, it is closed
            # both ways (the driver drops its socket); only `other` is left to close.
            yield commands.CloseConnection(other)
            self._goto(self.state_done)
            if self.flow is not None:
                self.flow.live = False
                yield TcpEndHook(self.flow)
        else:
            yield commands.CloseTcpConnection(other, half_close=True)


class TcpMessageInjected(events.MessageInjected):
    """An addon injected a TCP message (mitmproxy's name for this event)."""

    __slots__ = ()
