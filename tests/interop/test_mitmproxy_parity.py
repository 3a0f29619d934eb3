"""Behaviour and API that mitmproxy scripts and addon tests rely on (issue 13, points 2-4).

Imported from proxycore's own paths here; tests/interop/test_compat.py checks the mitmproxy alias.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxycore import exceptions, flowfilter, http
from proxycore.addonmanager import AddonManager
from proxycore.master import Master
from proxycore.test import taddons, tflow, tutils

# Request / Response -------------------------------------------------------------------------


def test_method_reads_upper_case_and_keeps_the_raw_bytes():
    request = tutils.treq()
    request.method = "post"
    assert request.method == "POST"  # as mitmproxy: the getter upper-cases
    assert request.data.method == b"post"  # what was set is what goes on the wire
    request.data.method = b"FOO\xbfBAR"
    request.method = request.method  # no side effect, even for bytes that are not UTF-8
    assert request.data.method == b"FOO\xbfBAR"


def test_text_setter_falls_back_to_utf8_and_says_so():
    response = tutils.tresp()
    response.headers["content-type"] = "text/html; charset=latin1; foo=bar"
    response.text = "☃"
    assert response.headers["content-type"] == "text/html; charset=utf-8; foo=bar"
    assert response.raw_content == "☃".encode()

    response.headers["content-type"] = "gibberish"
    response.text = "☃"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"

    response.headers["content-type"] = "text/plain; charset=latin1"
    response.text = "é"  # encodable: the declared charset stays
    assert response.headers["content-type"] == "text/plain; charset=latin1"
    assert response.raw_content == b"\xe9"


def test_url_setter_takes_bytes():
    request = tutils.treq()
    request.url = b"https://example.org/images/a.jpg"
    assert (request.scheme, request.host, request.port, request.path) == ("https", "example.org", 443, "/images/a.jpg")


def test_copy_is_independent_and_equal():
    request = tutils.treq()
    clone = request.copy()
    assert clone is not request and clone.data == request.data
    clone.headers["x"] = "1"
    assert "x" not in request.headers
    assert clone.data != request.data


def test_multipart_form_bytes_keys():
    request = tutils.treq()
    request.multipart_form = [(b"name", b"value"), ("other", "text")]
    form = request.multipart_form
    assert form.items(multi=True) == [(b"name", b"value"), (b"other", b"text")]
    assert form[b"name"] == b"value" and form["other"] == b"text"
    assert b"name" in form and "other" in form and "missing" not in form
    form[b"name"] = b"changed"
    assert request.multipart_form[b"name"] == b"changed"


def test_client_address_is_peername():
    client = tflow.tclient_conn()
    assert client.address == client.peername == ("127.0.0.1", 22)
    client.address = ("10.0.0.1", 1)
    assert client.peername == ("10.0.0.1", 1)


# Addon manager ------------------------------------------------------------------------------


class Named:
    name = "named"

    def __init__(self) -> None:
        self.calls: list[str] = []

    def request(self, flow) -> None:
        self.calls.append("request")

    async def response(self, flow) -> None:
        await asyncio.sleep(0)
        self.calls.append("response")


def test_addonmanager_contains_get_register_invoke():
    master = Master()
    addons: AddonManager = master.addons
    addon = Named()
    assert addon not in addons and addons.get("named") is None
    addons.register(addon)
    assert addon in addons and addons.get("named") is addon
    assert addon not in addons.chain  # registered, not chained (mitmproxy's register)
    asyncio.run(addons.invoke_addon(addon, http_hook("response")))
    assert addon.calls == ["response"]


def http_hook(name: str):
    from proxycore.layers.http import _hooks

    cls = {"request": _hooks.HttpRequestHook, "response": _hooks.HttpResponseHook}[name]
    return cls(tflow.tflow(resp=True))


def test_taddons_configure_rolls_back_refused_values():
    class Picky:
        def load(self, loader):
            loader.add_option("picky", int, 1, "")

        def configure(self, updated):
            from proxycore import ctx

            if ctx.options.picky < 0:
                raise exceptions.OptionsError("picky must be >= 0")

    addon = Picky()
    with taddons.context(addon) as tctx:
        tctx.configure(addon, picky=3)
        assert tctx.options.picky == 3
        with pytest.raises(exceptions.OptionsError):
            tctx.configure(addon, picky=-1)
        assert tctx.options.picky == 3


def test_taddons_command_parses_string_arguments():
    with taddons.context() as tctx:
        def double(n: int) -> int:
            return n * 2

        assert tctx.command(double, "21") == 42


# Modules ----------------------------------------------------------------------------------


def test_exception_names():
    assert exceptions.MitmproxyException is exceptions.ProxycoreError
    for name in ("FlowReadException", "OptionsError", "CommandError", "AddonHalt", "ControlException",
                 "AddonManagerError"):
        assert issubclass(getattr(exceptions, name), exceptions.ProxycoreError), name
    from proxycore.io import FlowReadException

    assert FlowReadException is exceptions.FlowReadException


def test_tfilter_is_the_filter_type():
    f = flowfilter.parse("~u /x & ~s")
    assert isinstance(f, flowfilter.TFilter)
    assert isinstance(f, flowfilter.FAnd)
    assert isinstance(flowfilter.parse("!~s"), flowfilter.FNot)


def test_strutils():
    from proxycore.utils import strutils

    assert strutils.always_bytes("é", "utf-8") == b"\xc3\xa9"
    assert strutils.always_str(b"\xc3\xa9", "utf-8") == "é"
    assert strutils.always_str(None) is None
    with pytest.raises(TypeError):
        strutils.always_bytes(42)
    assert strutils.bytes_to_escaped_str(b"a\n'\x00\\") == "a\\n'\\x00\\\\"
    assert strutils.bytes_to_escaped_str(b"a\n'", keep_spacing=True, escape_single_quotes=True) == "a\n\\'"
    assert strutils.escaped_str_to_bytes("a\\x00\\n") == b"a\x00\n"
    for data in (b"", b"\x00\xff\\'\"\r\n\t", bytes(range(256))):
        assert strutils.escaped_str_to_bytes(strutils.bytes_to_escaped_str(data)) == data
    assert strutils.escape_control_characters("a\x1bb\n") == "a.b\n"
    assert strutils.is_xml(b" \r\n<root/>") and not strutils.is_xml(b"{}")
    assert strutils.is_mostly_bin(bytes(range(32)) * 4) and not strutils.is_mostly_bin(b"hello world")
    assert strutils.clean_hanging_newline("a\n") == "a"
    assert strutils.cut_after_n_lines("a\nb\nc", 2) == "a\nb\n"
    assert list(strutils.hexdump(b"AB\x00")) == [("0000000000", "41 42 00".ljust(47), "AB.")]


def test_human():
    from proxycore.utils import human

    assert human.pretty_size(100) == "100b" and human.pretty_size(2048) == "2.0k"
    assert human.parse_size("3k") == 3072 and human.parse_size(None) is None
    with pytest.raises(ValueError):
        human.parse_size("lots")
    assert [human.pretty_duration(s) for s in (None, 0.5, 1.234, 12.34, 123.4)] == ["", "500ms", "1.23s", "12.3s", "123s"]
    assert human.format_address(("::1", 8080)) == "[::1]:8080"
    assert len(human.format_timestamp_with_milli(0)) == len("1970-01-01 00:00:00.000")


def test_emoji_and_data():
    from proxycore.utils import data, emoji

    assert emoji.emoji[":+1:"] == "\U0001f44d"
    assert data.Data("proxycore.utils").push("..").path("http.py").endswith("proxycore/http.py")
    with pytest.raises(ValueError):
        data.Data("proxycore").path("no-such-file")


def test_log_module_and_ctx_log(caplog):
    from proxycore import ctx, log

    assert log.ALERT == logging.INFO + 1 and logging.getLevelName(log.ALERT) == "ALERT"
    assert [log.log_tier(x) for x in ("error", "warn", "info", "alert", "debug")] == [0, 1, 2, 2, 3]
    with caplog.at_level(logging.DEBUG, logger="proxycore.addons"):
        ctx.log.alert("an alert")
        ctx.log.warn("a warning")
        ctx.log("an error", "error")
    levels = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert levels == [(log.ALERT, "an alert"), (logging.WARNING, "a warning"), (logging.ERROR, "an error")]


def test_net_http_helpers():
    from proxycore.net import server_spec
    from proxycore.net.http import status_codes, url

    assert status_codes.NOT_FOUND == 404 and status_codes.PROXY_AUTH_REQUIRED == 407
    assert status_codes.RESPONSES[status_codes.IM_A_TEAPOT] == "I'm a teapot"
    assert url.parse("https://example.com:8443/a?b") == (b"https", b"example.com", 8443, b"/a?b")
    assert url.parse("http://example.com") == (b"http", b"example.com", 80, b"/")
    for bad in ("example.com", "https://example.com:0/", "ftp://example.com/"):
        with pytest.raises(ValueError):
            url.parse(bad)
    assert url.unparse("https", "example.com", 443, "/x") == "https://example.com/x"
    assert url.hostport(b"http", b"example.com", 8080) == b"example.com:8080"
    assert url.encode([("a", "1"), ("b", "")], similar_to="a=1&b") == "a=1&b"
    assert url.decode("a=1&b=") == [("a", "1"), ("b", "")]
    assert url.parse_authority("example.com:80", check=True) == ("example.com", 80)
    assert url.parse_authority("[::1]", check=True) == ("::1", None)
    with pytest.raises(ValueError):
        url.parse_authority("example.com:99999", check=True)
    assert url.parse_authority("bad:port:x", check=False) == ("bad:port:x", None)
    assert server_spec.parse("example.com:8080", "https") == ("https", ("example.com", 8080))


def test_tls_module():
    from proxycore import tls
    from proxycore.layers import tls as tls_layer
    from proxycore.net import clienthello as net_tls

    assert tls.ClientHelloData is tls_layer.ClientHelloData and tls.TlsData is tls_layer.TlsData
    assert tls.ClientHello is net_tls.ClientHello


def test_concurrent_runs_in_a_thread_and_refuses_non_hooks():
    import threading

    from proxycore.script import concurrent

    seen = []

    class Slow:
        @concurrent
        def request(self, flow):
            seen.append(threading.current_thread() is threading.main_thread())

        @concurrent
        async def response(self, flow):
            seen.append("async")

    addon, flow = Slow(), tflow.tflow(resp=True)
    asyncio.run(addon.request(flow))
    asyncio.run(addon.response(flow))
    assert seen == [False, "async"]
    with pytest.raises(NotImplementedError):
        concurrent(lambda flow: None)
    with pytest.raises(NotImplementedError):

        @concurrent
        def configure(updated):
            pass


def test_asgi_and_wsgi_apps_answer_only_their_host():
    from proxycore.addons import asgiapp

    def wsgi(environ, start_response):
        start_response("203 Whatever", [("X-Path", environ["PATH_INFO"])])
        return [environ["wsgi.input"].read()]

    async def broken(scope, receive, send):
        raise RuntimeError("boom")

    async def run(app_addon, flow):
        with taddons.context(app_addon):
            await app_addon.request(flow)
        return flow

    served = tflow.tflow(req=tutils.treq(host="app.local", port=80, method=b"POST", content=b"in"))
    asyncio.run(run(asgiapp.WSGIApp(wsgi, "app.local", 80), served))
    assert served.response.status_code == 203
    assert (served.response.headers["x-path"], served.response.content) == ("/path", b"in")

    other = tflow.tflow()  # host "address": not ours
    asyncio.run(run(asgiapp.WSGIApp(wsgi, "app.local", 80), other))
    assert other.response is None

    failing = tflow.tflow(req=tutils.treq(host="app.local", port=80))
    asyncio.run(run(asgiapp.ASGIApp(broken, "app.local"), failing))
    assert failing.response.status_code == 500


def test_proxyserver_servers_and_load():
    from proxycore.addons.proxyserver import Proxyserver

    ps = Proxyserver()
    ps.load(None)  # mitmproxy's tests call load(options) on a bare instance
    assert ps.servers == []


def test_vars_of_slotted_events_and_reply_table():
    from proxycore.proxy import commands, events

    event = events.DataReceived(tflow.tclient_conn(), b"x")
    assert vars(event) == {"connection": event.connection, "data": b"x"}
    assert events.command_reply_subclasses[commands.OpenConnection] is events.OpenConnectionCompleted


def test_version_module():
    from proxycore import __version__, version
    from proxycore.flow import FLOW_FORMAT_VERSION

    assert version.VERSION == __version__ and version.FLOW_FORMAT_VERSION == FLOW_FORMAT_VERSION


def test_helpers_make_fresh_objects():
    a, b = tflow.tflow(resp=True), tflow.tflow(resp=True)
    assert a.id != b.id and a.client_conn.id != b.client_conn.id
    assert isinstance(a.request, http.Request) and a.response.status_code == 200
    ws = tflow.twebsocketflow(err=True)
    assert ws.websocket.close_code == 1006 and len(ws.websocket.messages) == 3
    kinds = ["HTTPFlow"] * 3 + ["TCPFlow"] * 2 + ["UDPFlow"] * 2 + ["DNSFlow"] * 3
    assert [type(f).__name__ for f in tflow.tflows()] == kinds
    with pytest.raises(TypeError):
        tflow.tflow(resp="yes")


@pytest.mark.parametrize(
    ("expr", "words"),
    [
        ("~s", "has response"),
        ("~u foo", "url matches /foo/i"),
        ("~hq rex", "req. header matches /rex/im"),
        ("~bs x", "body response matches /x/is"),
        ("~c 404", "response code is 404"),
        ("!~h test", "not header matches /test/im"),
        ("~u foo & ~c 200", "url matches /foo/i and response code is 200"),
        ("!(~u foo | ~c 200)", "not (url matches /foo/i or response code is 200)"),
        ("~q & (~m get | ~m head)", "has no response and (method matches /get/i or method matches /head/i)"),
    ],
)
def test_str_of_a_filter_is_mitmproxys_description(expr, words):
    f = flowfilter.parse(expr)
    assert str(f) == words
    assert f.pattern == expr  # the text it was parsed from
    assert str(flowfilter.parse(repr(f))) == words  # repr stays an expression that parses back


def test_response_cookies_have_cookie_attrs():
    from proxycore.net.http.cookies import CookieAttrs

    response = tutils.tresp()
    response.headers = http.Headers(
        set_cookie="name=value;domain=example.com;expires=Wed Oct  21 16:29:41 2015;path=/; HttpOnly"
    )
    value, attrs = response.cookies["name"]
    assert value == "value" and isinstance(attrs, CookieAttrs) and len(attrs) == 4
    assert attrs["Domain"] == "example.com" and attrs["httponly"] is None
    response.cookies["other"] = ("x", CookieAttrs([("Path", "/"), ("Secure", None)]))
    assert response.headers.get_all("set-cookie")[-1] == "other=x; Path=/; Secure"
    empty = tutils.tresp()
    empty.headers = http.Headers(set_cookie="")
    assert not empty.cookies


def test_header_values_must_be_str_or_bytes():
    headers = http.Headers()
    headers["a"] = "1"
    headers[b"b"] = b"2"
    with pytest.raises(TypeError):
        headers["c"] = 42
    assert len(headers) == 2


def test_response_cookies_setter():
    response = tutils.tresp()
    response.cookies = [("a", ("1", {"Path": "/"})), ("b", ("2", {}))]
    assert response.headers.get_all("set-cookie") == ["a=1; Path=/", "b=2"]


def test_first_line_format():
    assert tutils.treq(method=b"CONNECT").first_line_format == "authority"
    assert tutils.treq(authority=b"example.com:80").first_line_format == "absolute"
    assert tutils.treq().first_line_format == "relative"


def test_idna_for_host_and_authority():
    request = tutils.treq()
    request.authority = "ídna.example"
    assert request.data.authority == b"xn--dna-qma.example"
    request.data.authority = b"xn--idn-gla.example"
    assert request.authority == "idná.example"
    request.data.authority = b"\xff:80"  # not IDNA: read back losslessly
    assert request.authority.encode("utf-8", "surrogateescape") == b"\xff:80"
    request.host = b"xn--eckwd4c7c.xn--zckzah"
    assert request.host == "ドメイン.テスト"


def test_filter_parts_under_mitmproxys_names():
    f = flowfilter.parse("~u foo & !(~h a | ~h b)")
    assert [type(x).__name__ for x in f.lst] == ["FUrl", "Not"]  # mitmproxy's class names
    assert f.lst[1].itm.lst[0].expr == "a"


def test_filter_dump_prints_a_tree():
    import io

    out = io.StringIO()
    flowfilter.parse("~u foo & !(~h a | ~s)").dump(fp=out)
    assert out.getvalue() == "&\n\t~u foo\n\t!\n\t\t|\n\t\t\t~h a\n\t\t\t~s\n"
