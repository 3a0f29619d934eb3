"""Ready-made requests and responses for addon tests; keyword arguments override fields."""

from __future__ import annotations

from typing import Any

from proxycore import dns, http

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


def _dns_message(query: bool, answers: list[Any], kwargs: dict[str, Any]) -> dns.DNSMessage:
    fields: dict[str, Any] = {
        "timestamp": 946681200 if query else 946681201,
        "id": 42,
        "query": query,
        "op_code": dns.op_codes.QUERY,
        "authoritative_answer": False,
        "truncation": False,
        "recursion_desired": True,
        "recursion_available": not query,
        "reserved": 0,
        "response_code": dns.response_codes.NOERROR,
        "questions": [dns.Question("dns.google", dns.types.A, dns.classes.IN)],
        "answers": answers,
        "authorities": [],
        "additionals": [],
    }
    fields.update(kwargs)
    return dns.DNSMessage(**fields)


def tdnsreq(**kwargs: Any) -> dns.DNSMessage:
    """A query for dns.google (A), id 42; keyword arguments replace fields."""
    return _dns_message(True, [], kwargs)


def tdnsresp(**kwargs: Any) -> dns.DNSMessage:
    """The answer to tdnsreq: 8.8.8.8 and 8.8.4.4, TTL 32."""
    answers = [
        dns.ResourceRecord("dns.google", dns.types.A, dns.classes.IN, 32, bytes([8, 8, 8, 8])),
        dns.ResourceRecord("dns.google", dns.types.A, dns.classes.IN, 32, bytes([8, 8, 4, 4])),
    ]
    return _dns_message(False, answers, kwargs)
