"""Events that travel inside the HTTP layer, between connection layers and streams.

Every event names its ``stream_id``: HTTP/1 numbers its sequential exchanges,
HTTP/2 uses real stream ids, so the HttpLayer can multiplex the same way.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

from proxycore.events import Event
from proxycore.http import Headers, Request, Response


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
    stream_id: int


@dataclass(slots=True)
class RequestHeaders(HttpEvent):
    request: Request
    end_stream: bool
    replay_flow: Any = None


@dataclass(slots=True)
class ResponseHeaders(HttpEvent):
    response: Response
    end_stream: bool = False


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
class RequestProtocolError(HttpEvent):
    message: str
    code: ErrorCode = ErrorCode.GENERIC_CLIENT_ERROR


@dataclass(slots=True)
class ResponseProtocolError(HttpEvent):
    message: str
    code: ErrorCode = ErrorCode.GENERIC_SERVER_ERROR


@dataclass(slots=True)
class BodyBackpressure(HttpEvent):
    """From the connection a body is sent out on to the one it comes in on (HTTP/2 only).

    ``paused``: more of the body is queued for the peer than a stream window, so the
    receiving side stops granting flow-control credit for it until a second event with
    ``paused=False`` says the queue has drained. ``request`` tells which body it is."""

    request: bool
    paused: bool
