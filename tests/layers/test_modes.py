"""Playbook tests of the mode layers: upstream (HttpLayer + HttpUpstreamTunnel), reverse,
transparent, and the next_layer decisions made under each of them."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.addons.next_layer import NextLayer as NextLayerAddon
from proxycore.addons.upstream_auth import UpstreamAuth, parse_upstream_auth
from proxycore.connection import Server
from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectHook,
    HttpConnectUpstreamHook,
    HttpErrorHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.http._upstream_proxy import HttpUpstreamTunnel, connect_authority
from proxycore.layers.modes import HttpUpstreamProxy, ReverseProxy, TransparentProxy
from proxycore.layers.tcp import TCPLayer, TcpMessageHook, TcpStartHook
from proxycore.layers.tls import ClientTLSLayer, ServerTLSLayer
from proxycore.proxy import commands, events
from proxycore.proxy.layer import NextLayer, NextLayerHook
from proxycore.proxy.mode_specs import ProxyMode
from proxycore.tcp import TCPFlow
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply, run_events
from tests.layers.test_http_fuzz import split

TLS_HELLO_START = b"\x16\x03\x01\x00\x05hello"


def mode_context(spec: str, **options: object):
    tctx = make_context()
    tctx.client.proxy_mode = ProxyMode.parse(spec)
    if options:
        tctx.options.update(**options)
    return tctx


def choose(layer_factory):
    """A next_layer reply side effect: install the layer made from the hook's context."""
    return lambda data: setattr(data, "layer", layer_factory(data.context))


def default_choice(data) -> None:
    """What the default next_layer addon decides."""
    data.layer = NextLayerAddon().decide(data)


def decide(parent, client_data: bytes):
    """The default addon's choice below ``parent`` (not started) once the client sent ``client_data``."""
    nextlayer = NextLayer(parent.context)
    nextlayer.events.append(events.DataReceived(parent.context.client, client_data))
    return NextLayerAddon().decide(nextlayer)


# Upstream mode ---------------------------------------------------------------------------


def test_upstream_plain_http_goes_to_the_proxy_in_absolute_form():
    tctx = mode_context("upstream:http://proxy.test:3128")
    flow = Placeholder(HTTPFlow)
    proxy = Placeholder(Server)
    request = b"GET http://example.com/x?y=1 HTTP/1.1\r\nHost: example.com\r\n\r\n"
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.upstream))
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(proxy)
        >> reply(None)
        << commands.SendData(proxy, request)
        >> events.DataReceived(proxy, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi")
        # Same origin again: the connection to the proxy is reused.
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpRequestHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(proxy, request)
    )
    assert proxy().address == ("proxy.test", 3128)
    assert flow().server_conn.address == ("example.com", 80)
    assert flow().server_conn.via == ("http", ("proxy.test", 3128))


def test_upstream_absolute_form_follows_a_changed_host():
    tctx = mode_context("upstream:http://proxy.test:3128")
    proxy = Placeholder(Server)

    def redirect(flow: HTTPFlow) -> None:
        flow.request.host = "other.test"

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.upstream))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpRequestHook(Placeholder(HTTPFlow))
        >> reply(side_effect=redirect)
        << commands.OpenConnection(proxy)
        >> reply(None)
        << commands.SendData(proxy, b"GET http://other.test/ HTTP/1.1\r\nHost: other.test\r\n\r\n")
    )


def test_upstream_absolute_form_without_authority():
    """A request that lost its authority (e.g. recorded in regular mode) still goes out in full."""
    tctx = mode_context("upstream:http://proxy.test:3128")
    proxy = Placeholder(Server)

    def drop_authority(flow: HTTPFlow) -> None:
        flow.request.authority = ""

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.upstream))
        >> events.DataReceived(tctx.client, b"GET http://example.com:8080/p HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> reply(side_effect=drop_authority)
        << HttpRequestHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.OpenConnection(proxy)
        >> reply(None)
        << commands.SendData(proxy, b"GET http://example.com:8080/p HTTP/1.1\r\nHost: example.com:8080\r\n\r\n")
    )


