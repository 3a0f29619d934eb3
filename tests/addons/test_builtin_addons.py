"""anticache, anticomp, block, modify_headers, modify_body, map_remote, map_local, stickycookie
and stickyauth called directly on flows built in memory."""

from __future__ import annotations

import gzip
import logging
import time
from email.utils import formatdate

import pytest

from proxycore.addons import default_addons
from proxycore.addons.anticache import AntiCache
from proxycore.addons.anticomp import AntiComp
from proxycore.addons.block import Block
from proxycore.addons.maplocal import MapLocal, file_candidates, parse_map_local_spec
from proxycore.addons.mapremote import MapRemote
from proxycore.addons.modifybody import ModifyBody
from proxycore.addons.modifyheaders import ModifyHeaders
from proxycore.addons.stickyauth import StickyAuth
from proxycore.addons.stickycookie import StickyCookie, is_expired
from proxycore.connection import Client
from proxycore.exceptions import OptionsError
from proxycore.flow import Error
from tests.addon_utils import header_fields, load, tflow, tresponse


def test_default_addons_in_mitmproxys_order():
    names = [type(a).__name__ for a in default_addons()]
    expected = [
        "Core", "Block", "AntiCache", "AntiComp", "ProxyAuth", "Proxyserver", "ScriptLoader",
        "NextLayer", "MapRemote", "MapLocal", "ModifyBody", "ModifyHeaders", "StickyAuth",
        "StickyCookie",
    ]
    assert [n for n in names if n in expected] == expected


# anticache / anticomp ------------------------------------------------------------------


def test_anticache():
    addon = AntiCache()
    master = load(addon)
    headers = (("If-None-Match", '"abc"'), ("if-modified-since", "Mon, 01 Jan 2024 00:00:00 GMT"), ("X", "1"))
    flow = tflow(headers=headers)
    addon.request(flow)
    assert "if-none-match" in flow.request.headers  # off by default
    master.options.update(anticache=True)
    addon.request(flow)
    assert "if-none-match" not in flow.request.headers
    assert "if-modified-since" not in flow.request.headers
    assert flow.request.headers["x"] == "1"


def test_anticomp():
    addon = AntiComp()
    master = load(addon)
    flow = tflow(headers=(("Accept-Encoding", "gzip, br"),))
    addon.request(flow)
    assert flow.request.headers["accept-encoding"] == "gzip, br"
    master.options.update(anticomp=True)
    addon.request(flow)
    assert flow.request.headers["accept-encoding"] == "identity"


# block ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "address, block_global, block_private, error",
    [
        ("8.8.8.8", True, False, "Connection killed by block_global."),
        ("8.8.8.8", False, False, None),
        ("2001:4860:4860::8888", True, False, "Connection killed by block_global."),
        ("::ffff:8.8.8.8", True, False, "Connection killed by block_global."),
        ("10.1.2.3", True, False, None),
        ("10.1.2.3", True, True, "Connection killed by block_private."),
        ("192.168.1.1", False, True, "Connection killed by block_private."),
        ("fe80::1%eth0", False, True, "Connection killed by block_private."),
        ("::ffff:10.0.0.1", False, True, "Connection killed by block_private."),
        ("127.0.0.1", True, True, None),
        ("::1", True, True, None),
        ("::ffff:127.0.0.1", True, True, None),
    ],
)
def test_block(address, block_global, block_private, error):
    addon = Block()
    load(addon, block_global=block_global, block_private=block_private)
    client = Client(peername=(address, 1234))
    addon.client_connected(client)
    assert client.error == error


def test_block_defaults_and_log(caplog):
    addon = Block()
    master = load(addon)
    assert master.options.block_global is True and master.options.block_private is False
    client = Client(peername=("1.1.1.1", 5))
    with caplog.at_level(logging.WARNING):
        addon.client_connected(client)
    assert "Client connection from 1.1.1.1 killed by block_global option." in caplog.text


def test_block_decides_on_the_options_of_the_moment_for_a_known_address():
    """The address's kind is cached per host; the verdict follows the current options."""
    for block_private, error in ((False, None), (True, "Connection killed by block_private."), (False, None)):
        addon = Block()
        load(addon, block_private=block_private)
        client = Client(peername=("10.9.8.7", 1))
        addon.client_connected(client)
        assert client.error == error


