"""HTTP/2 connection layers on the ``h2`` library: Http2Server faces the client, Http2Client a server.

Like the HTTP/1 layers they turn bytes into HTTP events (``ReceiveHttp``) and
HTTP events into bytes, but many streams share one connection:

- Each client stream is its own HttpStream and flow; the server side maps our
  stream ids to its own and queues streams beyond the server's
  MAX_CONCURRENT_STREAMS.
- Flow control: received data is acknowledged as soon as it is handed on
  (buffering whole bodies is the HTTP layer's business). Outgoing DATA beyond
  the peer's window waits per stream and goes out as WINDOW_UPDATEs arrive, so
  one slow stream never blocks its siblings. When more than a stream window of
  a body waits so, the side it comes from is told (BodyBackpressure) and stops
  acknowledging that stream's data until the queue has drained: the sender then
  runs out of window, and memory per connection stays bounded by the windows.
- Trailers are sent once a stream's buffered data has gone out.
- RST_STREAM ends one exchange with an error; GOAWAY or a protocol error ends
  the connection and fails every open exchange on it.
- Limits toward clients (options http2_*): streams beyond the advertised
  MAX_CONCURRENT_STREAMS are refused one by one, header blocks are bounded in
  bytes, and a client that resets too many streams in a window (the HTTP/2
  "rapid reset" attack, CVE-2023-44487) gets GOAWAY(ENHANCE_YOUR_CALM).
"""

from __future__ import annotations

import collections
import time
from typing import Any, ClassVar

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.frame_buffer
import h2.settings
import hyperframe.frame

from proxycore.connection import Connection
from proxycore.http import Headers, Request, Response, reason_phrase
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import (
    CLIENT_GONE,
    BodyBackpressure,
    DiscardRequestBody,
    ErrorCode,
    HttpEvent,
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestProtocolError,
    RequestTrailers,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    ResponseTrailers,
)
from proxycore.layers.http._head_timer import HeadTimer
from proxycore.layers.http._reset_window import ResetWindow
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer

MAX_FRAME_SIZE = 2**17
PROVISIONAL_MAX_CONCURRENT_STREAMS = 10
# After GOAWAY for too many resets: how long what the client still sends is read and dropped,
# so that our GOAWAY is not lost to a TCP reset before the client has read it.
GOAWAY_LINGER_SECONDS = 2

# Headers that mean something only to one HTTP/1 connection (RFC 9113 section 8.2.2).
CONNECTION_SPECIFIC = frozenset(
    [b"connection", b"keep-alive", b"proxy-connection", b"transfer-encoding", b"upgrade", b"host"]
)


def _config(client_side: bool, validate: bool = True) -> h2.config.H2Configuration:
    return h2.config.H2Configuration(
        client_side=client_side,
        header_encoding=None,
        validate_outbound_headers=False,
        validate_inbound_headers=validate,
        normalize_inbound_headers=False,
        normalize_outbound_headers=False,
    )


class BoundedFrameBuffer(h2.frame_buffer.FrameBuffer):
    """h2's frame buffer, with the header block of HEADERS+CONTINUATION frames bounded in bytes.

    h2 only caps the number of CONTINUATION frames (64 of up to MAX_FRAME_SIZE each: 8 MiB
    held per connection before anything is decoded). An encoder never makes a block larger
    than the header list it encodes, so twice the list limit leaves room for odd encoders."""

    def __init__(self, server: bool, max_header_list_size: int) -> None:
        super().__init__(server=server)
        self.max_block = 2 * max_header_list_size

    @property
    def header_block_pending(self) -> bool:
        """A header block has begun and is not complete: HEADERS without END_HEADERS and
        no final CONTINUATION yet, or a HEADERS/CONTINUATION frame only partly received."""
        if self._headers_buffer:
            return True
        return len(self._data) > 3 and self._data[3] in (0x1, 0x9)

    @property
    def partial_frame(self) -> bool:
        """Bytes of a frame (or of the preface) that is not complete yet."""
        return bool(self._data)

    def _update_header_buffer(self, f: Any) -> Any:
        frame = super()._update_header_buffer(f)
        if self._headers_buffer and sum(len(x.data) for x in self._headers_buffer) > self.max_block:
            raise h2.exceptions.DenialOfServiceError(f"Header block larger than {self.max_block} bytes.")
        return frame


