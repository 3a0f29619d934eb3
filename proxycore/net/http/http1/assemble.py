"""Writing HTTP/1 messages, with mitmproxy's signatures (heads in the form the message says)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from proxycore.http import Headers, Request, RequestData, Response
from proxycore.net import http1


def _assemble_request_line(data: RequestData) -> bytes:
    """``METHOD target VERSION`` of a request's data: authority form for CONNECT, absolute
    form when the request has scheme and authority, else origin form."""
    method, scheme, authority, path, version = (
        data.method, data.scheme, data.authority, data.path, data.http_version,
    )
    if method.upper() == b"CONNECT":
        target = authority
    elif scheme and authority:
        target = scheme + b"://" + authority + path
    else:
        target = path
    return b"%s %s %s" % (method, target, version)


def _fields(headers: Headers) -> bytes:
    return b"".join(b"%s: %s\r\n" % (k, v) for k, v in headers.fields)


def _assemble_request_headers(data: RequestData) -> bytes:
    return _fields(data.headers)


def _assemble_response_headers(response: Response) -> bytes:
    return _fields(response.headers)


def assemble_request_head(request: Request) -> bytes:
    return b"%s\r\n%s\r\n" % (_assemble_request_line(request.data), _assemble_request_headers(request.data))


def assemble_response_head(response: Response) -> bytes:
    line = b"%s %d %s" % (response.data.http_version, response.status_code, response.data.reason)
    return b"%s\r\n%s\r\n" % (line, _assemble_response_headers(response))


def assemble_body(headers: Headers, body_chunks: Iterable[bytes], trailers: Headers | None) -> Iterator[bytes]:
    """The body as it goes on the wire: chunked when the headers say so (trailers last)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        for data in body_chunks:
            if data:
                yield http1.chunk(data)
        yield http1.last_chunk(trailers)
    else:
        if trailers:
            raise ValueError("trailers need Transfer-Encoding: chunked")
        for data in body_chunks:
            yield data


def assemble_request(request: Request) -> bytes:
    if request.data.content is None:
        raise ValueError("cannot assemble a request whose content is missing")
    body = b"".join(assemble_body(request.headers, [request.data.content], request.data.trailers))
    return assemble_request_head(request) + body


def assemble_response(response: Response) -> bytes:
    if response.data.content is None:
        raise ValueError("cannot assemble a response whose content is missing")
    body = b"".join(assemble_body(response.headers, [response.data.content], response.data.trailers))
    return assemble_response_head(response) + body
