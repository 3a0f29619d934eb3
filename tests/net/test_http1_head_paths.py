"""The HTTP/1 head parsers' one-pass path for CRLF heads against their general path.

``parse_request_head``/``parse_response_head`` read the usual head (CRLF, plain field lines)
with a few regex calls and hand every other head to ``_parse_any_*_head``, which accepts
the same heads and says what is wrong with the others. Both must make the same of every
head: the same message, or both an error (tests/layers/test_http1_oracle.py compares the
whole reader with h11).
"""

from __future__ import annotations

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxycore.net import http1
from proxycore.net.http1 import ProtocolError

# Pieces a head is made of, and the bytes that make one invalid or odd.
_PIECES = [
    b"GET", b"CONNECT", b"get", b"HTTP/1.1", b"HTTP/1.0", b"HTTP/9.9", b"HTTP/1", b"200", b"20", b"2000",
    b"OK", b"Not Found", b"http://", b"https://", b"HTTP://", b"example.com", b"127.0.0.1:8080", b"[::1]:443",
    b"/", b"/a?b", b"?q", b"*", b"Host", b"host", b"HOST", b"Content-Length", b"Transfer-Encoding", b"X-A",
    b"5", b"chunked", b"a b", b" ", b"  ", b"\t", b":", b": ", b"\r\n", b"\n", b"\r", b"\r\n\r\n", b"\x00",
    b"\x01", b"\x0b", b"\x0c", b"\x1f", b"\x7f", b"\x80", b"\xff", b"(", b"\"", b"@",
]

_value = st.lists(st.sampled_from([b"a", b"1", b" ", b"\t", b":", b",", b"\x7f", b"\xe9", b"\x00", b"\r", b"\n"]), max_size=6).map(b"".join)
_name = st.sampled_from([b"Host", b"host", b"Content-Length", b"X-A", b"x_b", b"", b"a b", b"(", b" Host"])
_eol = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])


@st.composite
def _heads(draw: st.DrawFn, request: bool) -> bytes:
    if request:
        start = draw(st.sampled_from([
            b"GET http://127.0.0.1:8080/small HTTP/1.1", b"GET / HTTP/1.1", b"POST /a?b HTTP/1.0",
            b"CONNECT example.com:443 HTTP/1.1", b"GET https://example.com?x HTTP/1.1", b"OPTIONS * HTTP/1.1",
            b"GET  / HTTP/1.1", b"GET / HTTP/1.1 ", b"G(T / HTTP/1.1", b"GET /\x7f HTTP/1.1", b"GET / HTTP/x",
            b"GET ftp://x/ HTTP/1.1", b"GET http://exa mple/ HTTP/1.1", b"GET http://[::1/ HTTP/1.1",
        ]))
    else:
        start = draw(st.sampled_from([
            b"HTTP/1.1 200 OK", b"HTTP/1.1 200", b"HTTP/1.1 200 ", b"HTTP/1.0 404 Not  Found", b"HTTP/1.1 200 \xe9t\xe9",
            b"HTTP/1.1 2000 OK", b"HTTP/1.1 20 OK", b"HTTP/2 200 OK", b"HTTP/1.1  200 OK", b"HTTP/1.1 200 O\tK\x7f",
        ]))
    head = start + draw(_eol)
    for _ in range(draw(st.integers(0, 4))):
        fold = draw(st.sampled_from([b"", b"", b"", b" ", b"\t"]))
        head += fold + draw(_name) + draw(st.sampled_from([b":", b": ", b":\t", b" :", b""])) + draw(_value) + draw(_eol)
    return head + draw(st.sampled_from([b"\r\n", b"\r\n", b"\n", b"", b"\r\n\r\n"]))


def _outcome(parse, head: bytes) -> object:
    try:
        message = parse(head)
    except ProtocolError as e:
        return ("error", str(e))
    d = message.data
    common = (d.http_version, d.headers.fields, d.content, d.trailers)
    if hasattr(d, "status_code"):
        return ("response", d.status_code, d.reason, *common)
    return ("request", d.host, d.port, d.method, d.scheme, d.authority, d.path, *common)