def test_block_local_mode_and_odd_peers():
    addon = Block()
    load(addon, block_private=True)
    local = Client(peername=("10.0.0.1", 1), proxy_mode="local")
    addon.client_connected(local)
    assert local.error is None
    for peer in (None, ("not-an-ip", 0)):
        client = Client(peername=peer)
        addon.client_connected(client)
        assert client.error is None


# modify_headers ------------------------------------------------------------------------


def test_modify_headers_set_replace_remove():
    addon = ModifyHeaders()
    load(addon, modify_headers=["/X-New/1", "/x-replaced/new", "/X-Gone/", "/~s/X-Resp/r"])
    flow = tflow(headers=(("X-Replaced", "old"), ("x-replaced", "old2"), ("X-Gone", "bye")))
    addon.requestheaders(flow)
    assert header_fields(flow.request.headers)[1:] == [("X-New", "1"), ("x-replaced", "new")]
    assert "x-resp" not in flow.request.headers  # ~s does not match a request
    flow.response = tresponse(headers=(("X-Gone", "1"),))
    addon.responseheaders(flow)
    assert flow.response.headers["X-Resp"] == "r"
    assert flow.response.headers["X-New"] == "1"
    assert "x-gone" not in flow.response.headers


def test_modify_headers_filters_see_the_unmodified_flow():
    addon = ModifyHeaders()
    load(addon, modify_headers=["/X-A/1", "|~h X-A|X-B|seen"])
    flow = tflow()
    addon.requestheaders(flow)
    assert "x-b" not in flow.request.headers


def test_modify_headers_duplicates_and_escapes():
    addon = ModifyHeaders()
    load(addon, modify_headers=["/X-Dup/a", "/X-Dup/b", r"/X-Esc/\x41\x42"])
    flow = tflow(headers=(("X-Dup", "old"),))
    addon.requestheaders(flow)
    assert flow.request.headers.get_all("x-dup") == ["a", "b"]
    assert flow.request.headers["x-esc"] == "AB"


def test_modify_headers_from_file(tmp_path, caplog):
    value = tmp_path / "token"
    value.write_text("Bearer abc\n")
    addon = ModifyHeaders()
    load(addon, modify_headers=[f"|Authorization|@{value}"])
    flow = tflow()
    addon.requestheaders(flow)
    assert flow.request.headers["authorization"] == "Bearer abc"  # trailing newline dropped
    value.unlink()
    flow = tflow(headers=(("Authorization", "x"),))
    with caplog.at_level(logging.WARNING):
        addon.requestheaders(flow)
    assert "Could not read replacement file" in caplog.text
    assert "authorization" not in flow.request.headers


def test_modify_headers_skips_answered_and_dead_flows():
    addon = ModifyHeaders()
    load(addon, modify_headers=["/X-A/1"])
    answered = tflow(response=tresponse())
    addon.requestheaders(answered)
    assert "x-a" not in answered.request.headers
    dead = tflow()
    dead.live = False
    addon.requestheaders(dead)
    assert "x-a" not in dead.request.headers
    failed = tflow(response=tresponse())
    failed.error = Error("boom")
    addon.responseheaders(failed)
    assert "x-a" not in failed.response.headers


@pytest.mark.parametrize("value", ["/X-A", "", "/~~/X/1", "//1"])
def test_modify_headers_bad_rules(value):
    with pytest.raises(OptionsError, match="Cannot parse modify_headers option"):
        load(ModifyHeaders(), modify_headers=[value])


# modify_body ---------------------------------------------------------------------------


def test_modify_body_request_and_response():
    addon = ModifyBody()
    load(addon, modify_body=["/foo/bar", r"/a.c/\n", "|~s|secret|[redacted]"])
    flow = tflow(method="POST", content=b"foo a\nc secret")
    addon.request(flow)
    assert flow.request.content == b"bar \n secret"
    assert flow.request.headers["content-length"] == str(len(flow.request.content))
    flow.response = tresponse(content=b"my secret foo")
    addon.response(flow)
    assert flow.response.content == b"my [redacted] bar"


def test_modify_body_replacement_is_literal():
    addon = ModifyBody()
    load(addon, modify_body=[r"/(o+)/<\\1>"])  # an escaped backslash, not a group reference
    flow = tflow(method="POST", content=b"foo")
    addon.request(flow)
    assert flow.request.content == rb"f<\1>"


