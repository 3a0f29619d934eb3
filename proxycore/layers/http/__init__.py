"""The HTTP layer: one HttpLayer per client connection, multiplexing HttpStreams.

Connection layers (Http1Server facing the client, HttpClient/Http1Client
facing servers) turn bytes into HTTP events and back.  Each request/response
exchange is an HttpStream with its own flow and its own blocking state, so one
stream waiting on a hook never stalls another.  The HttpLayer routes events by
connection or stream id, and routes command replies to whichever child asked.
"""

from __future__ import annotations

import enum
import itertools
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from proxycore.connection import Address, Connection, Server, TransportProtocol
from proxycore.flow import Error
from proxycore.http import Headers, HTTPFlow, Request, Response, _hostport
from proxycore.layers.http._body import BodyBuffer
from proxycore.layers.http._commands import (
    NOTHING,
    DropStream,
    GetHttpConnection,
    HttpGenerator,
    ReceiveHttp,
    RegisterHttpConnection,
    SendHttp,
)
from proxycore.layers.http._events import (
    CLIENT_GONE,
    NOT_READ,
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
from proxycore.layers.http._head_timer import _NO_DERIVED, derived_values
from proxycore.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectErrorHook,
    HttpConnectHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.http._http1 import (
    Http1Client,
    Http1Server,
    SizeLimits,
    _size_limits,
    make_error_response,
    size_limits,
)
from proxycore.layers.http._upstream_proxy import HttpUpstreamTunnel
from proxycore.net.http1 import ProtocolError, parse_authority
from proxycore.proxy import commands, events
from proxycore.proxy.commands import SendData
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer, NextLayer
from proxycore.proxy.mode_specs import ReverseMode, UpstreamMode

if TYPE_CHECKING:
    # HTTP/2 (h2) and HTTP/3 (QUIC, TLS) are imported when a connection first speaks them:
    # a proxy that only ever sees HTTP/1 starts faster and smaller without them.
    from proxycore.layers.http._http2 import Http2Client
    from proxycore.layers.http._http2 import Http2Server as Http2Server
    from proxycore.layers.http._http3 import Http3Client
    from proxycore.layers.http._http3 import Http3Server as Http3Server

__all__ = [
    "HTTPMode",
    "HttpLayer",
    "HttpStream",
    "HttpClient",
    "ErrorCode",
    "make_error_response",
]


_Hook = TypeVar("_Hook", bound=commands.StartHook)


class HTTPMode(enum.Enum):
    regular = 1  # explicit proxy: absolute-form requests and CONNECT
    transparent = 2  # origin-form requests; the destination is known or in the Host header
    upstream = 3  # explicit proxy that forwards to another proxy


# The Enum members compared with per request, as module globals: on Python 3.11 reading an
# attribute of an Enum class goes through EnumType.__getattr__ (~600 instructions, a global ~30).
_REGULAR = HTTPMode.regular
_TRANSPARENT = HTTPMode.transparent
_UPSTREAM = HTTPMode.upstream
_TCP = TransportProtocol.TCP
_UDP = TransportProtocol.UDP


def _declared_size(headers: Headers) -> int | None:
    """The Content-Length a message announces, if it gives a usable one."""
    value = headers.get("content-length", "").strip()
    return int(value) if value.isdigit() else None


class HttpStream(Layer):
    """One request/response exchange, from request head to the end of the response."""

    flow: HTTPFlow
    # A stream is made for every request: what starts out the same for all of them is a
    # class attribute until a stream sets its own, not a dozen assignments per request.
    child_layer: Layer | None = None
    # Bytes buffered so far, for body_size_limit and the streaming threshold.
    request_body_size = 0
    response_body_size = 0
    upgraded = False  # a 101 turned this stream into a WebSocket/raw relay
    upgrade_response_ended = False  # the server's end of the 101 head came
    server_conn: Server | None = None
    request_complete = False
    response_headers_sent = False
    response_hook_done = False
    response_complete = False  # sent to the client in full (the upload may go on)
    error_hook_done = False
    # The last ResponseData that came in: a body that came whole in it, unchanged, goes on
    # to the client as that event (see send_response).
    response_chunk: ResponseData | None = None
    # The heads that came in: one that still says what a new one would (the same message
    # object, the same end_stream) goes on as it is, one event less per message (see
    # receive_request_end, send_response). Connection layers read a head's stream_id,
    # message and end_stream only (declared_size and replay_flow are for the stream).
    request_head: RequestHeaders | None = None
    response_head: ResponseHeaders | None = None
    # The request's body so far: made for a request that has one (a GET has none, and
    # its stream no buffer to make and empty).
    request_body: BodyBuffer | None = None
    # A buffered response body: its first chunk as it came (most bodies come whole, in one
    # ResponseData: no BodyBuffer and its calls for those), then from the second chunk on a
    # BodyBuffer, with room for the size the head declared (kept until then).
    response_first: bytes = b""
    response_body: BodyBuffer | None = None
    response_declared: int | None = None
    # What was streamed on (after the stream modifier), kept when store_streamed_bodies is
    # on: "request"/"response" -> chunks; None until the first chunk.
    streamed: dict[str, list[bytes]] | None = None
    # Whether the HttpLayer runs this stream's handlers itself, without Layer._run around
    # them, while it is not paused (a class attribute for tests of the general path).
    unwrapped: ClassVar[bool] = True
    # Set by the HttpLayer: the open connection it would give a GetHttpConnection at once,
    # if there is one; asked first, so that reusing a connection costs no round trip.
    reusable_connection: Callable[[Address, bool, Any, str], Server | None] | None = None
    # Set by the HttpLayer: its streams by id, which ``finish`` leaves (no DropStream
    # command to make and route at the end of every request).
    streams: dict[int, HttpStream] | None = None
    # Set by the HttpLayer: the options' cache of derived values (see derived_values).
    derived: Mapping[Any, Any] = _NO_DERIVED

    def __init__(self, context: Context, stream_id: int, mode: HTTPMode) -> None:
        # (Layer.__init__ inline: one call less per request.)
        self.context = context
        context.layers.append(self)
        self._paused = None
        self._paused_event_queue = ()
        self.stream_id = stream_id
        self.mode = mode
        setattr(self, "_handle_event", self.state_start)  # noqa: B010 (Layer._goto inline: per request)

    def __repr__(self) -> str:
        return f"HttpStream(id={self.stream_id}, {self._handle_event.__name__})"

    def handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        # As Layer.handle_event; a handler with nothing to yield (a buffered response's body
        # chunk) returns NOTHING, which needs no _run generator around it.
        if self._paused is not None:
            return self._handle_while_paused(event)
        handler = self._handle_event(event)
        return NOTHING if handler is NOTHING else self._run(handler, None)

    @property
    def _killed(self) -> bool:
        # (Callers ask ``flow.error is not None`` first: no property call for a flow that
        # has no error, four times per request.)
        return self.flow.error is not None and self.flow.error.msg == Error.KILLED_MESSAGE

    # Request side -----------------------------------------------------------

    def state_start(self, event: events.Event) -> HttpGenerator[None]:
        """A plain function, as receive_response_headers: a request whose requestheaders
        hook is done at once goes on here, usually to NOTHING (no generator, no routing)."""
        assert isinstance(event, RequestHeaders), event
        request = event.request
        self.request_head = event
        self.flow = HTTPFlow(self.context.client, self.context.server, True)  # (live; positional: a specialised call)
        self.flow.request = request
        if event.replay_flow is not None:
            self.flow = event.replay_flow
            self.flow.live = True
        if request.data.method.upper() == b"CONNECT":
            if self.mode is _TRANSPARENT:
                # Inside a tunnel, or to a reverse/transparent proxy: there is nothing to CONNECT
                # to (a forwarded CONNECT would end up as a tunnel nobody relays), as mitmproxy.
                return self.fail_request(
                    "proxycore received an HTTP CONNECT request even though it is not running "
                    "in regular or upstream mode.",
                    ErrorCode.GENERIC_CLIENT_ERROR,
                )
            return self.handle_connect()
        problem = self._prepare_request()
        if problem:
            return self.fail_request(problem, ErrorCode.DESTINATION_UNKNOWN)
        held = False
        if not event.end_stream:
            self.request_body = BodyBuffer()
            too_large, held = self._declared_body(request, self.request_body, event.declared_size)
            if too_large:
                return self.body_too_large(request=True, headers_hook=True)
        hook = HttpRequestHeadersHook(self.flow)
        if held:
            return self._request_headers_hook(hook, event, True)
        instant = self.context.instant_hook  # (what _routed would ask: see _asked)
        if instant is None or not instant(hook):
            return self._request_headers_hook(self._asked(hook), event, False)
        return self._request_headers_hooked(event, False)

    def _request_headers_hook(self, hook: HttpRequestHeadersHook, event: RequestHeaders, held: bool) -> HttpGenerator[None]:
        if held:
            yield from self.hold_request_body(True)
        yield hook
        yield from self._request_headers_hooked(event, held)

    def _request_headers_hooked(self, event: RequestHeaders, held: bool) -> HttpGenerator[None]:
        """What follows the requestheaders hook: usually NOTHING (a plain function)."""
        if self.flow.error is not None and self._killed:
            return self.kill()
        if self.flow.response is not None and not event.end_stream:
            return self.answer_before_body()
        request = event.request
        if held or request.data.headers.get_raw(b"expect") is not None:  # (usually absent: no decoding)
            return self._request_headers_rest(event, held)
        setattr(self, "_handle_event", self.state_consume_request)  # noqa: B010 (Layer._goto inline: per request)
        # (As _request_headers_rest: an addon's answer is not bypassed by streaming.)
        if request.stream and self.flow.response is None and not event.end_stream:
            return self.start_request_stream(event.end_stream)
        return NOTHING

    def _request_headers_rest(self, event: RequestHeaders, held: bool) -> HttpGenerator[None]:
        """After the requestheaders hook of a request whose body was held or that has an
        Expect header: the body may come now, and 100 Continue is answered."""
        request = event.request
        if held:
            yield from self.hold_request_body(False)
        expect = request.data.headers.get_raw(b"expect")
        if expect is not None and request.headers.get("expect", "").lower() == "100-continue":
            del request.headers["expect"]
            if not event.end_stream:
                continue_ = Response.make(100)
                del continue_.headers["content-length"]
                yield ResponseHeaders(self.stream_id, continue_)
        self._goto(self.state_consume_request)
        # An addon that already answered (e.g. proxyauth's 407) must not be bypassed by streaming.
        # A request without a body is complete already: nothing to stream, its request hook
        # runs before the server is contacted (as in mitmproxy).
        if request.stream and self.flow.response is None and not event.end_stream:
            yield from self.start_request_stream(event.end_stream)

    def answer_before_body(self) -> HttpGenerator[None]:
        """An addon answered at requestheaders time (proxyauth's 407): reply now, unread body.

        Neither 100 Continue nor the body is waited for, so a client cannot make us buffer
        an upload nobody wants; an HTTP/1 client connection ends after the answer, an
        HTTP/2 stream is reset with NO_ERROR once the answer is out."""
        yield DiscardRequestBody(self.stream_id)
        request = self.flow.request
        request.headers.pop("expect", None)
        request.timestamp_end = time.time()
        self._goto(self.state_consume_request)
        yield HttpRequestHook(self.flow)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        yield from self.send_addon_response()

    def _declared_body(
        self, message: Request | Response, body: BodyBuffer | None, declared: int | None = NOT_READ
    ) -> tuple[bool, bool]:
        """What a head's declared body size decides before its headers hook: whether it is
        over body_size_limit, and whether reading must pause during the hook (more could
        arrive than we would buffer); it also marks ``message.stream`` when the size is over
        the streaming threshold and makes room in ``body`` for a buffered one. ``declared``:
        the size as the connection layer read it, NOT_READ to read Content-Length here.
        ``body`` None: the response's, whose buffer waits for a second chunk (the size is
        kept in ``response_declared`` until then)."""
        try:
            limits: SizeLimits = self.derived[_size_limits]
        except KeyError:
            limits = size_limits(self.context.options)
        if declared == NOT_READ:
            declared = _declared_size(message.data.headers)
        if body is None:
            self.response_declared = declared
        else:
            body.expect(declared)
        # (Decided inline, not by a predicate call each: this runs for every message.)
        if declared is not None and limits.body is not None and declared > limits.body:
            return True, False  # over body_size_limit
        hold = limits.hold  # the streaming threshold
        if hold is None:
            return False, False  # no limit: nothing streams, no hold (as in mitmproxy)
        if declared is None:
            return False, True  # unknown size: more could arrive during the hook than we buffer
        if declared > hold:
            # Above stream_large_bodies or body_buffer_limit: the message streams, and the
            # headers hook already sees ``stream = True`` (mitmproxy's order; addons may
            # switch it off). Buffering up to body_buffer_limit first would only delay the
            # body and cost a copy of that much of it.
            message.stream = True
            return False, True
        return False, False

    def hold_request_body(self, paused: bool) -> HttpGenerator[None]:
        """While a hook holds the request (an addon, an intercept), its body would pile up
        here: the client connection is asked to hold it back (HTTP/2: no more window for
        the stream; HTTP/1: no more reading once body_buffer_limit bytes came meanwhile)."""
        yield BodyBackpressure(self.stream_id, request=True, paused=paused)

    def hold_response_body(self, paused: bool) -> HttpGenerator[None]:
        """The same for a response held in its responseheaders hook, toward its server."""
        yield BodyBackpressure(self.stream_id, request=False, paused=paused)

    def _prepare_request(self) -> str | None:
        """Fill in the destination; an error message if the request cannot be routed."""
        request = self.flow.request
        if self.mode is _TRANSPARENT:
            server = self.context.server
            address = server.address
            if address is not None:
                # The scheme toward the server is ours to say (e.g. https behind a plain
                # reverse proxy listener), whatever the client used.
                request.scheme = "https" if server.tls else "http"
                # Not the host/port setters: those would rewrite the Host header too.
                request.data.host, request.data.port = address[0], address[1]
                if isinstance(self.context.client.proxy_mode, ReverseMode):
                    if not self.context.options.keep_host_header:
                        request.host_header = _hostport(request.scheme, *address)
            else:
                return self._destination_from_host_header()
            return None
        if not request.data.host:
            # Origin form to a regular proxy: the Host header names the destination, as in
            # mitmproxy (a Host naming the proxy itself is refused when connecting).
            problem = self._destination_from_host_header()
            if problem:
                return problem
        if self.mode is _REGULAR and request.data.http_version in (b"HTTP/1.1", b"HTTP/1.0"):
            # As mitmproxy: an HTTP/1 absolute-form target is kept as scheme + host only.
            request.data.authority = b""  # (what the setter makes of "", without its checks)
        return None

    def _destination_from_host_header(self) -> str | None:
        request = self.flow.request
        if not request.scheme:
            request.scheme = "https" if self.context.client.tls else "http"
        host_header = request.host_header
        if not host_header:
            return "HTTP request has no host header, destination unknown."
        try:
            default = 443 if request.scheme == "https" else 80
            # Not the host/port setters: the Host header stays as the client sent it.
            request.data.host, request.data.port = parse_authority(host_header.encode(), default)
        except ProtocolError as e:
            return str(e)
        return None

    def start_request_stream(self, end_stream: bool) -> HttpGenerator[None]:
        """Open the server connection now and forward the body as it arrives."""
        self._goto(self.state_stream_request)
        # While the connection opens the body can only queue up here: the client is asked
        # to hold it back meanwhile.
        yield from self.hold_request_body(True)
        connected = yield from self.connect_to_server()
        yield from self.hold_request_body(False)
        if not connected:
            return
        yield RequestHeaders(self.stream_id, self.flow.request, end_stream)
        if self.request_body:  # (None or empty: nothing came yet)
            yield from self.stream_request_chunk(self.request_body.take())

    def state_consume_request(self, event: events.Event) -> HttpGenerator[None]:
        # The end of every request goes to its handler by exact type, without a generator of
        # this state in between (as state_wait_for_response does).
        if type(event) is RequestEndOfMessage:
            return self.receive_request_end(event)
        return self._consume_request_event(event)

    def receive_request_end(self, end: RequestEndOfMessage | None = None) -> HttpGenerator[None]:
        """``end``: the client's end of the request, if of that exact type: the same event
        (a stream id, nothing else) goes on to the server, not a new one."""
        self.request_complete = True
        request = self.flow.request
        body = self.request_body
        request.data.content = b"" if body is None else body.take()
        request.data.timestamp_end = time.time()
        hook = HttpRequestHook(self.flow)
        instant = self.context.instant_hook  # (asked here: no round trip of the hook, see _asked)
        if instant is None or not instant(hook):
            yield self._asked(hook)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        if self.flow.response is not None:
            yield from self.send_addon_response()
            return
        # The request goes to the server (inline: no generator level for it, nor for
        # connect_to_server when an open connection is free and nothing is queued).
        setattr(self, "_handle_event", self.state_wait_for_response)  # noqa: B010 (Layer._goto inline: per request)
        reuse = self.reusable_connection
        connection = reuse(*self._connection_spec()) if reuse is not None and not self._paused_event_queue else None
        if connection is not None:
            self.server_conn = self.flow.server_conn = connection
        elif not (yield from self.connect_to_server()):
            return
        request = self.flow.request
        content = request.data.content or b""
        head = self.request_head  # (as it came, if the request and its end are still those)
        if head is not None and head.request is request and head.end_stream is (not content) and type(head) is RequestHeaders:
            yield head
        else:
            yield RequestHeaders(self.stream_id, request, not content)
        if content:
            yield RequestData(self.stream_id, content)
        trailers = request.data.trailers
        if trailers:
            yield RequestTrailers(self.stream_id, trailers)
        yield RequestEndOfMessage(self.stream_id) if end is None else end

    def _consume_request_event(self, event: events.Event) -> HttpGenerator[None]:
        if isinstance(event, RequestData):
            if self.request_body is None:  # (a body its head did not announce: HTTP/2)
                self.request_body = BodyBuffer()
            self.request_body.append(event.data)
            self.request_body_size += len(event.data)
            size = self.request_body_size
            limits = size_limits(self.context.options)
            if self._over_size_limit(size, limits):
                yield from self.body_too_large(request=True, headers_hook=False)
                return
            limit = limits.hold  # the streaming threshold
            answered = self.flow.response is not None
            if limit is not None and not answered and size > limit:
                self.flow.request.stream = True
                yield from self.start_request_stream(False)
        elif isinstance(event, RequestTrailers):
            self.flow.request.trailers = event.trailers
        elif isinstance(event, RequestEndOfMessage):
            yield from self.receive_request_end()
        elif isinstance(event, RequestProtocolError):
            yield from self.client_error(event)
        else:
            yield from self.handle_response_side(event)

    def send_addon_response(self) -> HttpGenerator[None]:
        """An addon answered: pretend the response came in, without a server."""
        assert self.flow.response is not None
        self.flow.response.timestamp_start = self.flow.response.timestamp_start or time.time()
        yield HttpResponseHeadersHook(self.flow)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        if (
            self.flow.websocket_playback is not None
            and is_websocket_handshake(self.flow)
            and self.context.options.websocket
        ):
            # Server playback of a WebSocket: the recorded conversation answers the client.
            from proxycore.websocket import WebSocketData

            self.flow.websocket = WebSocketData()
            yield from self.upgrade_to_passthrough()
            return
        yield from self.send_response()

    def state_stream_request(self, event: events.Event) -> HttpGenerator[None]:
        if isinstance(event, RequestData):
            yield from self.stream_request_chunk(event.data)
        elif isinstance(event, RequestTrailers):
            self.flow.request.trailers = event.trailers  # sent after the request hook (may change them)
        elif isinstance(event, RequestEndOfMessage):
            # As mitmproxy: a stream modifier gets b"" to flush, then the request hook runs,
            # and only then does the request end upstream (trailers included).
            stream = self.flow.request.stream
            if callable(stream):
                tail = _modified(stream, b"")
                if tail:
                    self._keep_streamed("request", tail)
                    yield RequestData(self.stream_id, tail)
            self._store_streamed("request")
            self.request_complete = True
            self.flow.request.timestamp_end = time.time()
            self._goto(self.state_wait_for_response)
            yield HttpRequestHook(self.flow)
            if self.flow.error is not None and self._killed:
                yield from self.kill()
                return
            if self.flow.request.trailers:
                yield RequestTrailers(self.stream_id, self.flow.request.trailers)
            yield RequestEndOfMessage(self.stream_id)
            if self.response_complete:
                self.finish()  # the server answered early; now the upload is over too
        elif isinstance(event, RequestProtocolError):
            yield from self.client_error(event)
        else:
            yield from self.handle_response_side(event)

    def stream_request_chunk(self, data: bytes) -> HttpGenerator[None]:
        stream = self.flow.request.stream
        empty = not data  # an empty HTTP/2 DATA frame is relayed as one
        if callable(stream):
            data = _modified(stream, data)
        if data or empty:
            self._keep_streamed("request", data)
            yield RequestData(self.stream_id, data)

    def _keep_streamed(self, which: str, data: bytes) -> None:
        if self.context.options.store_streamed_bodies:
            if self.streamed is None:
                self.streamed = {}
            self.streamed.setdefault(which, []).append(data)

    def _store_streamed(self, which: str) -> None:
        """With store_streamed_bodies, the flow gets the body as it was sent on."""
        if self.context.options.store_streamed_bodies:
            message = self.flow.request if which == "request" else self.flow.response
            streamed = self.streamed or {}
            if message is not None:
                message.data.content = b"".join(streamed.get(which, ()))
            streamed.pop(which, None)

    def connect_to_server(self) -> HttpGenerator[bool]:
        """Get an upstream connection for the request; False (after failing the flow) if none,
        or if the client cancelled the request meanwhile (its error is handled next)."""
        request = self.flow.request
        if self._paused_event_queue and self._client_cancelled():
            return False
        spec = self._connection_spec()
        reusable = self.reusable_connection(*spec) if self.reusable_connection is not None else None
        connection: Server | None
        err: str | None
        if reusable is not None:
            connection, err = reusable, None
        else:
            reply: tuple[Server | None, str | None] = yield GetHttpConnection(*spec)
            connection, err = reply
        if err:
            message = f"Cannot connect to {request.host}:{request.port}: {err}"
            yield from self.fail_response(message, ErrorCode.CONNECT_FAILED)
            return False
        if self._paused_event_queue and self._client_cancelled():
            return False
        assert connection is not None  # no error: the reply names the connection
        self.server_conn = connection
        self.flow.server_conn = connection
        return True

    def _connection_spec(self) -> tuple[Address, bool, Any, str]:
        """What the request's server connection must be: address, TLS, via, transport."""
        data = self.flow.request.data
        tls = data.scheme == b"https"
        # HTTP/3 upstream when the flow's server connection says UDP (reverse:http3://, or
        # an addon that set flow.server_conn.transport_protocol, as with mitmproxy).
        transport = self.flow.server_conn.transport_protocol if tls else _TCP
        return (data.host, data.port), tls, self.context.server.via, transport

    def _client_cancelled(self) -> bool:
        """The client gave up on the request (an HTTP/2 RST_STREAM, a disconnect) while we
        waited for a hook or a connection: its error is queued for after the current step,
        and nothing of the request may reach the server any more."""
        # (Callers ask whether the queue has anything first: usually it is empty.)
        queue = self._paused_event_queue
        return bool(queue) and any(isinstance(e, RequestProtocolError) for e in queue)

    # Response side ----------------------------------------------------------

    def state_wait_for_response(self, event: events.Event) -> HttpGenerator[None]:
        # The three events of every response go to their handler by exact type: no chain of
        # isinstance checks, and no generator of this state between the handler and _run.
        if type(event) is ResponseHeaders:
            return self.receive_response_headers(event)
        if type(event) is ResponseData:
            self.response_chunk = event
            return self.receive_response_data(event.data)
        if type(event) is ResponseEndOfMessage:
            return self.receive_response_end(event)
        return self._response_side_event(event)

    def _response_side_event(self, event: events.Event) -> HttpGenerator[None]:
        if isinstance(event, ResponseHeaders):
            yield from self.receive_response_headers(event)
        elif isinstance(event, ResponseData):
            yield from self.receive_response_data(event.data)
        elif isinstance(event, ResponseTrailers):
            assert self.flow.response is not None
            self.flow.response.trailers = event.trailers  # a streamed response sends them after its hook
        elif isinstance(event, ResponseEndOfMessage):
            yield from self.receive_response_end()
        elif isinstance(event, ResponseProtocolError):
            yield from self.fail_response(event.message, event.code)
        elif isinstance(event, RequestProtocolError):
            yield from self.client_error(event)
        elif isinstance(event, RequestHalfClosed):
            # A FIN right after the request still gets the answer (nc, some scripts). Once the
            # server's response is arriving, the client is gone (as mitmproxy sees it): stop
            # downloading, maybe without end, for nobody.
            if self.server_conn is not None and self.flow.response is not None:
                gone = RequestProtocolError(self.stream_id, CLIENT_GONE, ErrorCode.CLIENT_DISCONNECTED)
                yield from self.client_error(gone)
        elif isinstance(event, (RequestData, RequestEndOfMessage)):
            pass  # the client's body after an early response: nothing left to do with it

    # What the other states do with the events of the response side.
    handle_response_side = state_wait_for_response

    def receive_response_headers(self, event: ResponseHeaders) -> HttpGenerator[None]:
        """A plain function: when the responseheaders hook is done at once and no body is
        held back meanwhile, what follows it goes on here, usually NOTHING (no generator of
        this handler and no routing of it for every response)."""
        response = event.response
        self.flow.response = response
        self.response_head = event
        if not response.data.timestamp_start:  # (None or 0: not set by the connection layer)
            response.data.timestamp_start = time.time()
        held = False
        if not event.end_stream:
            too_large, held = self._declared_body(response, None, event.declared_size)
            if too_large:
                return self.body_too_large(request=False, headers_hook=True)
            held = held and self.server_conn is not None
        hook = HttpResponseHeadersHook(self.flow)
        if held:
            return self._response_headers_hook(hook, response, True)
        instant = self.context.instant_hook  # (what _routed would ask: see _asked)
        if instant is None or not instant(hook):
            return self._response_headers_hook(self._asked(hook), response, False)
        return self._response_headers_hooked(response)

    def _response_headers_hook(self, hook: HttpResponseHeadersHook, response: Response, held: bool) -> HttpGenerator[None]:
        if held:
            yield from self.hold_response_body(True)
        yield hook
        if held:
            yield from self.hold_response_body(False)
        yield from self._response_headers_hooked(response)

    def _response_headers_hooked(self, response: Response) -> HttpGenerator[None]:
        """What follows the responseheaders hook (of ``response``, as the connection layer
        gave it): usually NOTHING."""
        if self.flow.error is not None and self._killed:
            return self.kill()
        if response.data.status_code == 101:
            if is_websocket_handshake(self.flow) and self.context.options.websocket:
                from proxycore.websocket import WebSocketData

                self.flow.websocket = WebSocketData()  # before the response hook, as in mitmproxy
            return self.upgrade_to_passthrough()
        if response.stream:
            return self.start_response_stream()
        return NOTHING

    def _asked(self, hook: _Hook) -> _Hook:
        """``hook``, about which this stream asked context.instant_hook itself and which is
        not done at once, to yield and wait for: it carries the stream in ``blocking``, so
        that Layer._run and the HttpLayer pause the stream on it without asking again (the
        driver started the hook when asked)."""
        command: commands.Command = hook  # (StartHook's class attribute says bool)
        command.blocking = self
        return hook

    def start_response_stream(self) -> HttpGenerator[None]:
        assert self.flow.response is not None
        self.response_headers_sent = True
        yield ResponseHeaders(self.stream_id, self.flow.response, False)
        body = self._take_response_body()
        if body:
            yield from self.stream_response_chunk(body)

    def receive_response_data(self, data: bytes) -> HttpGenerator[None]:
        """A body chunk of the response: relayed, or buffered (then usually NOTHING to do:
        a plain function, no generator per chunk for that)."""
        if self.response_headers_sent:
            return self.stream_response_chunk(data)
        if self.response_body is not None:
            self.response_body.append(data)
        elif not self.response_first:  # (the first chunk, or none came but empty ones)
            self.response_first = data if type(data) is bytes else bytes(data)
        elif data:
            self._response_buffer().append(data)
        self.response_body_size += len(data)
        size = self.response_body_size
        try:
            limits: SizeLimits = self.derived[_size_limits]
        except KeyError:
            limits = size_limits(self.context.options)
        if limits.body is not None and size > limits.body:  # (_over_size_limit, inline)
            return self.body_too_large(request=False, headers_hook=False)
        limit = limits.hold  # the streaming threshold
        if limit is not None and size > limit:
            assert self.flow.response is not None
            self.flow.response.stream = True
            return self.start_response_stream()
        return NOTHING

    def _response_buffer(self) -> BodyBuffer:
        """The response body's BodyBuffer, made at its second chunk, holding the first."""
        body = self.response_body = BodyBuffer()
        body.expect(self.response_declared)
        body.append(self.response_first)
        self.response_first = b""
        return body

    def _take_response_body(self) -> bytes:
        """The buffered response body, as BodyBuffer.take: the buffer is empty afterwards."""
        if self.response_body is not None:
            return self.response_body.take()
        body, self.response_first = self.response_first, b""
        return body

    def stream_response_chunk(self, data: bytes) -> HttpGenerator[None]:
        assert self.flow.response is not None
        stream = self.flow.response.stream
        empty = not data  # an empty HTTP/2 DATA frame is relayed as one
        if callable(stream):
            data = _modified(stream, data)
        if data or empty:
            self._keep_streamed("response", data)
            yield ResponseData(self.stream_id, data)

    def receive_response_end(self, end: ResponseEndOfMessage | None = None) -> HttpGenerator[None]:
        """The response is complete: what to do, as a generator. A plain function: a
        buffered response goes on as send_response's generator, without one of its own in
        between (every command of the response passes each generator level). ``end``: as
        for receive_request_end."""
        response = self.flow.response
        assert response is not None
        response.data.timestamp_end = time.time()
        if self.response_headers_sent:
            return self._end_streamed_response(response)
        response.data.content = self._take_response_body()
        return self.send_response(end)

    def _end_streamed_response(self, response: Response) -> HttpGenerator[None]:
        stream = response.stream
        if callable(stream):
            tail = _modified(stream, b"")
            if tail:
                self._keep_streamed("response", tail)
                yield ResponseData(self.stream_id, tail)
        self._store_streamed("response")
        # As mitmproxy: the response hook runs before the response ends at the client,
        # so it may still set trailers.
        self.response_hook_done = True
        yield HttpResponseHook(self.flow)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        if response.trailers:
            yield ResponseTrailers(self.stream_id, response.trailers)
        yield ResponseEndOfMessage(self.stream_id)
        if self.response_finished():
            self.finish()

    def send_response(self, end: ResponseEndOfMessage | None = None) -> HttpGenerator[None]:
        """Run the response hook on a complete response and write it to the client (its end:
        ``end``, the server's, if given)."""
        self.response_hook_done = True
        hook = HttpResponseHook(self.flow)
        instant = self.context.instant_hook  # (as receive_request_end)
        if instant is None or not instant(hook):
            yield self._asked(hook)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        response = self.flow.response
        assert response is not None
        content = response.data.content
        self.response_headers_sent = True
        head = self.response_head  # (as receive_request_end)
        if head is not None and head.response is response and head.end_stream is (not content) and type(head) is ResponseHeaders:
            yield head
        else:
            yield ResponseHeaders(self.stream_id, response, not content)
        if content:
            chunk = self.response_chunk
            yield chunk if chunk is not None and chunk.data is content else ResponseData(self.stream_id, content)
        trailers = response.data.trailers
        if trailers:
            yield ResponseTrailers(self.stream_id, trailers)
        yield ResponseEndOfMessage(self.stream_id) if end is None else end
        if self.response_finished():
            self.finish()

    def response_finished(self) -> bool:
        """The response is out; whether the stream is done (then the caller finishes it). A
        server may answer before a streamed upload is over (RFC 9110 section 15.5.14): as
        mitmproxy, the upload is still relayed to the end, unless the server closes the
        connection."""
        self.response_complete = True
        return self._handle_event != self.state_stream_request

    def finish(self) -> None:
        """The stream is done: it leaves the HttpLayer's streams (what a DropStream did; a
        plain function, not a generator level of its own at the end of every request)."""
        self.flow.live = False
        # A finished stream refers to itself no more (state_done is static, and its context's
        # stack forgets it), so refcounting frees it and its flow at once: a reference cycle
        # per request left ~30 objects to the cyclic garbage collector.
        setattr(self, "_handle_event", self.state_done)  # noqa: B010 (Layer._goto inline: per request)
        if self in self.context.layers:
            self.context.layers.remove(self)
        if self.streams is not None:
            self.streams.pop(self.stream_id, None)

    @staticmethod
    def state_done(event: events.Event) -> HttpGenerator[None]:
        # Late body bytes of a request that was answered early, or a disconnect: ignore.
        return
        yield

    # Errors -----------------------------------------------------------------

    def fire_error_hook(self, message: str) -> HttpGenerator[None]:
        if self.flow.error is None:
            self.flow.error = Error(message)
        if not self.response_hook_done and not self.error_hook_done:
            self.error_hook_done = True
            yield HttpErrorHook(self.flow)

    def fail_request(self, message: str, code: ErrorCode) -> HttpGenerator[None]:
        """The request can't be routed: answer with an error page before any hook ran.

        No hook fires, as in mitmproxy: addons never see a request without a destination."""
        yield commands.Log(message, "info")
        self.flow.error = Error(message)
        yield ResponseProtocolError(self.stream_id, message, code)
        self.finish()

    def fail_response(self, message: str, code: ErrorCode) -> HttpGenerator[None]:
        """The server side failed: error page (or close if headers went out), then done."""
        yield from self.fire_error_hook(message)
        if self.flow.error is not None and self._killed:  # in the error hook: no error page, as mitmproxy
            message, code = "killed", ErrorCode.KILL
        yield ResponseProtocolError(self.stream_id, message, code)
        if self.server_conn is not None and not self.request_complete:
            yield RequestProtocolError(self.stream_id, message, code)
        self.finish()

    def client_error(self, event: RequestProtocolError) -> HttpGenerator[None]:
        message = event.message
        if event.code is ErrorCode.CLIENT_DISCONNECTED and not self.flow.request.is_http2:
            message = CLIENT_GONE  # HTTP/2 says which: stream reset or connection closed
        # The server side is dropped before the error hook runs, as in mitmproxy.
        if self.server_conn is not None:
            yield RequestProtocolError(self.stream_id, message, event.code)
        yield from self.fire_error_hook(message)
        yield ResponseProtocolError(self.stream_id, event.message, event.code)
        self.finish()

    def _over_size_limit(self, size: int | None, limits: SizeLimits | None = None) -> bool:
        """Is ``size`` above body_size_limit? ``limits``: those already looked up by the caller."""
        limit = (limits or size_limits(self.context.options)).body
        return limit is not None and size is not None and size > limit

    def body_too_large(self, request: bool, headers_hook: bool) -> HttpGenerator[None]:
        """A body over body_size_limit: 413 (request) or 502 (response) and the flow fails.

        As in mitmproxy, a size known from Content-Length fails the flow before its body is
        read, after the headers hook, so addons see the flow; the upstream side is dropped."""
        what, code = ("Request", ErrorCode.REQUEST_TOO_LARGE) if request else ("Response", ErrorCode.RESPONSE_TOO_LARGE)
        message = f"{what} body exceeds mitmproxy's body_size_limit."
        if self.request_body is not None:
            self.request_body.clear()
        if self.response_body is not None:
            self.response_body.clear()
        self.response_first = b""
        if headers_hook:
            yield HttpRequestHeadersHook(self.flow) if request else HttpResponseHeadersHook(self.flow)
            if self.flow.error is not None and self._killed:
                yield from self.kill()
                return
        yield from self.fire_error_hook(message)
        yield ResponseProtocolError(self.stream_id, message, code)
        if self.server_conn is not None:
            yield RequestProtocolError(self.stream_id, message, code)
        self.finish()

    def kill(self, error_hook: bool = True) -> HttpGenerator[None]:
        """An addon killed the flow: reset the client without an answer (as mitmproxy, a
        CONNECT killed in its hook fires no error hook)."""
        if error_hook:
            yield from self.fire_error_hook(Error.KILLED_MESSAGE)
        elif self.flow.error is None:
            self.flow.error = Error(Error.KILLED_MESSAGE)
        yield ResponseProtocolError(self.stream_id, "killed", ErrorCode.KILL)
        if self.server_conn is not None and self.context.client.alpn == b"h2":
            # An HTTP/1 client connection closes here, and its server connections with it.
            # Over HTTP/2 only this stream ends: its server connection, perhaps mid-response,
            # must end too so that it is never reused.
            yield RequestProtocolError(self.stream_id, "killed", ErrorCode.KILL)
        self.finish()

    # CONNECT and upgrades: the stream becomes a tunnel to a child layer --------

    def handle_connect(self) -> HttpGenerator[None]:
        request = self.flow.request
        self.request_complete = True  # a CONNECT has no body; no end event comes for it
        yield HttpConnectHook(self.flow)
        if self._paused_event_queue and self._client_cancelled():
            # The client left during the hook: nothing to connect, no error hook (as mitmproxy).
            self.flow.error = Error(CLIENT_GONE)
            self.finish()
            return
        if self.flow.error is not None and self._killed:
            yield from self.kill(error_hook=False)
            return
        if self.flow.response is not None and not 200 <= self.flow.response.status_code < 300:
            # Refused by an addon (e.g. proxy authentication).
            yield HttpConnectErrorHook(self.flow)
            yield from self.send_response_as_is()
            return
        self.context.server = Server(address=(request.host, request.port), via=self.context.server.via)
        self.flow.server_conn = self.context.server
        if self.mode is _UPSTREAM:
            # The upstream proxy is asked to CONNECT once a layer inside opens the server.
            self.set_connect_response()
            yield from self.start_tunnel(
                HttpConnectedHook(self.flow),
                HttpUpstreamTunnel.make(self.context, True, NextLayer(self.context)),
            )
            return
        answered = self.flow.response is not None
        if self.context.options.connection_strategy == "eager" and not answered:
            # An addon that answered the CONNECT (server playback) needs no server: as mitmproxy.
            err = yield commands.OpenConnection(self.context.server)
            if err:
                # The 502 is the outcome, not an error of the flow: mitmdump prints no
                # " << Cannot connect ..." after it and the flow has no error (as mitmproxy).
                message = f"Cannot connect to {request.host}:{request.port}: {err}"
                self.flow.response = make_error_response(502, message)
                yield HttpConnectErrorHook(self.flow)
                yield from self.send_response_as_is()
                return
        self.set_connect_response()
        if answered:
            # No server data will ever help decide what a tunnel an addon answered carries: its
            # layer is chosen as soon as the 200 is out (server playback of a server that
            # speaks first sends its first bytes then).
            yield from self.start_tunnel(HttpConnectedHook(self.flow), NextLayer(self.context, ask_on_start=True),
                                         child_first=False)
            return
        yield from self.start_tunnel(HttpConnectedHook(self.flow))

    def set_connect_response(self) -> None:
        """``200 Connection established`` without headers, unless an addon answered already."""
        request = self.flow.request
        if self.flow.response is None:
            self.flow.response = Response(
                http_version=request.data.http_version,
                status_code=200,
                reason=b"Connection established",
                headers=(),
                content=b"",
                trailers=None,
                timestamp_start=time.time(),
                timestamp_end=time.time(),
            )

    def send_response_as_is(self) -> HttpGenerator[None]:
        response = self.flow.response
        assert response is not None
        yield ResponseHeaders(self.stream_id, response, False)
        if response.raw_content:
            yield ResponseData(self.stream_id, response.raw_content)
        yield ResponseEndOfMessage(self.stream_id)
        self.finish()

    def start_tunnel(
        self, hook: commands.StartHook | None, child: Layer | None = None, child_first: bool = True
    ) -> HttpGenerator[None]:
        """Hand the connection to ``child`` (a NextLayer by default): set up the child before
        any byte can reach it; after the response when not ``child_first`` (a child that
        may send at once; client bytes wait meanwhile, as the hook blocks this layer)."""
        self.child_layer = child if child is not None else NextLayer(self.context)
        self._goto(self.state_passthrough)
        if child_first:
            yield from self.child_layer.handle_event(events.Start())
        if hook is not None:
            yield hook
        self.flow.live = False
        assert self.flow.response is not None
        yield ResponseHeaders(self.stream_id, self.flow.response, False)
        yield ResponseEndOfMessage(self.stream_id)  # the tunnel begins
        if not child_first:
            yield from self.child_layer.handle_event(events.Start())

    def upgrade_to_passthrough(self) -> HttpGenerator[None]:
        """A 101 response: WebSocket frames (or raw bytes) flow on both connections now."""
        response = self.flow.response
        playback = self.flow.websocket_playback
        assert response is not None and (self.server_conn is not None or playback is not None)
        if response.raw_content is None:
            response.data.content = b""  # a 101 has no body: what follows is the new protocol
        if response.timestamp_end is None:
            response.timestamp_end = response.timestamp_start  # complete with its head, as in mitmproxy
        self.response_hook_done = True
        yield HttpResponseHook(self.flow)
        if self.flow.error is not None and self._killed:
            yield from self.kill()
            return
        response = self.flow.response  # the hook may have replaced it
        assert response is not None
        context = self.context.fork()
        if self.server_conn is not None:
            context.server = self.server_conn
        if self.server_conn is None and playback is not None and self.flow.websocket is not None:
            from proxycore.layers.playback import WebsocketPlaybackLayer

            timing = bool(getattr(self.context.options, "server_replay_timing", False))
            self.child_layer = WebsocketPlaybackLayer(context, self.flow, playback, timing)
        elif self.server_conn is not None and self.flow.websocket is not None:
            from proxycore.layers.websocket import WebsocketLayer

            self.child_layer = WebsocketLayer(context, self.flow)
        elif self.context.options.rawtcp:
            from proxycore.layers.tcp import TCPLayer

            self.child_layer = TCPLayer(context)  # a TCP flow with its hooks, as mitmproxy
        else:
            # Nothing may relay what follows the 101: the client gets it, then the end.
            yield ResponseHeaders(self.stream_id, response, False)
            self.flow.live = False
            yield commands.Log(
                "A 101 response was passed on, but neither the websocket nor the rawtcp option "
                "is on to relay what follows it: closing the connection.",
                "warn",
            )
            yield commands.CloseConnection(self.context.client)
            self.finish()  # nothing of the server's side is relayed any more
            return
        self.upgraded = True
        self._goto(self.state_passthrough)
        yield ResponseHeaders(self.stream_id, response, False)
        yield ResponseEndOfMessage(self.stream_id)  # the new protocol begins
        if self.flow.websocket is None:
            self.flow.live = False
        yield from self.from_upgraded_child(self.child_layer.handle_event(events.Start()))

    def from_upgraded_child(self, commands_: HttpGenerator[None]) -> HttpGenerator[None]:
        """After an upgrade both connections belong to HTTP/1 layers (maybe below TLS):
        raw bytes and closes are handed to them as HTTP events."""
        for command in commands_:
            if isinstance(command, commands.SendData):
                if command.connection is self.context.client:
                    yield ResponseData(self.stream_id, command.data)
                elif command.connection is self.server_conn:
                    yield RequestData(self.stream_id, command.data)
                else:
                    yield command
            elif isinstance(command, commands.CloseConnection) and command.connection in (
                self.context.client,
                self.server_conn,
            ):
                if command.connection is self.context.client:
                    yield ResponseEndOfMessage(self.stream_id)
                else:
                    yield RequestEndOfMessage(self.stream_id)
                if not command.half_close:
                    yield command
            else:
                yield command

    def state_passthrough(self, event: events.Event) -> HttpGenerator[None]:
        assert self.child_layer is not None
        client = self.context.client
        if isinstance(event, RequestData):
            event = events.DataReceived(client, event.data)
        elif isinstance(event, RequestEndOfMessage):
            if not self.request_complete:
                # The end of the upgraded request itself, queued while its hooks ran.
                self.request_complete = True
                return
            event = events.ConnectionClosed(client)
        elif isinstance(event, ResponseData) and self.server_conn is not None:
            event = events.DataReceived(self.server_conn, event.data)
        elif isinstance(event, ResponseEndOfMessage) and self.server_conn is not None:
            if not self.upgrade_response_ended:
                # The end of the 101 itself, queued while its hooks ran.
                self.upgrade_response_ended = True
                return
            event = events.ConnectionClosed(self.server_conn)
        elif isinstance(event, HttpEvent):
            return
        if self.upgraded:
            yield from self.from_upgraded_child(self.child_layer.handle_event(event))
        else:
            yield from self.child_layer.handle_event(event)


#: The events _routed hands to their stream as they are (known by exact type first: no
#: isinstance checks against RequestHeaders and BodyBackpressure for them).
_STREAM_EVENTS = frozenset({
    RequestData, RequestTrailers, RequestEndOfMessage, RequestProtocolError, RequestHalfClosed,
    ResponseHeaders, ResponseData, ResponseTrailers, ResponseEndOfMessage, ResponseProtocolError,
})

# What a stream sends, by exact type: True to the client, False to its server connection.
_SENT_TO_CLIENT: dict[type, bool] = {
    ResponseHeaders: True, ResponseData: True, ResponseTrailers: True, ResponseEndOfMessage: True,
    ResponseProtocolError: True, DiscardRequestBody: True,
    RequestHeaders: False, RequestData: False, RequestTrailers: False, RequestEndOfMessage: False,
    RequestProtocolError: False,
}
# The general path's (subclasses): these go to the client, the other events to the server.
_SENT_TO_CLIENT_TYPES = (
    ResponseHeaders, ResponseData, ResponseTrailers, ResponseEndOfMessage, ResponseProtocolError, DiscardRequestBody,
)


def _modified(modifier: Callable[[bytes], bytes | Iterable[bytes]], data: bytes) -> bytes:
    """What a stream modifier makes of a chunk: bytes, or (as mitmproxy allows) an
    iterable of bytes, joined; nothing counts as no bytes."""
    out = modifier(data) or b""
    if isinstance(out, bytes):
        return out
    if isinstance(out, (bytearray, memoryview)):
        return bytes(out)
    return b"".join(out)


def is_websocket_handshake(flow: HTTPFlow) -> bool:
    """Request asked for a WebSocket upgrade and the server switched protocols to it."""

    def upgrades_to_websocket(headers: Headers) -> bool:
        connection = {t.strip().lower() for t in headers.get("connection", "").split(",")}
        return "upgrade" in connection and headers.get("upgrade", "").strip().lower() == "websocket"

    response = flow.response
    return (
        response is not None
        and response.status_code == 101
        and upgrades_to_websocket(flow.request.headers)
        and upgrades_to_websocket(response.headers)
    )


OPENED_VIA_UNKNOWN = object()


class HttpClient(Layer):
    """The server-facing stack entry: opens the connection, then speaks HTTP/1 on it.

    ``absolute_form``: the connection goes to an upstream proxy without a CONNECT
    tunnel, so HTTP/1 request lines carry the full URL."""

    child_layer: Http1Client | Http2Client | Http3Client | None
    # The upstream proxy the HttpLayer opened the connection through (HttpLayer.opened_via,
    # here without a dict lookup by connection per request); OPENED_VIA_UNKNOWN for a
    # connection opened by others, which counts as opened through its ``via`` of now.
    opened_via: object = OPENED_VIA_UNKNOWN

    def __init__(self, context: Context, absolute_form: bool = False) -> None:
        super().__init__(context)
        self.child_layer = None
        self.absolute_form = absolute_form
        self.opened = False  # Start handled: the connection layer takes every event

    @property
    def reusable(self) -> bool:
        return self.child_layer is not None and self.child_layer.reusable

    def handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        # Once open, every event is the connection layer's: handed to it directly, without
        # our _run and state generators in between.
        child = self.child_layer
        if self.opened and child is not None and self._paused is None:
            return child.handle_event(event)
        return super().handle_event(event)

    def _handle_event(self, event: events.Event) -> HttpGenerator[None]:  # type: ignore[override]  # (yields HTTP events too, only ever to the HttpLayer: see HttpGenerator)
        if isinstance(event, events.Start):
            err = None
            if not self.context.server.connected:
                err = yield commands.OpenConnection(self.context.server)
            if not err:
                if self.context.server.transport_protocol == _UDP:
                    from proxycore.layers.http._http3 import Http3Client

                    self.child_layer = Http3Client(self.context)
                elif self.context.server.alpn == b"h2":
                    from proxycore.layers.http._http2 import Http2Client

                    self.child_layer = Http2Client(self.context)
                else:
                    self.child_layer = Http1Client(self.context, self.absolute_form)
                yield from self.child_layer.handle_event(events.Start())
            self._goto(self.state_open)
            self.opened = True
            yield RegisterHttpConnection(self.context.server, err)
        else:
            yield from self.state_open(event)

    def state_open(self, event: events.Event) -> HttpGenerator[None]:
        if self.child_layer is not None:
            yield from self.child_layer.handle_event(event)


class HttpLayer(Layer):
    """Multiplexes HTTP exchanges of one client connection (see module docstring)."""

    def __init__(self, context: Context, mode: HTTPMode) -> None:
        super().__init__(context)
        self.mode = mode
        self.derived = derived_values(context.options)
        self.streams: dict[int, HttpStream] = {}
        self.connections: dict[Connection, Layer] = {}
        self.command_sources: dict[commands.Command, Layer] = {}
        self.waiting_for_connection: dict[Connection, list[GetHttpConnection]] = {}
        # The HttpClient of each server connection (under a ServerTLSLayer for https).
        self.http_clients: dict[Server, HttpClient] = {}
        # The upstream proxy each server connection was opened through: an addon may change
        # flow.server_conn.via on a live connection object to pick another for later requests.
        self.opened_via: dict[Connection, object] = {}
        # The layers of the client connection and of the server connection asked for last,
        # known by identity (see _layer_of); the server's is forgotten whenever this layer
        # changes ``connections``. (The client's entry is set before Start, if by others.)
        self._client_layer: Layer | None = None
        self._server_memo: tuple[Connection, Layer, Layer] | None = None

    def __repr__(self) -> str:
        return f"HttpLayer({self.mode.name}, streams={len(self.streams)})"

    def _target_of(self, to_client: bool, server_conn: Connection | None) -> Layer | None:
        """The connection layer an event a stream sends goes to: the client's, or that of
        the stream's server connection (the memo of the last server's read first)."""
        if to_client:
            if self._client_layer is not None:
                return self._client_layer
            return self._layer_of(self.context.client)
        memo = self._server_memo
        return memo[2] if memo is not None and memo[0] is server_conn else self._layer_of(server_conn)

    def _layer_of(self, connection: Connection | None) -> Layer | None:
        """``connections.get(connection)``, for the client and a keep-alive server without
        Connection.__hash__ (a Python method: ~1k instructions per dict lookup, and the
        layers of a request's two connections are asked for about eight times). The memo's
        third item is where the routing hands that server's events: for an open HttpClient,
        its connection layer."""
        if connection is self.context.client and self._client_layer is not None:
            return self._client_layer
        memo = self._server_memo
        if memo is not None and memo[0] is connection:
            return memo[1]
        if connection is None:
            return None
        layer = self.connections.get(connection)
        if layer is not None:
            inner = layer
            if type(layer) is HttpClient and layer.opened and layer.child_layer is not None and layer._paused is None:
                # Open, it hands every event to its connection layer (HttpClient.handle_event)
                # for good: the routing sends this server's events there without its call.
                inner = layer.child_layer
                if type(inner) is Http1Client:
                    # Its commands reach our _routed directly or through the HttpClient,
                    # which passes them on as they are.
                    inner.bare_received = True
            self._server_memo = (connection, layer, inner)
        return layer

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            if self.mode is _UPSTREAM:
                proxy_mode = self.context.client.proxy_mode
                if isinstance(proxy_mode, UpstreamMode):
                    self.context.server.via = (proxy_mode.scheme, proxy_mode.address)
            # A client layer set beforehand (client replay's stand-in for a client) is kept.
            client_layer = self.connections.get(self.context.client)
            if client_layer is None:
                if self.context.client.transport_protocol == _UDP:
                    from proxycore.layers.http._http3 import Http3Server

                    client_layer = Http3Server(self.context.fork())
                elif self.context.client.alpn == b"h2":
                    from proxycore.layers.http._http2 import Http2Server

                    client_layer = Http2Server(self.context.fork())
                else:
                    client_layer = Http1Server(self.context.fork())
                    client_layer.bare_received = True  # (our _routed takes its commands)
                self.connections[self.context.client] = client_layer
            self._client_layer = client_layer
            yield from self.event_to_child(client_layer, event)
        elif isinstance(event, events.CommandCompleted):
            child = self.command_sources.pop(event.command, None)
            if child is not None:
                yield from self.event_to_child(child, event)
            elif isinstance(event, events.Wakeup):
                yield from self.unsourced_wakeup(event)
        elif isinstance(event, events.ConnectionEvent):
            child = self.connections.get(event.connection)
            if child is not None:
                yield from self.event_to_child(child, event)
            elif isinstance(event, events.ConnectionClosed) and event.connection is self.context.server:
                # The server connection opened before us (transparent mode), not used yet,
                # was closed by the server: close our side too.
                yield commands.CloseConnection(event.connection)
            elif isinstance(event, events.DataReceived) and event.connection is self.context.server:
                # The server connection opened before us speaks first (an HTTP/2 server's
                # SETTINGS): its layer starts now, and the first request will use it.
                context = self.context.fork()
                context.server = self.context.server
                client_layer = HttpClient(context)
                self.connections[self.context.server] = client_layer
                self._server_memo = None
                self.http_clients[self.context.server] = client_layer
                yield from self.event_to_child(client_layer, events.Start())
                yield from self.event_to_child(client_layer, event)
        elif isinstance(event, events.MessageInjected):
            # The flow may be the stream's own (WebSocket) or one inside its tunnel (TCP
            # after CONNECT): every tunnel gets to see it, the owner picks it up.
            for stream in list(self.streams.values()):
                if stream.child_layer is not None:
                    yield from self.event_to_child(stream, event)

    def unsourced_wakeup(self, event: events.Wakeup) -> CommandGenerator[None]:
        """A timer no layer yielded: the client's request-head timer, which the driver arms
        (see Http1Server.head_timer). Its owner is the client's connection layer here
        or, inside a CONNECT tunnel, one further down; the others ignore it."""
        client_layer = self.connections.get(self.context.client)
        if client_layer is not None:
            yield from self.event_to_child(client_layer, event)
        for stream in list(self.streams.values()):
            if stream.child_layer is not None:
                yield from self.event_to_child(stream, event)

    def handle_event(self, event: events.Event) -> CommandGenerator[None]:
        # The HttpLayer never yields a blocking command of its own (a child's carries the
        # child in ``blocking``, see Layer._run), so it never pauses: its generator goes up
        # without the _run wrapper, one generator level less for every command. Bytes for
        # a known connection go straight to its layer (what _handle_event would do).
        if type(event) is events.DataReceived:
            connection = event.connection  # (the client's layer without a call to _layer_of)
            child = self._client_layer
            if connection is not self.context.client or child is None:
                memo = self._server_memo  # (a server's: where _layer_of's memo routes it)
                child = memo[2] if memo is not None and memo[0] is connection else self._layer_of(connection)
            if child is not None:
                return self._routed(child, child.handle_event(event))
        return self._handle_event(event)

    def event_to_child(self, child: Layer, event: events.Event) -> CommandGenerator[None]:
        """``child``'s commands for ``event``, routed (see _routed)."""
        return self._routed(child, child.handle_event(event))

    def _routed(
        self, child: Layer, commands_: Iterable[commands.Command | HttpEvent], source: Generator[Any, Any, Any] | None = None
    ) -> CommandGenerator[None]:
        """What ``child`` yields, routed: HTTP events to the stream or connection layer they
        are for, replies remembered for ``child``, the rest up to the driver. (The events of
        every request are handed on in here, where a handler that has nothing to yield
        (NOTHING) costs no routing generator.) ``source``: the generator ``commands_`` goes on
        with, when that is a chain after commands taken from it already."""
        # An HTTP event that a connection layer (not a stream) yields was received: bare
        # from our HTTP/1 layers (Http1Connection.bare_received), else in a ReceiveHttp.
        from_connection = not isinstance(child, HttpStream)
        for command in commands_:
            # The commands of every request by exact type first, the most frequent first,
            # without the chain of isinstance checks below (subclasses of them take the
            # general path). Per request: five HTTP events a stream sends, five received;
            # hooks only when they wait (streams ask instant_hook), SendData now and then (tunnels).
            if from_connection or type(command) is ReceiveHttp:
                received: Any = command.event if type(command) is ReceiveHttp else command  # (an HttpEvent if of these kinds)
                kind = type(received)
                if kind in _STREAM_EVENTS:
                    # An event of a stream that exists goes to it here, not through receive_http.
                    stream = self.streams.get(received.stream_id)
                    if stream is None:
                        continue  # (a stream that is gone: receive_http drops it too)
                    if stream._paused is None and stream.unwrapped:
                        stream_commands: HttpGenerator[None] = stream._handle_event(received)  # (as for a new one, below)
                    else:
                        stream_commands = stream.handle_event(received)
                    if stream_commands is NOTHING:
                        continue
                    # The stream's events to send, routed here while that is all it yields
                    # (as above; no routing generator for them): the usual end of a request
                    # or response. From its first other command on, the rest goes to _routed.
                    for sent_event in stream_commands:
                        to_client = _SENT_TO_CLIENT.get(type(sent_event))
                        if to_client is None:
                            yield from self._routed(stream, itertools.chain((sent_event,), stream_commands), stream_commands)
                            break
                        target = self._client_layer if to_client else None  # (_target_of's first answer)
                        if target is None:
                            target = self._target_of(to_client, stream.server_conn)
                        if target is None:
                            continue
                        sent = target.handle_event(sent_event)  # type: ignore[arg-type]  # (a key of _SENT_TO_CLIENT)
                        if sent is NOTHING:
                            continue
                        for out in sent:
                            if type(out) is SendData:
                                yield out
                            else:
                                yield from self._routed(target, itertools.chain((out,), sent))
                                break
                    continue
                if kind is RequestHeaders:
                    # A new request's stream is made here: no receive_http generator between
                    # the driver and every command of the request's handling.
                    new = self._new_stream(received)
                    # The stream's handler itself, without Layer._run around it: a blocking
                    # command it yields is paused for below (see "unclaimed").
                    new_commands = new._handle_event(received) if new.unwrapped else new.handle_event(received)
                    if new_commands is not NOTHING:
                        yield from self._routed(new, new_commands)
                    continue
                if isinstance(received, HttpEvent):  # (backpressure, subclasses: the general path)
                    yield from self.receive_http(received)
                    continue
            to_client = _SENT_TO_CLIENT.get(type(command))
            if to_client is not None:
                # A stream's event to send (what SendHttp carries in the general path): to the
                # client, or to the stream's server connection, if it has one.
                event: HttpEvent = command  # type: ignore[assignment]  # (a key of _SENT_TO_CLIENT)
                target = self._target_of(to_client, child.server_conn if isinstance(child, HttpStream) else None)
                if target is not None:
                    sent = target.handle_event(event)
                    if sent is NOTHING:
                        continue
                    # What a connection layer yields for an HTTP event is bytes to send, mostly:
                    # they go up from here. From its first other command on, all of the rest is
                    # routed as its own (no routing generator for the usual head or body).
                    for out in sent:
                        if type(out) is SendData:
                            yield out
                        else:
                            yield from self._routed(target, itertools.chain((out,), sent))
                            break
                continue
            if isinstance(command, HttpEvent):
                # A stream's event to send, of a type _SENT_TO_CLIENT does not name exactly.
                if isinstance(command, BodyBackpressure):
                    yield from self.relay_backpressure(command)
                    continue
                if isinstance(command, _SENT_TO_CLIENT_TYPES):
                    connection: Connection | None = self.context.client
                else:
                    connection = child.server_conn if isinstance(child, HttpStream) else None
                target = None if connection is None else self.connections.get(connection)
                if target is not None:
                    yield from self.event_to_child(target, command)
                continue
            # Only commands from here on: what goes up to the driver.
            blocking = command.blocking
            if blocking is True or (blocking is child and child._paused is None):
                # Unclaimed: a stream's handler yielded it to us without Layer._run around it
                # (see above), so what _run does is done here. A hook nobody listens to is
                # done already (its reply would be None): the handler goes on at once. (One
                # that carries the stream was asked about by the stream itself: HttpStream._asked.)
                if blocking is True:
                    instant = child.context.instant_hook
                    if instant is not None and isinstance(command, commands.StartHook) and instant(command):
                        continue
                # Otherwise the stream waits for the reply (which resumes it through _run),
                # and the command is routed as a claimed one.
                paused = commands_ if source is None else source
                assert isinstance(paused, Generator), paused
                child.pause_on(command, paused)
                yield from self._routed(child, (command,))
                return
            if type(command) is SendData:
                yield command
                continue
            if command.blocking or isinstance(command, commands.RequestWakeup):
                self.command_sources[command] = child
            if isinstance(command, ReceiveHttp):
                yield from self.receive_http(command.event)
            elif isinstance(command, SendHttp):
                if isinstance(command.event, BodyBackpressure):
                    yield from self.relay_backpressure(command.event)
                    continue
                target = None if command.connection is None else self.connections.get(command.connection)
                if target is not None:
                    yield from self.event_to_child(target, command.event)
            elif isinstance(command, GetHttpConnection):
                yield from self.get_connection(command)
            elif isinstance(command, RegisterHttpConnection):
                yield from self.register_connection(command)
            elif isinstance(command, DropStream):
                self.streams.pop(command.stream_id, None)
            elif isinstance(command, commands.OpenConnection):
                self.connections[command.connection] = child
                self._server_memo = None
                yield command
            else:
                yield command

    def receive_http(self, event: HttpEvent) -> CommandGenerator[None]:
        if isinstance(event, BodyBackpressure):
            yield from self.relay_backpressure(event)
            return
        stream: HttpStream | None
        if isinstance(event, RequestHeaders):
            stream = self._new_stream(event)
        else:
            stream = self.streams.get(event.stream_id)
            if stream is None:
                return
        yield from self.event_to_child(stream, event)

    def _new_stream(self, event: RequestHeaders) -> HttpStream:
        """The stream of a new request (one with the same id is replaced, as before)."""
        stream = HttpStream(self.context.fork(), event.stream_id, self.mode)
        stream.reusable_connection = self.reusable_connection
        stream.streams = self.streams
        stream.derived = self.derived
        self.streams[event.stream_id] = stream
        return stream

    def relay_backpressure(self, event: BodyBackpressure) -> CommandGenerator[None]:
        """To the connection the body comes from: the client's or the server's."""
        stream = self.streams.get(event.stream_id)
        if stream is None:
            return
        source: Connection | None
        if event.request:
            source = self.context.client
            layer = self.connections.get(source)
            listens = layer is not None and layer.relays_backpressure
        else:
            source = stream.server_conn
            client = self.http_clients.get(source) if source is not None else None
            child = client.child_layer if client is not None else None
            listens = child is not None and child.relays_backpressure
        target = self.connections.get(source) if listens and source is not None else None
        if target is not None:
            yield from self.event_to_child(target, event)

    def _existing_connection(self, command: GetHttpConnection) -> tuple[Server, bool] | None:
        """The connection ``command`` gets without opening one: (connection, True) if it is
        open and free, (connection, False) if it is still opening (the command waits)."""
        # (Every server connection of ours has its HttpClient here: no walk over the client's
        # entry and no lookup of the HttpClient, both per request.)
        for connection, client in self.http_clients.items():
            if not command.connection_spec_matches(connection):
                continue
            via = client.opened_via
            if (connection.via if via is OPENED_VIA_UNKNOWN else via) != command.via:
                continue
            if self.waiting_for_connection and connection in self.waiting_for_connection:
                return connection, False  # (usually none waits: no hash of the connection)
            if client.reusable:
                return connection, True
        return None

    def reusable_connection(self, address: Address, tls: bool, via: Any, transport: str) -> Server | None:
        """The open connection get_connection would reply with at once to a GetHttpConnection
        of these, if any (see HttpStream.reusable_connection): the answer without the
        command's round trip. The checks of _existing_connection and connection_spec_matches,
        inline (asked for every request): no command to make, no call per connection."""
        waiting = self.waiting_for_connection
        for connection, client in self.http_clients.items():
            if (
                connection.address != address
                or connection.tls != tls
                or connection.via != via
                or connection.transport_protocol != transport
            ):
                continue
            opened_via = client.opened_via
            if (connection.via if opened_via is OPENED_VIA_UNKNOWN else opened_via) != via:
                continue
            if waiting and connection in waiting:
                return None  # still opening: the command would wait for it
            child = client.child_layer  # (HttpClient.reusable without its property call)
            if child is not None and child.reusable:
                return connection
        return None

    def get_connection(self, command: GetHttpConnection) -> CommandGenerator[None]:
        existing = self._existing_connection(command)
        if existing is not None:
            connection, free = existing
            if free:
                yield from self.reply(command, (connection, None))
            else:
                self.waiting_for_connection[connection].append(command)
            return
        # Inside a CONNECT tunnel the context's server is the one the client asked for.
        server = self.context.server
        reuse_context = (
            server.address == command.address
            and self.opened_via.get(server, server.via) == command.via
            and server.tls == command.tls
            and server.transport_protocol == command.transport_protocol
            and server not in self.connections
            and (server.connected or server.timestamp_start is None)
        )
        if reuse_context and server.error and not server.connected:
            # The connection the client's own (transparent/CONNECT) target got failed already,
            # e.g. its TLS handshake: that failure is the answer, as in mitmproxy.
            yield from self.reply(command, (None, server.error))
            return
        context = self.context.fork()
        top: Layer
        if reuse_context:
            # TLS to this server, if any, is the business of a layer above us; it names the
            # server as the client did (transparent mode knows only an address).
            context.server = server
            if server.tls and server.sni is None and self.context.client.sni:
                server.sni = self.context.client.sni
            top = client_layer = HttpClient(context)
        else:
            server = Server(address=command.address, via=command.via)
            if command.transport_protocol == _UDP and command.tls and not command.via:
                server.transport_protocol = _UDP  # HTTP/3: Http3Client's QUIC
            context.server = server
            # Plain HTTP in upstream mode goes to the proxy as is; anything else is tunneled.
            send_connect = command.tls or self.mode is not _UPSTREAM
            top = client_layer = HttpClient(context, absolute_form=bool(command.via) and not send_connect)
            if command.tls and server.transport_protocol == _UDP:
                server.sni = command.address[0]  # QUIC: Http3Client does the TLS
            elif command.tls:
                from proxycore.layers.tls import ServerTLSLayer

                server.sni = command.address[0] if command.address else None
                top = ServerTLSLayer(context, top)
            if command.via:
                top = HttpUpstreamTunnel.make(context, send_connect, top)
        self.connections[server] = top
        self._server_memo = None
        self.opened_via[server] = command.via
        client_layer.opened_via = command.via
        self.http_clients[server] = client_layer
        self.waiting_for_connection[server] = [command]
        yield from self.event_to_child(top, events.Start())

    def register_connection(self, command: RegisterHttpConnection) -> CommandGenerator[None]:
        waiting = self.waiting_for_connection.pop(command.connection, [])
        if command.err:
            self.connections.pop(command.connection, None)
            self._server_memo = None
            self.http_clients.pop(command.connection, None)
            for get in waiting:
                yield from self.reply(get, (None, command.err))
            return
        self._server_memo = None  # (now open: see _layer_of)
        client = self.http_clients.get(command.connection)
        child = client.child_layer if client is not None else None
        multiplexed = child is not None and child.multiplexed
        if multiplexed or not waiting:
            for get in waiting:
                yield from self.reply(get, (command.connection, None))
            return
        # HTTP/1 carries one exchange at a time: the first stream gets this connection,
        # the others look again (and open their own).
        first, *others = waiting
        yield from self.reply(first, (command.connection, None))
        for get in others:
            yield from self.get_connection(get)

    def reply(self, command: GetHttpConnection, reply: object) -> CommandGenerator[None]:
        child = self.command_sources.pop(command)
        yield from self.event_to_child(child, events.CommandCompleted(command, reply))


def __getattr__(name: str) -> Any:
    """``Http2Server`` & co. stay importable from here, loaded on first access."""
    if name in ("Http2Client", "Http2Server"):
        from proxycore.layers.http import _http2

        return getattr(_http2, name)
    if name in ("Http3Client", "Http3Server"):
        from proxycore.layers.http import _http3

        return getattr(_http3, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
