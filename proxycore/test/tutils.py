"""Ready-made requests and responses for addon tests; keyword arguments override fields."""

from __future__ import annotations

from typing import Any

from proxycore import http

# Fixed timestamps (2000-01-01) so that tests comparing flows or dumps are reproducible.
T_REQUEST = 946681200


def treq(**kwargs: Any) -> http.Request:
    """GET http://address:22/path with a 7-byte body, as mitmproxy's helper builds it."""
    fields: dict[str, Any] = {
        "host": "address",
        "port": 22,
        "method": b"GET",
        "scheme": b"http",
        "authority": b"",
        "path": b"/path",
        "http_version": b"HTTP/1.1",
        "headers": http.Headers(((b"header", b"qvalue"), (b"content-length", b"7"))),
        "content": b"content",
        "trailers": None,
        "timestamp_start": T_REQUEST,
        "timestamp_end": T_REQUEST + 1,
    }
    fields.update(kwargs)
    return http.Request(**fields)


def tresp(**kwargs: Any) -> http.Response:
    """200 OK with a 7-byte body."""
    fields: dict[str, Any] = {
        "http_version": b"HTTP/1.1",
        "status_code": 200,
        "reason": b"OK",
        "headers": http.Headers(((b"header-response", b"svalue"), (b"content-length", b"7"))),
        "content": b"message",
        "trailers": None,
        "timestamp_start": T_REQUEST + 2,
        "timestamp_end": T_REQUEST + 3,
    }
    fields.update(kwargs)
    return http.Response(**fields)
