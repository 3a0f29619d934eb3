"""Details where proxycore behaves as mitmproxy does, found by running mitmproxy's tests
(issue 13); each is checked here with proxycore's own helpers."""

from __future__ import annotations

import pytest

from proxycore.connection import ConnectionState, Server
from proxycore.http import HTTPFlow, Request
from proxycore.layers import tls
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import HttpRequestHeadersHook, HttpRequestHook
from proxycore.net import http1
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply


@pytest.fixture
def tctx():
    return make_context()


def test_an_idna_host_in_the_request_line_is_unicode_in_the_flow_and_ascii_on_the_wire():
    request = http1.parse_request_head(b"GET http://xn--eckwd4c7c.xn--zckzah/ HTTP/1.1\r\nHost: x\r\n")
    assert request.host == "ドメイン.テスト"
    assert request.data.authority == b"xn--eckwd4c7c.xn--zckzah"
    request.host = "ドメイン.テスト.test"  # the authority follows, IDNA-encoded
    assert request.data.authority == b"xn--eckwd4c7c.xn--zckzah.test"
    assert http1.parse_request_head(b"GET http://xn--bad-/ HTTP/1.1\r\nHost: x\r\n").host == "xn--bad-"


def test_request_make_adds_no_host_header_and_always_a_content_length():
    request = Request.make("GET", "http://example.com/")
    assert list(request.headers.items()) == [("content-length", "0")]
    assert Request.make("POST", "http://example.com/", b"abc").headers["content-length"] == "3"


def test_mock_tls_layer_lets_a_layer_test_reach_an_https_server_in_cleartext(tctx, monkeypatch):
    monkeypatch.setattr(tls, "ServerTLSLayer", tls.MockTLSLayer)
    server = Placeholder(Server)
    flow = Placeholder(HTTPFlow)
    playbook = Playbook(HttpLayer(tctx, HTTPMode.regular))

    def to_https(flow: HTTPFlow) -> None:
        flow.request.url = "https://secure.example/"

    assert (
        playbook
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply(side_effect=to_https)
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: secure.example\r\n\r\n")
    )
    assert server().address == ("secure.example", 443)


def test_http2_upstream_keepalive_is_armed_before_the_preface_and_pings_with_zeros():
    import h2.events

    from proxycore.connection import ConnectionState
    from proxycore.layers.http._http2 import Http2Client
    from tests.layers.test_http2_layer import h2_peer

    context = make_context()
    context.options.update(http2_ping_keepalive=58)
    context.server = Server(address=("example.com", 443), state=ConnectionState.OPEN)
    layer = Http2Client(context)
    start = list(layer.handle_event(events.Start()))
    assert isinstance(start[0], commands.RequestWakeup) and isinstance(start[1], commands.SendData)
    layer.last_activity -= 60  # wall-clock time, as mitmproxy's tests move it
    out = list(layer.handle_event(events.Wakeup(start[0])))
    received = h2_peer(client_side=False).receive_data(b"".join(c.data for c in start + out if isinstance(c, commands.SendData)))
    (ping,) = [e for e in received if isinstance(e, h2.events.PingReceived)]
    assert ping.ping_data == b"00000000"


def test_an_empty_http2_data_frame_of_a_streamed_upload_is_relayed():
    import h2.events

    from tests.layers.test_http2_layer import H2Pump

    pump = H2Pump()
    pump.context.options.update(stream_large_bodies="0")
    sid = pump.request("/up", body=b"abc", end=False)
    (server_sid,) = pump.server_requests()
    before = sum(1 for e in pump.server_events if isinstance(e, h2.events.DataReceived))
    pump.client.send_data(sid, b"")
    pump.pump_peers()
    empty = [e for e in pump.server_events if isinstance(e, h2.events.DataReceived)][before:]
    assert [e.data for e in empty] == [b""]


def test_certstore_static_helpers(tmp_path):
    import os

    from cryptography.hazmat.primitives.asymmetric import dh

    from proxycore.certs import CertStore

    path = tmp_path / "dhparam.pem"
    params = CertStore.load_dhparam(path)
    assert isinstance(params, dh.DHParameters) and params.parameter_numbers().p.bit_length() == 2048
    assert CertStore.load_dhparam(path).parameter_numbers() == params.parameter_numbers()  # read, not rewritten
    with CertStore.umask_secret(), open(tmp_path / "secret", "wb"):
        pass
    assert os.stat(tmp_path / "secret").st_mode & 0o77 == 0


