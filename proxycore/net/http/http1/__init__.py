"""mitmproxy's HTTP/1 helper API (``mitmproxy.net.http.http1``) over proxycore's parser.

The layers do not use this package: they read heads incrementally with
:mod:`proxycore.net.http1`. It exists for code written against mitmproxy that
reads or writes HTTP/1 messages itself (heads given as lists of lines).
"""

from proxycore.net.http.http1.assemble import (
    assemble_body,
    assemble_request,
    assemble_request_head,
    assemble_response,
    assemble_response_head,
)
from proxycore.net.http.http1.read import (
    connection_close,
    expected_http_body_size,
    get_header_tokens,
    read_request_head,
    read_response_head,
)

__all__ = [
    "assemble_body",
    "assemble_request",
    "assemble_request_head",
    "assemble_response",
    "assemble_response_head",
    "connection_close",
    "expected_http_body_size",
    "get_header_tokens",
    "read_request_head",
    "read_response_head",
]
