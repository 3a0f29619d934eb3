"""WebSocket relay after a successful HTTP/1 upgrade, one wsproto connection per side.

The HTTP layer has done the handshake (the flow's request and 101 response);
this layer parses frames from each side, reassembles messages, runs the
``websocket_message`` hook on each, and re-frames what is forwarded. Frame
boundaries of a message are kept when the hook leaves its content alone.
Pings and pongs are forwarded as they are. As in mitmproxy, a close from either side
(a protocol error is a close with 1002) ends both at once: the close goes to the server
and to the client, then both connections close; a side whose TCP connection drops
leaves the other a 1000 close. A message over ``websocket_message_size_limit`` closes
both with 1009 ("message too big"), and there the handshakes get CLOSE_TIMEOUT to finish.
"""

from __future__ import annotations

import codecs
import io
import itertools
import time
from collections.abc import Iterator
from typing import Any

import wsproto
import wsproto.connection
import wsproto.events as ws
import wsproto.extensions
import wsproto.frame_protocol
import wsproto.utilities

from proxycore.connection import Connection
from proxycore.flow import Error
from proxycore.http import HTTPFlow
from proxycore.net import websocket_frames
from proxycore.options import parse_size
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage

# A changed message is sent in fragments of this size (mitmproxy uses about 4 KB).
FRAGMENT_SIZE = 4096
ABNORMAL_CLOSURE = 1006
MESSAGE_TOO_BIG = 1009
# Seconds the peers get to answer our close before their connections are cut.
CLOSE_TIMEOUT = 10


@hook_dataclass
class WebsocketStartHook(StartHook):
    """The WebSocket connection is established (after the 101 response)."""

    name = "websocket_start"
    flow: HTTPFlow


@hook_dataclass
class WebsocketMessageHook(StartHook):
    """A complete message arrived (``flow.websocket.messages[-1]``); it may be changed or dropped."""

    name = "websocket_message"
    flow: HTTPFlow


@hook_dataclass
class WebsocketEndHook(StartHook):
    """The WebSocket connection ended (close handshake, or one side vanished)."""

    name = "websocket_end"
    flow: HTTPFlow


class _Side:
    """One peer: its connection, its wsproto state machine, and the message being reassembled."""

    def __init__(self, conn: Connection, ws_conn: wsproto.connection.Connection, from_client: bool) -> None:
        self.conn = conn
        self.ws = ws_conn
        self.from_client = from_client
        # The message being received: its bytes (a BytesIO grows in place and hands out
        # its content without a copy), the sizes of its finished frames, and the bytes of
        # the frame under way (all after decompression).
        self.message = io.BytesIO()
        self.frames: list[int] = []
        self.frame_size = 0
        self.close_sent = False
        self.close_received = False
        self.gone = False


def _extensions(header: str | None) -> tuple[list[str], list[str]]:
    """The offers of a Sec-WebSocket-Extensions response header: (permessage-deflate
    parameter strings, names of the extensions we do not speak)."""
    deflate: list[str] = []
    unknown: list[str] = []
    for offer in (header or "").split(","):
        name = offer.split(";", 1)[0].strip()
        if name.lower() == "permessage-deflate":
            deflate.append(offer.strip())
        elif name:
            unknown.append(name)
    return deflate, unknown


def _ws_connection(kind: wsproto.ConnectionType, deflate: list[str]) -> wsproto.connection.Connection:
    extensions: list[wsproto.extensions.Extension] = []
    for params in deflate[:1]:
        extension = wsproto.extensions.PerMessageDeflate()
        extension.finalize(params)
        extensions.append(extension)
    return wsproto.connection.Connection(kind, extensions=extensions)