def connect_through_upstream(tctx, connect_flow=None, on_connect_upstream=None):
    """A client CONNECT in upstream mode with plain HTTP inside, up to the CONNECT we send
    (``on_connect_upstream`` is the http_connect_upstream hook's side effect)."""
    proxy = Placeholder(Server)
    playbook = (
        Playbook(HttpLayer(tctx, HTTPMode.upstream))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n")
        << HttpConnectHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpConnectedHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
        >> events.DataReceived(tctx.client, b"GET /y HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=choose(lambda ctx: HttpLayer(ctx, HTTPMode.transparent)))
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpRequestHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.OpenConnection(proxy)
        >> reply(None)
        << HttpConnectUpstreamHook(connect_flow or Placeholder(HTTPFlow))
        >> reply(side_effect=on_connect_upstream)
    )
    return playbook, proxy


def test_upstream_connect_is_tunneled_through_the_proxy():
    tctx = mode_context("upstream:http://proxy.test:3128")
    playbook, proxy = connect_through_upstream(tctx)
    assert (
        playbook
        << commands.SendData(proxy, b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n")
        # The proxy's answer and the origin's response in one segment.
        >> events.DataReceived(proxy, b"HTTP/1.1 200 Connection established\r\n\r\n")
        << commands.SendData(proxy, b"GET /y HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(proxy, b"HTTP/1.1 204 No Content\r\n\r\n")
        << HttpResponseHeadersHook(Placeholder(HTTPFlow))
        >> reply()
        << HttpResponseHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 204 No Content\r\n\r\n")
        >> events.ConnectionClosed(proxy)
        << commands.CloseConnection(proxy)
    )


def test_upstream_connect_response_and_data_in_one_segment():
    tctx = mode_context("upstream:http://proxy.test:3128")
    playbook, proxy = connect_through_upstream(tctx)
    assert (
        playbook
        << commands.SendData(proxy, BytesMatching(rb"CONNECT example\.com:80 .*"))
        >> events.DataReceived(proxy, b"HTTP/1.1 200 OK\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n")
        << commands.SendData(proxy, b"GET /y HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpResponseHeadersHook(Placeholder(HTTPFlow))
    )


def test_http_connect_upstream_hook_can_add_headers():
    tctx = mode_context("upstream:http://proxy.test:3128")
    connect_flow = Placeholder(HTTPFlow)

    def add_auth(flow: HTTPFlow) -> None:
        flow.request.headers["Proxy-Authorization"] = "Basic dTpw"

    playbook, proxy = connect_through_upstream(tctx, connect_flow, add_auth)
    assert playbook << commands.SendData(
        proxy,
        b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\nProxy-Authorization: Basic dTpw\r\n\r\n",
    )
    assert connect_flow().request.method == "CONNECT"
    assert connect_flow().server_conn is proxy()


def test_connect_without_host_header_when_disabled():
    tctx = mode_context("upstream:http://proxy.test:3128", http_connect_send_host_header=False)
    playbook, proxy = connect_through_upstream(tctx)
    assert playbook << commands.SendData(proxy, b"CONNECT example.com:80 HTTP/1.1\r\n\r\n")


@pytest.mark.parametrize(
    "answer, reason",
    [
        (b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
         rb"Upstream proxy proxy\.test:3128 refused HTTP CONNECT request: 407 Proxy Authentication Required"),
        (b"SSH-2.0-OpenSSH\r\n\r\n", rb"Error connecting to proxy\.test:3128: bad HTTP response line"),
        (b"x" * 70000, rb"Error connecting to proxy\.test:3128: response head too long"),
    ],
)
def test_upstream_refusing_connect_gives_502_with_its_reason(answer, reason):
    tctx = mode_context("upstream:http://proxy.test:3128")
    playbook, proxy = connect_through_upstream(tctx)
    assert (
        playbook
        << commands.SendData(proxy, BytesMatching(rb"CONNECT .*"))
        >> events.DataReceived(proxy, answer)
        << commands.CloseConnection(proxy)
        << HttpErrorHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb"HTTP/1.1 502 Bad Gateway.*" + reason))
        << commands.CloseConnection(tctx.client)
    )
    assert tctx.server.error is None  # the listener-level server was never touched


def test_upstream_proxy_closing_during_connect():
    tctx = mode_context("upstream:http://proxy.test:3128")
    playbook, proxy = connect_through_upstream(tctx)
    assert (
        playbook
        << commands.SendData(proxy, BytesMatching(rb"CONNECT .*"))
        >> events.ConnectionClosed(proxy)
        << commands.CloseConnection(proxy)
        << HttpErrorHook(Placeholder(HTTPFlow))
        >> reply()
        << commands.SendData(tctx.client, BytesMatching(rb".*502.*Upstream proxy closed the connection\."))
        << commands.CloseConnection(tctx.client)
    )


def test_unreachable_upstream_proxy_gives_502():
    tctx = mode_context("upstream:http://proxy.test:3128")
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.upstream), hooks=False)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n\r\n")
        << commands.OpenConnection(Placeholder(Server))
        >> reply("Connection refused")
        << commands.SendData(
            tctx.client,
            BytesMatching(
                rb"HTTP/1.1 502 .*Cannot connect to example\.com:80: upstream proxy proxy\.test:3128: Connection refused"
            ),
        )
        << commands.CloseConnection(tctx.client)
    )


