"""Client replay of TCP and UDP flows: connect to the recorded server again and send the
client's recorded messages, recording what comes back as a new flow.

The new flow goes through the live layers (TCPLayer/UDPLayer and their hooks) with a
stand-in client that "sends" the recorded client messages, and is marked
``is_replay == "request"``; the recorded flow is left as it was.  Messages are sent one
after the other, or with their recorded gaps when ``client_replay_timing`` is on.  Once
all are sent, the replay ends after ``QUIET`` seconds without data from the server (or
when the server closes): first our side is closed, then, if the server does not close
either, the flow is ended.
"""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

from proxycore.connection import Client, ConnectionState, Server, TransportProtocol
from proxycore.flow import Flow
from proxycore.layers.tcp import TcpEndHook, TcpErrorHook, TCPLayer, TcpStartHook
from proxycore.layers.udp import UdpEndHook, UdpErrorHook, UDPLayer, UdpStartHook
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import ConnectionHandler
from proxycore.tcp import TCPFlow
from proxycore.udp import UDPFlow

#: Seconds of silence from the server after the last message that end a replay.
QUIET = 1.0
#: Longest recorded gap kept with client_replay_timing (a long pause is not worth waiting for).
MAX_GAP = 10.0

END_HOOKS = (TcpEndHook, TcpErrorHook, UdpEndHook, UdpErrorHook)


class StreamReplayClient(Layer):
    """Above a TCP/UDP layer: feeds it the recorded client messages as if they arrived."""

    def __init__(self, context: Context, recorded: TCPFlow | UDPFlow, timing: bool) -> None:
        super().__init__(context)
        layer_type = UDPLayer if isinstance(recorded, UDPFlow) else TCPLayer
        self.child = layer_type(context)
        self.pending = [m for m in recorded.messages if m.from_client]
        self.timing = timing
        self.previous: float | None = None
        self.timer: commands.RequestWakeup | None = None
        self.stage = "sending"  # then "quiet" (all sent), "closing" (our side closed)
        self.replayed: Flow | None = None

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Wakeup) and event.command is self.timer:
            yield from self.tick()
            return
        if (
            isinstance(event, events.DataReceived)
            and event.connection == self.context.server
            and self.stage in ("quiet", "closing")
        ):
            yield from self.wait(QUIET)  # the server is still talking: listen a while longer
        if isinstance(event, events.ConnectionClosed) and event.connection == self.context.server:
            self.stage = "done"
        yield from self.pass_down(event)
        if isinstance(event, events.Start):
            yield from self.wait(0)

    def pass_down(self, event: events.Event) -> CommandGenerator[None]:
        for command in self.child.handle_event(event):
            if isinstance(command, (TcpStartHook, UdpStartHook)):
                command.flow.is_replay = "request"
                self.replayed = command.flow
            yield command

    def wait(self, delay: float) -> CommandGenerator[None]:
        if self.stage == "done":
            return
        self.timer = commands.RequestWakeup(delay)
        yield self.timer

    def tick(self) -> CommandGenerator[None]:
        if self.stage == "sending":
            if not self.pending:
                self.stage = "quiet"
                yield from self.wait(QUIET)
                return
            message = self.pending.pop(0)
            if self.timing and self.previous is not None:
                gap = min(max(message.timestamp - self.previous, 0.0), MAX_GAP)
                if gap > 0:
                    self.previous = message.timestamp
                    self.pending.insert(0, message)
                    yield from self.wait(gap)
                    return
            self.previous = message.timestamp
            yield from self.pass_down(events.DataReceived(self.context.client, message.content))
            yield from self.wait(0)
        elif self.stage == "quiet":
            self.stage = "closing"
            self.context.client.state &= ~ConnectionState.CAN_READ
            yield from self.pass_down(events.ConnectionClosed(self.context.client))
            yield from self.wait(QUIET)
        elif self.stage == "closing":
            self.stage = "done"
            if self.context.server.state & ConnectionState.CAN_READ:
                self.context.server.state &= ~ConnectionState.CAN_READ
                yield from self.pass_down(events.ConnectionClosed(self.context.server))


class StreamReplayHandler(ConnectionHandler):
    """Runs one TCP/UDP replay with no client socket; done when the new flow has ended."""

    # The start hooks too: StreamReplayClient sees them pass (to learn the new flow) only
    # when they are not answered instantly.
    watched_hooks = (TcpStartHook, UdpStartHook, *END_HOOKS)

    def __init__(self, master: Any, recorded: TCPFlow | UDPFlow, timing: bool) -> None:
        client = Client.from_state(recorded.client_conn.get_state())
        client.id = str(uuid.uuid4())
        client.state = ConnectionState.OPEN
        udp = isinstance(recorded, UDPFlow)

        def make(context: Context) -> Layer:
            context.server = Server(
                address=recorded.server_conn.address,
                transport_protocol=TransportProtocol.UDP if udp else TransportProtocol.TCP,
            )
            return StreamReplayClient(context, recorded, timing)

        super().__init__(master, client, make, log_as="replay")
        self.finished = asyncio.Event()

    async def replay(self) -> Flow | None:
        await self.run_detached(self.finished)
        layer = self.layer
        return layer.replayed if isinstance(layer, StreamReplayClient) else None

    def hook_finished(self, hook: Any) -> None:
        if isinstance(hook, END_HOOKS):
            self.finished.set()
