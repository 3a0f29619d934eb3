"""UDP relay: each datagram is a message of one flow, with udp_* hooks unless ``ignore``.

A UDP "connection" is the pair of peers; it ends when either side is closed (the driver
closes an idle client after its timeout, or a server that refused our datagrams)."""

from __future__ import annotations

from proxycore.flow import Error
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.udp import UDPFlow, UDPMessage


@hook_dataclass
class UdpStartHook(StartHook):
    """A UDP flow begins (before the first datagram is relayed)."""

    name = "udp_start"
    flow: UDPFlow


@hook_dataclass
class UdpMessageHook(StartHook):
    """A datagram arrived (``flow.messages[-1]``); an addon may change its content."""

    name = "udp_message"
    flow: UDPFlow


@hook_dataclass
class UdpEndHook(StartHook):
    """The flow ended; a flow gets either this or udp_error, not both."""

    name = "udp_end"
    flow: UDPFlow


@hook_dataclass
class UdpErrorHook(StartHook):
    name = "udp_error"
    flow: UDPFlow


class UdpMessageInjected(events.MessageInjected):
    """An addon injected a UDP datagram (mitmproxy's name for this event)."""

    __slots__ = ()


class UDPLayer(Layer):
    """Relays datagrams one by one; no buffering, no reassembly."""

    flow: UDPFlow | None

    def __init__(self, context: Context, ignore: bool = False) -> None:
        super().__init__(context)
        self.flow = None if ignore else UDPFlow(context.client, context.server, live=True)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if not isinstance(event, events.Start):
            return
        if self.flow is not None:
            yield UdpStartHook(self.flow)
        server = self.context.server
        if server.timestamp_start is None:
            err = yield commands.OpenConnection(server)
            if err:
                if self.flow is not None:
                    self.flow.error = Error(err)
                    self.flow.live = False
                    yield UdpErrorHook(self.flow)
                yield commands.CloseConnection(self.context.client)
                self._goto(self.state_done)
                return
        self._goto(self.state_relay)

    def state_relay(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.MessageInjected):
            if event.flow is not self.flow:
                return
            message = event.message
            source = self.context.client if message.from_client else self.context.server
            event = events.DataReceived(source, message.content)
        if isinstance(event, events.DataReceived):
            from_client = event.connection == self.context.client
            target = self.context.server if from_client else self.context.client
            data = event.data
            if self.flow is not None:
                message = UDPMessage(from_client, data)
                self.flow.messages.append(message)
                yield UdpMessageHook(self.flow)
                data = message.content
            yield commands.SendData(target, data)
        elif isinstance(event, events.ConnectionClosed):
            from_client = event.connection == self.context.client
            other = self.context.server if from_client else self.context.client
            self._goto(self.state_done)
            yield commands.CloseConnection(other)
            if self.flow is not None:
                self.flow.live = False
                if event.connection.error and self.flow.error is None:
                    self.flow.error = Error(event.connection.error)
                    yield UdpErrorHook(self.flow)
                else:
                    yield UdpEndHook(self.flow)

    def state_done(self, event: events.Event) -> CommandGenerator[None]:
        return
        yield