class BufferedH2Connection(h2.connection.H2Connection):
    """An H2Connection that queues DATA (and trailers behind it) beyond the flow-control window."""

    def __init__(
        self,
        config: h2.config.H2Configuration,
        max_streams: int = 100,
        max_header_list_size: int = 2**16,
        stream_window: int = 2**20,
        connection_window: int = 2**24,
    ) -> None:
        super().__init__(config)
        self.connection_window = connection_window
        self.local_settings.initial_window_size = stream_window
        self.local_settings.max_frame_size = MAX_FRAME_SIZE
        self.local_settings.max_concurrent_streams = max_streams
        self.local_settings.max_header_list_size = max_header_list_size
        self.local_settings.enable_push = 0
        # Applied now rather than on the peer's ACK: the peer may use them as soon as it
        # has read our SETTINGS frame, before we see its acknowledgement.
        self.local_settings.acknowledge()
        self.decoder.max_header_list_size = max_header_list_size
        self.incoming_buffer = BoundedFrameBuffer(not config.client_side, max_header_list_size)
        self.max_inbound_frame_size = MAX_FRAME_SIZE
        self.pending: dict[int, collections.deque[tuple[bytes, bool]]] = {}
        self.pending_size: dict[int, int] = {}
        self.pending_trailers: dict[int, list[tuple[bytes, bytes]]] = {}
        self.reset_after_sending: set[int] = set()  # RST_STREAM(NO_ERROR) once all is out

    def initiate(self) -> None:
        self.initiate_connection()
        if self.connection_window > 65535:  # the initial connection window, not a setting
            self.increment_flow_control_window(self.connection_window - 65535)
        # Our SETTINGS (with the advertised stream limit) are on their way. h2 would treat
        # a stream over that limit as a connection error; the layer refuses such a stream
        # on its own instead (RFC 9113 section 5.1.2), so h2's check is lifted.
        self.local_settings.max_concurrent_streams = 2**31 - 1
        self.local_settings.acknowledge()

    def acknowledge_connection_only(self, size: int) -> None:
        """Give ``size`` received bytes back to the connection window, not to their stream's:
        for data that is dropped, so that its stream stalls but its siblings do not."""
        increment = self._inbound_flow_control_window_manager.process_bytes(size)
        if increment:
            frame = hyperframe.frame.WindowUpdateFrame(0)
            frame.window_increment = increment
            self._prepare_for_sending([frame])

    def reset_when_sent(self, stream_id: int) -> None:
        """The response is complete but the peer is still sending: once what we queued for
        the stream has gone out, ask it to stop with RST_STREAM(NO_ERROR) (RFC 9113 8.1)."""
        if self.pending.get(stream_id) or stream_id in self.pending_trailers:
            self.reset_after_sending.add(stream_id)
        else:
            self.reset_quietly(stream_id)

    def reset_quietly(self, stream_id: int) -> None:
        try:
            self.reset_stream(stream_id, h2.errors.ErrorCodes.NO_ERROR)
        except h2.exceptions.StreamClosedError:
            pass  # the peer finished or reset it meanwhile

    def send_data_buffered(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        queue = self.pending.get(stream_id)
        if queue is None:
            queue = self.pending[stream_id] = collections.deque()
        queue.append((data, end_stream))
        self.pending_size[stream_id] = self.pending_size.get(stream_id, 0) + len(data)
        self.flush_stream(stream_id)

    def buffered(self, stream_id: int) -> int:
        """Bytes of DATA waiting for the peer's window on this stream."""
        return self.pending_size.get(stream_id, 0)

    def send_trailers(self, stream_id: int, trailers: list[tuple[bytes, bytes]]) -> None:
        if self.pending.get(stream_id):
            self.pending_trailers[stream_id] = trailers
        else:
            self.send_headers(stream_id, trailers, end_stream=True)

    def end_stream_buffered(self, stream_id: int) -> None:
        if stream_id in self.pending_trailers:
            pass  # the trailers, sent once the data is out, end the stream
        elif self.pending.get(stream_id):
            self.send_data_buffered(stream_id, b"", end_stream=True)
        else:
            self.end_stream(stream_id)

    def flush_stream(self, stream_id: int) -> None:
        queue = self.pending.get(stream_id)
        while queue:
            data, end_stream = queue[0]
            view = memoryview(data)  # slicing a view copies nothing; big bodies go out in many frames
            pos = 0
            frame = self.max_outbound_frame_size
            while True:
                window = self.local_flow_control_window(stream_id)
                # Frames end at multiples of the frame size from the chunk's start (where a
                # window cut it short, the rest of that frame goes alone), as mitmproxy's do.
                size = min(len(view) - pos, window, frame - pos % frame)
                if pos < len(view) and size <= 0:
                    rest = bytes(view[pos:])
                    partial = pos % frame
                    if partial and len(rest) > frame - partial:
                        queue[0] = (rest[frame - partial :], end_stream)
                        queue.appendleft((rest[: frame - partial], False))
                    else:
                        queue[0] = (rest, end_stream)
                    return  # wait for WINDOW_UPDATE
                last = pos + size >= len(view)
                self.send_data(stream_id, view[pos : pos + size], end_stream=end_stream and last)
                self.pending_size[stream_id] -= size
                pos += size
                if last:
                    break
            queue.popleft()
        if queue is not None:
            del self.pending[stream_id]
            del self.pending_size[stream_id]
        trailers = self.pending_trailers.pop(stream_id, None)
        if trailers is not None:
            self.send_headers(stream_id, trailers, end_stream=True)
        if stream_id in self.reset_after_sending:
            self.reset_after_sending.discard(stream_id)
            self.reset_quietly(stream_id)

    def flush_all(self) -> None:
        for stream_id in list(self.pending):
            try:
                self.flush_stream(stream_id)
            except h2.exceptions.StreamClosedError:
                self.forget(stream_id)

    def forget(self, stream_id: int) -> None:
        self.pending.pop(stream_id, None)
        self.pending_size.pop(stream_id, None)
        self.pending_trailers.pop(stream_id, None)
        self.reset_after_sending.discard(stream_id)


def _split_pseudo(headers: list[tuple[bytes, bytes]]) -> tuple[dict[bytes, bytes], Headers]:
    pseudo: dict[bytes, bytes] = {}
    fields = []
    for name, value in headers:
        if name.startswith(b":"):
            if name in pseudo:
                raise ValueError(f"duplicate pseudo-header {name.decode(errors='replace')}")
            pseudo[name] = value
        else:
            fields.append((name, value))
    return pseudo, Headers(fields)


def _plain_fields(headers: Headers) -> list[tuple[bytes, bytes]]:
    """Header fields for an HTTP/2 frame: lowercase names, no connection-specific headers.

    HTTP/1 Cookie headers stay separate fields (allowed in HTTP/2)."""
    out = []
    connection_tokens = {t.strip().lower().encode() for t in headers.get("connection", "").split(",") if t.strip()}
    for name, value in headers.fields:
        lower = name.lower()
        if lower in CONNECTION_SPECIFIC or lower in connection_tokens:
            continue
        if lower == b"te" and value.strip().lower() != b"trailers":
            continue
        out.append((lower, value))
    return out


def _outbound_fields(message: Any, options: Any) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """The header fields to send for ``message`` and the names that had to be lowercased.

    A message that came in over HTTP/2 keeps its fields as they are (an addon's uppercase
    name included) unless ``normalize_outbound_headers``; one from HTTP/1 is always
    translated (lowercase names, no connection-specific headers)."""
    if not message.is_http2:
        return _plain_fields(message.headers), []
    if not getattr(options, "normalize_outbound_headers", True):
        return list(message.headers.fields), []
    changed = [name for name, _ in message.headers.fields if not name.islower() and name.lower() != name]
    return _plain_fields(message.headers), changed


def _lowercased_log(names: list[bytes]) -> CommandGenerator[None]:
    for name in names:
        # info, not warn: mitmproxy lowercases silently, and nothing goes wrong for the peer.
        yield commands.Log(f"HTTP/2 header name {name.decode(errors='replace')!r} sent lowercase "
                           "(HTTP/2 does not allow uppercase names).", "info")


class Http2Connection(Layer):
    """What both sides share: the h2 state machine and turning its events into HTTP events."""

    conn: Connection
    h2_conn: BufferedH2Connection
    client_side: bool
    relays_backpressure = True
    multiplexed: ClassVar[bool] = True

    def __init__(self, context: Context, conn: Connection) -> None:
        super().__init__(context)
        self.conn = conn
        self.cancelled: set[int] = set()  # streams opened and reset in the batch being read
        options = context.options
        validate = bool(getattr(options, "validate_inbound_headers", True))
        self.max_streams_in = int(getattr(options, "http2_max_concurrent_streams", 100))
        self.stream_window = int(getattr(options, "http2_stream_window", 2**20))
        self.h2_conn = BufferedH2Connection(
            _config(self.client_side, validate),
            max_streams=self.max_streams_in,
            max_header_list_size=int(getattr(options, "http2_max_header_list_size", 2**16)),
            stream_window=self.stream_window,
            connection_window=int(getattr(options, "http2_connection_window", 2**24)),
        )
        self.streams: dict[int, str] = {}  # h2 stream id -> "headers" | "body" | "done"
        # Backpressure: data received on these streams but not acknowledged to the peer yet,
        # because the other side cannot send it on as fast (h2 id -> flow-controlled bytes).
        self.held: dict[int, int] = {}
        # Streams whose body queues here for the peer's window, beyond a stream window: the
        # side the body comes from has been told to pause.
        self.backpressured: set[int] = set()
        self.ended_locally: set[int] = set()  # streams we have sent END_STREAM on
        self.closed = False

    def flush(self) -> CommandGenerator[None]:
        data = self.h2_conn.data_to_send()
        if data:
            yield commands.SendData(self.conn, data)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            self.h2_conn.initiate()
            yield from self.flush()
        elif isinstance(event, events.DataReceived) and event.connection is self.conn:
            yield from self.receive(event.data)
        elif isinstance(event, events.ConnectionClosed) and event.connection is self.conn:
            yield from self.fail_all("Connection closed.", peer_closed=True)
        elif isinstance(event, HttpEvent):
            if self.closed:
                return
            try:
                if isinstance(event, BodyBackpressure):
                    self.hold(event.stream_id, event.paused)
                else:
                    yield from self.send(event)
            except (h2.exceptions.StreamClosedError, h2.exceptions.ProtocolError) as e:
                # The peer reset or closed the stream meanwhile: nothing more goes out on it.
                yield commands.Log(f"HTTP/2: cannot send on stream: {e}", "debug")
            yield from self.flush()

    def receive(self, data: bytes) -> CommandGenerator[None]:
        if self.closed:
            return
        try:
            h2_events = self.h2_conn.receive_data(data)
        except h2.exceptions.ProtocolError as e:
            code = getattr(e, "error_code", h2.errors.ErrorCodes.PROTOCOL_ERROR)
            try:
                self.h2_conn.close_connection(code, str(e).encode()[:200])
            except h2.exceptions.ProtocolError:
                pass
            yield from self.flush()
            yield commands.Log(f"HTTP/2 protocol error from {self._who()}: {e}", "info")
            yield from self.fail_all(f"HTTP/2 protocol error: {e}")
            return
        self.cancelled = self.cancelled_in(h2_events)
        if self.cancelled:
            h2_events = self.reset_first(h2_events)
        for h2_event in h2_events:
            if self.closed:
                break  # e.g. GOAWAY for too many resets: the rest of the batch is not looked at
            yield from self.handle_h2_event(h2_event)
        self.cancelled = set()
        yield from self.flush()

    def cancelled_in(self, h2_events: list[h2.events.Event]) -> set[int]:
        """Streams opened and reset within this batch; see Http2Server."""
        return set()

    def reset_first(self, h2_events: list[h2.events.Event]) -> list[h2.events.Event]:
        """The batch with each cancelled stream's reset right after its head: its request
        fails before it is complete (so it is never forwarded); its data, end and trailers
        are dropped (the connection window still gets the data's credit)."""
        resets = {
            e.stream_id: e for e in h2_events
            if isinstance(e, h2.events.StreamReset) and e.stream_id in self.cancelled
        }
        ordered: list[h2.events.Event] = []
        for event in h2_events:
            stream_id = getattr(event, "stream_id", None)
            if stream_id not in self.cancelled:
                ordered.append(event)
            elif isinstance(event, h2.events.RequestReceived):
                ordered += [event, resets[stream_id]]
            elif isinstance(event, h2.events.DataReceived):
                self.h2_conn.acknowledge_connection_only(event.flow_controlled_length)
        return ordered

    def handle_h2_event(self, event: h2.events.Event) -> CommandGenerator[None]:
        if isinstance(event, h2.events.DataReceived):
            if event.stream_id in self.held:
                self.held[event.stream_id] += event.flow_controlled_length
            elif self.streams.get(event.stream_id, "discard") == "discard":
                # Nobody reads this stream any more: its data is dropped below, and only
                # the connection gets the credit back.
                self.h2_conn.acknowledge_connection_only(event.flow_controlled_length)
            else:
                self.h2_conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
            if event.data or not event.stream_ended:
                # An empty DATA frame is passed on too (as mitmproxy); one that only ends the
                # stream is the end, below.
                yield from self.data_received(event.stream_id, event.data)
            if event.stream_ended:
                yield from self.stream_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamEnded):
            yield from self.stream_ended(event.stream_id)
        elif isinstance(event, h2.events.TrailersReceived):
            try:
                trailers = Headers(event.headers)
            except ValueError as e:  # CR, LF or NUL, when h2 does not validate inbound headers
                yield from self.reject_stream(event.stream_id, f"Invalid HTTP/2 trailers: {e}")
                return
            yield from self.trailers_received(event.stream_id, trailers)
            if event.stream_ended:
                yield from self.stream_ended(event.stream_id)
        elif isinstance(event, h2.events.StreamReset):
            self.h2_conn.forget(event.stream_id)
            yield from self.stream_reset(event.stream_id, event.error_code)
        elif isinstance(event, h2.events.WindowUpdated):
            if event.stream_id:
                try:
                    self.h2_conn.flush_stream(event.stream_id)
                except h2.exceptions.StreamClosedError:
                    self.h2_conn.forget(event.stream_id)
            else:
                self.h2_conn.flush_all()
            yield from self.check_all_backpressure()
        elif isinstance(event, h2.events.RemoteSettingsChanged):
            self.h2_conn.flush_all()  # a larger initial window may free buffered data
            yield from self.check_all_backpressure()
            yield from self.settings_changed()
        elif isinstance(event, h2.events.ConnectionTerminated):
            yield from self.fail_all(
                f"HTTP/2 connection closed by {self._who()}: {_error_name(event.error_code)}",
                last_stream_id=event.last_stream_id,
            )
        elif isinstance(event, (h2.events.RequestReceived, h2.events.ResponseReceived)):
            yield from self.headers_received(event)
        elif isinstance(event, h2.events.InformationalResponseReceived):
            pass  # 1xx upstream: dropped, as mitmproxy does
        # Pings are answered by h2 itself; settings acks and priority need nothing from us.

    def _who(self) -> str:
        return "server" if self.client_side else "client"

    # Backpressure ----------------------------------------------------------------

    def hold(self, our_id: int, paused: bool) -> None:
        """The other side has too much of this stream's body queued: stop (or resume)
        acknowledging its data, so the peer's window closes (or opens again)."""
        h2_id = self.h2_id_of(our_id)
        if h2_id is None:
            return
        if paused:
            if h2_id in self.streams:
                self.held.setdefault(h2_id, 0)
        else:
            self.release(h2_id)

    def release(self, h2_id: int) -> None:
        """Acknowledge what was held back (also when the stream is over: the connection
        window must get the bytes back)."""
        size = self.held.pop(h2_id, 0)
        if size and not self.closed:
            self.h2_conn.acknowledge_received_data(size, h2_id)

    def check_backpressure(self, h2_id: int) -> CommandGenerator[None]:
        """After this stream's outgoing queue grew or shrank: pause or resume its source."""
        our_id = self.our_id_of(h2_id)
        if our_id is None:
            self.backpressured.discard(h2_id)
            return
        queued = self.h2_conn.buffered(h2_id)
        if queued > self.stream_window and h2_id not in self.backpressured:
            self.backpressured.add(h2_id)
            yield ReceiveHttp(BodyBackpressure(our_id, request=self.client_side, paused=True))
        elif queued <= self.stream_window // 2 and h2_id in self.backpressured:
            self.backpressured.discard(h2_id)
            yield ReceiveHttp(BodyBackpressure(our_id, request=self.client_side, paused=False))

    def check_all_backpressure(self) -> CommandGenerator[None]:
        for h2_id in list(self.backpressured):
            yield from self.check_backpressure(h2_id)

    def stream_over(self, h2_id: int) -> None:
        """Nothing more will be read or queued on this stream."""
        self.streams.pop(h2_id, None)
        self.release(h2_id)
        self.backpressured.discard(h2_id)

    def h2_id_of(self, our_id: int) -> int | None:
        return our_id

    def our_id_of(self, h2_id: int) -> int | None:
        return h2_id

    def fail_all(self, message: str, peer_closed: bool = False, last_stream_id: int | None = None) -> CommandGenerator[None]:
        """The connection is over: every exchange still open on it fails."""
        if not self.closed:
            self.closed = True
            yield commands.CloseConnection(self.conn)  # first, then the exchanges fail (as mitmproxy)
            yield from self.fail_streams(message)

    def fail_streams(self, message: str) -> CommandGenerator[None]:
        self.closed = True
        # Streams at or below a GOAWAY's last_stream_id could still finish, but we close
        # the connection now, so every open exchange fails with the reason (also one
        # whose request is complete: its answer could not be delivered).
        for h2_id in list(self.streams):
            self.streams[h2_id] = "done"
            yield from self.stream_failed(h2_id, message)

    # hooks for the two sides
    def headers_received(self, event: Any) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def data_received(self, h2_id: int, data: bytes) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def trailers_received(self, h2_id: int, trailers: Headers) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def stream_ended(self, h2_id: int) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def stream_reset(self, h2_id: int, code: int) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def reject_stream(self, h2_id: int, message: str) -> CommandGenerator[None]:
        """The peer sent what the flow model refuses: reset that stream (PROTOCOL_ERROR)
        and fail its exchange; the connection and its other streams go on."""
        try:
            self.h2_conn.reset_stream(h2_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        except h2.exceptions.StreamClosedError:
            pass
        yield commands.Log(f"{message} (from {self._who()}, stream {h2_id})", "info")
        yield from self.stream_failed(h2_id, message)

    def stream_failed(self, h2_id: int, message: str) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def settings_changed(self) -> CommandGenerator[None]:
        return
        yield

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover


def _error_name(code: int | None) -> str:
    try:
        if code is None:  # h2 leaves it unset for a GOAWAY it could not read
            raise ValueError
        return h2.errors.ErrorCodes(code).name
    except ValueError:
        return f"error code {code}"


class Http2Server(Http2Connection):
    """Client-facing HTTP/2: requests in, responses out; stream ids are the client's."""

    client_side = False

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.client)
        self.headers_sent: set[int] = set()
        self.answered: set[int] = set()  # response sent in full, upload still relayed
        options = context.options
        self.resets = ResetWindow(
            int(getattr(options, "http2_max_resets", 200)), float(getattr(options, "http2_reset_window", 30))
        )
        self.linger: commands.RequestWakeup | None = None
        # request_head_timeout from the start until the first stream and for every header
        # block that has begun; keepalive_timeout while no stream is open. Published on the
        # client connection for the driver to arm, as HTTP/1's: the layer yields no timer.
        self.head_timer = HeadTimer(options, publish_on=context.client)
        self.first_stream_seen = False

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.linger is not None and (
            (isinstance(event, events.Wakeup) and event.command is self.linger)
            or (isinstance(event, events.ConnectionClosed) and event.connection is self.conn)
        ):
            self.linger = None
            yield commands.CloseConnection(self.conn)
        elif self.head_timer.fired(event):
            yield from self.head_timed_out()
        else:
            yield from super()._handle_event(event)
            if isinstance(event, events.Start):
                self.head_timer.arm(idle=False)
            elif isinstance(event, (events.DataReceived, HttpEvent)):
                self.update_head_timer()

    def update_head_timer(self) -> None:
        """After anything happened on the connection: which wait, if any, is timed now
        (the timer is published on the client connection, see HeadTimer)."""
        timer = self.head_timer
        buffer = self.h2_conn.incoming_buffer
        assert isinstance(buffer, BoundedFrameBuffer)
        if self.streams and timer.command is None and not buffer.partial_frame and not buffer._headers_buffer:
            return  # the usual case while exchanges run: nothing to time
        if self.closed:
            timer.disarm()
        elif buffer.header_block_pending or (timer.idle and buffer.partial_frame):
            # A request head has begun; while it is incomplete the whole connection waits
            # for it (nothing but CONTINUATION may come), so it is timed with streams open too.
            if not timer.running or timer.idle:
                timer.arm(idle=False)
        elif not self.first_stream_seen:
            pass  # the timer armed on start runs until the first request head is in
        elif self.streams or self.h2_conn.pending:
            timer.disarm()  # exchanges in progress: tcp_timeout watches those
        elif not (timer.running and timer.idle):
            timer.arm(idle=True)

    def head_timed_out(self) -> CommandGenerator[None]:
        delay, idle = self.head_timer.delay, self.head_timer.idle
        if idle:
            message = f"closing HTTP/2 client connection idle for {delay:g} s"
            yield commands.Log(message, "debug")
            yield from self.goaway(h2.errors.ErrorCodes.NO_ERROR, b"idle", message)
        else:
            message = f"HTTP/2 client did not complete a request head within {delay:g} s"
            yield commands.Log(message, "info")
            yield from self.goaway(h2.errors.ErrorCodes.NO_ERROR, b"request head timeout", message)

    def headers_received(self, event: Any) -> CommandGenerator[None]:
        h2_id = event.stream_id
        # This head is in: its timer is done with (a next block gets its own).
        self.first_stream_seen = True
        self.head_timer.disarm()
        if len(self.streams) >= self.max_streams_in:
            # Over the limit we advertised (or sent before our SETTINGS arrived): only this
            # stream fails, and the client may retry it later (RFC 9113 section 5.1.2).
            try:
                self.h2_conn.reset_stream(h2_id, h2.errors.ErrorCodes.REFUSED_STREAM)
            except h2.exceptions.StreamClosedError:
                pass  # the client reset it already
            yield commands.Log(f"HTTP/2: refused stream {h2_id} over the limit of {self.max_streams_in}", "debug")
            return
        try:
            request = self.make_request(event.headers)
        except ValueError as e:
            self.h2_conn.reset_stream(h2_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            yield commands.Log(f"Invalid HTTP/2 request headers: {e}", "info")
            return
        ended = bool(event.stream_ended) and h2_id not in self.cancelled  # see reset_first
        self.streams[h2_id] = "done" if ended else "body"
        yield ReceiveHttp(RequestHeaders(h2_id, request, ended))
        if ended:
            yield ReceiveHttp(RequestEndOfMessage(h2_id))

    @staticmethod
    def make_request(h2_headers: list[tuple[bytes, bytes]]) -> Request:
        pseudo, headers = _split_pseudo(h2_headers)
        method = pseudo.get(b":method")
        if not method:
            raise ValueError("missing :method")
        scheme = pseudo.get(b":scheme", b"")
        authority = pseudo.get(b":authority", b"")
        path = pseudo.get(b":path", b"")
        if method != b"CONNECT" and (not scheme or not path):
            raise ValueError("missing :scheme or :path")
        if method == b"CONNECT":
            raise ValueError("CONNECT over HTTP/2 is not supported")
        host, port = "", 0
        if authority:
            from proxycore.net.http1 import parse_authority

            try:
                host, port = parse_authority(authority, 443 if scheme == b"https" else 80)
            except Exception as e:
                raise ValueError(f"invalid :authority {authority!r}") from e
        request = Request(
            host=host,
            port=port,
            method=method,
            scheme=scheme,
            authority=authority,
            path=path,
            http_version=b"HTTP/2.0",
            headers=headers,
            content=None,
            trailers=None,
            timestamp_start=time.time(),
            timestamp_end=None,
        )
        return request

    def data_received(self, h2_id: int, data: bytes) -> CommandGenerator[None]:
        if self.streams.get(h2_id) == "body":
            yield ReceiveHttp(RequestData(h2_id, data))

    def trailers_received(self, h2_id: int, trailers: Headers) -> CommandGenerator[None]:
        if self.streams.get(h2_id) == "body":
            yield ReceiveHttp(RequestTrailers(h2_id, trailers))

    def stream_ended(self, h2_id: int) -> CommandGenerator[None]:
        state = self.streams.get(h2_id)
        if state == "body":
            self.streams[h2_id] = "done"
            yield ReceiveHttp(RequestEndOfMessage(h2_id))
            if h2_id in self.answered:
                self.answered.discard(h2_id)
                self.stream_over(h2_id)
        elif state == "discard":
            self.streams[h2_id] = "done"  # the whole body is in (and dropped): no reset needed

    def cancelled_in(self, h2_events: list[h2.events.Event]) -> set[int]:
        """Streams the client opened and reset within one read (rapid reset): their reset
        is handled right after their head, so they fail before reaching the origin, and
        every reset counts.  Hooks that no addon listens to are answered at once, so
        nothing else would stop such a request before its reset is looked at."""
        opened = {e.stream_id for e in h2_events if isinstance(e, h2.events.RequestReceived)}
        if not opened:
            return opened
        return {e.stream_id for e in h2_events if isinstance(e, h2.events.StreamReset)} & opened

    def stream_reset(self, h2_id: int, code: int) -> CommandGenerator[None]:
        known = h2_id in self.streams
        self.stream_over(h2_id)
        if known:
            yield ReceiveHttp(
                RequestProtocolError(h2_id, f"HTTP/2 stream reset by the client ({_error_name(code)}).", ErrorCode.CLIENT_DISCONNECTED)
            )
        # Every RST_STREAM from the client counts, as in the servers' fixes for rapid reset:
        # a stream opened and cancelled at once costs us far more than it costs the client.
        if self.resets.add():
            yield from self.too_many_resets()

    def too_many_resets(self) -> CommandGenerator[None]:
        message = (
            f"HTTP/2 client reset more than {self.resets.limit} streams within {self.resets.window:g} s "
            "(rapid reset): closing the connection."
        )
        yield commands.Log(message, "warn")
        yield from self.goaway(h2.errors.ErrorCodes.ENHANCE_YOUR_CALM, b"too many stream resets", message)

    def goaway(self, code: int, debug: bytes, message: str) -> CommandGenerator[None]:
        """Tell the client we are done (GOAWAY), fail what is still open, then hang up."""
        self.head_timer.disarm()
        try:
            self.h2_conn.close_connection(code, debug)
        except h2.exceptions.ProtocolError:
            pass  # h2 considers the connection closed already
        yield from self.flush()
        yield from self.fail_streams(message)
        # FIN after the GOAWAY; what the client still sends is dropped unread until it hangs up.
        yield commands.CloseConnection(self.conn, half_close=True)
        self.linger = commands.RequestWakeup(GOAWAY_LINGER_SECONDS)
        yield self.linger

    def fail_all(self, message: str, peer_closed: bool = False, last_stream_id: int | None = None) -> CommandGenerator[None]:
        if peer_closed:
            message = CLIENT_GONE
        yield from super().fail_all(message, peer_closed, last_stream_id)

    def stream_failed(self, h2_id: int, message: str) -> CommandGenerator[None]:
        yield ReceiveHttp(RequestProtocolError(h2_id, message, ErrorCode.CLIENT_DISCONNECTED))

    def reject_stream(self, h2_id: int, message: str) -> CommandGenerator[None]:
        known = h2_id in self.streams
        self.stream_over(h2_id)
        try:
            self.h2_conn.reset_stream(h2_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
        except h2.exceptions.StreamClosedError:
            pass
        yield commands.Log(f"{message} (from client, stream {h2_id})", "info")
        if known:
            yield ReceiveHttp(RequestProtocolError(h2_id, message, ErrorCode.GENERIC_CLIENT_ERROR))

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        h2_id = event.stream_id
        conn = self.h2_conn
        if isinstance(event, ResponseHeaders):
            response = event.response
            if response.status_code < 200:
                return  # no interim responses toward HTTP/2 clients (100-continue is implied)
            plain, lowered = _outbound_fields(response, self.context.options)
            yield from _lowercased_log(lowered)
            fields = [(b":status", b"%d" % response.status_code), *plain]
            conn.send_headers(h2_id, fields, end_stream=event.end_stream)
            self.headers_sent.add(h2_id)
            if event.end_stream:
                self.ended_locally.add(h2_id)
        elif isinstance(event, ResponseData):
            conn.send_data_buffered(h2_id, event.data)
            yield from self.check_backpressure(h2_id)
        elif isinstance(event, ResponseTrailers):
            conn.send_trailers(h2_id, _plain_fields(event.trailers))
        elif isinstance(event, ResponseEndOfMessage):
            if h2_id not in self.ended_locally:
                conn.end_stream_buffered(h2_id)
            self.ended_locally.discard(h2_id)
            self.headers_sent.discard(h2_id)
            if self.streams.get(h2_id) == "body":
                # Answered while the upload is streamed to the server: it is relayed to its
                # end, as mitmproxy does (the stream is over once the client ends it).
                self.answered.add(h2_id)
                return
            if self.streams.get(h2_id) == "discard":
                conn.reset_when_sent(h2_id)  # answered before the client finished its upload
            self.stream_over(h2_id)
        elif isinstance(event, ResponseProtocolError):
            yield from self.send_error(h2_id, event)
        elif isinstance(event, DiscardRequestBody):
            self.discard(h2_id)
        return
        yield

    def discard(self, h2_id: int) -> None:
        """The request was answered before its body: drop the rest of the body as it comes,
        crediting only the connection window (the stream is reset after the answer)."""
        if self.streams.get(h2_id) != "body":
            return
        self.streams[h2_id] = "discard"
        self.backpressured.discard(h2_id)
        held = self.held.pop(h2_id, 0)
        if held:
            self.h2_conn.acknowledge_connection_only(held)

    def stream_over(self, h2_id: int) -> None:
        self.answered.discard(h2_id)
        super().stream_over(h2_id)

    def send_error(self, h2_id: int, event: ResponseProtocolError) -> CommandGenerator[None]:
        if h2_id in self.answered:
            # Answered already, and now the upload cannot go on (the server left): ask the
            # client to stop sending once the answer is out.
            self.h2_conn.reset_when_sent(h2_id)
            self.stream_over(h2_id)
            return
        status = event.code.http_status_code()
        if event.code is ErrorCode.HTTP_1_1_REQUIRED:
            status = None  # a reset with that code tells the client to retry over HTTP/1.1
        try:
            if h2_id not in self.headers_sent and status is not None:
                from proxycore.layers.http._http1 import make_error_response

                page = make_error_response(status, event.message)
                fields = [(b":status", b"%d" % status), *_plain_fields(page.headers)]
                self.h2_conn.send_headers(h2_id, fields)
                self.h2_conn.send_data_buffered(h2_id, page.raw_content or b"", end_stream=True)
                if self.streams.get(h2_id) in ("body", "discard"):
                    # The client is still sending a body nobody will read (RFC 9113 section 8.1).
                    self.h2_conn.reset_when_sent(h2_id)
            else:
                code = h2.errors.ErrorCodes.INTERNAL_ERROR  # a killed flow too, as mitmproxy
                if event.code is ErrorCode.HTTP_1_1_REQUIRED:
                    code = h2.errors.ErrorCodes.HTTP_1_1_REQUIRED
                self.h2_conn.forget(h2_id)
                self.h2_conn.reset_stream(h2_id, code)
        except h2.exceptions.StreamClosedError:
            self.h2_conn.forget(h2_id)  # the client reset it: nobody to tell
        finally:
            self.stream_over(h2_id)
            self.headers_sent.discard(h2_id)
            self.ended_locally.discard(h2_id)
        return
        yield


class Http2Client(Http2Connection):
    """Server-facing HTTP/2: our streams are mapped onto the server's stream ids."""

    client_side = True

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.server)
        self.our_to_h2: dict[int, int] = {}
        self.h2_to_our: dict[int, int] = {}
        self.queued: collections.OrderedDict[int, list[HttpEvent]] = collections.OrderedDict()
        self.queued_paused: set[int] = set()  # queued requests whose client was asked to pause
        self.open_streams = 0
        self.last_activity = time.time()

    @property
    def reusable(self) -> bool:
        return not self.closed and self.conn.connected

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield from self.arm_keepalive()  # before the preface, as mitmproxy's layer
        yield from super()._handle_event(event)
        if isinstance(event, events.Wakeup) and not self.closed:
            # Idle upstream connections get a PING so middleboxes and servers keep them open.
            # (Wall-clock time, as mitmproxy's: its tests move time.time forward.)
            if time.time() - self.last_activity >= self.keepalive_interval() * 0.9:
                self.h2_conn.ping(b"0" * 8)
                yield from self.flush()
            yield from self.arm_keepalive()
        elif isinstance(event, (events.DataReceived, HttpEvent)):
            self.last_activity = time.time()

    def keepalive_interval(self) -> float:
        return float(getattr(self.context.options, "http2_ping_keepalive", 0) or 0)

    def arm_keepalive(self) -> CommandGenerator[None]:
        if self.keepalive_interval() > 0:
            yield commands.RequestWakeup(self.keepalive_interval())

    @property
    def max_streams(self) -> int:
        value = self.h2_conn.remote_settings.max_concurrent_streams
        if value is None or value > 2**31:
            return PROVISIONAL_MAX_CONCURRENT_STREAMS * 10
        return value

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        our_id = event.stream_id
        if isinstance(event, RequestHeaders) and our_id not in self.our_to_h2:
            if self.open_streams >= self.max_streams:
                self.queued[our_id] = [event]
                return
            yield from _lowercased_log(self.open_stream(event))
        elif our_id in self.queued:
            if isinstance(event, RequestProtocolError):
                del self.queued[our_id]  # cancelled while waiting for a free stream: never sent
                self.queued_paused.discard(our_id)
            else:
                self.queued[our_id].append(event)
                yield from self.hold_back_queued(our_id)
            return
        elif our_id in self.our_to_h2:
            yield from self.send_on_stream(self.our_to_h2[our_id], event)
        return
        yield

    def hold_back_queued(self, our_id: int) -> CommandGenerator[None]:
        """A request waiting for a free stream keeps its body here: past a stream window of
        it, its client is asked to pause, as for a stream whose data waits for a window."""
        size = sum(len(e.data) for e in self.queued[our_id] if isinstance(e, RequestData))
        if size > self.stream_window and our_id not in self.queued_paused:
            self.queued_paused.add(our_id)
            yield ReceiveHttp(BodyBackpressure(our_id, request=True, paused=True))

    def open_stream(self, event: RequestHeaders) -> list[bytes]:
        """Send the request head on a new stream; returns the header names it lowercased."""
        h2_id = self.h2_conn.get_next_available_stream_id()
        self.our_to_h2[event.stream_id] = h2_id
        self.h2_to_our[h2_id] = event.stream_id
        self.streams[h2_id] = "headers"
        self.open_streams += 1
        request = event.request
        authority = request.data.authority or request.headers.get("host", "").encode() or (
            request.host.encode() if request.port in (80, 443) else b"%s:%d" % (request.host.encode(), request.port)
        )
        fields = [  # in mitmproxy's order
            (b":method", request.data.method),
            (b":scheme", request.data.scheme or b"https"),
            (b":path", request.data.path or b"/"),
            (b":authority", authority),
        ]
        plain, lowered = _outbound_fields(request, self.context.options)
        fields += plain
        self.h2_conn.send_headers(h2_id, fields, end_stream=event.end_stream)
        if event.end_stream:
            self.ended_locally.add(h2_id)
        return lowered

    def send_on_stream(self, h2_id: int, event: HttpEvent) -> CommandGenerator[None]:
        conn = self.h2_conn
        if isinstance(event, RequestData):
            conn.send_data_buffered(h2_id, event.data)
            yield from self.check_backpressure(h2_id)
        elif isinstance(event, RequestTrailers):
            conn.send_trailers(h2_id, _plain_fields(event.trailers))
        elif isinstance(event, RequestEndOfMessage):
            if h2_id not in self.ended_locally:
                self.ended_locally.add(h2_id)
                conn.end_stream_buffered(h2_id)
            if self.streams.get(h2_id) == "done":  # the response came in full before
                yield from self.stream_done(h2_id)
        elif isinstance(event, RequestProtocolError):
            conn.forget(h2_id)
            try:
                conn.reset_stream(h2_id, h2.errors.ErrorCodes.CANCEL)
            except h2.exceptions.ProtocolError:
                pass
            yield from self.stream_done(h2_id)
        return
        yield

    def headers_received(self, event: Any) -> CommandGenerator[None]:
        h2_id = event.stream_id
        our_id = self.h2_to_our.get(h2_id)
        if our_id is None:
            return
        try:
            pseudo, headers = _split_pseudo(event.headers)
            status = int(pseudo[b":status"])
        except (KeyError, ValueError) as e:
            yield from self.stream_failed(h2_id, f"Invalid HTTP/2 response headers: {e}")
            self.h2_conn.reset_stream(h2_id, h2.errors.ErrorCodes.PROTOCOL_ERROR)
            return
        response = Response(
            http_version=b"HTTP/2.0",
            status_code=status,
            reason=reason_phrase(status).encode(),
            headers=headers,
            content=None,
            trailers=None,
            timestamp_start=time.time(),
            timestamp_end=None,
        )
        ended = bool(event.stream_ended)
        self.streams[h2_id] = "body"
        yield ReceiveHttp(ResponseHeaders(our_id, response, ended))
        if ended:
            yield from self.stream_ended(h2_id)

    def data_received(self, h2_id: int, data: bytes) -> CommandGenerator[None]:
        our_id = self.h2_to_our.get(h2_id)
        if our_id is not None and self.streams.get(h2_id) == "body":
            yield ReceiveHttp(ResponseData(our_id, data))

    def trailers_received(self, h2_id: int, trailers: Headers) -> CommandGenerator[None]:
        our_id = self.h2_to_our.get(h2_id)
        if our_id is not None and self.streams.get(h2_id) == "body":
            yield ReceiveHttp(ResponseTrailers(our_id, trailers))

    def stream_ended(self, h2_id: int) -> CommandGenerator[None]:
        our_id = self.h2_to_our.get(h2_id)
        if our_id is not None and self.streams.get(h2_id) == "body":
            self.streams[h2_id] = "done"
            yield ReceiveHttp(ResponseEndOfMessage(our_id))
            if h2_id in self.ended_locally:
                yield from self.stream_done(h2_id)
            # else: answered early; the stream stays ours until the upload is out

    def stream_reset(self, h2_id: int, code: int) -> CommandGenerator[None]:
        if self.streams.get(h2_id) in (None, "done"):
            return
        message = f"Stream reset by server ({_error_name(code)})."
        if code == h2.errors.ErrorCodes.HTTP_1_1_REQUIRED:
            # Passed on as such to an HTTP/2 client, which then retries over HTTP/1.1.
            our_id = self.h2_to_our.get(h2_id)
            self.streams[h2_id] = "done"
            if our_id is not None:
                yield ReceiveHttp(ResponseProtocolError(our_id, message, ErrorCode.HTTP_1_1_REQUIRED))
            yield from self.stream_done(h2_id)
            return
        yield from self.stream_failed(h2_id, message)

    def stream_failed(self, h2_id: int, message: str) -> CommandGenerator[None]:
        our_id = self.h2_to_our.get(h2_id)
        self.streams[h2_id] = "done"
        if our_id is not None:
            yield ReceiveHttp(ResponseProtocolError(our_id, message, ErrorCode.GENERIC_SERVER_ERROR))
        yield from self.stream_done(h2_id)

    def fail_all(self, message: str, peer_closed: bool = False, last_stream_id: int | None = None) -> CommandGenerator[None]:
        queued, self.queued = self.queued, collections.OrderedDict()
        self.queued_paused.clear()
        for our_id in queued:
            yield ReceiveHttp(ResponseProtocolError(our_id, message, ErrorCode.GENERIC_SERVER_ERROR))
        yield from super().fail_all(message, peer_closed, last_stream_id)

    def h2_id_of(self, our_id: int) -> int | None:
        return self.our_to_h2.get(our_id)

    def our_id_of(self, h2_id: int) -> int | None:
        return self.h2_to_our.get(h2_id)

    def stream_done(self, h2_id: int) -> CommandGenerator[None]:
        self.stream_over(h2_id)
        our_id = self.h2_to_our.pop(h2_id, None)
        if our_id is not None:
            self.our_to_h2.pop(our_id, None)
            self.open_streams -= 1
        self.ended_locally.discard(h2_id)
        yield from self.start_queued()

    def settings_changed(self) -> CommandGenerator[None]:
        yield from self.start_queued()

    def start_queued(self) -> CommandGenerator[None]:
        while self.queued and self.open_streams < self.max_streams and not self.closed:
            our_id, pending = self.queued.popitem(last=False)
            first = pending[0]
            assert isinstance(first, RequestHeaders)
            yield from _lowercased_log(self.open_stream(first))
            h2_id = self.our_to_h2[our_id]
            for event in pending[1:]:
                yield from self.send_on_stream(h2_id, event)
            if our_id in self.queued_paused:
                # Its client stays paused until what it sent meanwhile has gone out.
                self.queued_paused.discard(our_id)
                self.backpressured.add(h2_id)
                yield from self.check_backpressure(h2_id)


# mitmproxy's name (its tests and some addons import it).
split_pseudo_headers = _split_pseudo
