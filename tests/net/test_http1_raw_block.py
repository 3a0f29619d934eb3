"""A parsed head's field lines are sent on as read, when that is what serialising gives.

The head parsers keep the bytes of the field lines when every line is already in the form
``Headers.raw_block`` produces (``name: value``, one space, nothing after the value), and
the assembly functions then use them instead of joining the fields again. That must never
change what is sent: the bytes are used only while the fields tuple they belong to is the
one the headers hold (every change assigns a new one), and a head in another form is
serialised from its fields as before.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.http import Headers, Request, Response
from proxycore.net import http1
from proxycore.net.http1 import ProtocolError


def _joined(headers: Headers) -> bytes:
    """What serialising the fields gives, computed apart from Headers."""
    return b"".join(b"%s: %s\r\n" % field for field in headers.fields)


def _kept(headers: Headers) -> bool:
    index = headers._index
    return index is not None and index[0] is headers.fields and index[2] is not None


REQUEST = b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"


def test_a_plain_head_keeps_its_field_lines() -> None:
    request = http1.parse_request_head(REQUEST)
    assert _kept(request.headers)
    assert http1.assemble_origin_request_head(request) == b"GET /a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    assert http1.assemble_request_head(request) == REQUEST
    response = http1.parse_response_head(RESPONSE)
    assert _kept(response.headers)
    assert http1.assemble_response_head(response) == RESPONSE
    empty = http1.parse_response_head(b"HTTP/1.1 204 No Content\r\n\r\n")
    assert empty.headers.raw_block() == b""
    assert http1.assemble_response_head(empty) == b"HTTP/1.1 204 No Content\r\n\r\n"


@pytest.mark.parametrize(
    "line",
    [b"A:b", b"A:  b", b"A: b ", b"A:\tb", b"A: b\t", b"A:", b"A:  ", b"A: b c  "],
)
def test_other_field_lines_are_serialised_from_the_fields(line: bytes) -> None:
    response = http1.parse_response_head(b"HTTP/1.1 200 OK\r\n%s\r\nB: c\r\n\r\n" % line)
    assert not _kept(response.headers)
    assert response.headers.raw_block() == _joined(response.headers)
    assert http1.assemble_response_head(response) == b"HTTP/1.1 200 OK\r\n%s\r\n" % _joined(response.headers)


def test_an_empty_value_with_its_one_space_is_kept() -> None:
    response = http1.parse_response_head(b"HTTP/1.1 200 OK\r\nA: \r\n\r\n")
    assert response.headers.fields == ((b"A", b""),)
    assert _kept(response.headers)
    assert response.headers.raw_block() == b"A: \r\n"


_CHANGES: list[Callable[[Headers], None]] = [
    lambda h: h.__setitem__("content-type", "text/html"),
    lambda h: h.__setitem__("X-New", "1"),
    lambda h: h.__delitem__("content-length"),
    lambda h: h.add("Content-Type", "a"),
    lambda h: h.insert(0, "X-First", "1"),
    lambda h: h.set_all("content-length", ["3", "3"]),
    lambda h: h.clear(),
    lambda h: h.pop("content-type"),
    lambda h: h.update({"content-length": "4"}),
    lambda h: setattr(h, "fields", [(b"X", b"y")]),
    lambda h: setattr(h, "fields", h.fields),  # the same pairs again: still right
]


@pytest.mark.parametrize("change", _CHANGES)
def test_a_change_of_the_fields_is_sent(change: Callable[[Headers], None]) -> None:
    response = http1.parse_response_head(RESPONSE)
    response.headers.get("content-length")  # (an index lookup first, as the layers do)
    change(response.headers)
    expected = b"HTTP/1.1 200 OK\r\n%s\r\n" % _joined(response.headers)
    assert http1.assemble_response_head(response) == expected


def test_replaced_headers_and_start_lines_are_sent() -> None:
    response = http1.parse_response_head(RESPONSE)
    response.status_code = 404
    response.reason = "Nope"
    response.http_version = "HTTP/1.0"
    assert http1.assemble_response_head(response) == RESPONSE.replace(b"1.1 200 OK", b"1.0 404 Nope")
    response.headers = Headers([(b"A", b"b")])
    assert http1.assemble_response_head(response) == b"HTTP/1.0 404 Nope\r\nA: b\r\n\r\n"
    request = http1.parse_request_head(REQUEST)
    request.path = "/b"
    request.headers["host"] = "other"
    assert http1.assemble_origin_request_head(request) == b"GET /b HTTP/1.1\r\nHost: other\r\nAccept: */*\r\n\r\n"
    copied = Request.from_state(request.get_state())
    assert http1.assemble_origin_request_head(copied) == http1.assemble_origin_request_head(request)


_names = st.sampled_from([b"Host", b"A", b"Content-Length", b"x-b"])
_values = st.lists(st.sampled_from([b"a", b"1", b" ", b"\t", b":", b"\xe9"]), max_size=5).map(b"".join)
_ows = st.sampled_from([b"", b" ", b" ", b"  ", b"\t", b" \t"])


@given(st.booleans(), st.lists(st.tuples(_names, _ows, _values, _ows), max_size=4))
def test_kept_lines_are_what_serialising_gives(request: bool, lines: list[tuple[bytes, bytes, bytes, bytes]]) -> None:
    start = b"GET / HTTP/1.1\r\n" if request else b"HTTP/1.1 200 OK\r\n"
    head = start + b"".join(b"%s:%s%s%s\r\n" % line for line in lines) + b"\r\n"
    parse: Callable[[bytes], Request | Response] = http1.parse_request_head if request else http1.parse_response_head
    try:
        message = parse(head)
    except ProtocolError:
        return  # (two Host fields)
    assert message.headers.raw_block() == _joined(message.headers)
    if _kept(message.headers):
        assert message.headers.raw_block() == head[len(start) : -2]