class Fragmentizer:
    """Frames for a message to send: the sender's frame sizes when the content kept its
    length (an addon that changed a few bytes), else FRAGMENT_SIZE pieces. mitmproxy's
    helper, for code that frames messages itself; the layer keeps a changed message's
    frames only when its content is unchanged."""

    FRAGMENT_SIZE = FRAGMENT_SIZE

    def __init__(self, fragments: list[bytes], is_text: bool) -> None:
        self.sizes = [len(f) for f in fragments]
        self.is_text = is_text

    def __call__(self, content: bytes) -> Iterator[ws.TextMessage | ws.BytesMessage]:
        if len(content) == sum(self.sizes) and self.sizes:
            cuts = list(itertools.accumulate(self.sizes))
            chunks = [content[a:b] for a, b in zip([0, *cuts[:-1]], cuts, strict=True)]
        else:
            step = self.FRAGMENT_SIZE
            chunks = [content[i : i + step] for i in range(0, len(content), step)] or [b""]
        # Frame boundaries may split a UTF-8 sequence; wsproto wants str per frame, so
        # decode incrementally and carry incomplete bytes into the next frame.
        decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
        for i, chunk in enumerate(chunks):
            last = i == len(chunks) - 1
            if self.is_text:
                yield ws.TextMessage(data=decoder.decode(chunk, final=last), message_finished=last)
            else:
                yield ws.BytesMessage(data=chunk, message_finished=last)


