"""Server playback of WebSocket and TCP conversations: the proxy answers the client from a
recorded flow, in place of a server that is never contacted.

A recording is turned into a script: each server message (and the server's close) waits
until the client has sent as much as it had sent before it in the recording (messages for
WebSocket, bytes for TCP, whose chunks need not arrive cut as recorded). With ``timing``,
each one also waits its recorded pause after what preceded it (at most ``MAX_GAP``).
Timers are ``RequestWakeup`` commands: the layers stay sans-io.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence

import wsproto.events as ws

from proxycore.http import HTTPFlow
from proxycore.layers.tcp import TcpEndHook, TcpMessageHook, TcpStartHook
from proxycore.layers.websocket import CLOSE_TIMEOUT, WebsocketLayer, WebsocketMessageHook, _Side
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.websocket import WebSocketData, WebSocketMessage

#: Longest recorded pause kept with timing (a long pause is not worth waiting for).
MAX_GAP = 10.0


@dataclasses.dataclass
class Step:
    """One thing the recorded server did: send ``message`` (or close, when None) once the
    client has sent ``after`` units, ``delay`` seconds after what came before it."""

    after: int
    delay: float
    message: WebSocketMessage | TCPMessage | None


def script(
    messages: Sequence[WebSocketMessage | TCPMessage], close_at: float | None, unit: str
) -> list[Step]:
    """The server's part of a recording; ``unit`` is "messages" or "bytes"; ``close_at``
    (the time the server closed) adds a final close step."""
    steps: list[Step] = []
    sent = 0
    previous: float | None = None
    for message in messages:
        if message.from_client:
            sent += 1 if unit == "messages" else len(message.content)
        else:
            steps.append(Step(sent, _gap(previous, message.timestamp), message))
        previous = message.timestamp
    if close_at is not None:
        steps.append(Step(sent, _gap(previous, close_at), None))
    return steps


def _gap(previous: float | None, now: float) -> float:
    if previous is None:
        return 0.0  # the start of the conversation goes at once
    return min(max(now - previous, 0.0), MAX_GAP)


class Player:
    """Walks a script: what is due once the client has sent ``sent`` units."""

    def __init__(self, steps: list[Step], timing: bool) -> None:
        self.steps = steps
        self.timing = timing
        self.sent = 0
        self.timer: commands.RequestWakeup | None = None
        self.waited = False  # the head step's pause is over

    def due(self) -> tuple[list[Step], commands.RequestWakeup | None]:
        """Steps to perform now, and a timer to ask for before the next one (if any)."""
        out: list[Step] = []
        while self.steps and self.timer is None and self.steps[0].after <= self.sent:
            step = self.steps[0]
            if self.timing and step.delay > 0 and not self.waited:
                self.timer = commands.RequestWakeup(step.delay)
                return out, self.timer
            self.waited = False
            out.append(self.steps.pop(0))
        return out, None

    def woke(self, event: events.Event) -> bool:
        """Our timer went off: the head step may go now."""
        if isinstance(event, events.Wakeup) and self.timer is not None and event.command is self.timer:
            self.timer = None
            self.waited = True
            return True
        return False


class TcpPlaybackLayer(Layer):
    """A TCP flow toward the recorded server's address, answered from the recording."""

    def __init__(self, context: Context, recorded: TCPFlow, timing: bool) -> None:
        super().__init__(context)
        self.flow = TCPFlow(context.client, context.server, live=True)
        self.flow.is_replay = "response"
        self.player = Player(script(recorded.messages, None, "bytes"), timing)
        self.half_closed = False
        self.done = False

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield TcpStartHook(self.flow)
            yield from self.play()
        elif self.player.woke(event):
            yield from self.play()
        elif isinstance(event, events.DataReceived) and event.connection == self.context.client:
            if self.done:
                return
            message = TCPMessage(True, event.data)
            self.flow.messages.append(message)
            yield TcpMessageHook(self.flow)
            self.player.sent += len(event.data)
            yield from self.play()
        elif isinstance(event, events.ConnectionClosed) and event.connection == self.context.client:
            yield from self.end()

    def play(self) -> CommandGenerator[None]:
        steps, timer = self.player.due()
        for step in steps:
            assert isinstance(step.message, TCPMessage)
            yield from self.send(step.message.content)
        if timer is not None:
            yield timer
        elif not self.player.steps and not self.half_closed and not self.done:
            # The recording is over: we close our side; the flow ends when the client does.
            self.half_closed = True
            yield commands.CloseTcpConnection(self.context.client, half_close=True)

    def send(self, content: bytes) -> CommandGenerator[None]:
        message = TCPMessage(False, content)
        self.flow.messages.append(message)
        yield TcpMessageHook(self.flow)
        if message.content and not self.done:
            yield commands.SendData(self.context.client, message.content)

    def end(self) -> CommandGenerator[None]:
        if self.done:
            return
        self.done = True
        yield commands.CloseConnection(self.context.client)
        self.flow.live = False
        yield TcpEndHook(self.flow)