def test_an_encrypted_key_without_passphrase_is_a_type_and_value_error(tmp_path):
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    from proxycore.certs import CertStore, PassphraseMissing

    store = CertStore.from_store(tmp_path / "ca", "proxycore", 2048)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    leaf = store.get_cert("example.com", []).cert
    pem = leaf.to_pem() + key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.BestAvailableEncryption(b"pw")
    )
    (tmp_path / "leaf.pem").write_bytes(pem)
    with pytest.raises(PassphraseMissing) as raised:
        store.add_cert_file("example.com", tmp_path / "leaf.pem", None)
    assert isinstance(raised.value, TypeError) and isinstance(raised.value, ValueError)


def test_response_repr_and_message_data_state_as_mitmproxys():
    from proxycore.http import Headers, Response
    from proxycore.test.tutils import tresp

    response = Response.make(200, b"x" * 2048, {"Content-Type": "text/html"})
    assert repr(response) == "Response(200, text/html, 2.0k)"
    assert repr(Response.make(204)) == "Response(204, no content)"
    data = tresp(timestamp_start=42, timestamp_end=42).data
    data.trailers = Headers([(b"x-t", b"1")])
    copy = tresp().data.from_state(data.get_state())
    assert copy == data and copy.trailers is not data.trailers


def test_view_orders_dns_flows_by_operation_name_and_answer_size():
    from addons import view
    from proxycore.test import tflow

    flow = tflow.tdnsflow(resp=True)
    v = view.View()
    assert view.OrderRequestMethod(v).generate(flow) == "QUERY"
    assert view.OrderRequestURL(v).generate(flow) == flow.request.questions[0].name
    assert view.OrderKeySize(v).generate(flow) == flow.response.size > 0


def test_streaming_a_request_without_body_still_runs_its_request_hook_first(tctx):
    flow = Placeholder(HTTPFlow)
    server = Placeholder(Server)

    def stream(f: HTTPFlow) -> None:
        f.request.stream = True

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply(side_effect=stream)
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
    )


def test_a_server_gone_mid_response_names_the_closed_connection(tctx):
    from proxycore.testing import BytesMatching

    server = Placeholder(Server)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabc")
        >> events.ConnectionClosed(server)
        << commands.CloseConnection(server)
        << commands.SendData(tctx.client, BytesMatching(b"502 Bad Gateway.+peer closed connection"))
        << commands.CloseConnection(tctx.client)
    )


def test_http2_trailers_behind_data_waiting_for_the_clients_window_end_the_stream():
    import h2.settings

    from tests.layers.test_http2_layer import H2Pump

    pump = H2Pump()
    pump.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 10})
    pump.pump_peers()
    sid = pump.request("/slow-reader")
    (server_sid,) = pump.server_requests()
    pump.respond(server_sid, b"x" * 100, trailers=[(b"x-checksum", b"abc")])
    for _ in range(30):  # the client reads (acknowledges) a little at a time
        got = pump.client_responses()[sid]
        pump.pump_peers()
        if got.get("ended"):
            break
    assert got["body"] == b"x" * 100 and got["trailers"] == [(b"x-checksum", b"abc")] and got["ended"]


def test_http2_server_asking_for_http1_is_passed_on_as_that_reset():
    import h2.errors

    from tests.layers.test_http2_layer import H2Pump

    pump = H2Pump()
    sid = pump.request("/needs-http1")
    (server_sid,) = pump.server_requests()
    pump.server.reset_stream(server_sid, h2.errors.ErrorCodes.HTTP_1_1_REQUIRED)
    pump.pump_peers()
    assert pump.client_responses()[sid] == {"reset": h2.errors.ErrorCodes.HTTP_1_1_REQUIRED}
    assert "error" in pump.hooks


def test_the_servers_fin_after_we_closed_asks_for_nothing_more(tctx):
    from proxycore.layers.http import (
        Http1Client,
        RequestEndOfMessage,
        RequestHeaders,
        RequestProtocolError,
    )

    tctx.server = Server(address=("example.com", 80))
    request = Request.make("GET", "http://example.com/")
    assert (
        Playbook(Http1Client(tctx))
        >> RequestHeaders(1, request, True)
        << commands.SendData(tctx.server, b"GET / HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
        >> RequestEndOfMessage(1)
        >> RequestProtocolError(1, "cancelled")
        << commands.CloseConnection(tctx.server)
        >> events.ConnectionClosed(tctx.server)
    )


def test_a_client_gone_during_the_connect_hook_gets_no_tunnel(tctx):
    from proxycore.layers.http._hooks import HttpConnectHook

    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n")
        << HttpConnectHook(flow)
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.client)
        >> reply(to=HttpConnectHook)
    )
    assert flow().error is not None and not flow().live