class WebsocketConnection(wsproto.connection.Connection):
    """A wsproto connection that knows its proxycore connection (mitmproxy's helper type)."""

    def __init__(self, *args: Any, conn: Connection, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.conn = conn

    def __repr__(self) -> str:
        return f"WebsocketConnection<{self.state.name}, {self.conn}>"


class WebsocketLayer(Layer):
    """Relays messages between client and server of an upgraded HTTP flow."""

    def __init__(self, context: Context, flow: HTTPFlow) -> None:
        super().__init__(context)
        self.flow = flow
        if flow.websocket is None:
            flow.websocket = WebSocketData()
        # The wsproto state machines get the negotiated extensions at Start.
        self.client = _Side(context.client, wsproto.connection.Connection(wsproto.ConnectionType.SERVER), from_client=True)
        self.server = _Side(flow.server_conn, wsproto.connection.Connection(wsproto.ConnectionType.CLIENT), from_client=False)
        # Without permessage-deflate, data frames are written by send_frames, not wsproto.
        self.deflate = False
        self.ended = False
        # Set once a message was too big: messages still arriving are dropped unread.
        self.close_timer: commands.RequestWakeup | None = None

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            header = self.flow.response.headers.get("sec-websocket-extensions") if self.flow.response else None
            deflate, unknown = _extensions(header)
            for name in unknown:
                yield commands.Log(f"Ignoring unknown WebSocket extension {name!r}.", "info")
            self.client.ws = _ws_connection(wsproto.ConnectionType.SERVER, deflate)
            self.deflate = bool(deflate)
            self.server.ws = _ws_connection(wsproto.ConnectionType.CLIENT, deflate)
            yield WebsocketStartHook(self.flow)
        elif isinstance(event, events.DataReceived):
            side = self._side(event.connection)
            if side is not None:
                yield from self.receive(side, event.data)
        elif isinstance(event, events.ConnectionClosed):
            side = self._side(event.connection)
            if side is not None:
                yield from self.peer_gone(side)
        elif isinstance(event, events.Wakeup) and event.command is self.close_timer:
            yield from self.end()  # a peer did not answer our close in time
        elif isinstance(event, events.MessageInjected) and event.flow is self.flow:
            message: WebSocketMessage = event.message
            yield from self.inject(message)

    def _side(self, conn: Connection) -> _Side | None:
        if conn is self.client.conn:
            return self.client
        if conn is self.server.conn:
            return self.server
        return None

    def _other(self, side: _Side) -> _Side:
        return self.server if side is self.client else self.client

    # receiving ------------------------------------------------------------------

    def receive(self, side: _Side, data: bytes) -> CommandGenerator[None]:
        if self.ended:
            return
        side.ws.receive_data(data)
        for event in side.ws.events():
            if isinstance(event, ws.Message):
                if self.close_timer is not None:
                    continue
                # wsproto hands out frames in pieces as bytes arrive: collect the message
                # and remember where its frames end.
                piece = event.data.encode() if isinstance(event.data, str) else event.data
                side.message.write(piece)
                side.frame_size += len(piece)
                limit = parse_size(self.context.options.websocket_message_size_limit)
                if limit and side.message.tell() > limit:
                    yield from self.message_too_big(side, limit)
                    return
                if event.frame_finished:
                    side.frames.append(side.frame_size)
                    side.frame_size = 0
                if event.message_finished:
                    yield from self.message_complete(side, isinstance(event, ws.TextMessage))
            elif isinstance(event, ws.Ping):
                yield commands.Log(f"Received WebSocket ping from {_who(side)} (payload: {bytes(event.payload)!r})", "info")
                yield from self.send(self._other(side), ws.Ping(event.payload))
            elif isinstance(event, ws.Pong):
                yield commands.Log(f"Received WebSocket pong from {_who(side)} (payload: {bytes(event.payload)!r})", "info")
                yield from self.send(self._other(side), ws.Pong(event.payload))
            elif isinstance(event, ws.CloseConnection):
                yield from self.close_received(side, event)

    def message_too_big(self, side: _Side, limit: int) -> CommandGenerator[None]:
        """A message over websocket_message_size_limit: close both sides with 1009 rather
        than hold it all in memory (it is only relayed once complete).  The TCP connections
        end with the close handshakes, or after CLOSE_TIMEOUT: cutting them at once could
        reset the connection of a peer still sending and lose our close frame."""
        side.message, side.frames, side.frame_size = io.BytesIO(), [], 0
        websocket = self.flow.websocket
        assert websocket is not None
        message = f"WebSocket message from the {_who(side)} exceeds websocket_message_size_limit ({limit} bytes)."
        if websocket.close_code is None:
            websocket.close_code = MESSAGE_TOO_BIG
            websocket.close_reason = "Message too big"
        self.flow.error = Error(message)
        yield commands.Log(message, "info")
        for target in (side, self._other(side)):
            yield from self.send(target, ws.CloseConnection(code=MESSAGE_TOO_BIG, reason="Message too big"))
        self.close_timer = commands.RequestWakeup(CLOSE_TIMEOUT)
        yield self.close_timer

    def message_complete(self, side: _Side, is_text: bool) -> CommandGenerator[None]:
        content, frames = side.message.getvalue(), side.frames
        side.message, side.frames, side.frame_size = io.BytesIO(), [], 0
        message = WebSocketMessage(Opcode.TEXT if is_text else Opcode.BINARY, side.from_client, content)
        assert self.flow.websocket is not None
        self.flow.websocket.messages.append(message)
        yield WebsocketMessageHook(self.flow)
        if message.dropped:
            return
        other = self._other(side)
        if message.content is content or message.content == content:
            sizes = frames  # untouched: keep the sender's frame boundaries
        else:
            content = message.content
            sizes = [FRAGMENT_SIZE] * (len(content) // FRAGMENT_SIZE)
            if len(content) % FRAGMENT_SIZE or not content:
                sizes.append(len(content) % FRAGMENT_SIZE)
        yield from self.send_message(other, message.is_text, content, sizes)

    def send_message(self, side: _Side, is_text: bool, content: bytes, sizes: list[int]) -> CommandGenerator[None]:
        """Send ``content`` as frames of ``sizes`` bytes (which add up to its length)."""
        if not self.deflate:
            yield from self.send_frames(side, is_text, content, sizes)
            return
        chunks, start = [], 0
        for size in sizes:
            chunks.append(content[start : start + size])
            start += size
        if is_text:
            # Frame boundaries may split a UTF-8 sequence; wsproto wants str per frame, so
            # decode incrementally and carry incomplete bytes into the next frame.
            decoder = codecs.getincrementaldecoder("utf-8")("surrogateescape")
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                text = decoder.decode(chunk, final=last)
                yield from self.send(side, ws.TextMessage(data=text, message_finished=last))
        else:
            for i, chunk in enumerate(chunks):
                last = i == len(chunks) - 1
                yield from self.send(side, ws.BytesMessage(data=chunk, message_finished=last))

    def send_frames(self, side: _Side, is_text: bool, content: bytes, sizes: list[int]) -> CommandGenerator[None]:
        """Data frames written here rather than by wsproto, which copies a payload several
        times over (see proxycore.net.websocket_frames). Without extensions, wsproto keeps
        no state about data frames we send: only whether the connection is still open."""
        if side.gone or side.close_sent:
            return
        if side.ws.state is not wsproto.connection.ConnectionState.OPEN:
            yield commands.Log(f"WebSocket: cannot send to {_who(side)}: connection is {side.ws.state.name}", "debug")
            return
        view, start = memoryview(content), 0
        opcode = websocket_frames.OPCODE_TEXT if is_text else websocket_frames.OPCODE_BINARY
        for i, size in enumerate(sizes):
            fin = i == len(sizes) - 1
            masked = not side.from_client  # we are the client of the server
            if not masked and size == len(content):
                # one unmasked frame of the whole message: its bytes as they are, no copy
                yield commands.SendData(side.conn, websocket_frames.frame_header(opcode, fin, size, None))
                yield commands.SendData(side.conn, content)
                break
            for piece in websocket_frames.frame_pieces(opcode, fin, view[start : start + size], masked):
                yield commands.SendData(side.conn, piece)
            opcode, start = websocket_frames.OPCODE_CONTINUATION, start + size

    def send(self, side: _Side, event: ws.Event) -> CommandGenerator[None]:
        if side.gone or side.close_sent:
            return
        try:
            data = side.ws.send(event)
        except wsproto.utilities.LocalProtocolError as e:
            yield commands.Log(f"WebSocket: cannot send to {_who(side)}: {e}", "debug")
            return
        if isinstance(event, ws.CloseConnection):
            side.close_sent = True
        if data:
            yield commands.SendData(side.conn, data)

    # injection ----------------------------------------------------------------------

    def inject(self, message: WebSocketMessage) -> CommandGenerator[None]:
        """Send an addon's message to one side, after the websocket_message hook (as mitmproxy)."""
        assert self.flow.websocket is not None
        message.injected = True
        self.flow.websocket.messages.append(message)
        yield WebsocketMessageHook(self.flow)
        if message.dropped:
            return
        target = self.server if message.from_client else self.client
        yield from self.send_message(target, message.is_text, message.content, [len(message.content)])

    # closing ----------------------------------------------------------------------------

    def close_received(self, side: _Side, event: ws.CloseConnection) -> CommandGenerator[None]:
        side.close_received = True
        websocket = self.flow.websocket
        assert websocket is not None
        if websocket.close_code is None:
            websocket.closed_by_client = side.from_client
            websocket.close_code = event.code
            websocket.close_reason = event.reason or ""
        if self.close_timer is not None:
            # We closed both for a message over the limit: wait for both replies (or the timer).
            if not side.close_sent:
                yield from self.send(side, event.response())
            if self._other(side).close_received or self._other(side).gone:
                yield from self.end()
            return
        # As mitmproxy: the close goes on to the other side and back to the closer (server
        # first), and both connections end now.
        for target in (self.server, self.client):
            if target is side:
                yield from self.send(target, event.response())
            else:
                yield from self.send(target, ws.CloseConnection(code=event.code, reason=event.reason or ""))
            if not target.gone:
                yield commands.CloseConnection(target.conn)
                target.gone = True
        yield from self.end()

    def peer_gone(self, side: _Side) -> CommandGenerator[None]:
        """The TCP connection of one side ended: an abnormal close unless the handshake finished."""
        if side.gone:
            return  # we closed it ourselves
        side.gone = True
        websocket = self.flow.websocket
        assert websocket is not None
        if websocket.close_code is None:
            websocket.closed_by_client = side.from_client
            websocket.close_code = ABNORMAL_CLOSURE
            websocket.close_reason = ""
            self.flow.error = Error("Connection closed.")
        yield commands.CloseConnection(side.conn)
        other = self._other(side)
        if not other.gone:
            if not side.close_received:
                # mitmproxy's choice: a normal close (1000) for the side that is left
                yield from self.send(other, ws.CloseConnection(code=1000, reason=""))
            yield commands.CloseConnection(other.conn)
            other.gone = True
        yield from self.end()

    def end(self) -> CommandGenerator[None]:
        if self.ended:
            return
        self.ended = True
        for side in (self.client, self.server):
            if not side.gone:
                yield commands.CloseConnection(side.conn)
                side.gone = True
        assert self.flow.websocket is not None
        self.flow.websocket.timestamp_end = time.time()
        self.flow.live = False
        yield WebsocketEndHook(self.flow)


def _who(side: _Side) -> str:
    return "client" if side.from_client else "server"


class WebSocketMessageInjected(events.MessageInjected):
    """An addon injected a WebSocket message (mitmproxy's name for this event)."""

    __slots__ = ()
