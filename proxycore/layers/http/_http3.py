"""HTTP/3 connection layers on aioquic: Http3Server faces a QUIC client, Http3Client a server.

They play the part Http2Server/Http2Client play for HTTP/2: request and response
streams become the HTTP layer's events (``RequestHeaders``, ``ResponseData`` ...), so
HttpStream, its hooks and flows are the same whatever the client and server speak. Each
layer owns its QUIC connection (an aioquic ``QuicConnection`` driven through
``QuicEndpoint``) and the ``H3Connection`` on top of it:

- Http3Server reads the ClientHello out of the client's first Initial packets, so that the
  ``quic_start_client`` hook (the TlsConfig addon) can pick the certificate for its SNI,
  then answers the handshake itself. Request stream ids are the client's.
- Http3Client fires ``quic_start_server`` for verification settings, connects, and maps
  our stream ids onto the server's. Requests sent before the handshake is done wait in
  aioquic until it is.
- A QUIC stream reset fails its exchange; a closed QUIC connection fails them all.

Memory: what a peer sends us is bounded by the QUIC windows we grant (aioquic's defaults,
1 MiB per stream and per connection, extended as it hands data on), and while the other
side cannot take it the driver stops reading the UDP peer, whose excess datagrams are
dropped (QUIC resends them later). What we send to a peer waits in aioquic until the peer
acknowledges it: past ``SEND_BUFFER_LIMIT`` bytes on a stream the body's source is told to
pause (``BodyBackpressure``), and to go on once half of it has been acknowledged.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, ClassVar

from proxycore.connection import Connection
from proxycore.http import Headers, Response, reason_phrase
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import (
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
from proxycore.layers.http._http2 import Http2Server, _outbound_fields, _plain_fields, _split_pseudo
from proxycore.layers.quic import (
    KEEPALIVE_SECONDS,
    MAX_HELLO_DATAGRAMS,
    QuicEndpoint,
    QuicTlsData,
    read_client_hello,
    start_client_side,
    start_server_side,
    starts_like_quic,
)
from proxycore.layers.tls import (
    TlsEstablishedClientHook,
    TlsEstablishedServerHook,
    TlsFailedClientHook,
    TlsFailedServerHook,
)
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer

# HTTP/3 error codes (RFC 9114 section 8.1).
H3_NO_ERROR = 0x100
H3_INTERNAL_ERROR = 0x102
H3_REQUEST_CANCELLED = 0x10C
HTTP_VERSION = b"HTTP/3"
#: Unacknowledged bytes one stream may hold in aioquic before the body's source pauses.
SEND_BUFFER_LIMIT = 2**20


class Http3Connection(Layer):
    """What both sides share: the QUIC endpoint, the H3 state machine and their events."""

    conn: Connection
    endpoint: QuicEndpoint | None
    h3: Any
    multiplexed: ClassVar[bool] = True

    def __init__(self, context: Context, conn: Connection) -> None:
        super().__init__(context)
        self.conn = conn
        self.endpoint = None
        self.h3 = None
        self.closed = False
        self.handshake_complete = False
        self.tls_data: QuicTlsData | None = None  # the quic_start_* hook's data, for tls_* hooks
        # Our stream ids whose body source we paused: their QUIC stream id.
        self.send_paused: dict[int, int] = {}
        # Our stream states: "headers" (waiting for a head), "body", "done".
        self.streams: dict[int, str] = {}

    @property
    def side(self) -> str:
        return "client" if self.conn is self.context.client else "server"

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.endpoint is not None and self.endpoint.timer_fired(event):
            yield from self.process()
        elif isinstance(event, events.DataReceived) and event.connection is self.conn:
            yield from self.datagram(event.data)
        elif isinstance(event, events.ConnectionClosed) and event.connection is self.conn:
            yield from self.peer_gone()
        elif isinstance(event, HttpEvent):
            if self.closed or self.endpoint is None:
                yield from self.refuse(event)
            else:
                yield from self.send(event)
                yield from self.process()
        elif isinstance(event, events.Start):
            yield from self.start()

    def start(self) -> CommandGenerator[None]:
        return
        yield

    def datagram(self, data: bytes) -> CommandGenerator[None]:
        if self.endpoint is not None and not self.closed:
            self.endpoint.receive(data)
            yield from self.process()

    def process(self) -> CommandGenerator[None]:
        """Hand aioquic's events to H3 and on, then send what is due."""
        from aioquic.quic import events as quic_events

        assert self.endpoint is not None
        for quic_event in self.endpoint.events():
            if isinstance(quic_event, quic_events.HandshakeCompleted):
                yield from self.handshake_done(quic_event)
            elif isinstance(quic_event, quic_events.ConnectionTerminated):
                yield from self.terminated(quic_event)
                continue
            elif isinstance(quic_event, (quic_events.StreamReset, quic_events.StopSendingReceived)):
                yield from self.stream_reset(quic_event.stream_id, quic_event.error_code)
            if self.h3 is not None and not self.closed:
                for h3_event in self.h3.handle_event(quic_event):
                    yield from self.h3_event(h3_event)
        yield from self.endpoint.flush()
        if self.send_paused:
            yield from self.release_backpressure()

    def unacknowledged(self, stream_id: int) -> int:
        """Bytes written to a QUIC stream that the peer has not acknowledged yet (aioquic
        keeps them for resending; it has no public accessor for the amount)."""
        assert self.endpoint is not None
        stream = self.endpoint.quic._streams.get(stream_id)
        if stream is None:
            return 0
        sender = stream.sender
        return int(sender._buffer_stop - sender._buffer_start)

    def check_backpressure(self, our_id: int, stream_id: int) -> CommandGenerator[None]:
        if our_id not in self.send_paused and self.unacknowledged(stream_id) > SEND_BUFFER_LIMIT:
            self.send_paused[our_id] = stream_id
            yield ReceiveHttp(BodyBackpressure(our_id, request=self.side == "server", paused=True))

    def release_backpressure(self) -> CommandGenerator[None]:
        for our_id, stream_id in list(self.send_paused.items()):
            if self.closed or self.unacknowledged(stream_id) <= SEND_BUFFER_LIMIT // 2:
                del self.send_paused[our_id]
                yield ReceiveHttp(BodyBackpressure(our_id, request=self.side == "server", paused=False))

    def handshake_done(self, event: Any) -> CommandGenerator[None]:
        """Record what the handshake settled on the connection, as the TLS layers do."""
        self.handshake_complete = True
        conn = self.conn
        conn.alpn = (event.alpn_protocol or "").encode() or None
        conn.tls_version = "QUICv1"
        conn.timestamp_tls_setup = time.time()
        tls = getattr(self.endpoint.quic, "tls", None) if self.endpoint is not None else None
        suite = getattr(getattr(tls, "key_schedule", None), "cipher_suite", None)
        if suite is not None:
            conn.cipher = suite.name
        peer = getattr(tls, "_peer_certificate", None)
        if peer is not None and self.side == "server":
            from proxycore.certs import Cert

            chain = getattr(tls, "_peer_certificate_chain", None) or []
            conn.certificate_list = [Cert(c) for c in (peer, *chain)]
        if self.tls_data is not None:
            yield (TlsEstablishedClientHook if self.side == "client" else TlsEstablishedServerHook)(self.tls_data)

    def h3_event(self, event: Any) -> CommandGenerator[None]:
        from aioquic.h3 import events as h3_events

        stream_id = event.stream_id
        if isinstance(event, h3_events.HeadersReceived):
            if self.streams.get(stream_id) == "body":
                yield from self.trailers_received(stream_id, Headers(list(event.headers)))
            else:
                yield from self.headers_received(stream_id, event.headers, event.stream_ended)
                return  # the end of a bodiless message is part of its head
        elif isinstance(event, h3_events.DataReceived):
            if event.data and self.streams.get(stream_id) == "body":
                yield from self.data_received(stream_id, event.data)
        else:
            return  # datagrams and WebTransport are not proxied
        if event.stream_ended and self.streams.get(stream_id) == "body":
            self.streams[stream_id] = "done"
            yield from self.stream_ended(stream_id)

    def terminated(self, event: Any) -> CommandGenerator[None]:
        if self.closed:
            return
        self.closed = True
        reason = event.reason_phrase or f"error code {event.error_code:#x}"
        message = f"QUIC connection closed by {self.side}: {reason}"
        if not self.handshake_complete:
            self.conn.error = f"QUIC handshake with the {self.side} failed: {reason}"
            message = self.conn.error
            yield commands.Log(message, "info")
            if self.tls_data is not None:
                yield (TlsFailedClientHook if self.side == "client" else TlsFailedServerHook)(self.tls_data)
        else:
            if event.error_code:
                self.conn.error = self.conn.error or reason
            yield commands.Log(message, "debug")
        yield from self.fail_all(message)
        yield commands.CloseConnection(self.conn)

    def peer_gone(self) -> CommandGenerator[None]:
        """The driver ended the connection (idle UDP peer, shutdown) or the socket failed."""
        if not self.closed:
            self.closed = True
            if self.endpoint is not None:
                self.endpoint.quic.close(error_code=0, reason_phrase="proxy closing")
                yield from self.endpoint.flush()
            why = f": {self.conn.error}" if self.conn.error else "."
            yield from self.fail_all(f"QUIC connection to the {self.side} closed{why}")
        yield commands.CloseConnection(self.conn)

    def refuse(self, event: HttpEvent) -> CommandGenerator[None]:
        return
        yield

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def fail_all(self, message: str) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def headers_received(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def data_received(self, stream_id: int, data: bytes) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def trailers_received(self, stream_id: int, trailers: Headers) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def stream_ended(self, stream_id: int) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def stream_reset(self, stream_id: int, code: int) -> CommandGenerator[None]:
        raise NotImplementedError
        yield

    def reset_stream(self, stream_id: int, code: int) -> None:
        """Abort our sending on a stream (RESET_STREAM)."""
        endpoint = self.endpoint
        if endpoint is not None:
            self._quietly(lambda: endpoint.quic.reset_stream(stream_id, code))

    def stop_stream(self, stream_id: int, code: int) -> None:
        """Ask the peer to stop sending on a stream (STOP_SENDING)."""
        endpoint = self.endpoint
        if endpoint is not None:
            self._quietly(lambda: endpoint.quic.stop_stream(stream_id, code))

    def _quietly(self, action: Callable[[], Any]) -> bool:
        """Run an H3/QUIC send; False if the stream or connection cannot take it any more
        (aioquic refuses writes on reset or finished streams with these errors)."""
        from aioquic.h3.connection import ProtocolError
        from aioquic.h3.exceptions import H3Error

        try:
            action()
        except (H3Error, ProtocolError, ValueError, AssertionError, RuntimeError):
            return False
        return True


class Http3Server(Http3Connection):
    """Client-facing HTTP/3 (see module docstring)."""

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.client)
        context.client.tls = True
        self.hello_datagrams: list[bytes] = []
        self.headers_sent: set[int] = set()
        self.keepalive: commands.RequestWakeup | None = None

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.keepalive is not None and isinstance(event, events.Wakeup) and event.command is self.keepalive:
            self.keepalive = None
            if self.streams and not self.closed and self.endpoint is not None:
                self.endpoint.quic.send_ping(0)
                yield from self.process()
            return
        yield from super()._handle_event(event)

    def process(self) -> CommandGenerator[None]:
        yield from super().process()
        if self.streams and self.keepalive is None and not self.closed:
            self.keepalive = commands.RequestWakeup(KEEPALIVE_SECONDS)
            yield self.keepalive

    def datagram(self, data: bytes) -> CommandGenerator[None]:
        if self.endpoint is not None or self.closed:
            yield from super().datagram(data)
            return
        if not self.hello_datagrams and not starts_like_quic(data):
            # Late packets of a connection that is gone, or not QUIC at all: nobody to answer.
            self.closed = True
            yield commands.Log("Client sent a datagram that does not start a QUIC connection.", "debug")
            yield commands.CloseConnection(self.conn)
            return
        self.hello_datagrams.append(data)
        try:
            info = read_client_hello(self.hello_datagrams)
        except ValueError as e:
            info, problem = None, str(e)
        else:
            problem = "" if info is not None or len(self.hello_datagrams) < MAX_HELLO_DATAGRAMS else (
                "QUIC ClientHello incomplete after too many datagrams"
            )
        if problem:
            self.closed = True
            yield commands.Log(f"Client QUIC handshake failed: {problem}", "info")
            yield commands.CloseConnection(self.conn)
            return
        if info is None:
            return
        yield from self.accept(info)

    def accept(self, info: Any) -> CommandGenerator[None]:
        from aioquic.h3.connection import H3Connection

        datagrams, self.hello_datagrams = self.hello_datagrams, []
        started = yield from start_client_side(self.context, info, datagrams)
        if started is None:
            self.closed = True
            return
        self.endpoint, self.tls_data = started
        self.h3 = H3Connection(self.endpoint.quic)
        yield from self.process()

    def headers_received(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> CommandGenerator[None]:
        if stream_id in self.streams:
            return  # a second head after the body ended: nothing to do with it
        try:
            request = Http2Server.make_request(headers)
        except ValueError as e:
            yield commands.Log(f"Invalid HTTP/3 request headers: {e}", "info")
            self.reset_stream(stream_id, H3_INTERNAL_ERROR)
            return
        request.data.http_version = HTTP_VERSION
        self.streams[stream_id] = "done" if ended else "body"
        yield ReceiveHttp(RequestHeaders(stream_id, request, ended))
        if ended:
            yield ReceiveHttp(RequestEndOfMessage(stream_id))

    def data_received(self, stream_id: int, data: bytes) -> CommandGenerator[None]:
        yield ReceiveHttp(RequestData(stream_id, data))

    def trailers_received(self, stream_id: int, trailers: Headers) -> CommandGenerator[None]:
        yield ReceiveHttp(RequestTrailers(stream_id, trailers))

    def stream_ended(self, stream_id: int) -> CommandGenerator[None]:
        yield ReceiveHttp(RequestEndOfMessage(stream_id))

    def stream_reset(self, stream_id: int, code: int) -> CommandGenerator[None]:
        state = self.streams.pop(stream_id, None)
        self.headers_sent.discard(stream_id)
        if state is not None:
            message = f"Stream reset by client (error code {code:#x})."
            yield ReceiveHttp(RequestProtocolError(stream_id, message, ErrorCode.CLIENT_DISCONNECTED))

    def fail_all(self, message: str) -> CommandGenerator[None]:
        open_streams, self.streams = self.streams, {}
        for stream_id in open_streams:
            yield ReceiveHttp(RequestProtocolError(stream_id, message, ErrorCode.CLIENT_DISCONNECTED))

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        h3, stream_id = self.h3, event.stream_id
        if isinstance(event, ResponseHeaders):
            response = event.response
            if response.status_code < 200:
                return  # no interim responses toward HTTP/3 clients
            fields, _ = _outbound_fields(response, self.context.options)
            head = [(b":status", b"%d" % response.status_code), *fields]
            if self._quietly(lambda: h3.send_headers(stream_id, head, end_stream=event.end_stream)):
                self.headers_sent.add(stream_id)
            if event.end_stream:
                self.stream_over(stream_id)
        elif isinstance(event, ResponseData):
            if self._quietly(lambda: h3.send_data(stream_id, event.data, end_stream=False)):
                yield from self.check_backpressure(stream_id, stream_id)
        elif isinstance(event, ResponseTrailers):
            trailers = _plain_fields(event.trailers)
            if self._quietly(lambda: h3.send_headers(stream_id, trailers, end_stream=True)):
                self.stream_over(stream_id)
        elif isinstance(event, ResponseEndOfMessage):
            if stream_id in self.headers_sent:
                self._quietly(lambda: h3.send_data(stream_id, b"", end_stream=True))
            self.stream_over(stream_id)
        elif isinstance(event, ResponseProtocolError):
            yield from self.send_error(stream_id, event)
        elif isinstance(event, DiscardRequestBody):
            pass  # aioquic credits flow control as it delivers: dropping the rest costs nothing
        return
        yield

    def stream_over(self, stream_id: int) -> None:
        """Our side of the exchange is complete; a request still uploading is stopped."""
        if self.streams.pop(stream_id, None) == "body":
            self.stop_stream(stream_id, H3_NO_ERROR)
        self.headers_sent.discard(stream_id)

    def send_error(self, stream_id: int, event: ResponseProtocolError) -> CommandGenerator[None]:
        status = event.code.http_status_code()
        h3 = self.h3
        if stream_id not in self.headers_sent and status is not None:
            from proxycore.layers.http._http1 import make_error_response

            page = make_error_response(status, event.message)
            head = [(b":status", b"%d" % status), *_plain_fields(page.headers)]
            self._quietly(lambda: h3.send_headers(stream_id, head))
            self._quietly(lambda: h3.send_data(stream_id, page.raw_content or b"", end_stream=True))
        else:
            self.reset_stream(stream_id, H3_INTERNAL_ERROR)
        self.stream_over(stream_id)
        return
        yield


class Http3Client(Http3Connection):
    """Server-facing HTTP/3: our stream ids are mapped onto QUIC request streams."""

    def __init__(self, context: Context) -> None:
        super().__init__(context, context.server)
        context.server.tls = True
        self.our_to_quic: dict[int, int] = {}
        self.quic_to_our: dict[int, int] = {}
        self.ended_locally: set[int] = set()  # request streams we have finished sending on

    @property
    def reusable(self) -> bool:
        return not self.closed and self.conn.connected

    def start(self) -> CommandGenerator[None]:
        from aioquic.h3.connection import H3Connection

        started = yield from start_server_side(self.context, [b"h3"])
        if started is None:
            self.closed = True
            return
        self.endpoint, self.tls_data = started
        self.h3 = H3Connection(self.endpoint.quic)
        yield from self.process()

    def refuse(self, event: HttpEvent) -> CommandGenerator[None]:
        if isinstance(event, RequestHeaders):
            message = self.conn.error or "QUIC connection to the server is closed."
            yield ReceiveHttp(ResponseProtocolError(event.stream_id, message, ErrorCode.CONNECT_FAILED))

    def send(self, event: HttpEvent) -> CommandGenerator[None]:
        h3, our_id = self.h3, event.stream_id
        if isinstance(event, RequestHeaders):
            yield from self.open_stream(event)
            return
        stream_id = self.our_to_quic.get(our_id)
        if stream_id is None:
            return
        if isinstance(event, RequestData):
            if self._quietly(lambda: h3.send_data(stream_id, event.data, end_stream=False)):
                yield from self.check_backpressure(our_id, stream_id)
        elif isinstance(event, RequestTrailers):
            self.ended_locally.add(stream_id)
            self._quietly(lambda: h3.send_headers(stream_id, _plain_fields(event.trailers), end_stream=True))
        elif isinstance(event, RequestEndOfMessage):
            if stream_id not in self.ended_locally:
                self.ended_locally.add(stream_id)
                self._quietly(lambda: h3.send_data(stream_id, b"", end_stream=True))
        elif isinstance(event, RequestProtocolError):
            self.reset_stream(stream_id, H3_REQUEST_CANCELLED)
            self.forget(stream_id)

    def open_stream(self, event: RequestHeaders) -> CommandGenerator[None]:
        assert self.endpoint is not None
        stream_id = self.endpoint.quic.get_next_available_stream_id()
        request = event.request
        authority = request.data.authority or request.headers.get("host", "").encode() or (
            request.host.encode() if request.port == 443 else b"%s:%d" % (request.host.encode(), request.port)
        )
        fields, _ = _outbound_fields(request, self.context.options)
        head = [
            (b":method", request.data.method),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", request.data.path or b"/"),
            *fields,
        ]
        if not self._quietly(lambda: self.h3.send_headers(stream_id, head, end_stream=event.end_stream)):
            yield ReceiveHttp(ResponseProtocolError(event.stream_id, "Cannot open an HTTP/3 stream.", ErrorCode.GENERIC_SERVER_ERROR))
            return
        self.our_to_quic[event.stream_id] = stream_id
        self.quic_to_our[stream_id] = event.stream_id
        self.streams[stream_id] = "headers"
        if event.end_stream:
            self.ended_locally.add(stream_id)

    def forget(self, stream_id: int) -> None:
        self.streams.pop(stream_id, None)
        self.ended_locally.discard(stream_id)
        our_id = self.quic_to_our.pop(stream_id, None)
        if our_id is not None:
            self.our_to_quic.pop(our_id, None)

    def headers_received(self, stream_id: int, headers: list[tuple[bytes, bytes]], ended: bool) -> CommandGenerator[None]:
        our_id = self.quic_to_our.get(stream_id)
        if our_id is None or self.streams.get(stream_id) != "headers":
            return
        try:
            pseudo, fields = _split_pseudo(list(headers))
            status = int(pseudo[b":status"])
        except (KeyError, ValueError) as e:
            self.reset_stream(stream_id, H3_INTERNAL_ERROR)
            self.forget(stream_id)
            yield ReceiveHttp(ResponseProtocolError(our_id, f"Invalid HTTP/3 response headers: {e}"))
            return
        if status < 200:
            return  # interim responses are not passed on
        response = Response(
            http_version=HTTP_VERSION,
            status_code=status,
            reason=reason_phrase(status).encode(),
            headers=fields,
            content=None,
            trailers=None,
            timestamp_start=time.time(),
            timestamp_end=None,
        )
        self.streams[stream_id] = "body"
        yield ReceiveHttp(ResponseHeaders(our_id, response, ended))
        if ended:
            self.forget(stream_id)
            yield ReceiveHttp(ResponseEndOfMessage(our_id))

    def data_received(self, stream_id: int, data: bytes) -> CommandGenerator[None]:
        our_id = self.quic_to_our.get(stream_id)
        if our_id is not None:
            yield ReceiveHttp(ResponseData(our_id, data))

    def trailers_received(self, stream_id: int, trailers: Headers) -> CommandGenerator[None]:
        our_id = self.quic_to_our.get(stream_id)
        if our_id is not None:
            yield ReceiveHttp(ResponseTrailers(our_id, trailers))

    def stream_ended(self, stream_id: int) -> CommandGenerator[None]:
        our_id = self.quic_to_our.get(stream_id)
        self.forget(stream_id)
        if our_id is not None:
            yield ReceiveHttp(ResponseEndOfMessage(our_id))

    def stream_reset(self, stream_id: int, code: int) -> CommandGenerator[None]:
        our_id = self.quic_to_our.get(stream_id)
        if our_id is None:
            return
        self.forget(stream_id)
        message = f"Stream reset by server (error code {code:#x})."
        yield ReceiveHttp(ResponseProtocolError(our_id, message, ErrorCode.GENERIC_SERVER_ERROR))

    def fail_all(self, message: str) -> CommandGenerator[None]:
        waiting = list(self.quic_to_our.values())
        self.streams.clear()
        self.quic_to_our.clear()
        self.our_to_quic.clear()
        for our_id in waiting:
            yield ReceiveHttp(ResponseProtocolError(our_id, message, ErrorCode.GENERIC_SERVER_ERROR))
