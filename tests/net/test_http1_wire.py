"""HTTP/1 wire format: head parsing, body framing, chunked decoding (incl. properties)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.http import Headers, Request, Response
from proxycore.net import http1
from proxycore.net.http1 import BodyData, BodyEnd, BodyReader, ProtocolError


def test_parse_absolute_form():
    r = http1.parse_request_head(b"GET http://Example.com:8080/a/b?c=d HTTP/1.1\r\nHost: x\r\n\r\n")
    assert (r.method, r.scheme, r.host, r.port, r.path) == ("GET", "http", "example.com", 8080, "/a/b?c=d")
    assert r.headers["host"] == "x"


def test_parse_absolute_form_without_path():
    r = http1.parse_request_head(b"GET https://example.com?x HTTP/1.1\r\n\r\n")
    assert (r.scheme, r.port, r.path) == ("https", 443, "/?x")


@pytest.mark.parametrize(
    "target, authority, path",
    [
        (b"http://h", b"h", b"/"),
        (b"http://h/", b"h", b"/"),
        (b"http://h/a?b", b"h", b"/a?b"),
        (b"http://h?x/y", b"h", b"/?x/y"),
        (b"http://h?", b"h", b"/?"),
        (b"http://h:81/a/b?c/d?e", b"h:81", b"/a/b?c/d?e"),
        (b"HTTPS://[::1]:8443?q", b"[::1]:8443", b"/?q"),
    ],
)
def test_absolute_form_splits_at_the_first_slash_or_question_mark(target: bytes, authority: bytes, path: bytes):
    r = http1.parse_request_head(b"GET %s HTTP/1.1\r\n\r\n" % target)
    assert (r.data.authority, r.data.path, r.data.scheme) == (authority, path, target.split(b":")[0].lower())


def test_parse_connect_and_ipv6():
    r = http1.parse_request_head(b"CONNECT [::1]:443 HTTP/1.1\r\n\r\n")
    assert (r.host, r.port, r.authority) == ("::1", 443, "[::1]:443")


def test_parse_origin_form():
    r = http1.parse_request_head(b"GET /index.html HTTP/1.0\r\n\r\n")
    assert (r.path, r.host, r.http_version) == ("/index.html", "", "HTTP/1.0")


@pytest.mark.parametrize(
    "head",
    [
        b"GET / HTTP/1.1 extra\r\n\r\n",
        b"GET / HTTP/x\r\n\r\n",
        b"G(T / HTTP/1.1\r\n\r\n",
        b"GET / HTTP/1.1\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nno colon\r\n\r\n",
        b"CONNECT example.com HTTP/1.1\r\n\r\n",
        b"GET ftp://x/ HTTP/1.1\r\n\r\n",
    ],
)
def test_parse_request_errors(head):
    with pytest.raises(ProtocolError):
        http1.parse_request_head(head)


def test_parse_response():
    r = http1.parse_response_head(b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n")
    assert (r.status_code, r.reason, r.headers["a"]) == (404, "Not Found", "b")
    assert http1.parse_response_head(b"HTTP/1.1 200\r\n\r\n").reason == ""


@pytest.mark.parametrize(
    "head",
    [b"HTTP/1.1 20 OK\r\n\r\n", b"HTTP/1.1 2000 OK\r\n\r\n", b"HTTP/1.1 2x0 OK\r\n\r\n",
     b"HTTP/1.1 +20 OK\r\n\r\n", b"HTTP/1.1 \xd9\xa200 OK\r\n\r\n", b"HTTP/1.x 200 OK\r\n\r\n",
     b"HTTPS/1.1 200 OK\r\n\r\n"],
)
def test_parse_response_errors(head):
    with pytest.raises(ProtocolError):
        http1.parse_response_head(head)


def test_common_methods_and_versions_are_what_the_patterns_accept():
    """The parsers take these from a set before asking the regex: they must match it."""
    assert all(http1._TOKEN.fullmatch(m) for m in http1._COMMON_METHODS)
    assert all(http1._VERSION.fullmatch(v) for v in http1._COMMON_VERSIONS)
    for method in (b"PROPFIND", b"get"):  # others still go by the pattern
        assert http1.parse_request_head(method + b" / HTTP/1.1\r\n\r\n").data.method == method
    assert http1.parse_response_head(b"HTTP/2.0 200 OK\r\n\r\n").data.http_version == b"HTTP/2.0"


def req(head: bytes) -> Request:
    return http1.parse_request_head(head)


def resp(head: bytes) -> Response:
    return http1.parse_response_head(head)


def test_request_body_size():
    assert http1.request_body_size(req(b"GET / HTTP/1.1\r\n\r\n")) == 0
    assert http1.request_body_size(req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")) == 5
    assert http1.request_body_size(req(b"POST / HTTP/1.1\r\nContent-Length: 5, 5\r\n\r\n")) == 5
    assert http1.request_body_size(req(b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n")) == http1.CHUNKED
    for bad in [
        b"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: -1\r\n\r\n",
        b"POST / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
        b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
    ]:
        with pytest.raises(ProtocolError):
            http1.request_body_size(req(bad))


def test_response_body_size():
    ok = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n")
    assert http1.response_body_size("GET", ok) == 9
    assert http1.response_body_size("HEAD", ok) == 0
    assert http1.response_body_size("CONNECT", ok) == 0
    assert http1.response_body_size("GET", resp(b"HTTP/1.1 304 X\r\nContent-Length: 9\r\n\r\n")) == 0
    assert http1.response_body_size("GET", resp(b"HTTP/1.1 101 X\r\n\r\n")) == 0
    assert http1.response_body_size("GET", resp(b"HTTP/1.1 200 X\r\n\r\n")) == http1.UNTIL_EOF
    assert http1.response_body_size("GET", resp(b"HTTP/1.1 200 X\r\nTransfer-Encoding: gzip\r\n\r\n")) == http1.UNTIL_EOF


@pytest.mark.parametrize(
    "field, size",
    [
        (b"Content-Length: 100", 100),
        (b"Content-Length: 000", 0),
        (b"Content-Length: 999999999999999999", 999999999999999999),
        (b"Content-Length: 5\r\nContent-Length: 5", 5),
        (b"Content-Length: 5,5", 5),
        (b"Content-Length: 1000000000000000000", ProtocolError),  # 19 digits
        (b"Content-Length: \xd9\xa1", ProtocolError),  # a digit, but not an ASCII one
        (b"Content-Length: +5", ProtocolError),
        (b"Content-Length: 5 5", ProtocolError),
        (b"Content-Length:", ProtocolError),
        (b"Content-Length: 5\r\nContent-Length: 6", ProtocolError),
        (b"Content-Length: 5\r\nContent-Length:", ProtocolError),
    ],
)
def test_content_length_values(field: bytes, size: int | type) -> None:
    """A single plain value is read without the general check: the same outcome."""
    for message, body_size in [
        (req(b"POST / HTTP/1.1\r\n%s\r\n\r\n" % field), http1.request_body_size),
        (resp(b"HTTP/1.1 200 OK\r\n%s\r\n\r\n" % field), lambda r: http1.response_body_size("GET", r)),
    ]:
        if size is ProtocolError:
            with pytest.raises(ProtocolError):
                body_size(message)
        else:
            assert body_size(message) == size


@pytest.mark.parametrize("version", [b"HTTP/1.1", b"HTTP/1.0"])
@pytest.mark.parametrize(
    "fields",
    [
        b"",
        b"Connection: close\r\n",
        b"Connection: keep-alive\r\n",
        b"Connection: a, Close\r\n",
        b"Connection: keep-alive\r\nconnection: Close\r\n",  # repeated fields count together
    ],
)
def test_message_closes_as_connection_close(version: bytes, fields: bytes) -> None:
    for message in [req(b"GET / %s\r\n%s\r\n" % (version, fields)), resp(b"%s 200 OK\r\n%s\r\n" % (version, fields))]:
        expected = http1.connection_close(message.http_version, message.headers)
        assert http1.message_closes(message) is expected
        assert expected is (version == b"HTTP/1.0" and b"keep-alive" not in fields or b"lose" in fields)


def read_all(reader: BodyReader, chunks: list[bytes]) -> tuple[bytes, Headers | None, bytes, bool]:
    body, trailers, rest, done = b"", None, b"", False
    for c in chunks:
        parts, leftover = reader.feed(c)
        rest += leftover
        for p in parts:
            if isinstance(p, BodyData):
                body += p.data
            else:
                assert isinstance(p, BodyEnd)
                trailers, done = p.trailers, True
    return body, trailers, rest, done


def test_chunked_with_extensions_and_trailers():
    data = b"4;name=value\r\nWiki\r\n5\r\npedia\r\n0\r\nExpires: never\r\n\r\nNEXT"
    body, trailers, rest, done = read_all(BodyReader(http1.CHUNKED), [data])
    assert (body, rest, done) == (b"Wikipedia", b"NEXT", True)
    assert trailers["expires"] == "never"


@pytest.mark.parametrize("bad", [b"zz\r\n", b"-1\r\n", b"0x1\r\n", b"3\r\nabcX\r\n", b"1" * 5000])
def test_chunked_errors(bad):
    with pytest.raises(ProtocolError):
        read_all(BodyReader(http1.CHUNKED), [bad])


def test_eof_framing():
    reader = BodyReader(http1.UNTIL_EOF)
    body, _, _, done = read_all(reader, [b"a", b"b"])
    assert body == b"ab" and not done
    assert reader.eof() == [BodyEnd()]
    with pytest.raises(ProtocolError):
        BodyReader(10).eof()


def split_points(data: bytes):
    return st.lists(st.integers(0, len(data)), max_size=8).map(
        lambda cuts: [data[a:b] for a, b in zip([0, *sorted(cuts)], [*sorted(cuts), len(data)], strict=True)]
    )


@given(
    st.lists(st.binary(min_size=1, max_size=50), max_size=6),
    st.data(),
)
def test_chunked_roundtrip_any_split(chunks, data):
    encoded = b"".join(http1.chunk(c) for c in chunks) + http1.last_chunk(Headers(x_t="1")) + b"rest"
    pieces = data.draw(split_points(encoded))
    body, trailers, rest, done = read_all(BodyReader(http1.CHUNKED), pieces)
    assert done and body == b"".join(chunks) and rest == b"rest"
    assert trailers is not None and trailers["x-t"] == "1"


@given(st.binary(max_size=300), st.data())
def test_body_reader_never_raises_unexpectedly(blob, data):
    for size in (http1.CHUNKED, http1.UNTIL_EOF, 0, 10):
        reader = BodyReader(size)
        try:
            read_all(reader, data.draw(split_points(blob)))
            reader.eof()
        except ProtocolError:
            pass


@given(st.binary(max_size=200))
def test_head_parsers_only_raise_protocol_error(blob):
    for parse in (http1.parse_request_head, http1.parse_response_head):
        try:
            parse(blob)
        except ProtocolError:
            pass


@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "OPTIONS"]),
    path=st.from_regex(r"\A/[a-zA-Z0-9/_.~%-]{0,20}(\?[a-z0-9=&]{0,10})?\Z"),
    headers=st.lists(
        st.tuples(st.from_regex(r"\A[A-Za-z][A-Za-z0-9-]{0,10}\Z"), st.from_regex(r"\A[ -~]{0,20}\Z").map(str.strip)),
        max_size=5,
    ),
)
def test_request_head_roundtrip(method, path, headers):
    raw = f"{method} {path} HTTP/1.1\r\n".encode() + b"".join(
        f"{k}: {v}\r\n".encode() for k, v in headers
    ) + b"\r\n"
    r = http1.parse_request_head(raw)
    assert http1.assemble_origin_request_head(r) == raw


def test_header_lines_split_at_once_report_the_first_bad_line():
    """The field lines are matched all at once; one bad line among good ones is still
    found and named (not skipped), whatever its position and the line ending."""
    for sep in (b"\r\n", b"\n"):
        good = [b"A: 1", b"B:2  ", b"C:\t x y \t"]
        for position in range(len(good) + 1):
            for bad in (b"bad line", b"x y: z", b"N : v", b"", b"N@me: v"):
                lines = [b"GET / HTTP/1.1", *good[:position], bad, *good[position:]]
                with pytest.raises(ProtocolError, match="invalid header line"):
                    http1._split_head(sep.join(lines) + sep + sep)
        first, fields = http1._split_head(sep.join([b"GET / HTTP/1.1", *good]) + sep + sep)
        assert first == b"GET / HTTP/1.1"
        assert fields == [(b"A", b"1"), (b"B", b"2"), (b"C", b"x y")]


@given(st.lists(st.tuples(st.from_regex(rb"\A[A-Za-z0-9!#$%&'*+.^_`|~-]{1,8}\Z"),
                          st.binary(max_size=12).filter(lambda v: b"\r" not in v and b"\n" not in v))))
def test_header_fields_as_split_line_by_line(fields):
    """Property: the fields are those a line-by-line split gives (values stripped of blanks)."""
    head = b"GET / HTTP/1.1\r\n" + b"".join(b"%s: %s\r\n" % field for field in fields) + b"\r\n"
    try:
        _, parsed = http1._split_head(head)
    except ProtocolError:
        assert any(http1._BAD_HEAD_BYTE.search(value) for _, value in fields)
        return
    assert parsed == [(name, value.strip(b" \t")) for name, value in fields]


def test_authorities_are_parsed_once_and_errors_every_time():
    http1._AUTHORITIES.clear()
    assert http1.parse_authority(b"Example.com:8080", 80) == ("example.com", 8080)
    assert http1._AUTHORITIES == {(b"Example.com:8080", 80): ("example.com", 8080)}
    assert http1.parse_authority(b"Example.com:8080", 80) == ("example.com", 8080)
    assert http1.parse_authority(b"example.com", 443) == ("example.com", 443)
    for _ in range(2):  # a refused authority is checked (and refused) again
        with pytest.raises(ProtocolError):
            http1.parse_authority(b"example.com:99999", 80)
    assert len(http1._AUTHORITIES) == 2


def test_authority_cache_is_bounded():
    http1._AUTHORITIES.clear()
    for i in range(http1._AUTHORITIES_MAX + 10):
        assert http1.parse_authority(b"h%d.example" % i, 80) == (f"h{i}.example", 80)
    assert len(http1._AUTHORITIES) <= http1._AUTHORITIES_MAX


@pytest.mark.parametrize(
    "fields, chunked",
    [
        (b"", False),
        (b"Transfer-Encoding: chunked\r\n", True),
        (b"Transfer-Encoding: gzip, Chunked \r\n", True),
        (b"Transfer-Encoding: chunked, gzip\r\n", False),
        (b"Transfer-Encoding: gzip\r\ntransfer-encoding: chunked\r\n", True),
        (b"Transfer-Encoding: chunked\r\nTransfer-Encoding: gzip\r\n", False),
    ],
)
def test_is_chunked_reads_the_final_coding(fields: bytes, chunked: bool) -> None:
    assert http1.is_chunked(resp(b"HTTP/1.1 200 OK\r\n%s\r\n" % fields).headers) is chunked


@pytest.mark.parametrize(
    "fields",
    [
        b"",
        b"Content-Length: 3\r\n",
        b"Transfer-Encoding: chunked\r\n",
        b"Transfer-Encoding: gzip, Chunked \r\nContent-Length: 3\r\n",
        b"Transfer-Encoding: chunked, gzip\r\n",
        b"Transfer-Encoding: chunked, gzip\r\nContent-Length: 3\r\n",
    ],
)
@pytest.mark.parametrize("bodiless, ended", [(False, False), (True, False), (False, True), (True, True)])
def test_outgoing_framing_reads_final_coding_and_length(fields: bytes, bodiless: bool, ended: bool) -> None:
    headers = resp(b"HTTP/1.1 200 OK\r\n%s\r\n" % fields).headers
    has_length = "content-length" in headers
    if bodiless or (ended and not has_length):
        expected = "none"
    elif http1.is_chunked(headers):
        expected = "chunked"
    else:
        expected = "length" if has_length else "eof"
    assert http1.outgoing_framing(headers, bodiless, ended) == expected


def test_framing_reads_headers_changed_after_a_lookup() -> None:
    # The framing functions read the Headers index inline: a change (a new fields tuple)
    # must be seen, as an addon's change between parse and send is.
    r = resp(b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\n")
    assert http1.outgoing_framing(r.headers, False) == "length"
    r.headers["transfer-encoding"] = "chunked"
    del r.headers["content-length"]
    assert http1.outgoing_framing(r.headers, False) == "chunked"
    assert http1.response_body_size("GET", r) == http1.CHUNKED
    q = req(b"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\n")
    assert http1.request_body_size(q) == 5
    q.headers["content-length"] = "7"
    assert http1.request_body_size(q) == 7
    q.headers["transfer-encoding"] = "chunked"
    with pytest.raises(ProtocolError, match="both"):
        http1.request_body_size(q)


@pytest.mark.parametrize("request_line", [b"GET / HTTP/1.1", b"GET / HTTP/1.0"])
@pytest.mark.parametrize("request_fields", [b"", b"Connection: close\r\n", b"Connection: keep-alive\r\n"])
@pytest.mark.parametrize("status_line", [b"HTTP/1.1 200 OK", b"HTTP/1.0 200 OK"])
@pytest.mark.parametrize("response_fields", [b"", b"connection: Close\r\n", b"Connection: Keep-Alive\r\n"])
def test_exchange_closes_is_either_message_closing(
    request_line: bytes, request_fields: bytes, status_line: bytes, response_fields: bytes
) -> None:
    q = req(b"%s\r\n%s\r\n" % (request_line, request_fields))
    r = resp(b"%s\r\n%s\r\n" % (status_line, response_fields))
    assert http1.exchange_closes(q, r) == (http1.message_closes(q) or http1.message_closes(r))


@pytest.mark.parametrize(
    "fields, refused",
    [
        (b"Host: a\r\nX: 1\r\n", False),
        (b"X: host: b\r\nHost: a\r\n", False),
        (b"Host: a\r\nhOsT: a\r\n", True),
        (b"Host: a\r\nX: 1\r\nHOST:b \r\n", True),  # (a line for the general reading path)
    ],
)
@pytest.mark.parametrize("eol", [b"\r\n", b"\n"])
def test_a_second_host_field_is_refused(fields: bytes, refused: bool, eol: bytes) -> None:
    head = (b"GET / HTTP/1.1\r\n" + fields + b"\r\n").replace(b"\r\n", eol)
    if refused:
        with pytest.raises(ProtocolError, match="more than one Host"):
            http1.parse_request_head(head)
    else:
        assert http1.parse_request_head(head).headers["host"] == "a"
