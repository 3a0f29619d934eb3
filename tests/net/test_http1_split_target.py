"""``_REQUEST_LINE`` splits an absolute-form ``http://`` target itself (authority and path
groups), and ``_matched_line`` reads such a line without ``_request_line``. Whatever the
target, the result must be what ``_request_line`` makes of the whole target: the same
request line or the same error, and the regex must accept exactly the lines the plain
pattern (a run of visible bytes as the target) accepts.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from proxycore.net import http1
from proxycore.net.http1 import ProtocolError

# The request line as it was matched before the split: any visible bytes as the target.
_PLAIN_LINE = re.compile(
    rb"(%s) ([\x21-\x7e\x80-\xff]+) (HTTP/[0-9]\.[0-9])\r\n" % http1._TOKEN_TEXT
)

_TARGET_PIECES = [
    b"http://",
    b"https://",
    b"HTTP://",
    b"http:/",
    b"example.com",
    b"127.0.0.1",
    b":8080",
    b":",
    b":0",
    b":99999",
    b"[::1]",
    b"[",
    b"]",
    b"/",
    b"/a",
    b"?",
    b"?q",
    b"#",
    b"@",
    b"%",
    b"*",
    b"xn--bcher-kva",
    b"\x7f",
    b"\x80",
    b"\xe9",
    b" ",
    b"..",
    b"a" * 64,
]
_METHODS = [
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"OPTIONS",
    b"PATCH",
    b"CONNECT",
    b"get",
    b"connect",
    b"FOO",
]


def _outcome(read: object, *args: object) -> object:
    try:
        return read(*args)  # type: ignore[operator]  # (a line reader)
    except ProtocolError as e:
        return ("error", str(e))


@given(
    st.sampled_from(_METHODS),
    st.lists(st.sampled_from(_TARGET_PIECES), min_size=1, max_size=8).map(b"".join),
    st.sampled_from([b"HTTP/1.1", b"HTTP/1.0"]),
)
@example(b"GET", b"http://example.com", b"HTTP/1.1")
@example(b"GET", b"http://example.com?q/a", b"HTTP/1.1")
@example(b"GET", b"http:///a", b"HTTP/1.1")
@example(b"CONNECT", b"http://example.com/", b"HTTP/1.1")
@example(b"get", b"http://example.com:8080/a?b", b"HTTP/1.1")
def test_split_lines_read_as_whole_targets(method: bytes, target: bytes, version: bytes) -> None:
    line = b"%s %s %s\r\n" % (method, target, version)
    plain = _PLAIN_LINE.match(line)
    match = http1._REQUEST_LINE.match(line)
    assert (match is None) == (plain is None)
    if plain is None or match is None:
        return
    assert match.end() == plain.end()
    if match.group(4) is None:  # split: the authority and path groups make up the target
        assert b"http://" + match.group(2) + match.group(3) == target
    assert _outcome(http1._matched_line, match) == _outcome(http1._request_line, *plain.groups())


def test_the_usual_absolute_line_is_split(monkeypatch: pytest.MonkeyPatch) -> None:
    match = http1._REQUEST_LINE.match(b"GET http://127.0.0.1:8080/a?b HTTP/1.1\r\n")
    assert match is not None and match.group(2, 3, 4) == (b"127.0.0.1:8080", b"/a?b", None)

    def unused(*_: object) -> None:
        raise AssertionError("split again")

    monkeypatch.setattr(http1, "_request_line", unused)
    assert http1._matched_line(match) == (
        "127.0.0.1",
        8080,
        b"GET",
        b"http",
        b"127.0.0.1:8080",
        b"/a?b",
        b"HTTP/1.1",
    )