def test_https_upstream_proxy_gets_tls_first():
    tctx = make_context()
    tctx.server = Server(address=("example.com", 443), via=("https", ("proxy.test", 3129)))
    top = HttpUpstreamTunnel.make(tctx, send_connect=True)
    assert isinstance(top, ServerTLSLayer)
    assert isinstance(top.child_layer, HttpUpstreamTunnel)
    proxy = top.conn
    assert proxy is top.child_layer.tunnel_conn and proxy is not tctx.server
    assert proxy.address == ("proxy.test", 3129) and proxy.sni == "proxy.test"
    assert proxy.alpn_offers == [b"http/1.1"]  # no HTTP/2 toward a proxy
    assert top.context.server is proxy  # so the TLS hooks configure the proxy connection
    assert isinstance(HttpUpstreamTunnel.make(make_context_via("http"), True), HttpUpstreamTunnel)


def make_context_via(scheme: str):
    tctx = make_context()
    tctx.server = Server(address=("example.com", 80), via=(scheme, ("proxy.test", 3128)))
    return tctx


def test_connect_authority_forms():
    assert connect_authority(("example.com", 443)) == b"example.com:443"
    assert connect_authority(("::1", 8443)) == b"[::1]:8443"
    assert connect_authority(("127.0.0.1", 80)) == b"127.0.0.1:80"
    assert connect_authority(("bücher.example", 443)) == b"xn--bcher-kva.example:443"


def test_upstream_proxy_layer_picks_upstream_http():
    tctx = mode_context("upstream:http://proxy.test:3128")
    assert (
        Playbook(HttpUpstreamProxy(tctx))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\n\r\n")
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=default_choice)
        << HttpRequestHeadersHook(Placeholder(HTTPFlow))
    )
    http_layer = tctx.layers[-1]
    assert isinstance(http_layer, HttpLayer) and http_layer.mode is HTTPMode.upstream


def test_secure_web_proxy_in_upstream_mode():
    tctx = mode_context("upstream:http://proxy.test:3128")
    layer = decide(HttpUpstreamProxy(tctx), TLS_HELLO_START)
    assert isinstance(layer, ClientTLSLayer)
    assert layer.child_layer.mode is HTTPMode.upstream


# upstream_auth ------------------------------------------------------------------------


