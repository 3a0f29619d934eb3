"""The HTTP/1 head parsers' memo of start lines and field blocks against the general path.

``parse_request_head``/``parse_response_head`` remember the request lines and field blocks
of CRLF heads they read (``_REQUEST_LINES``, ``_REQUEST_FIELDS``, ``_RESPONSE_FIELDS``), and
a head whose parts are both known is built from them without a regex. Whatever the memos
hold, every head must read as ``_parse_any_*_head`` reads it: the same message or both an
error, on the first read and on every later one.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxycore.net import http1
from proxycore.net.http1 import ProtocolError
from tests.net.test_http1_head_paths import _PIECES, _heads, _outcome

_MEMOS = (http1._REQUEST_LINES, http1._REQUEST_FIELDS, http1._RESPONSE_FIELDS)


@pytest.fixture(autouse=True)
def _empty_memos() -> Iterator[None]:
    for memo in _MEMOS:
        memo.clear()
    yield
    for memo in _MEMOS:
        memo.clear()


def _clear() -> None:
    for memo in _MEMOS:
        memo.clear()


def _crossed(heads: list[bytes]) -> list[bytes]:
    """The heads, then each one's first line with every head's rest: known lines meet
    known and unknown blocks, and tails that differ only after the block."""
    parts = [(head[: head.find(b"\n") + 1], head[head.find(b"\n") + 1 :]) for head in heads]
    return heads + [line + rest for line, _ in parts for _, rest in parts]


_any_request = _heads(request=True) | st.lists(st.sampled_from(_PIECES), max_size=12).map(b"".join)
_any_response = _heads(request=False) | st.lists(st.sampled_from(_PIECES), max_size=12).map(b"".join)


@given(st.lists(_any_request, min_size=1, max_size=8))
@example([b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n"])
@example([b"GET / HTTP/1.1\r\nA: b\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\n\r\n", b"GET / HTTP/1.1\nA: b\r\n\r\n"])
@example([b"GET / HTTP/1.1\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n\r\n", b"GET / HTTP/1.1\r\n\r\n"])
@example([b"GET / HTTP/1.1\r\nA: b\r\n\r\n", b"GET / HTTP/1.1\r\nA: b\r\n\n\n"])
@example([b"GET / HTTP/1.1\r\nA:  b \r\n\r\n", b"GET / HTTP/1.1\r\nA:  b \r\n\r\n"])
def test_request_heads_read_alike_whatever_was_read_before(heads: list[bytes]) -> None:
    """Each head twice in a row (the second from the memos if the first was kept), the
    list in order so that lines and blocks of earlier heads meet later ones."""
    _clear()
    for head in _crossed(heads):
        expected = _outcome(http1._parse_any_request_head, head)
        assert _outcome(http1.parse_request_head, head) == expected
        assert _outcome(http1.parse_request_head, head) == expected


@given(st.lists(_any_response, min_size=1, max_size=8))
@example([b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", b"HTTP/1.1 404 Not Found\r\nA: b\r\n\r\n"])
@example([b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", b"HTTP/1.1 200 OK\r\nA: b\n\r\n"])
@example([b"HTTP/1.1 299 Odd\r\n\r\n", b"HTTP/1.1 299 Odd\r\n\r\n\r\n"])
@example([b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n", b"HTTP/1.1 200 OK\r\nA: b\r\n\n\n"])
def test_response_heads_read_alike_whatever_was_read_before(heads: list[bytes]) -> None:
    _clear()
    for head in _crossed(heads):
        expected = _outcome(http1._parse_any_response_head, head)
        assert _outcome(http1.parse_response_head, head) == expected
        assert _outcome(http1.parse_response_head, head) == expected


@given(_any_request, _any_response)
def test_a_block_read_in_a_response_is_no_request_block(request_head: bytes, response_head: bytes) -> None:
    """The request memo holds only blocks checked for a second Host: a block a response
    brought (where two are allowed) is read anew in a request."""
    _clear()
    response_end = response_head.find(b"\n") + 1
    request_end = request_head.find(b"\n") + 1
    crossed = request_head[:request_end] + response_head[response_end:]
    expected = _outcome(http1._parse_any_request_head, crossed)
    assert _outcome(http1.parse_response_head, response_head) == _outcome(http1._parse_any_response_head, response_head)
    assert _outcome(http1.parse_request_head, request_head) == _outcome(http1._parse_any_request_head, request_head)
    assert _outcome(http1.parse_request_head, crossed) == expected
    assert _outcome(http1.parse_request_head, crossed) == expected


def test_second_host_is_refused_after_the_block_was_read_in_a_response() -> None:
    block = b"Host: a\r\nHost: b\r\n"
    http1.parse_response_head(b"HTTP/1.1 200 OK\r\n" + block + b"\r\n")
    http1.parse_request_head(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")  # the line is known now
    with pytest.raises(ProtocolError, match="more than one Host"):
        http1.parse_request_head(b"GET / HTTP/1.1\r\n" + block + b"\r\n")
    assert block + b"\r\n" not in http1._REQUEST_FIELDS


def test_a_known_head_is_built_from_the_memos(monkeypatch: pytest.MonkeyPatch) -> None:
    head = b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n"
    first = http1.parse_request_head(head)

    def unused(*_: object) -> None:
        raise AssertionError("parsed again")

    monkeypatch.setattr(http1, "_REQUEST_LINE", None)
    monkeypatch.setattr(http1, "_request_line", unused)
    monkeypatch.setattr(http1, "_request_fields", unused)
    second = http1.parse_request_head(head)
    assert second is not first and second.data is not first.data
    assert second.data == first.data
    assert second.headers.raw_block() == b"Host: example.com\r\nAccept: */*\r\n"


def test_messages_sharing_a_block_are_changed_apart() -> None:
    """Two messages read from one block share its fields tuple and index; a change to one
    (every change assigns a new tuple) leaves the other, and the memo, as they were."""
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nX-A: b\r\n\r\n"
    first, second = http1.parse_response_head(head), http1.parse_response_head(head)
    assert first.headers.fields is second.headers.fields
    first.headers["X-A"] = "changed"
    first.headers.add("X-New", "1")
    del first.headers["content-length"]
    assert first.headers.get("x-a") == "changed" and "content-length" not in first.headers
    assert second.headers.fields == ((b"Content-Length", b"2"), (b"X-A", b"b"))
    assert second.headers.get_raw(b"content-length") == [b"2"]
    assert second.headers.raw_block() == b"Content-Length: 2\r\nX-A: b\r\n"
    third = http1.parse_response_head(head)
    assert third.headers.fields == second.headers.fields
    assert http1.assemble_response_head(third) == head
    assert http1.body_size_after(b"GET", third) == 2


def test_a_field_line_not_in_raw_block_form_is_kept_as_read() -> None:
    """A block matched by the lenient CRLF pattern only is remembered without its bytes:
    sending it on serialises the fields, as on the first read."""
    head = b"HTTP/1.1 200 OK\r\nA:b  \r\n\r\n"
    for _ in range(2):
        response = http1.parse_response_head(head)
        assert response.headers.fields == ((b"A", b"b"),)
        assert http1.assemble_response_head(response) == b"HTTP/1.1 200 OK\r\nA: b\r\n\r\n"


def test_memos_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_MEMO_ENTRIES", 4)
    for n in range(10):
        http1.parse_request_head(b"GET /%d HTTP/1.1\r\nX-N: %d\r\n\r\n" % (n, n))
        http1.parse_response_head(b"HTTP/1.1 200 OK\r\nX-N: %d\r\n\r\n" % n)
        assert all(len(memo) <= 4 for memo in _MEMOS)
    long_value = b"v" * http1._MEMO_KEY_BYTES
    http1.parse_request_head(b"GET /long HTTP/1.1\r\nX-L: " + long_value + b"\r\n\r\n")
    assert not any(long_value in key for key in http1._REQUEST_FIELDS)


def test_errors_are_not_remembered() -> None:
    head = b"GET http://example.com:99999/ HTTP/1.1\r\nHost: a\r\n\r\n"  # (a bad port)
    for _ in range(2):
        with pytest.raises(ProtocolError):
            http1.parse_request_head(head)
    assert not http1._REQUEST_LINES and not http1._REQUEST_FIELDS


_length_value = st.one_of(
    st.integers(0, 10**20).map(lambda n: str(n).encode()),
    st.lists(st.sampled_from([b"1", b"0", b"9", b" ", b"\t", b",", b"+", b"-", b"x", b"\xd9\xa1", b"1_0"]), max_size=5).map(b"".join),
)


def _framing(values: list[bytes], request: bool) -> object:
    """What the framing functions make of Content-Length fields with these values."""
    block = b"".join(b"Content-Length: %s\r\n" % v for v in values)
    try:
        if request:
            return http1.request_body_size(http1.parse_request_head(b"POST / HTTP/1.1\r\n" + block + b"\r\n"))
        return http1.body_size_after(b"GET", http1.parse_response_head(b"HTTP/1.1 200 OK\r\n" + block + b"\r\n"))
    except ProtocolError as e:
        return ("error", str(e))


@given(st.lists(st.lists(_length_value, min_size=1, max_size=3), min_size=1, max_size=6), st.booleans())
@example([[b"5"], [b"5", b"5"], [b"5"], [b"05"], [b"5 "]], True)
@example([[b"10"], [b"10", b"11"], [b"10"]], False)
def test_content_lengths_read_alike_whatever_was_read_before(fields: list[list[bytes]], request: bool) -> None:
    """Each set of Content-Length values read with the memos (``_LENGTHS`` too) empty, then
    again after all the others: the same size or the same error."""
    cold = []
    for values in fields:
        _clear()
        http1._LENGTHS.clear()
        cold.append(_framing(values, request))
    for _ in range(2):
        assert [_framing(values, request) for values in fields] == cold


def test_length_memo_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(http1, "_MEMO_ENTRIES", 4)
    for n in range(10):
        assert _framing([b"%d" % n], request=False) == n
        assert len(http1._LENGTHS) <= 4


def test_known_fields_serve_a_new_line_and_a_known_line_new_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    rest = b"Host: example.com\r\nAccept: */*\r\n\r\n"
    http1.parse_request_head(b"GET http://example.com/a HTTP/1.1\r\n" + rest)
    with monkeypatch.context() as patch:
        patch.setattr(http1, "_CANONICAL_FIELD_LINE", None)  # (the fields are not read again)
        patch.setattr(http1, "_CRLF_FIELD_LINE", None)
        request = http1.parse_request_head(b"GET http://example.com/b HTTP/1.1\r\n" + rest)
        assert (request.data.path, request.headers.fields) == (b"/b", ((b"Host", b"example.com"), (b"Accept", b"*/*")))
        with pytest.raises(ProtocolError, match="invalid port"):  # a new line is checked as ever
            http1.parse_request_head(b"GET http://example.com:0/b HTTP/1.1\r\n" + rest)
    with monkeypatch.context() as patch:
        patch.setattr(http1, "_request_line", None)  # (the line is not read again)
        request = http1.parse_request_head(b"GET http://example.com/a HTTP/1.1\r\nX-New: 1\r\n\r\n")
        assert request.headers.fields == ((b"X-New", b"1"),)
        with pytest.raises(ProtocolError, match="more than one Host"):
            http1.parse_request_head(b"GET http://example.com/a HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n")
