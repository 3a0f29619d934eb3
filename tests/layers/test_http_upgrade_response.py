"""The response hook of a 101 may replace ``flow.response``: the client gets the new one."""

from proxycore import http
from proxycore.connection import Server
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.tcp import TcpStartHook
from proxycore.proxy import commands, events
from proxycore.tcp import TCPFlow
from proxycore.testing import BytesMatching, Placeholder, Playbook, make_context, reply

UPGRADE = b"Upgrade: websocket\r\nConnection: Upgrade\r\n"


def test_a_response_replaced_in_the_response_hook_of_a_101_is_the_one_sent() -> None:
    tctx = make_context()
    tctx.options.update(websocket=False)  # relayed as TCP: no WebSocket handshake checks
    flow, server = Placeholder(http.HTTPFlow), Placeholder(Server)

    def replace(f: http.HTTPFlow) -> None:
        f.response = http.Response.make(101, b"", {"Upgrade": "websocket", "X-Replaced": "yes"})

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n" + UPGRADE + b"\r\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply()
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"GET / HTTP/1.1\r\nHost: example.com\r\n" + UPGRADE + b"\r\n")
        >> events.DataReceived(server, b"HTTP/1.1 101 Switching Protocols\r\n" + UPGRADE + b"\r\n")
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply(side_effect=replace)
        << commands.SendData(tctx.client, BytesMatching(rb"HTTP/1.1 101 [^\r]*\r\n.*X-Replaced: yes\r\n"))
        << TcpStartHook(Placeholder(TCPFlow))
    )
    assert flow().response.headers["X-Replaced"] == "yes"