def test_blank_lines_after_a_connect_head_are_not_tunnel_data(tctx):
    from proxycore.proxy.layer import NextLayerHook

    tctx.options.connection_strategy = "lazy"
    playbook = Playbook(HttpLayer(tctx, HTTPMode.regular), hooks=False)
    assert (
        playbook
        >> events.DataReceived(tctx.client, b"CONNECT example.com:80 HTTP/1.1\r\nHost: example.com:80\r\n\r\n\r\n")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
    )
    assert not any(isinstance(c, NextLayerHook) for c in playbook.issued)  # nothing for the tunnel yet


def test_a_failed_connection_to_the_clients_own_target_is_the_answer(tctx):
    from proxycore.testing import BytesMatching

    tctx.server.address = ("example.com", 443)
    tctx.server.error = "tls verify failed"
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent), hooks=False)
        >> events.DataReceived(tctx.client, b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << commands.SendData(tctx.client, BytesMatching(b"502 Bad Gateway.+tls verify failed"))
        << commands.CloseConnection(tctx.client)
    )


def test_http1_server_starts_a_tunnel_when_the_connect_answer_has_ended(tctx):
    from proxycore.http import Response
    from proxycore.layers.http import (
        Http1Server,
        ReceiveHttp,
        RequestData,
        RequestHeaders,
        ResponseEndOfMessage,
        ResponseHeaders,
    )

    headers = Placeholder(RequestHeaders)
    assert (
        Playbook(Http1Server(tctx))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:443 HTTP/1.1\r\n\r\nearly bytes")
        << ReceiveHttp(headers)  # no end of message: the request goes on as the tunnel
        >> ResponseHeaders(1, Response.make(200))
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        >> ResponseEndOfMessage(1)
        << ReceiveHttp(RequestData(1, b"early bytes"))
        >> events.DataReceived(tctx.client, b"more")
        << ReceiveHttp(RequestData(1, b"more"))
        >> ResponseEndOfMessage(1)  # now: the tunnel's server side ended
        << commands.CloseConnection(tctx.client, half_close=True)
    )
    assert headers().request.method == "CONNECT"


def test_a_connect_to_a_transparent_or_reverse_proxy_is_refused(tctx):
    from proxycore.testing import BytesMatching

    tctx.server.address = ("example.com", 80)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent), hooks=False)
        >> events.DataReceived(tctx.client, b"CONNECT other.example:443 HTTP/1.1\r\nHost: other.example:443\r\n\r\n")
        << commands.SendData(tctx.client, BytesMatching(b"400 Bad Request.+not running in regular or upstream mode"))
        << commands.CloseConnection(tctx.client)
    )


def test_http1_client_ends_a_101_before_passing_on_the_new_protocol(tctx):
    from proxycore.layers.http import (
        Http1Client,
        ReceiveHttp,
        RequestEndOfMessage,
        RequestHeaders,
        ResponseData,
        ResponseEndOfMessage,
        ResponseHeaders,
    )

    tctx.server = Server(address=("example.com", 80))
    request = Request.make("GET", "http://example.com/ws", headers={"Connection": "Upgrade", "Upgrade": "websocket"})
    assert (
        Playbook(Http1Client(tctx))
        >> RequestHeaders(1, request, True)
        << commands.SendData(tctx.server, Placeholder(bytes))
        >> RequestEndOfMessage(1)
        >> events.DataReceived(tctx.server, b"HTTP/1.1 101 Switching Protocols\r\n\r\nhello")
        << ReceiveHttp(Placeholder(ResponseHeaders))
        << ReceiveHttp(ResponseEndOfMessage(1))
        << ReceiveHttp(ResponseData(1, b"hello"))
    )


