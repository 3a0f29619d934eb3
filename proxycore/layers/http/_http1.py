"""HTTP/1 connection layers: Http1Server faces the client, Http1Client faces a server.

They translate bytes into HTTP events (``ReceiveHttp``) and HTTP events into
bytes (``SendData``); for the HttpLayer that routes them itself, the events come without
their ReceiveHttp (``bare_received``).  HTTP/1 has one exchange at a time per connection, so a
new request is only read once the previous response is complete (bytes sent
early stay buffered).
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from proxycore.connection import Connection, ConnectionState
from proxycore.http import Headers, Request, Response, _hostport
from proxycore.layers.http._commands import NOTHING, HttpGenerator, ReceiveHttp
from proxycore.layers.http._events import (
    CLIENT_GONE,
    BodyBackpressure,
    DiscardRequestBody,
    ErrorCode,
    HttpEvent,
    RequestData,
    RequestEndOfMessage,
    RequestHalfClosed,
    RequestHeaders,
    RequestProtocolError,
    RequestTrailers,
    ResponseData,
    ResponseEndOfMessage,
    ResponseHeaders,
    ResponseProtocolError,
    ResponseTrailers,
)
from proxycore.layers.http._head_timer import HeadTimer, derived_values
from proxycore.net import http1
from proxycore.net.http1 import BodyData, BodyEnd, BodyReader, ProtocolError
from proxycore.options import Options, parse_size
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import Layer

# Body chunks above this size are framed with separate writes instead of being copied into one.
CHUNK_COPY_LIMIT = 64 * 1024
# Up to this many bytes, _take copies through a bytearray slice: the memoryview that saves
# a copy costs more (~3k instructions, its context manager) than copying them twice.
SMALL_TAKE = 64 * 1024
# How long a client may go on uploading after an error page answered its unfinished request.
LINGER_SECONDS = 30
# ConnectionState.OPEN as a global: an Enum class attribute read costs ~600 instructions on 3.11
# (EnumType.__getattr__), and `reusable` is asked for every request.
_OPEN = ConnectionState.OPEN


def make_error_response(status_code: int, message: str) -> Response:
    """A small HTML page explaining why the proxy answered instead of the server."""
    reason = Response.make(status_code).reason
    body = (
        f"<!DOCTYPE html>\n<html><head><title>{status_code} {html.escape(reason)}</title></head>\n"
        f"<body><h1>{status_code} {html.escape(reason)}</h1><p>{html.escape(message)}</p>"
        "<hr><p><small>proxycore</small></p></body></html>\n"
    )
    return Response.make(
        status_code,
        body.encode(),
        {"Server": "proxycore", "Connection": "close", "Content-Type": "text/html"},
    )


class Http1Connection(Layer):
    """State shared by both directions: the connection, its read buffer and body reader."""

    conn: Connection
    stream_id: int | None
    relays_backpressure = True
    multiplexed: ClassVar[bool] = False  # one exchange at a time
    state: str  # each direction has its own states; both have "passthrough" (a tunnel)
    #: The handlers of the HTTP events sent on every request, by exact event type (each
    #: subclass fills in its own): handle_event calls them directly, without _send's chain
    #: of isinstance checks and its generator in between. Other events (and subclasses of
    #: these) go through _send. DataReceived, the other event of every request, goes to
    #: _handle_event from here too (without handle_event's isinstance check; these layers
    #: have no states to _goto, so _handle_event is the class's).
    _senders: ClassVar[dict[type, Callable[[Any, Any], HttpGenerator[None]]]] = {}
    #: Whether a received HTTP event is yielded as it is instead of inside a ReceiveHttp:
    #: set by the HttpLayer whose routing takes this layer's commands directly (it knows a
    #: bare HttpEvent from a connection layer, not from a stream, as received). Five objects
    #: less per request (~2k instructions each); anyone else gets ReceiveHttp, as from
    #: mitmproxy's layers.
    bare_received = False

    def __init__(self, context: Context, conn: Connection) -> None:
        super().__init__(context)
        self.conn = conn
        self.derived = derived_values(context.options)
        self.stream_id = None
        # Received, not yet parsed. A bytearray: appending to it costs what is appended.
        self.buf = bytearray()
        self.head_scanned = 0  # bytes at the start of buf known to hold no head end
        self.body_reader: BodyReader | None = None
        self.request: Request | None = None
        self.response: Response | None = None
        # How outgoing message bodies are framed: "length", "chunked", "none" or "eof".
        self.send_framing = "length"
        self.pending_trailers: Headers | None = None
        # A hook holds the message whose body we read (BodyBackpressure): body bytes handed
        # on meanwhile, and whether we asked the driver to stop reading because of them.
        self.body_held = False
        self.held_bytes = 0
        self.reading_paused = False
        # Why reading may be paused: a held body past its limit, pipelined data (server only).
        self.hold_pausing = False
        self.pipeline_pausing = False

    def handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        # An HTTP/1 connection layer never yields a blocking command, so it never pauses:
        # its handler's generator goes up as is, without the _run wrapper (one generator
        # level less for every command of every request). An HTTP event to send goes
        # straight to its handler, as _handle_event would pass it.
        sender = self._senders.get(type(event))
        if sender is not None:
            return sender(self, event)
        if isinstance(event, HttpEvent):
            return self._send(event)
        return self._handle_event(event)

    def _send(self, event: HttpEvent) -> HttpGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def _received(self, event: HttpEvent) -> commands.Command | HttpEvent:
        """``event`` as it goes up (see bare_received). The handlers of every request
        decide this inline, without the call."""
        return event if self.bare_received else ReceiveHttp(event)

    def _count_held(self, size: int) -> HttpGenerator[None]:
        """Body bytes that can only queue up while their message is held: past the size at
        which the body would be streamed, stop reading the peer until the hold ends."""
        self.held_bytes += size
        limit = size_limits(self.context.options).pause
        if limit is not None and self.held_bytes > limit:
            self.hold_pausing = True
            yield from self._apply_reading()

    def _hold_body(self, paused: bool) -> bool:
        """Start or end a hold; True if reading must be decided again (then the caller
        yields from _apply_reading). A plain function: after every message it ends a hold
        that usually never began, and a generator for that would yield nothing."""
        self.body_held, self.held_bytes = paused, 0
        if paused:
            return False
        self.hold_pausing = False
        return self.reading_paused

    def _apply_reading(self) -> HttpGenerator[None]:
        """One PauseReading/ResumeReading state for the peer, whatever the reasons."""
        pause = self.hold_pausing or self.pipeline_pausing
        if pause and not self.reading_paused:
            self.reading_paused = True
            yield commands.PauseReading(self.conn)
        elif not pause and self.reading_paused and self._may_resume():
            self.reading_paused = False
            yield commands.ResumeReading(self.conn)

    def _may_resume(self) -> bool:
        return True

    def _head_end(self) -> tuple[int, int | None]:
        """Where the head at the start of buf ends (-1: not yet), each byte searched once
        across reads, and the head size limit (read from the options' cache: once per head)."""
        buf = self.buf
        scanned = self.head_scanned
        match = http1.HEAD_END.search(buf, scanned - 2 if scanned > 2 else 0)
        if match is None:
            self.head_scanned, end = len(buf), -1
        else:
            self.head_scanned, end = 0, match.end()
        try:
            limit = self.derived[_size_limits].head
        except KeyError:
            limit = size_limits(self.context.options).head
        return end, limit

    def _take(self, end: int) -> bytes:
        """Remove and return the first ``end`` bytes of buf."""
        buf = self.buf
        if end >= len(buf):  # all of it (a body chunk, usually): one copy, not two
            data = bytes(buf)
            buf.clear()
            return data
        if end <= SMALL_TAKE:  # a head, usually: copying twice costs less than a view
            data = bytes(buf[:end])
        else:
            with memoryview(buf) as view:  # bytes(buf[:end]) would copy twice
                data = bytes(view[:end])
        del buf[:end]
        return data

    def _send_data(self, event: RequestData | ResponseData) -> HttpGenerator[None]:
        """A body chunk, framed as ``send_framing`` says; in a tunnel, as it is."""
        data = event.data
        if self.state == "passthrough":
            yield commands.SendData(self.conn, data)
            return
        if not data or self.send_framing == "none":
            return
        if self.send_framing == "chunked":
            if len(data) > CHUNK_COPY_LIMIT:  # frame a large body without copying it
                yield commands.SendData(self.conn, b"%x\r\n" % len(data))
                yield commands.SendData(self.conn, data)
                yield commands.SendData(self.conn, b"\r\n")
            else:
                yield commands.SendData(self.conn, http1.chunk(data))
        else:
            yield commands.SendData(self.conn, data)

    def _end_bytes(self) -> bytes | None:
        """What ends an outgoing body on the wire: the last chunk (with trailers) when
        chunked, else nothing (None), as is usual: no generator that yields nothing. (The
        callers ask only when chunked or trailers are pending: nothing to do otherwise.)"""
        trailers, self.pending_trailers = self.pending_trailers, None
        return http1.last_chunk(trailers) if self.send_framing == "chunked" else None


@dataclass(frozen=True, slots=True)
class SizeLimits:
    """The size options the HTTP layers consult on every request, parsed (None: no limit)."""

    head: int | None  # head_size_limit
    body: int | None  # body_size_limit
    stream: int | None  # stream_large_bodies
    hold: int | None  # see hold_limit
    pause: int | None  # see pause_limit


def _size_limits(options: Options) -> SizeLimits:
    return SizeLimits(
        head=parse_size(options.head_size_limit) or None,
        body=parse_size(options.body_size_limit),
        stream=parse_size(options.stream_large_bodies),
        hold=hold_limit(options),
        pause=pause_limit(options),
    )


def size_limits(options: Options) -> SizeLimits:
    """The limits of the options in force: parsed once per change of the options, not a
    few times per request (OptManager.derived; its cache is read here without the call,
    a few times per request)."""
    try:
        limits: SizeLimits = options._derived[_size_limits]
        return limits
    except (AttributeError, KeyError):
        derived = getattr(options, "derived", None)  # any options object will do, more slowly
        return derived(_size_limits) if derived is not None else _size_limits(options)


def hold_limit(options: Options) -> int | None:
    """Bytes of a body the proxy holds before it streams it: the lower of
    stream_large_bodies and body_buffer_limit (None: no limit)."""
    limits = [parse_size(options.stream_large_bodies), parse_size(options.body_buffer_limit) or None]
    return min((x for x in limits if x is not None), default=None)


# A small stream_large_bodies (mitmproxy's tests use 0 and 3) streams the body once the
# hook returns; reading stops during the hook only past this much, so that a few bytes
# do not cost a PauseReading/ResumeReading pair. body_buffer_limit still applies exactly.
PAUSE_FLOOR = 2**16


def pause_limit(options: Options) -> int | None:
    """Body bytes read for a message a hook holds before reading its peer stops."""
    stream = parse_size(options.stream_large_bodies)
    limits = [None if stream is None else max(stream, PAUSE_FLOOR), parse_size(options.body_buffer_limit) or None]
    return min((x for x in limits if x is not None), default=None)


def _yielding(*commands_: commands.Command) -> HttpGenerator[None]:
    """A handler's few commands, decided already, as its generator."""
    yield from commands_


def _as_http1(request: Request) -> Request:
    """An HTTP/2 request as HTTP/1 wants it on the wire: Host from :authority, one Cookie header.

    The flow keeps the request as the client sent it; only a copy is changed."""
    if request.data.http_version in (b"HTTP/1.1", b"HTTP/1.0"):  # (no property calls per request)
        return request
    wire = Request.from_state(request.get_state())
    headers = wire.headers
    cookies = headers.get_all("cookie")
    if len(cookies) > 1:
        headers["cookie"] = "; ".join(cookies)
    if "host" not in headers and request.data.authority:
        headers.fields = ((b"Host", request.data.authority), *headers.fields)
    return wire


def _with_authority(request: Request) -> Request:
    """A request line in absolute form needs an authority; rebuild it from host and port if unset."""
    if request.data.authority and request.data.scheme:
        return request
    wire = Request.from_state(request.get_state())
    wire.scheme = request.scheme or "http"
    wire.authority = _hostport(wire.scheme, request.host, request.port)
    return wire


class Http1Server(Http1Connection):
    """Reads requests from the client and writes responses back."""

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.client)
        self.state = "read_headers"
        self.next_stream_id = 1
        self.request_done = False
        self.client_closed = False
        # The timeout for the next request head, armed with ``head_timer.arm(idle)``:
        # keepalive_timeout for its first byte after a response (idle), request_head_timeout
        # for all of it (slowloris); outdated once replaced or the head is in. It is published
        # on the client connection (``client.head_timer``) instead of being yielded: the
        # driver arms it and feeds its Wakeup back. Layer playbooks (ours and mitmproxy's)
        # then see only the protocol's own commands, as in mitmproxy, whose layers have no
        # such timer; ``Playbook(timeouts=True)`` shows it.
        self.head_timer = HeadTimer(context.options, publish_on=self.conn)
        self.linger_timer: commands.RequestWakeup | None = None
        self.body_discarded = False  # answered before the body: the rest is parsed, not passed on
        self.answered_early = False  # response sent while the body is still relayed to the server
        self.switching = False  # a 2xx to CONNECT or a 101 was sent; passthrough once it ends

    def _head_timed_out(self) -> HttpGenerator[None]:
        delay = self.head_timer.delay
        self.state = "done"
        if self.buf.strip():
            yield commands.Log(f"client did not complete its request head within {delay} s", logging.INFO)
            page = make_error_response(408, f"No complete request head within {delay} seconds.")
            yield commands.SendData(self.conn, http1.assemble_response_head(page) + (page.raw_content or b""))
        else:
            yield commands.Log(f"closing client connection idle for {delay} s", logging.DEBUG)
        yield commands.CloseConnection(self.conn)

    def _handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        # The bytes of a request head go to _read directly: no generator of this handler
        # in between (a plain function; every other event goes to _event).
        if type(event) is events.DataReceived and self.state == "read_headers":
            self.buf += event.data
            return self._read()
        return self._event(event)

    def _event(self, event: events.Event) -> HttpGenerator[None]:
        if isinstance(event, events.DataReceived):
            if self.state == "passthrough":
                assert self.stream_id is not None
                received = RequestData(self.stream_id, event.data)
                yield received if self.bare_received else ReceiveHttp(received)
                return
            if self.state in ("discard", "done", "errored"):
                return  # answered (or failing): nothing more is read
            if self.state == "read_body" and not self.buf:
                if (yield from self._read_body(event.data)):  # (no copy into buf and out)
                    yield from self._read()
                elif self._pipeline_backpressure():
                    yield from self._apply_reading()
            else:
                self.buf += event.data
                yield from self._read()
        elif isinstance(event, events.ConnectionClosed):
            yield from self._client_closed()
        elif isinstance(event, HttpEvent):
            yield from self._send(event)
        elif isinstance(event, events.Wakeup):
            if self.head_timer.fired(event):
                if self.state == "read_headers":
                    yield from self._head_timed_out()
            elif self.state == "discard" and event.command is self.linger_timer:
                # the client kept sending for too long after our answer
                self.state = "done"
                yield commands.CloseConnection(self.conn)
        elif isinstance(event, events.Start):
            self.head_timer.arm(idle=False)

    def _read(self) -> HttpGenerator[None]:
        """Read the requests in buf, as far as the state allows; then stop or resume reading
        the client for what is left waiting (see _pipeline_backpressure)."""
        while True:
            if self.state == "read_headers":
                # A head, read here: no generator level of its own between the request's
                # two events and the driver. Empty lines before a request are allowed.
                buf = self.buf
                blank = http1.leading_blank_lines(buf) if buf and buf[0] in (13, 10) else 0  # (CR, LF)
                if blank:
                    del self.buf[:blank]
                    self.head_scanned = max(0, self.head_scanned - blank)
                end, limit = self._head_end()
                if end == -1:
                    if limit is not None and len(self.buf) > limit:
                        yield from self._bad_request(f"request head larger than {limit} bytes", 431)
                    elif self.buf and self.head_timer.idle:
                        self.head_timer.arm(idle=False)  # a head has begun: time it
                    break
                if limit is not None and end > limit:
                    yield from self._bad_request(f"request head larger than {limit} bytes", 431)
                    break
                self.head_timer.disarm()
                if end == len(buf):  # (_take written out for a head that came alone, as usual)
                    head = bytes(buf)
                    buf.clear()
                else:
                    head = self._take(end)
                try:
                    request = http1.parse_request_head(head)
                    size = http1.request_body_size(request)
                except ProtocolError as e:
                    yield from self._bad_request(str(e), 400)
                    break
                request.data.timestamp_start = time.time()
                self.stream_id = self.next_stream_id
                self.next_stream_id += 2
                self.request, self.response = request, None
                self.request_done = size == 0
                self.body_discarded = False
                self.answered_early = False
                stream_id = self.stream_id
                # The state is set before the head goes up: with hooks answered at once, the
                # answer (proxyauth's 407, say) can come back down to us while RequestHeaders
                # is handled.
                if size == 0:
                    self.state = "wait"
                else:
                    self.body_reader = BodyReader(size)
                    self.state = "read_body"
                # size >= 0 is the Content-Length (or 0 without one); CHUNKED declares none.
                received: HttpEvent = RequestHeaders(stream_id, request, size == 0, None, size if size >= 0 else None)
                yield received if self.bare_received else ReceiveHttp(received)
                # A CONNECT request goes on as its tunnel (as mitmproxy): no end of message.
                if size == 0 and request.data.method != b"CONNECT" and self.stream_id == stream_id and self.request is request:
                    received = RequestEndOfMessage(stream_id)
                    yield received if self.bare_received else ReceiveHttp(received)
                continue
            elif self.state == "read_body":
                if not (yield from self._read_body()):
                    break
            else:
                break
        # (Nothing waiting, reading not paused for it: nothing to decide, as usual after a
        # request, without the call.)
        if (self.buf or self.pipeline_pausing or self.reading_paused) and self._pipeline_backpressure():
            yield from self._apply_reading()

    def _pipeline_backpressure(self) -> bool:
        """Stop reading the client while more than head_size_limit bytes of what it
        pipelined wait behind the request in progress; read again once they are taken.
        True if reading must be decided again (then the caller yields from _apply_reading);
        usually it need not, so this is no generator."""
        if self.state == "wait" and self.buf:
            limit = size_limits(self.context.options).head
            self.pipeline_pausing = limit is not None and len(self.buf) > limit
        else:
            self.pipeline_pausing = False
        return self.pipeline_pausing != self.reading_paused

    def _may_resume(self) -> bool:
        return self.state != "done"

    def _read_body(self, data: bytes | None = None) -> HttpGenerator[bool]:
        """Feed ``data`` (default: all of buf) to the body reader; True once the body ended."""
        assert self.body_reader is not None and self.stream_id is not None
        stream_id = self.stream_id
        try:
            parts, rest = self.body_reader.feed(self._take(len(self.buf)) if data is None else data)
            self.buf[:0] = rest
        except ProtocolError as e:
            self.state = "errored"
            yield self._received(RequestProtocolError(stream_id, f"Bad request body: {e}"))
            return False
        for part in parts:
            if isinstance(part, BodyData):
                if self.body_discarded:
                    continue
                held = self.body_held  # (handing the data on may start or end a hold)
                received: HttpEvent = RequestData(stream_id, part.data)
                yield received if self.bare_received else ReceiveHttp(received)
                if held and self.body_held:
                    yield from self._count_held(len(part.data))
            else:
                self.request_done = True
                if self.state == "read_body":
                    self.state = "wait"
                if part.trailers:
                    yield self._received(RequestTrailers(stream_id, part.trailers))
                received = RequestEndOfMessage(stream_id)
                yield received if self.bare_received else ReceiveHttp(received)
                if self.answered_early and self.state == "wait":
                    self.answered_early = False
                    yield from self._response_done()  # reads on itself
                    return False
        return self.state not in ("read_body", "errored")

    def _bad_request(self, reason: str, status: int) -> HttpGenerator[None]:
        """Garbage before any flow exists: answer with an error page and hang up."""
        yield commands.Log(f"client sent an invalid request: {reason}", logging.INFO)
        response = make_error_response(status, f"Bad request: {reason}")
        yield commands.SendData(self.conn, http1.assemble_response_head(response) + (response.raw_content or b""))
        yield commands.CloseConnection(self.conn)
        self.state = "done"

    def _client_closed(self) -> HttpGenerator[None]:
        self.client_closed = True
        state = self.state
        if state == "passthrough":
            assert self.stream_id is not None
            yield self._received(RequestEndOfMessage(self.stream_id))
        elif state == "read_body":
            assert self.body_reader is not None and self.stream_id is not None
            self.state = "done"
            yield commands.CloseConnection(self.conn)  # first, then the stream fails (as mitmproxy)
            yield self._received(
                RequestProtocolError(
                    self.stream_id,
                    "Client disconnected before the request body was complete.",
                    ErrorCode.CLIENT_DISCONNECTED,
                )
            )
        elif state in ("read_headers", "done", "errored", "discard"):
            # Idle keep-alive connection (or half a request head): nothing to answer.
            if state == "read_headers" and self.buf.strip():
                yield commands.Log("client closed the connection mid-request", logging.DEBUG)
            self.state = "done"
            yield commands.CloseConnection(self.conn)
        elif state == "wait" and self.request is not None and self.request.method == "CONNECT":
            # A client that stops writing before its tunnel exists cannot use it: gone.
            self.state = "done"
            yield commands.CloseConnection(self.conn)
            assert self.stream_id is not None
            yield self._received(RequestProtocolError(self.stream_id, CLIENT_GONE, ErrorCode.CLIENT_DISCONNECTED))
        elif state == "wait":
            # The stream decides: a half-close right after the request still gets the
            # response; a FIN while the response is arriving means the client is gone.
            assert self.stream_id is not None
            yield self._received(RequestHalfClosed(self.stream_id))

    def _send(self, event: HttpEvent) -> HttpGenerator[None]:
        if isinstance(event, ResponseHeaders):
            yield from self._send_headers(event)
        elif isinstance(event, BodyBackpressure):
            if event.request and event.stream_id == self.stream_id:
                if self._hold_body(event.paused):
                    yield from self._apply_reading()
        elif isinstance(event, DiscardRequestBody):
            if event.stream_id == self.stream_id and self.state == "read_body":
                self.body_discarded = True
            if self._hold_body(False):
                yield from self._apply_reading()
        elif isinstance(event, ResponseData):
            yield from self._send_data(event)
        elif isinstance(event, ResponseTrailers):
            self.pending_trailers = event.trailers
        elif isinstance(event, ResponseEndOfMessage):
            yield from self._send_end_of_message(event)
        elif isinstance(event, ResponseProtocolError):
            yield from self._send_error(event)

    def _send_end_of_message(self, event: ResponseEndOfMessage) -> HttpGenerator[None]:
        """The response ends. A plain function: on a keep-alive connection, a response
        without a last chunk usually leaves NOTHING to send (see _response_done)."""
        if self.switching:
            return self._start_passthrough()
        if self.state == "passthrough":
            return _yielding(commands.CloseConnection(self.conn, half_close=True))
        ends = self.send_framing == "chunked" or self.pending_trailers is not None
        end = self._end_bytes() if ends else None
        if end is None:
            return self._response_done()
        return self._last_bytes_then_done(end)

    def _last_bytes_then_done(self, end: bytes) -> HttpGenerator[None]:
        yield commands.SendData(self.conn, end)
        yield from self._response_done()

    def _send_headers(self, event: ResponseHeaders) -> HttpGenerator[None]:
        response = event.response
        status = response.data.status_code
        if status < 200 and status != 101:
            yield commands.SendData(self.conn, http1.assemble_response_head(response))
            return
        assert self.request is not None
        self.response = response
        method = self.request.data.method.upper()  # (bytes: no decoding per response)
        tunnel = method == b"CONNECT" and 200 <= status < 300
        bodiless = method == b"HEAD" or status in (204, 304) or tunnel
        headers = response.data.headers
        if (
            not bodiless
            and response.data.http_version not in (b"HTTP/1.1", b"HTTP/1.0")  # (no property calls)
            and "content-length" not in headers
            and "transfer-encoding" not in headers
        ):
            # From HTTP/2, where DATA frames delimit the body: give HTTP/1 a length (or
            # chunks, when streamed) instead of closing the connection to mark the end.
            if response.raw_content is not None:
                headers["content-length"] = str(len(response.raw_content))
            elif self.request.is_http11:
                headers["transfer-encoding"] = "chunked"
        self.send_framing = http1.outgoing_framing(response.data.headers, bodiless)
        yield commands.SendData(self.conn, http1.assemble_response_head(response))
        if status == 101 or tunnel:
            # The tunnel begins once this (bodiless) response has ended: see _start_passthrough.
            self.switching = True

    def _start_passthrough(self) -> HttpGenerator[None]:
        """After a 2xx to CONNECT or a 101 has ended, both ways carry the new protocol's bytes."""
        self.switching = False
        self.state = "passthrough"
        assert self.request is not None
        if self.request.method == "CONNECT":
            # Blank lines after a CONNECT head belong to it, not to the tunnel (as mitmproxy).
            del self.buf[: http1.leading_blank_lines(self.buf)]
        if self.buf:
            assert self.stream_id is not None
            yield self._received(RequestData(self.stream_id, self._take(len(self.buf))))
        if self._pipeline_backpressure():  # a tunnel reads on, whatever came early
            yield from self._apply_reading()

    def _response_done(self) -> HttpGenerator[None]:
        """The response is out: close, or get ready for the next request. A plain function:
        a keep-alive connection with nothing waiting to be read or resumed has NOTHING to do."""
        request, response = self.request, self.response
        assert request is not None and response is not None
        if self.state == "read_body" and not self.request_done and not self.body_discarded and not self.client_closed:
            # An early answer while the body is streamed to the server: it is read and
            # relayed to its end, then the connection goes on (or closes) as usual.
            self.answered_early = True
            return NOTHING
        close = (
            self.client_closed
            or not self.request_done
            or self.send_framing == "eof"
            or http1.exchange_closes(request, response)
        )
        if close and self.state == "read_body" and not self.client_closed:
            return self._discard_rest()  # answered before the body (proxyauth's 407)
        if close:
            self.state = "done"
            return _yielding(commands.CloseConnection(self.conn))
        self.state = "read_headers"
        self.request = self.response = None
        self.body_reader = None
        # (_hold_body(False) written out: after every response.)
        self.body_held, self.held_bytes, self.hold_pausing = False, 0, False
        resume = self.reading_paused
        self.head_timer.arm(not self.buf or not self.buf.lstrip(b"\r\n"))  # (idle; positional, per request)
        if resume or self.buf or self.reading_paused:
            return self._read_on(resume)
        self.pipeline_pausing = False  # (what _pipeline_backpressure finds: nothing waits)
        return NOTHING

    def _read_on(self, resume: bool) -> HttpGenerator[None]:
        """After a response: reading resumed if a hold ended (``resume``), what the client
        sent meanwhile read, and reading paused again if too much of it waits."""
        if resume:
            yield from self._apply_reading()
        if self.buf:
            yield from self._read()  # (which decides about reading at its end)
        elif self._pipeline_backpressure():
            yield from self._apply_reading()

    def _send_error(self, event: ResponseProtocolError) -> HttpGenerator[None]:
        if self.state in ("done", "discard"):
            return  # already hung up
        status = event.code.http_status_code()
        if self.response is None and status is not None and self.state != "passthrough":
            page = make_error_response(status, event.message)
            yield commands.SendData(self.conn, http1.assemble_response_head(page) + (page.raw_content or b""))
            if self.state == "read_body":
                yield from self._discard_rest()  # e.g. a body over body_size_limit
                return
        self.state = "done"
        yield commands.CloseConnection(self.conn)

    def _discard_rest(self) -> HttpGenerator[None]:
        """Answered while the client is still uploading. Closing now would reset the
        connection and could destroy the answer before the client reads it, so only send
        FIN and drop what still arrives until the client hangs up (or LINGER_SECONDS)."""
        self.state = "discard"
        if self._hold_body(False):
            yield from self._apply_reading()
        yield commands.CloseConnection(self.conn, half_close=True)
        self.linger_timer = commands.RequestWakeup(LINGER_SECONDS)
        yield self.linger_timer