class WebsocketPlaybackLayer(WebsocketLayer):
    """The WebSocket of a handshake answered from a recorded flow: the client's messages go
    through the usual hooks and nowhere else; the recorded server messages answer them."""

    def __init__(self, context: Context, flow: HTTPFlow, recorded: WebSocketData, timing: bool) -> None:
        super().__init__(context, flow)
        self.server.gone = True  # there is no server: nothing is ever sent to it
        closed_by_server = recorded.closed_by_client is False and recorded.close_code is not None
        close_at = (recorded.timestamp_end or time.time()) if closed_by_server else None
        # Messages an addon injected or dropped were never part of the peers' conversation.
        messages = [m for m in recorded.messages if not m.injected and not m.dropped]
        self.player = Player(script(messages, close_at, "messages"), timing)
        self.recorded = recorded

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.player.woke(event):
            yield from self.play()
            return
        yield from super()._handle_event(event)
        if isinstance(event, events.Start):
            yield from self.play()

    def message_complete(self, side: _Side, is_text: bool) -> CommandGenerator[None]:
        yield from super().message_complete(side, is_text)
        if side is self.client:
            self.player.sent += 1
            yield from self.play()

    def play(self) -> CommandGenerator[None]:
        if self.ended:
            return
        steps, timer = self.player.due()
        for step in steps:
            if step.message is None:
                yield from self.close_as_recorded()
                return
            assert isinstance(step.message, WebSocketMessage)
            message = WebSocketMessage(step.message.type, False, step.message.content)
            assert self.flow.websocket is not None
            self.flow.websocket.messages.append(message)
            yield WebsocketMessageHook(self.flow)
            if not message.dropped:
                yield from self.send_message(self.client, message.is_text, message.content, [len(message.content)])
        if timer is not None:
            yield timer

    def close_as_recorded(self) -> CommandGenerator[None]:
        """The recorded server closed: so do we, with its code; the client's answer ends it."""
        websocket = self.flow.websocket
        assert websocket is not None and self.recorded.close_code is not None
        if websocket.close_code is None:
            websocket.closed_by_client = False
            websocket.close_code = self.recorded.close_code
            websocket.close_reason = self.recorded.close_reason or ""
        if self.recorded.close_code == 1006:  # the recorded connection just dropped
            yield from self.end()
            return
        yield from self.send(self.client, ws.CloseConnection(self.recorded.close_code, self.recorded.close_reason or ""))
        # Client messages are not read any more; the client's close (or the timer) ends it.
        self.close_timer = commands.RequestWakeup(CLOSE_TIMEOUT)
        yield self.close_timer

    def send(self, side: _Side, event: ws.Event) -> CommandGenerator[None]:
        if side is self.server and isinstance(event, ws.Ping):
            side, event = self.client, ws.Pong(event.payload)  # a client's ping: we answer it
        yield from super().send(side, event)