def test_an_open_http2_server_connection_that_speaks_first_gets_its_layer_at_once(tctx):
    import h2.events

    from tests.layers.test_http2_layer import h2_peer

    tctx.server.address = ("example.com", 443)
    tctx.server.state = ConnectionState.OPEN
    tctx.server.alpn = b"h2"
    server_peer = h2_peer(client_side=False)
    layer = HttpLayer(tctx, HTTPMode.transparent)
    out = list(layer.handle_event(events.Start()))
    out += layer.handle_event(events.DataReceived(tctx.server, server_peer.data_to_send()))  # its SETTINGS
    sent = b"".join(c.data for c in out if isinstance(c, commands.SendData) and c.connection is tctx.server)
    received = server_peer.receive_data(sent)
    assert any(isinstance(e, h2.events.RemoteSettingsChanged) for e in received)  # our preface
    assert any(isinstance(e, h2.events.SettingsAcknowledged) for e in received)  # its SETTINGS acked


def test_certstore_cache_under_mitmproxys_names(tmp_path):
    from cryptography import x509

    from proxycore.certs import CertStore

    store = CertStore.from_store(tmp_path / "ca", "proxycore", 2048)
    store.STORE_CAP = 2
    for name in ("one.example", "two.example", "three.example"):
        store.get_cert(name, [name, "10.0.0.1"])
    keys = list(store.certs)
    assert [cn for cn, _ in keys] == ["two.example", "three.example"]  # FIFO, capped
    assert keys[0][1] == x509.GeneralNames([x509.DNSName("two.example"), x509.IPAddress(__import__("ipaddress").ip_address("10.0.0.1"))])


def test_name_pairs_of_multi_valued_rdns_under_mitmproxys_name():
    from cryptography import x509
    from cryptography.x509.oid import NameOID

    from proxycore import certs

    rdn = x509.RelativeDistinguishedName(
        [x509.NameAttribute(NameOID.COMMON_NAME, "Multi"), x509.NameAttribute(NameOID.TITLE, "T")]
    )
    name = x509.Name([rdn, x509.RelativeDistinguishedName([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "O1")])])
    assert certs._name_to_keyval(name) == [("CN", "Multi"), ("2.5.4.12", "T"), ("O", "O1")]


def test_http1_client_relays_the_tunnel_after_a_2xx_to_connect(tctx):
    from proxycore.layers.http import (
        Http1Client,
        ReceiveHttp,
        RequestData,
        RequestEndOfMessage,
        RequestHeaders,
        ResponseData,
        ResponseHeaders,
    )

    tctx.server = Server(address=("proxy.example", 8080))
    request = Request.make("CONNECT", "http://example.com:443")
    request.authority = "example.com:443"
    assert (
        Playbook(Http1Client(tctx))
        >> RequestHeaders(1, request, True)
        << commands.SendData(tctx.server, b"CONNECT example.com:443 HTTP/1.1\r\ncontent-length: 0\r\n\r\n")
        >> RequestEndOfMessage(1)
        >> events.DataReceived(tctx.server, b"HTTP/1.1 200 OK\r\n\r\ntunnel bytes")
        << ReceiveHttp(Placeholder(ResponseHeaders))
        << ReceiveHttp(ResponseData(1, b"tunnel bytes"))
        >> RequestData(1, b"more")
        << commands.SendData(tctx.server, b"more")
    )


def test_a_changed_via_on_a_live_upstream_connection_opens_a_connection_through_the_new_proxy(tctx):
    from proxycore.layers.http._hooks import (
        HttpRequestHeadersHook,
        HttpResponseHeadersHook,
        HttpResponseHook,
    )

    # Inside a CONNECT tunnel of upstream mode: the context's server goes through "proxy".
    tctx.server = Server(address=("example.com", 80), via=("http", ("proxy", 8080)))
    flow1, flow2 = Placeholder(HTTPFlow), Placeholder(HTTPFlow)
    first, second = Placeholder(Server), Placeholder(Server)

    def other_proxy(f: HTTPFlow) -> None:
        f.server_conn.via = ("http", ("other-proxy", 1234))

    request = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.transparent))
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(flow1)
        >> reply()
        << HttpRequestHook(flow1)
        >> reply()
        << commands.OpenConnection(first)
        >> reply(None)
        << commands.SendData(first, request)
        >> events.DataReceived(first, b"HTTP/1.1 204 No Content\r\n\r\n")
        << HttpResponseHeadersHook(flow1)
        >> reply()
        << HttpResponseHook(flow1)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 204 No Content\r\n\r\n")
        >> events.DataReceived(tctx.client, request)
        << HttpRequestHeadersHook(flow2)
        >> reply()
        << HttpRequestHook(flow2)
        >> reply(side_effect=other_proxy)
        << commands.OpenConnection(second)
    )
    assert first() is tctx.server and second() is not first()
    assert second().address == ("other-proxy", 1234)