class Http1Client(Http1Connection):
    """Writes requests to a server and reads its responses."""

    def __init__(self, context: Context, absolute_form: bool = False) -> None:
        super().__init__(context, context.server)
        self.state = "idle"
        self.response_size = 0
        self.absolute_form = absolute_form  # talking to an upstream proxy: full URLs
        self.request_sent = True  # the request in progress has gone out to its end

    @property
    def reusable(self) -> bool:
        # (conn.connected without its property call: asked for every request)
        return self.state == "idle" and self.conn.state is _OPEN

    def _handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        # The bytes of a response head go to _read directly: no generator of this handler
        # in between (a plain function; every other event goes to _event).
        if type(event) is events.DataReceived and self.state == "wait":
            self.buf += event.data
            return self._read()
        return self._event(event)

    def _event(self, event: events.Event) -> HttpGenerator[None]:
        if isinstance(event, events.DataReceived):
            if self.state == "passthrough":
                assert self.stream_id is not None
                received = ResponseData(self.stream_id, event.data)
                yield received if self.bare_received else ReceiveHttp(received)
                return
            if self.state == "done":
                return  # failed or closing: nothing more is read
            if self.state == "read_body" and not self.buf:
                yield from self._read_body(event.data)  # (no copy into buf and out)
            else:
                self.buf += event.data
            yield from self._read()
        elif isinstance(event, events.ConnectionClosed):
            yield from self._server_closed()
        elif isinstance(event, HttpEvent):
            yield from self._send(event)
        elif isinstance(event, events.Start):
            return

    def _send(self, event: HttpEvent) -> HttpGenerator[None]:
        if isinstance(event, RequestHeaders):
            yield from self._send_headers(event)
        elif isinstance(event, RequestData):
            yield from self._send_data(event)
        elif isinstance(event, RequestTrailers):
            self.pending_trailers = event.trailers
        elif isinstance(event, RequestEndOfMessage):
            yield from self._send_end_of_message(event)
        elif isinstance(event, RequestProtocolError):
            # The client went away or the request was killed: this connection is unusable.
            if self.state != "done":  # (closed already if the server side failed first)
                self.state = "done"
                yield commands.CloseConnection(self.conn)
        elif isinstance(event, BodyBackpressure):
            if not event.request and event.stream_id == self.stream_id:
                if self._hold_body(event.paused):
                    yield from self._apply_reading()

    def _send_headers(self, event: RequestHeaders) -> HttpGenerator[None]:
        request = event.request
        self.stream_id = event.stream_id
        self.request, self.response = request, None
        self.state = "wait"
        self.request_sent = False
        headers = request.data.headers
        framing = http1.outgoing_framing(headers, False, event.end_stream)
        # A request body must be delimited: an unknown length is sent chunked.
        if framing == "eof":
            request.headers["transfer-encoding"] = "chunked"
            framing = "chunked"
        self.send_framing = framing
        # (_as_http1's own first test, written out: an HTTP/1 request goes as it is.)
        wire = request if request.data.http_version in (b"HTTP/1.1", b"HTTP/1.0") else _as_http1(request)
        if self.absolute_form:
            head = http1.assemble_request_head(_with_authority(wire))
        else:
            head = http1.assemble_origin_request_head(wire)
        yield commands.SendData(self.conn, head)

    def _send_end_of_message(self, event: RequestEndOfMessage) -> HttpGenerator[None]:
        """The request ends: the last chunk if chunked, else usually NOTHING to send (a
        plain function, no generator for that)."""
        if self.state == "passthrough":
            return _yielding(commands.CloseConnection(self.conn, half_close=True))
        ends = self.send_framing == "chunked" or self.pending_trailers is not None
        end = self._end_bytes() if ends else None
        self.request_sent = True
        if self.state == "sending":  # answered early; now the request is out too
            self.state = "idle"
            self.request = None
            self.body_reader = None
        return NOTHING if end is None else _yielding(commands.SendData(self.conn, end))

    def _read(self) -> HttpGenerator[None]:
        while self.buf:
            if self.state == "wait":
                buf = self.buf
                end, limit = self._head_end()
                if limit is not None and (end > limit or (end == -1 and len(self.buf) > limit)):
                    yield from self._fail(f"Bad response from server: head larger than {limit} bytes")
                    return
                if end == -1:
                    return
                if end < len(buf) and end <= SMALL_TAKE:  # (_take written out: a head, its body behind)
                    head = bytes(buf[:end])
                    del buf[:end]
                else:
                    head = self._take(end)
                # The response's head, read here: no generator level of its own between
                # the response's events and the driver.
                assert self.request is not None and self.stream_id is not None
                method = self.request.data.method.upper()  # (bytes: no decoding per response)
                try:
                    response = http1.parse_response_head(head)
                    size = http1.body_size_after(method, response)
                except ProtocolError as e:
                    yield from self._fail(f"Bad response from server: {e}")
                    return
                status = response.data.status_code
                if status < 200 and status != 101:
                    continue  # interim response (100, 103…): not forwarded, the final one follows
                response.data.timestamp_start = time.time()
                self.response = response
                self.response_size = size
                # size >= 0 is the Content-Length (or 0 without a body); CHUNKED/UNTIL_EOF
                # declare none.
                declared = size if size >= 0 else None
                received: HttpEvent = ResponseHeaders(self.stream_id, response, size == 0, declared)
                yield received if self.bare_received else ReceiveHttp(received)
                tunnel = method == b"CONNECT" and 200 <= status < 300
                if status == 101 or tunnel:
                    self.state = "passthrough"
                    if status == 101:
                        # The 101 itself is complete; what follows is the new protocol (as
                        # mitmproxy). (A 2xx to a CONNECT goes on as the tunnel, without an end.)
                        yield self._received(ResponseEndOfMessage(self.stream_id))
                    if self.buf:
                        yield self._received(ResponseData(self.stream_id, self._take(len(self.buf))))
                    return
                if size == 0:
                    yield from self._response_complete()
                elif 0 < size <= len(self.buf):
                    # The whole Content-Length body is here already (a small response,
                    # usually): handed on as _body_parts hands on what the body reader gives,
                    # without either.
                    self.state = "read_body"
                    buf = self.buf
                    if size == len(buf):  # (_take written out: the body is all that is left)
                        data = bytes(buf)
                        buf.clear()
                    else:
                        data = self._take(size)
                    held = self.body_held  # (handing the data on may start or end a hold)
                    received = ResponseData(self.stream_id, data)
                    yield received if self.bare_received else ReceiveHttp(received)
                    if held and self.body_held:
                        yield from self._count_held(len(data))
                    yield from self._response_complete()
                else:
                    self.body_reader = BodyReader(size)
                    self.state = "read_body"
                continue
            elif self.state == "read_body":
                yield from self._read_body()
                if self.state == "read_body":
                    return
            elif self.state == "idle":
                yield commands.Log(
                    f"server sent unexpected data: {self.buf[:40]!r}", logging.DEBUG
                )
                self.buf = bytearray()
                self.state = "done"
                yield commands.CloseConnection(self.conn)
                return
            else:
                return

    def _read_body(self, data: bytes | None = None) -> HttpGenerator[None]:
        """Feed ``data`` (default: all of buf) to the body reader; what to hand on, as a
        generator. A plain function: no generator level of its own between the response's
        events (and all that the stream then sends) and the driver."""
        assert self.body_reader is not None and self.stream_id is not None
        try:
            parts, rest = self.body_reader.feed(self._take(len(self.buf)) if data is None else data)
            self.buf[:0] = rest
        except ProtocolError as e:
            return self._fail(f"Bad response body: {e}")
        return self._body_parts(parts)

    def _body_parts(self, parts: list[BodyData | BodyEnd]) -> HttpGenerator[None]:
        stream_id = self.stream_id
        assert stream_id is not None
        for part in parts:
            if isinstance(part, BodyData):
                held = self.body_held  # (handing the data on may start or end a hold)
                received = ResponseData(stream_id, part.data)
                yield received if self.bare_received else ReceiveHttp(received)
                if held and self.body_held:
                    yield from self._count_held(len(part.data))
            else:
                if part.trailers:
                    yield self._received(ResponseTrailers(stream_id, part.trailers))
                yield from self._response_complete()

    def _response_complete(self) -> HttpGenerator[None]:
        request, response = self.request, self.response
        assert request is not None and response is not None and self.stream_id is not None
        stream_id = self.stream_id
        close = (
            self.response_size == http1.UNTIL_EOF
            or http1.exchange_closes(request, response)
        )
        # (_hold_body(False) written out: after every response.)
        self.body_held, self.held_bytes, self.hold_pausing = False, 0, False
        if self.reading_paused:
            yield from self._apply_reading()
        # Decide before telling the stream, which may immediately ask for a connection again.
        if close:
            self.state = "done"
            if self.conn.connected or self.response_size != http1.UNTIL_EOF:
                yield commands.CloseConnection(self.conn)
        elif not self.request_sent:
            self.state = "sending"  # an early answer: not reusable until the request is out
            self.response = None
        else:
            self.state = "idle"
            self.request = self.response = None
            self.body_reader = None
        received = ResponseEndOfMessage(stream_id)
        yield received if self.bare_received else ReceiveHttp(received)

    def _server_closed(self) -> HttpGenerator[None]:
        state = self.state
        if state == "done":
            return  # we closed it already (and said so): the server's FIN needs nothing more
        if state == "passthrough":
            assert self.stream_id is not None
            yield self._received(ResponseEndOfMessage(self.stream_id))
            return
        if state == "read_body":
            assert self.body_reader is not None
            try:
                parts = self.body_reader.eof()
            except ProtocolError:
                yield from self._fail("Server disconnected before the response was complete (peer closed connection).")
                return
            self.state = "done"
            yield commands.CloseConnection(self.conn)
            yield from self._body_parts(parts)
            return
        if state == "wait":
            yield from self._fail("Server disconnected without sending a response.")
            return
        if state == "sending":
            yield from self._fail("Server closed the connection before the request was sent in full.")
            return
        self.state = "done"
        yield commands.CloseConnection(self.conn)

    def _fail(self, message: str) -> HttpGenerator[None]:
        stream_id = self.stream_id
        self.state = "done"
        self.buf = bytearray()
        yield commands.CloseConnection(self.conn)
        if stream_id is not None:
            yield self._received(ResponseProtocolError(stream_id, message))


Http1Server._senders = {
    events.DataReceived: Http1Server._handle_event,
    ResponseHeaders: Http1Server._send_headers,
    ResponseData: Http1Server._send_data,
    ResponseEndOfMessage: Http1Server._send_end_of_message,
}
Http1Client._senders = {
    events.DataReceived: Http1Client._handle_event,
    RequestHeaders: Http1Client._send_headers,
    RequestData: Http1Client._send_data,
    RequestEndOfMessage: Http1Client._send_end_of_message,
}