def test_modify_body_encoded_bodies():
    addon = ModifyBody()
    load(addon, modify_body=["/hello/bye"])
    flow = tflow(response=tresponse(headers=(("Content-Encoding", "gzip"),)))
    flow.response.raw_content = gzip.compress(b"hello world")
    addon.response(flow)
    assert gzip.decompress(flow.response.raw_content) == b"bye world"
    broken = tflow(response=tresponse(headers=(("Content-Encoding", "gzip"),)))
    broken.response.raw_content = b"not gzip"
    addon.response(broken)  # logged, not raised
    assert broken.response.raw_content == b"not gzip"
    streamed = tflow(response=tresponse())
    streamed.response.raw_content = None
    addon.response(streamed)
    assert streamed.response.raw_content is None


def test_modify_body_unchanged_body_keeps_its_bytes():
    addon = ModifyBody()
    load(addon, modify_body=["/absent/x"])
    flow = tflow(response=tresponse(headers=(("Content-Encoding", "gzip"),)))
    original = gzip.compress(b"hello", mtime=123)
    flow.response.raw_content = original
    addon.response(flow)
    assert flow.response.raw_content == original


def test_modify_body_from_file(tmp_path):
    path = tmp_path / "replacement.bin"
    path.write_bytes(b"\x00from file\n")
    addon = ModifyBody()
    load(addon, modify_body=[f"|x|@{path}"])
    flow = tflow(method="POST", content=b"axb")
    addon.request(flow)
    assert flow.request.content == b"a\x00from file\nb"


def test_modify_body_warns_about_streaming(caplog):
    with caplog.at_level(logging.WARNING):
        load(ModifyBody(), modify_body=["/a/b"], stream_large_bodies="1k")
    assert "Streamed bodies will not be modified" in caplog.text


@pytest.mark.parametrize("value", ["/[/x", "/a", r"/a\/b"])
def test_modify_body_bad_rules(value):
    with pytest.raises(OptionsError, match="Cannot parse modify_body option"):
        load(ModifyBody(), modify_body=[value])


# map_remote ----------------------------------------------------------------------------


def test_map_remote():
    addon = MapRemote()
    load(addon, map_remote=[r"|^http://example\.com/api/(\w+)|https://backend.test:8443/v2/\1"])
    flow = tflow("http://example.com/api/users?x=1")
    addon.request(flow)
    assert flow.request.url == "https://backend.test:8443/v2/users?x=1"
    assert flow.request.host_header == "backend.test:8443"
    untouched = tflow("http://example.com/other")
    addon.request(untouched)
    assert untouched.request.url == "http://example.com/other"
    assert untouched.request.headers["host"] == "example.com"


def test_map_remote_filter_and_all_rules_apply():
    addon = MapRemote()
    load(addon, map_remote=["|~m POST|example.com|post.test", "/post.test/final.test"])
    get = tflow("http://example.com/")
    addon.request(get)
    assert get.request.host == "example.com"
    post = tflow("http://example.com/", method="POST")
    addon.request(post)
    assert post.request.host == "final.test"


def test_map_remote_bad_results_are_logged(caplog):
    addon = MapRemote()
    load(addon, map_remote=[r"/example.com/\9", "/http:.*/garbage"])
    flow = tflow("http://example.com/")
    with caplog.at_level(logging.WARNING):
        addon.request(flow)
    assert flow.request.url == "http://example.com/"
    assert "map_remote" in caplog.text


def test_map_remote_bad_rule():
    with pytest.raises(OptionsError, match="Cannot parse map_remote option /\\(/x: Invalid regular"):
        load(MapRemote(), map_remote=["/(/x"])


# map_local -----------------------------------------------------------------------------


@pytest.fixture
def site(tmp_path):
    root = tmp_path / "site"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "index.html").write_text("<h1>home</h1>")
    (root / "css" / "main.css").write_text("body{}")
    (root / "docs" / "index.html").write_text("docs")
    (root / "a b.txt").write_text("space")
    (root / "weird_name.txt").write_text("escaped")
    (tmp_path / "secret.txt").write_text("outside")
    return root