def test_parse_upstream_auth():
    assert parse_upstream_auth("user:pass") == b"Basic dXNlcjpwYXNz"
    assert parse_upstream_auth("user:") == b"Basic dXNlcjo="
    for bad in ("", "user", ":pass"):
        with pytest.raises(OptionsError, match="Invalid upstream auth specification"):
            parse_upstream_auth(bad)


@pytest.mark.parametrize(
    "spec, url, via_tunnel, header",
    [
        ("upstream:http://p:1", "http://example.com/", False, "Proxy-Authorization"),
        ("upstream:http://p:1", "http://example.com/", True, None),  # inside CONNECT: for the origin
        ("upstream:http://p:1", "https://example.com/", False, None),
        ("reverse:http://example.com", "http://example.com/", False, "Authorization"),
        ("regular", "http://example.com/", False, None),
    ],
)
def test_upstream_auth_headers(spec, url, via_tunnel, header):
    from proxycore.http import Request

    addon = UpstreamAuth()
    addon.auth = parse_upstream_auth("user:pass")
    tctx = mode_context(spec)
    server = Server(address=("example.com", 80) if via_tunnel else None, via=("http", ("p", 1)))
    flow = HTTPFlow(tctx.client, server)
    flow.request = Request.make("GET", url)
    addon.requestheaders(flow)
    present = {h for h in ("Proxy-Authorization", "Authorization") if h in flow.request.headers}
    assert present == ({header} if header else set())
    if header:
        assert flow.request.headers[header] == "Basic dXNlcjpwYXNz"
    connect = HTTPFlow(tctx.client, server)
    connect.request = Request.make("CONNECT", "http://example.com:443/")
    addon.http_connect_upstream(connect)
    assert connect.request.headers["Proxy-Authorization"] == "Basic dXNlcjpwYXNz"


# Reverse mode ----------------------------------------------------------------------------


def forward_one_request(layer, request: bytes, sent: bytes) -> HTTPFlow:
    """Drive a mode layer that connects at start through one plain HTTP request; its flow."""
    tctx = layer.context
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(layer)
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.client, request)
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=default_choice)
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.SendData(tctx.server, sent)
    )
    return flow()


@pytest.mark.parametrize("keep_host_header, host", [(False, b"example.com:8000"), (True, b"proxy.local")])
def test_reverse_http_rewrites_host_unless_keep_host_header(keep_host_header, host):
    tctx = mode_context("reverse:http://example.com:8000", keep_host_header=keep_host_header)
    flow = forward_one_request(
        ReverseProxy(tctx),
        b"GET /a HTTP/1.1\r\nHost: proxy.local\r\n\r\n",
        b"GET /a HTTP/1.1\r\nHost: " + host + b"\r\n\r\n",
    )
    assert flow.request.url == "http://example.com:8000/a"
    assert tctx.server.address == ("example.com", 8000)
    assert tctx.server.sni is None


@pytest.mark.parametrize("keep_host_header, sni", [(False, "example.com"), (True, None)])
def test_reverse_tls_schemes_set_sni(keep_host_header, sni):
    tctx = mode_context("reverse:https://example.com", keep_host_header=keep_host_header)
    assert Playbook(ReverseProxy(tctx)) << commands.OpenConnection(tctx.server)
    assert tctx.server.address == ("example.com", 443)
    assert tctx.server.sni == sni


def test_reverse_https_plain_http_client_gets_https_scheme():
    """Plain HTTP to an https reverse proxy: the request goes out as https."""
    tctx = mode_context("reverse:https://example.com", connection_strategy="lazy")
    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(ReverseProxy(tctx))
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\nHost: localhost:8080\r\n\r\n")
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=default_choice)
        << HttpRequestHeadersHook(flow)
    )
    assert flow().request.url == "https://example.com/"
    assert flow().request.host_header == "example.com"
    assert isinstance(tctx.layers[1], ServerTLSLayer)


