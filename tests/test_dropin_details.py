"""Details where proxycore behaves as mitmproxy does, found by running mitmproxy's tests
(issue 13); each is checked here with proxycore's own helpers."""

from __future__ import annotations

import pytest

from proxycore.connection import Server
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