def test_map_local_directory(site):
    addon = MapLocal()
    load(addon, map_local=[f"|example.com/static|{site}"])
    cases = {
        "http://example.com/static/css/main.css": (200, b"body{}", "text/css"),
        "http://example.com/static/": (200, b"<h1>home</h1>", "text/html"),
        "http://example.com/static/docs?x=1": (200, b"docs", "text/html"),
        "http://example.com/static/a%20b.txt": (200, b"space", "text/plain"),
        "http://example.com/static/weird%3Aname.txt": (200, b"escaped", "text/plain"),
        "http://example.com/static/missing.js": (404, b"", None),
    }
    for url, (status, body, content_type) in cases.items():
        flow = tflow(url)
        addon.request(flow)
        assert flow.response.status_code == status, url
        assert flow.response.content == body, url
        if content_type:
            assert flow.response.headers["content-type"] == content_type
            assert flow.response.headers["server"].startswith("proxycore")
    other = tflow("http://other.test/static/css/main.css")
    addon.request(other)
    assert other.response is None


@pytest.mark.parametrize(
    "path",
    [
        "/static/../secret.txt",
        "/static/..%2Fsecret.txt",
        "/static/%2E%2E/secret.txt",
        "/static/css/..%2F..%2Fsecret.txt",
        "/static/%2F..%2Fsecret.txt",
        "/static/%2Fetc%2Fpasswd",
        "/static/css%00.txt",
        "/static/" + "x" * 5000,
    ],
)
def test_map_local_path_traversal(site, path):
    addon = MapLocal()
    load(addon, map_local=[f"|example.com/static|{site}"])
    flow = tflow("http://example.com" + path)
    addon.request(flow)
    assert flow.response is None or flow.response.status_code == 404
    assert flow.response is None or b"outside" not in flow.response.content


def test_map_local_single_file_and_groups(site):
    addon = MapLocal()
    load(addon, map_local=[f"|~d example.com|/app.js|{site / 'css' / 'main.css'}", rf"|/g/([\w.]+)/x|{site / 'css'}"])
    flow = tflow("http://example.com/build/app.js?v=3")
    addon.request(flow)
    assert flow.response.content == b"body{}"
    grouped = tflow("http://other.test/g/main.css/x?q=1")  # the group names the file
    addon.request(grouped)
    assert grouped.response.content == b"body{}"
    grouped = tflow("http://other.test/g/main/x")
    addon.request(grouped)
    assert grouped.response.status_code == 404


def test_map_local_candidates(site):
    spec = parse_map_local_spec(f"|example.com|{site}")
    assert file_candidates("http://example.com/foo/bar?q", spec) == [
        site / "foo" / "bar", site / "foo" / "bar" / "index.html",
    ]
    assert file_candidates("http://example.com/", spec) == [site / "index.html"]


def test_map_local_first_rule_with_a_file_wins_and_404_is_logged(site, caplog):
    addon = MapLocal()
    load(addon, map_local=[f"|example.com|{site / 'docs'}", f"|example.com|{site}"])
    flow = tflow("http://example.com/css/main.css")
    addon.request(flow)
    assert flow.response.content == b"body{}"
    with caplog.at_level(logging.INFO):
        missing = tflow("http://example.com/nope")
        addon.request(missing)
    assert missing.response.status_code == 404
    assert "None of the local file candidates exist" in caplog.text


def test_map_local_bad_rules(tmp_path):
    with pytest.raises(OptionsError, match="Invalid file path"):
        load(MapLocal(), map_local=[f"|x|{tmp_path / 'missing'}"])
    with pytest.raises(OptionsError, match="Invalid regular expression"):
        load(MapLocal(), map_local=[f"|(|{tmp_path}"])


# stickycookie --------------------------------------------------------------------------


def test_stickycookie_round_trip():
    addon = StickyCookie()
    load(addon, stickycookie=".*")
    first = tflow("http://example.com/login")
    first.response = tresponse(headers=(("Set-Cookie", "session=abc; Path=/; HttpOnly"), ("Set-Cookie", "lang=en")))
    addon.response(first)
    later = tflow("http://example.com/account", headers=(("Cookie", "other=1"),))
    addon.request(later)
    assert later.request.headers["cookie"] == "session=abc; lang=en"
    assert later.metadata["stickycookie"] is True
    elsewhere = tflow("http://other.test/")
    addon.request(elsewhere)
    assert "cookie" not in elsewhere.request.headers
    other_port = tflow("http://example.com:8080/")
    addon.request(other_port)
    assert "cookie" not in other_port.request.headers


