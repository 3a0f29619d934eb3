"""Headers answer lookups from an index by lower-case name; every change must reach it."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.http import Headers
from proxycore.net import http1
from tests.hypothesis_budget import budget

NAMES = st.sampled_from(["Host", "host", "HOST", "Content-Length", "connection", "X-A", "x-a", "É"])
VALUES = st.sampled_from(["1", "close", "a, b", "", "x"])
CHANGES = st.lists(
    st.one_of(
        st.tuples(st.just("set"), NAMES, VALUES),
        st.tuples(st.just("del"), NAMES, VALUES),
        st.tuples(st.just("add"), NAMES, VALUES),
        st.tuples(st.just("insert"), NAMES, VALUES),
        st.tuples(st.just("set_all"), NAMES, VALUES),
        st.tuples(st.just("fields"), NAMES, VALUES),
        st.tuples(st.just("clear"), NAMES, VALUES),
        st.tuples(st.just("pop"), NAMES, VALUES),
    ),
    max_size=12,
)


def scan(headers: Headers, name: str) -> list[str]:
    """The lookup the index replaces: a linear pass over the fields."""
    lower = name.encode("utf-8", "surrogateescape").lower()
    return [v.decode("utf-8", "surrogateescape") for k, v in headers.fields if k.lower() == lower]


@budget(300)
@given(CHANGES)
def test_lookups_follow_every_change(changes: list[tuple[str, str, str]]) -> None:
    headers = Headers([(b"Host", b"example.com"), (b"X-A", b"1")])
    for op, name, value in changes:
        headers.get("host")  # build the index before each change
        if op == "set":
            headers[name] = value
        elif op == "del" and name in headers:
            del headers[name]
        elif op == "add":
            headers.add(name, value)
        elif op == "insert":
            headers.insert(0, name, value)
        elif op == "set_all":
            headers.set_all(name, [value, value])
        elif op == "fields":
            headers.fields = [*headers.fields, (name.encode(), value.encode())]
        elif op == "clear":
            headers.clear()
        elif op == "pop":
            headers.pop(name, None)
        for probe in ("Host", "host", "x-a", "É", "content-length", name, name.encode()):
            text = probe if isinstance(probe, str) else probe.decode()
            expected = scan(headers, text)
            assert headers.get_all(probe) == expected
            assert (probe in headers) == bool(expected)
            assert headers.get(probe) == (", ".join(expected) if expected else None)
            lower = text.encode("utf-8", "surrogateescape").lower()
            raw = headers.get_raw(lower)  # (the framing code's lookup: raw values, no decoding)
            assert raw == ([v.encode("utf-8", "surrogateescape") for v in expected] if expected else None)
            if expected:
                assert headers[probe] == ", ".join(expected)
            else:
                with pytest.raises(KeyError):
                    headers[probe]


def test_parsed_heads_are_indexed_like_built_ones() -> None:
    request = http1.parse_request_head(
        b"GET http://a.example/ HTTP/1.1\r\nHost: a.example\r\nConnection: keep-alive\r\n"
        b"x-a: 1\r\nX-A: 2\r\n\r\n"
    )
    assert request.headers.get("x-a") == "1, 2"
    assert request.headers["CONNECTION"] == "keep-alive"
    assert "content-length" not in request.headers
    request.headers["x-a"] = "3"
    assert request.headers.get_all("X-A") == ["3"]


def test_membership_of_a_name_that_is_no_header_name() -> None:
    """``in`` answers False for what cannot name a field, as mitmproxy's does."""
    headers = Headers([(b"Host", b"a.example")])
    assert 1 not in headers
    assert None not in headers
    assert "Host" in headers and b"HOST" in headers
