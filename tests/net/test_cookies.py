"""Cookie and Set-Cookie parsing: the results mitmproxy 12.3.1 gives for the same headers."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.net.http.cookies import CookieAttrs, parse_cookie_header, parse_set_cookie_header

# (header, what mitmproxy.net.http.cookies.parse_set_cookie_header returns)
SET_COOKIE = [
    ("sid=abc; Path=/; HttpOnly; Secure; SameSite=Lax",
     [("sid", "abc", [("Path", "/"), ("HttpOnly", None), ("Secure", None), ("SameSite", "Lax")])]),
    ("a=1, b=2; Domain=x.org", [("a", "1", []), ("b", "2", [("Domain", "x.org")])]),
    ("id=7; Expires=Wed, 09 Jun 2021 10:18:14 GMT; Path=/p",
     [("id", "7", [("Expires", "Wed, 09 Jun 2021 10:18:14 GMT"), ("Path", "/p")])]),
    ('q="quo\\"ted; x"; max-age=5', [("q", 'quo"ted; x', [("max-age", "5")])]),
    ("flag", [("flag", None, [])]),
    ("=v; a", [("", "v", [("a", None)])]),
    ("x=1; path=/a; Path=/b", [("x", "1", [("path", "/a"), ("Path", "/b")])]),
    ("", []),
]
COOKIE = [
    ('a=1; b="two; x"; c', [("a", "1"), ("b", "two; x"), ("c", "")]),
    ("  d=4;;e=", [("d", "4"), ("e", "")]),
    ("=x; y=", [("", "x"), ("y", "")]),
]


@pytest.mark.parametrize("header, expected", SET_COOKIE)
def test_set_cookie_like_mitmproxy(header, expected):
    assert [(n, v, a.fields) for n, v, a in parse_set_cookie_header(header)] == expected


@pytest.mark.parametrize("header, expected", COOKIE)
def test_cookie_like_mitmproxy(header, expected):
    assert parse_cookie_header(header) == expected


def test_attributes_are_case_insensitive_and_the_last_value_wins():
    attrs = CookieAttrs([("path", "/a"), ("Path", "/b"), ("HttpOnly", None)])
    assert attrs.get("PATH") == "/b" and "httponly" in attrs and "secure" not in attrs
    assert list(attrs) == ["path", "HttpOnly"] and attrs["Path"] == "/b"
    with pytest.raises(KeyError):
        attrs["domain"]


@given(st.text(alphabet='ab=;, "\\\tExpires', max_size=60))
def test_parsers_take_any_text(header):
    for name, _value, attrs in parse_set_cookie_header(header):
        assert isinstance(name, str) and isinstance(attrs, CookieAttrs)
    assert all(isinstance(k, str) for k, _ in parse_cookie_header(header))