def test_stickycookie_domain_and_path():
    addon = StickyCookie()
    load(addon, stickycookie="~d example.com")
    flow = tflow("http://www.example.com/")
    flow.response = tresponse(headers=(
        ("Set-Cookie", "wide=1; domain=.example.com"),
        ("Set-Cookie", "narrow=2; PATH=/app"),
        ("Set-Cookie", "evil=3; Domain=attacker.test"),
    ))
    addon.response(flow)
    sub = tflow("http://api.example.com/app/x")
    addon.request(sub)
    assert sub.request.headers["cookie"] == "wide=1"
    same = tflow("http://www.example.com/app/x")
    addon.request(same)
    assert sorted(same.request.headers["cookie"].split("; ")) == ["narrow=2", "wide=1"]
    root = tflow("http://www.example.com/")
    addon.request(root)
    assert root.request.headers["cookie"] == "wide=1"
    assert not any(key[0] == "attacker.test" for key in addon.jar)


def test_stickycookie_expiry_removes():
    addon = StickyCookie()
    load(addon, stickycookie=".*")
    flow = tflow()
    flow.response = tresponse(headers=(("Set-Cookie", "a=1"), ("Set-Cookie", "b=2")))
    addon.response(flow)
    past = formatdate(time.time() - 3600, usegmt=True)
    flow.response = tresponse(headers=(("Set-Cookie", f"a=gone; Expires={past}"), ("Set-Cookie", "b=x; Max-Age=0")))
    addon.response(flow)
    assert not addon.jar
    request = tflow()
    addon.request(request)
    assert "cookie" not in request.request.headers


def test_stickycookie_ignores_nameless_cookies():
    addon = StickyCookie()
    load(addon, stickycookie=".*")
    flow = tflow()
    flow.response = tresponse(headers=(("Set-Cookie", "=x"), ("Set-Cookie", ""), ("Set-Cookie", "ok=1")))
    addon.response(flow)
    request = tflow()
    addon.request(request)
    assert request.request.headers["cookie"] == "ok=1"


def test_cookie_expiry_rules():
    now = 1_700_000_000.0
    assert not is_expired({}, now)
    assert is_expired({"expires": formatdate(now - 1, usegmt=True)}, now)
    assert not is_expired({"expires": formatdate(now + 60, usegmt=True)}, now)
    assert not is_expired({"expires": "garbage"}, now)
    assert is_expired({"max-age": "0"}, now) and is_expired({"max-age": "-5"}, now)
    assert not is_expired({"max-age": "60"}, now) and not is_expired({"max-age": "x"}, now)


def test_stickycookie_filter_and_off():
    addon = StickyCookie()
    master = load(addon, stickycookie="~m POST")
    flow = tflow()
    flow.response = tresponse(headers=(("Set-Cookie", "a=1"),))
    addon.response(flow)
    get = tflow()
    addon.request(get)
    assert "cookie" not in get.request.headers
    post = tflow(method="POST")
    addon.request(post)
    assert post.request.headers["cookie"] == "a=1"
    master.options.update(stickycookie=None)
    post = tflow(method="POST")
    addon.request(post)
    assert "cookie" not in post.request.headers
    with pytest.raises(OptionsError, match="Invalid filter expression"):
        master.options.update(stickycookie="~x ~~")


# stickyauth ----------------------------------------------------------------------------


def test_stickyauth():
    addon = StickyAuth()
    master = load(addon, stickyauth=".*")
    first = tflow(headers=(("Authorization", "Basic abc"),))
    addon.request(first)
    later = tflow("http://example.com/other")
    addon.request(later)
    assert later.request.headers["authorization"] == "Basic abc"
    own = tflow(headers=(("Authorization", "Basic mine"),))
    addon.request(own)
    assert own.request.headers["authorization"] == "Basic mine"
    other_host = tflow("http://other.test/")
    addon.request(other_host)
    assert "authorization" not in other_host.request.headers
    master.options.update(stickyauth="~d nothing.test")
    not_matching = tflow()
    addon.request(not_matching)
    assert "authorization" not in not_matching.request.headers
    with pytest.raises(OptionsError):
        master.options.update(stickyauth="(")
