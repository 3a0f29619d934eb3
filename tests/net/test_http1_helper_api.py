"""mitmproxy's HTTP/1 helper API (proxycore.net.http.http1), used by code that frames
HTTP/1 itself; and the Headers details such code relies on."""

from __future__ import annotations

import pytest

from proxycore.http import Headers
from proxycore.net.http import http1
from proxycore.net.http.http1.read import _read_headers, _read_request_line, _read_response_line
from proxycore.test.tutils import treq, tresp


def test_a_head_read_from_lines_round_trips_through_assembly():
    request = http1.read_request_head([b"POST http://h.example:8080/x?y=1 HTTP/1.1\r\n", b"A: 1\r\n", b"B: 2\r\n"])
    assert (request.host, request.port, request.path) == ("h.example", 8080, "/x?y=1")
    assert request.content is None
    request.content = b"hi"
    assert http1.assemble_request(request) == (
        b"POST http://h.example:8080/x?y=1 HTTP/1.1\r\nA: 1\r\nB: 2\r\ncontent-length: 2\r\n\r\nhi"
    )
    response = http1.read_response_head([b"HTTP/1.0 404 Not Here\r\n", b"X: y\r\n"])
    assert (response.status_code, response.reason, response.headers["x"]) == (404, "Not Here", "y")


@pytest.mark.parametrize(
    "line",
    [b"", b"GET /", b"GET / HTTQ/1.1", b"CONNECT host HTTP/1.1", b"GET ftp://x/ HTTP/1.1"],
)
def test_bad_request_lines_are_value_errors(line):
    with pytest.raises(ValueError):
        _read_request_line(line)


def test_response_lines():
    assert _read_response_line(b"HTTP/1.1 204") == (b"HTTP/1.1", 204, b"")
    for bad in (b"HTTP/1.1 2000 OK", b"ICY 200 OK", b"HTTP/1.1"):
        with pytest.raises(ValueError):
            _read_response_line(bad)


def test_folded_header_lines_join_the_previous_field():
    # mitmproxy keeps the line break (b"1\r\n more"); our model refuses CR/LF in values
    assert _read_headers([b"A: 1\r\n", b" more\r\n"]).fields == ((b"A", b"1 more"),)
    with pytest.raises(ValueError):
        _read_headers([b" orphan\r\n"])


def test_body_size_framing():
    assert http1.expected_http_body_size(treq(headers=Headers(content_length="5"))) == 5
    assert http1.expected_http_body_size(treq(headers=Headers(transfer_encoding="chunked"))) is None
    assert http1.expected_http_body_size(treq(), tresp(headers=Headers())) == -1
    assert http1.expected_http_body_size(treq(method=b"HEAD"), tresp()) == 0
    for bad in (Headers(transfer_encoding="x-custom"), Headers([(b"content-length", b"1"), (b"content-length", b"1")])):
        with pytest.raises(ValueError):
            http1.expected_http_body_size(treq(headers=bad))


def test_chunked_assembly_needs_the_header_for_trailers():
    chunked = Headers(transfer_encoding="chunked")
    assert b"".join(http1.assemble_body(chunked, [b"ab", b""], Headers(t="1"))) == b"2\r\nab\r\n0\r\nt: 1\r\n\r\n"
    with pytest.raises(ValueError):
        list(http1.assemble_body(Headers(), [b"ab"], Headers(t="1")))


def test_connection_close_by_header_and_version():
    assert http1.connection_close(b"HTTP/1.0", Headers())
    assert not http1.connection_close("HTTP/1.0", Headers(connection="Keep-Alive"))
    assert http1.connection_close("HTTP/1.1", Headers(connection="upgrade, close"))
    assert not http1.connection_close("HTTP/1.1", Headers(connection="keep-alive"))
    # Repeated Connection fields count together, whichever carries the token.
    assert http1.connection_close("HTTP/1.1", Headers([(b"Connection", b"keep-alive"), (b"Connection", b" Close")]))
    assert not http1.connection_close("HTTP/1.0", Headers([(b"Connection", b"upgrade"), (b"connection", b"keep-alive")]))


def test_headers_fields_is_a_tuple_and_bytes_end_each_line():
    headers = Headers(a="1")
    headers.add("b", "2")
    headers.insert(0, "c", "3")
    assert headers.fields == ((b"c", b"3"), (b"a", b"1"), (b"b", b"2"))
    with pytest.raises(AttributeError):
        headers.fields.append((b"d", b"4"))  # type: ignore[attr-defined]
    headers.fields = [(b"x", b"y")]
    assert headers.fields == ((b"x", b"y"),)
    assert bytes(headers) == b"x: y\r\n" and bytes(Headers()) == b""


def test_headers_clear_empties_them():
    headers = Headers(a="1", b="2")
    headers.clear()
    assert headers.fields == () and len(headers) == 0 and bytes(headers) == b""


def test_keyword_headers_replace_fields_of_that_name():
    headers = Headers([(b"Host", b"old"), (b"Accept", b"*/*")], host="new", x_extra="1")
    assert headers.fields == ((b"Accept", b"*/*"), (b"host", b"new"), (b"x-extra", b"1"))