def test_reverse_lazy_does_not_connect_at_start():
    tctx = mode_context("reverse:tcp://example.com:22", connection_strategy="lazy")
    assert (
        Playbook(ReverseProxy(tctx))
        >> events.DataReceived(tctx.client, b"SSH-2.0-client\r\n")
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=default_choice)
        << TcpStartHook(Placeholder(TCPFlow))
    )
    assert isinstance(tctx.layers[-1], TCPLayer)


def test_reverse_server_speaks_first():
    tctx = mode_context("reverse:tcp://example.com:25")
    assert (
        Playbook(ReverseProxy(tctx))
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.server, b"220 mail ready\r\n")
        << NextLayerHook(Placeholder(NextLayer))
        >> reply(side_effect=default_choice)
        << TcpStartHook(Placeholder(TCPFlow))
        >> reply()
        << TcpMessageHook(Placeholder(TCPFlow))
        >> reply()
        << commands.SendData(tctx.client, b"220 mail ready\r\n")
    )


def test_reverse_target_unreachable_closes_the_client_with_a_log_line():
    tctx = mode_context("reverse:http://example.com")
    assert (
        Playbook(ReverseProxy(tctx), logs=True)
        << commands.OpenConnection(tctx.server)
        >> reply("Connection refused")
        << commands.Log("Cannot connect to example.com:80: Connection refused", "info")
        << commands.CloseConnection(tctx.client)
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\n\r\n")
    )


@pytest.mark.parametrize(
    "spec, data, stack",
    [
        ("reverse:https://example.com", TLS_HELLO_START, [ServerTLSLayer, ClientTLSLayer, HttpLayer]),
        ("reverse:https://example.com", b"GET / HTTP/1.1\r\n", [ServerTLSLayer, HttpLayer]),
        ("reverse:http://example.com", TLS_HELLO_START, [ClientTLSLayer, HttpLayer]),
        ("reverse:http://example.com", b"GET / HTTP/1.1\r\n", [HttpLayer]),
        ("reverse:tls://example.com:993", TLS_HELLO_START, [ServerTLSLayer, ClientTLSLayer, TCPLayer]),
        ("reverse:tls://example.com:993", b"a1 LOGIN", [ServerTLSLayer, TCPLayer]),
        ("reverse:tcp://example.com:22", TLS_HELLO_START, [ClientTLSLayer, TCPLayer]),
        ("reverse:tcp://example.com:22", b"GET / HTTP/1.1\r\n", [TCPLayer]),  # tcp means tcp
    ],
)
def test_reverse_stacks(spec, data, stack):
    tctx = mode_context(spec)
    tctx.server.address = tctx.client.proxy_mode.address
    layer = decide(ReverseProxy(tctx), data)
    chosen = []
    while layer is not None and not isinstance(layer, NextLayer):
        chosen.append(type(layer))
        if isinstance(layer, HttpLayer):
            assert layer.mode is HTTPMode.transparent
        layer = getattr(layer, "child_layer", None)
    assert chosen == stack


def test_reverse_waits_for_a_whole_tls_record_header():
    tctx = mode_context("reverse:http://example.com", connection_strategy="lazy")
    nl = Placeholder(NextLayer)
    assert (
        Playbook(ReverseProxy(tctx))
        >> events.DataReceived(tctx.client, b"\x16")
        << NextLayerHook(nl)
        >> reply(side_effect=default_choice)
        >> events.DataReceived(tctx.client, b"\x03\x01")
        << NextLayerHook(nl)
        >> reply(side_effect=default_choice)
    )
    assert isinstance(nl().layer, ClientTLSLayer)


# Transparent mode ----------------------------------------------------------------------


def test_transparent_connects_to_the_original_destination():
    tctx = mode_context("transparent")
    tctx.server.address = ("10.0.0.7", 80)
    request = b"GET /t HTTP/1.1\r\nHost: example.com\r\n\r\n"
    flow = forward_one_request(TransparentProxy(tctx), request, request)
    assert flow.request.url == "http://10.0.0.7/t"
    assert flow.request.pretty_url == "http://example.com/t"