@given(_heads(request=True) | st.lists(st.sampled_from(_PIECES), max_size=12).map(b"".join))
@example(b"GET / HTTP/1.1\r\nA: b\r\ngarbage\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nA: b\x00c\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nA: b\nC: d\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nHost: a\r\nhost: b\r\n\r\n")
@example(b"GET / HTTP/1.1\r\nA:  b c \t\r\nB:\r\n\r\n")
def test_request_heads_read_alike(head: bytes) -> None:
    assert _outcome(http1.parse_request_head, head) == _outcome(http1._parse_any_request_head, head)


@given(_heads(request=False) | st.lists(st.sampled_from(_PIECES), max_size=12).map(b"".join))
@example(b"HTTP/1.1 200 OK\r\nA: b\r\n\x01\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nA: \x0b\r\n\r\n")
@example(b"HTTP/1.1 200 O\x00K\r\n\r\n")
@example(b"HTTP/1.1 200 OK\r\nA: b\r\n folded\r\n\r\n")
@example(b"HTTP/1.1 204 No Content\r\n\r\n")
def test_response_heads_read_alike(head: bytes) -> None:
    assert _outcome(http1.parse_response_head, head) == _outcome(http1._parse_any_response_head, head)


@pytest.mark.parametrize(
    "head",
    [
        b"GET http://127.0.0.1:18080/small HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n\r\n",
        b"POST /form HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\nUser-Agent: x y\t\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 100\r\n\r\n",
        b"HTTP/1.0 404 Not Found\r\n\r\n",
    ],
)
def test_usual_heads_take_the_one_pass_path(head: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    """The point of the one-pass path: a plain CRLF head never reaches the general one."""

    def general(_: bytes) -> None:
        raise AssertionError("general path taken")

    monkeypatch.setattr(http1, "_split_head", general)
    parse = http1.parse_response_head if head.startswith(b"HTTP/") else http1.parse_request_head
    message = parse(head)
    assert message.headers.fields == tuple(
        tuple(part.strip() for part in line.split(b":", 1)) for line in head.split(b"\r\n")[1:-2]
    )


@pytest.mark.parametrize("key", sorted(http1._USUAL_STATUS_LINES))
def test_usual_status_lines_read_as_the_regex_reads_them(key: bytes) -> None:
    line = key + b"\n"  # (the keys are what a head's partition at its first LF gives)
    match = http1._STATUS_LINE.fullmatch(line)
    assert match is not None
    version, status, reason = match.groups()
    assert http1._USUAL_STATUS_LINES[key] == (version, int(status), reason)
    for head in (line + b"A: b\r\n\r\n", line + b"A:b \r\n\r\n", line.replace(b"\r\n", b"\n") + b"A: b\n\n",
                 line + b"A: b\n\r\n", line + b" A: b\r\n\r\n", line + b"\r\n"):
        assert _outcome(http1.parse_response_head, head) == _outcome(http1._parse_any_response_head, head)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (b"http://a.example/b?c", (b"http", b"a.example", b"/b?c", "a.example", 80)),
        (b"http://a.example:8080", (b"http", b"a.example:8080", b"/", "a.example", 8080)),
        (b"http://a.example?q", (b"http", b"a.example", b"/?q", "a.example", 80)),
        (b"HTTP://A.example/", (b"http", b"A.example", b"/", "a.example", 80)),
        (b"Http://a.example/", (b"http", b"a.example", b"/", "a.example", 80)),
        (b"https://a.example/", (b"https", b"a.example", b"/", "a.example", 443)),
        (b"http://", None),
        (b"http:/a.example/", None),
        (b"http://a b/", None),
        (b"ftp://a.example/", None),
    ],
)
def test_absolute_targets_with_and_without_the_http_shortcut(target: bytes, expected: tuple | None) -> None:
    """``http://`` in lower case skips the scheme's split and lower(); any other spelling
    takes the general way: both give the same parts and reject the same targets."""
    head = b"GET " + target + b" HTTP/1.1\r\nHost: a.example\r\n\r\n"
    if expected is None:
        with pytest.raises(ProtocolError):
            http1.parse_request_head(head)
        return
    d = http1.parse_request_head(head).data
    assert (d.scheme, d.authority, d.path, d.host, d.port) == expected
