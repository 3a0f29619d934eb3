"""Request/Response details code written for mitmproxy relies on (URL of ``OPTIONS *``,
repr without a host, port type, the multipart and cookie helpers at their module paths)."""

from __future__ import annotations

import pytest

from proxycore.http import Headers, Request
from proxycore.net.http import cookies, multipart
from proxycore.test.tutils import treq, tresp


def test_options_asterisk_has_no_path_in_its_url():
    request = treq(method=b"OPTIONS", path=b"*")
    assert request.url == "http://address:22"
    assert request.pretty_url == "http://address:22"
    assert treq(path=b"/x").url == "http://address:22/x"


def test_repr_without_host_and_port_must_be_an_int():
    request = treq()
    request.host = None
    assert repr(request) == "Request(GET /path)"
    with pytest.raises(ValueError):
        treq().port = "80"


def test_multipart_round_trip_and_bad_bodies():
    request = treq()
    request.multipart_form = [(b"a", b"1"), ("b", "two")]
    assert list(request.multipart_form.items()) == [(b"a", b"1"), (b"b", b"two")]
    assert multipart.decode_multipart(request.headers["content-type"], request.content) == [(b"a", b"1"), (b"b", b"two")]
    assert multipart.decode_multipart("text/plain", b"x") == []
    with pytest.raises(ValueError):
        multipart.encode_multipart("multipart/form-data", [(b"a", b"1")])


def test_refresh_moves_cookie_expiry_and_survives_a_failing_helper(monkeypatch):
    response = tresp()
    response.headers["set-cookie"] = "a=b; Expires=Tue, 08-Mar-2011 00:20:38 GMT"
    before = response.headers["set-cookie"]
    response.refresh()
    assert response.headers["set-cookie"] != before

    def broken(header, delta):
        raise ValueError("no")

    monkeypatch.setattr(cookies, "refresh_set_cookie_header", broken)
    kept = response.headers["set-cookie"]
    response.refresh()
    assert response.headers["set-cookie"] == kept


def test_multipart_parts_with_bare_lf_line_ends():
    body = b'--b\nContent-Disposition: form-data; name="x"\n\none\n--b\nContent-Disposition: form-data; name="y"\n\ntwo\n--b--\n'
    assert multipart.decode_multipart("multipart/form-data; boundary=b", body) == [(b"x", b"one"), (b"y", b"two")]


def test_set_all_replaces_each_field_in_place_as_mitmproxy():
    """Each existing field takes the next value where it stands, with its own spelling;
    surplus fields go, surplus values are appended (mitmproxy's MultiDict.set_all)."""
    headers = Headers([(b"A", b"1"), (b"Set-Cookie", b"x"), (b"B", b"2"), (b"set-cookie", b"y"), (b"SET-COOKIE", b"z")])
    headers.set_all("set-cookie", ["p", "q"])
    assert headers.fields == ((b"A", b"1"), (b"Set-Cookie", b"p"), (b"B", b"2"), (b"set-cookie", b"q"))
    headers.set_all("set-cookie", ["p", "q", "r"])
    assert headers.fields[-1] == (b"set-cookie", b"r") and headers.fields[1] == (b"Set-Cookie", b"p")
    headers.set_all("New", ["1"])
    assert headers.fields[-1] == (b"New", b"1")
    request = Request.make("GET", "http://example.com/?a=1&b=2&a=3")
    request.query.set_all("a", ["x", "y"])
    assert request.url == "http://example.com/?a=x&b=2&a=y"
    request.query.set_all("a", ["x"])
    assert request.url == "http://example.com/?a=x&b=2"