def test_transparent_tls_gets_both_tls_layers():
    tctx = mode_context("transparent")
    tctx.server.address = ("10.0.0.7", 443)
    layer = decide(TransparentProxy(tctx), TLS_HELLO_START)
    assert isinstance(layer, ServerTLSLayer) and isinstance(layer.child_layer, ClientTLSLayer)


@pytest.mark.parametrize("alpn", [b"h2", b"http/1.1"])
def test_an_http_alpn_decides_http_before_any_bytes(alpn):
    """Inside intercepted TLS, an HTTP/2 server sends SETTINGS as soon as its handshake ends;
    when those bytes come before the client's preface, the agreed ALPN still says HTTP (a
    server speaking first would otherwise make the connection a raw TCP relay)."""
    tctx = mode_context("transparent")
    tctx.server.address = ("10.0.0.7", 443)
    tctx.client.alpn = alpn
    nextlayer = NextLayer(tctx)
    nextlayer.events.append(events.DataReceived(tctx.server, b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"))
    layer = NextLayerAddon().decide(nextlayer)
    assert isinstance(layer, HttpLayer) and layer.mode == HTTPMode.transparent


def test_a_non_http_alpn_with_the_server_speaking_first_is_tcp():
    tctx = mode_context("transparent")
    tctx.server.address = ("10.0.0.7", 993)
    tctx.client.alpn = b"imap"
    nextlayer = NextLayer(tctx)
    nextlayer.events.append(events.DataReceived(tctx.server, b"* OK IMAP4rev1 ready\r\n"))
    assert isinstance(NextLayerAddon().decide(nextlayer), TCPLayer)


def test_transparent_unreachable_destination_closes_the_client():
    tctx = mode_context("transparent")
    tctx.server.address = ("10.0.0.7", 80)
    assert (
        Playbook(TransparentProxy(tctx))
        << commands.OpenConnection(tctx.server)
        >> reply("No route to host")
        << commands.CloseConnection(tctx.client)
    )


connect_answers = st.one_of(
    st.binary(max_size=120),
    st.sampled_from([
        b"HTTP/1.1 200 Connection established\r\n\r\n",
        b"HTTP/1.0 200 OK\r\nProxy-Agent: x\r\n\r\nbanner",
        b"HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n",
        b"HTTP/1.1 502 Bad Gateway\r\n\r\n",
    ]).flatmap(lambda answer: st.binary(max_size=20).map(lambda extra: answer + extra)),
)


def tunnel_outcome(chunks: list[bytes], close: bool):
    """Run a TCP child through a tunnel whose proxy answers with ``chunks``."""
    tctx = make_context()
    tctx.server = Server(address=("example.com", 22), via=("http", ("proxy.test", 3128)))
    proxy = Server(address=("proxy.test", 3128))
    tunnel = HttpUpstreamTunnel(tctx, proxy, True, TCPLayer(tctx, ignore=True))
    evs: list[events.Event] = [events.DataReceived(proxy, chunk) for chunk in chunks]
    if close:
        evs.append(events.ConnectionClosed(proxy))
    issued = run_events(tunnel, evs)
    to_client = b"".join(c.data for c in issued if isinstance(c, commands.SendData) and c.connection is tctx.client)
    return tunnel.state, tctx.server.error, to_client


@given(connect_answers, st.lists(st.integers(0, 200), max_size=8), st.booleans())
def test_tunnel_never_raises_and_does_not_depend_on_chunking(data, cuts, close):
    outcome = tunnel_outcome(split(data, cuts), close)
    assert outcome == tunnel_outcome([data], close)
    state, error, to_client = outcome
    if data.startswith(b"HTTP/1.1 200 Connection established\r\n\r\n"):
        assert state in ("open", "closed") and error is None
        assert to_client == data[len(b"HTTP/1.1 200 Connection established\r\n\r\n"):]
