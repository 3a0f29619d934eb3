"""Events that travel inside the HTTP layer, between connection layers and streams.

Every event names its ``stream_id``: HTTP/1 numbers its sequential exchanges,
HTTP/2 uses real stream ids, so the HttpLayer can multiplex the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, ClassVar

from proxycore.http import Headers, Request, Response
from proxycore.proxy.events import Event


class ErrorCode(enum.Enum):
    """Why an HTTP exchange failed; decides the status page or the kind of reset."""

    GENERIC_CLIENT_ERROR = 1
    GENERIC_SERVER_ERROR = 2
    REQUEST_TOO_LARGE = 3
    RESPONSE_TOO_LARGE = 4
    CONNECT_FAILED = 5
    PASSTHROUGH_CLOSE = 6
    KILL = 7
    HTTP_1_1_REQUIRED = 8
    DESTINATION_UNKNOWN = 9
    CLIENT_DISCONNECTED = 10
    CANCEL = 11
    REQUEST_VALIDATION_FAILED = 12
    RESPONSE_VALIDATION_FAILED = 13

    def http_status_code(self) -> int | None:
        """The status of the error page for this code, or None where the right answer is a reset."""
        return _STATUS.get(self)


# The flow error when the client hung up (HTTP/1, or a whole HTTP/2 connection); the last
# words are the phrase mitmproxy's error says, which addons may look for.
CLIENT_GONE = "Client disconnected: peer closed connection."

_STATUS = {
    ErrorCode.GENERIC_CLIENT_ERROR: 400,
    ErrorCode.REQUEST_VALIDATION_FAILED: 400,
    ErrorCode.DESTINATION_UNKNOWN: 400,
    ErrorCode.REQUEST_TOO_LARGE: 413,
    ErrorCode.RESPONSE_TOO_LARGE: 502,
    ErrorCode.CONNECT_FAILED: 502,
    ErrorCode.GENERIC_SERVER_ERROR: 502,
    ErrorCode.RESPONSE_VALIDATION_FAILED: 502,
}


@dataclass(slots=True)
class HttpEvent(Event):
    """An event of one stream: an Event only, never a Command, as in mitmproxy (whose
    layer-test harness tells what is fed to a layer from what it yields by that class).

    Inside the HttpLayer a stream yields the event it sends as it is, without a SendHttp
    around it ("send this": a response's events and DiscardRequestBody to the client, a
    request's to the stream's server connection); the HttpLayer routes it by exact type
    and nothing above it ever sees one. ``blocking`` is what Layer._run and the routing
    read of everything a layer yields: such an event never blocks."""

    blocking: ClassVar[bool] = False

    stream_id: int


# RequestHeaders/ResponseHeaders.declared_size when the connection layer did not read
# Content-Length.
NOT_READ = -1


@dataclass(slots=True)
class RequestHeaders(HttpEvent):
    request: Request
    end_stream: bool
    replay_flow: Any = None
    # As ResponseHeaders.declared_size.
    declared_size: int | None = NOT_READ


@dataclass(slots=True)
class ResponseHeaders(HttpEvent):
    response: Response
    end_stream: bool = False
    # The body size the head's Content-Length declares (None: none), as the connection
    # layer read it to frame the body (HTTP/1), so that the stream does not read the field
    # again before the headers hook; NOT_READ: the stream reads it from the headers.
    declared_size: int | None = NOT_READ


@dataclass(slots=True)
class RequestData(HttpEvent):
    data: bytes


@dataclass(slots=True)
class ResponseData(HttpEvent):
    data: bytes


@dataclass(slots=True)
class RequestTrailers(HttpEvent):
    trailers: Headers


@dataclass(slots=True)
class ResponseTrailers(HttpEvent):
    trailers: Headers


@dataclass(slots=True)
class RequestEndOfMessage(HttpEvent):
    pass


@dataclass(slots=True)
class ResponseEndOfMessage(HttpEvent):
    pass


@dataclass(slots=True)
class RequestHalfClosed(HttpEvent):
    """HTTP/1: the client sent FIN after a complete request; it may still read the answer."""


@dataclass(slots=True)
class RequestProtocolError(HttpEvent):
    message: str
    code: ErrorCode = ErrorCode.GENERIC_CLIENT_ERROR


@dataclass(slots=True)
class ResponseProtocolError(HttpEvent):
    message: str
    code: ErrorCode = ErrorCode.GENERIC_SERVER_ERROR


@dataclass(slots=True)
class BodyBackpressure(HttpEvent):
    """To the connection a body comes in on: hold it back (``paused``) or go on.

    Sent by the HTTP/2 connection the body goes out on when more of it is queued for the
    peer than a stream window, and by a stream while a hook holds its request (or it waits
    for a server connection). An HTTP/2 source stops granting flow-control credit for the
    stream; an HTTP/1 client stops being read once ``body_buffer_limit`` bytes arrived
    meanwhile. ``paused=False`` lifts it. ``request`` tells which body it is."""

    request: bool
    paused: bool


@dataclass(slots=True)
class DiscardRequestBody(HttpEvent):
    """From a stream to the client connection: the request was answered before its body
    was complete (proxyauth's 407). What is left of the body is dropped where it arrives,
    never handed on or buffered; the connection layer keeps its framing and flow control."""
