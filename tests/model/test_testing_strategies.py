"""The hypothesis strategies in proxycore.testing produce what they promise, and compose
with proxycore's own parsers the way a user's property test would."""

from __future__ import annotations

from hypothesis import example, given
from hypothesis import strategies as st

from proxycore import testing
from proxycore.http import Headers, Request, Response
from proxycore.net import http1


@given(testing.headers())
def test_headers_are_valid_fields(headers):
    assert isinstance(headers, Headers)
    for name, value in headers.fields:
        assert name and all(chr(c) in testing._TOKEN for c in name)
        assert b"\r" not in value and b"\n" not in value and value == value.strip(b" \t")


# Content-Length counts the body as sent: its raw bytes (a generated Content-Encoding such as
# "0" is no coding anyone can undo, so `content` would refuse it, as mitmproxy's does).
@example(
    Request("a", 1, "GET", "http", "a:1", "/", "HTTP/1.1",
            Headers([(b"CONTENT-ENCODING", b"0"), (b"content-length", b"0")]), b"", None, 0.0, 1.0)
)
@given(testing.requests())
def test_requests_survive_assemble_and_parse(request):
    assert isinstance(request, Request)
    parsed = http1.parse_request_head(http1.assemble_request_head(request))
    assert (parsed.method, parsed.path) == (request.method, request.path)
    assert parsed.headers.fields == request.headers.fields
    assert int(request.headers["content-length"]) == len(request.raw_content)


@given(testing.responses())
def test_responses_survive_assemble_and_parse(response):
    assert isinstance(response, Response) and 100 <= response.status_code <= 599
    parsed = http1.parse_response_head(http1.assemble_response_head(response))
    assert parsed.status_code == response.status_code
    assert parsed.headers.fields == response.headers.fields


@given(st.binary(max_size=100).flatmap(lambda data: st.tuples(st.just(data), testing.chunkings(data))))
def test_chunkings_cover_the_data_in_order(case):
    data, chunks = case
    assert b"".join(chunks) == data
    assert len(chunks) >= 1
