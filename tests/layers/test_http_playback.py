"""The HTTP layer's part in server playback of WebSocket and TCP: an addon's answer to a
WebSocket handshake or to a CONNECT is played without any server connection (Playbooks)."""

from __future__ import annotations

import wsproto
import wsproto.events as ws

from proxycore.connection import Server
from proxycore.http import HTTPFlow, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._hooks import (
    HttpConnectedHook,
    HttpConnectHook,
    HttpRequestHeadersHook,
    HttpRequestHook,
    HttpResponseHeadersHook,
    HttpResponseHook,
)
from proxycore.layers.playback import TcpPlaybackLayer
from proxycore.layers.tcp import TcpMessageHook, TcpStartHook
from proxycore.layers.websocket import WebsocketMessageHook, WebsocketStartHook
from proxycore.proxy import commands, events
from proxycore.proxy.layer import NextLayer, NextLayerHook
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.testing import Placeholder, Playbook, make_context, reply
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage


def test_a_connect_answered_by_an_addon_opens_no_eager_connection_and_asks_at_once():
    tctx = make_context()
    assert tctx.options.connection_strategy == "eager"
    flow = Placeholder(HTTPFlow)
    tcp_flow = Placeholder(TCPFlow)
    nl = Placeholder(NextLayer)
    recorded = TCPFlow(tctx.client, Server(address=("example.com", 25)))
    recorded.messages = [TCPMessage(False, b"220 hi\r\n")]

    def answer(hook_flow: HTTPFlow) -> None:
        hook_flow.response = Response.make(200)
        hook_flow.response.reason = "Connection established"
        hook_flow.response.headers.clear()

    def play(data: NextLayer) -> None:
        data.layer = TcpPlaybackLayer(data.context, recorded, timing=False)

    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(tctx.client, b"CONNECT example.com:25 HTTP/1.1\r\n\r\n")
        << HttpConnectHook(flow)
        >> reply(side_effect=answer)
        << HttpConnectedHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 200 Connection established\r\n\r\n")
        << NextLayerHook(nl)  # no client data yet: the playback starts before it
        >> reply(side_effect=play)
        << TcpStartHook(tcp_flow)
        >> reply()
        << TcpMessageHook(tcp_flow)
        >> reply()
        << commands.SendData(tctx.client, b"220 hi\r\n")  # after the 200
        << commands.CloseTcpConnection(tctx.client, half_close=True)
    )
    assert tcp_flow().is_replay == "response"


def test_a_websocket_handshake_answered_from_a_recording_plays_it_without_a_server():
    tctx = make_context()
    flow = Placeholder(HTTPFlow)
    recorded = WebSocketData()
    recorded.messages = [WebSocketMessage(Opcode.TEXT, False, b"welcome"), WebSocketMessage(Opcode.TEXT, True, b"q"),
                         WebSocketMessage(Opcode.TEXT, False, b"A")]
    client = wsproto.Connection(wsproto.ConnectionType.CLIENT)

    def answer(hook_flow: HTTPFlow) -> None:
        hook_flow.response = Response.make(101, b"", {"upgrade": "websocket", "connection": "Upgrade"})
        hook_flow.response.headers.pop("content-length", None)
        hook_flow.is_replay = "response"
        hook_flow.websocket_playback = recorded

    welcome = wsproto.Connection(wsproto.ConnectionType.SERVER).send(ws.TextMessage("welcome"))
    answer_a = wsproto.Connection(wsproto.ConnectionType.SERVER).send(ws.TextMessage("A"))
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> events.DataReceived(
            tctx.client,
            b"GET http://example.com/ws HTTP/1.1\r\nHost: example.com\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\n\r\n",
        )
        << HttpRequestHeadersHook(flow)
        >> reply()
        << HttpRequestHook(flow)
        >> reply(side_effect=answer)
        << HttpResponseHeadersHook(flow)
        >> reply()
        << HttpResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\n\r\n")
        << WebsocketStartHook(flow)
        >> reply()
        << WebsocketMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, welcome)
        >> events.DataReceived(tctx.client, client.send(ws.TextMessage("q")))
        << WebsocketMessageHook(flow)
        >> reply()
        << WebsocketMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, answer_a)
    )
    assert [(m.from_client, m.content) for m in flow().websocket.messages] == [
        (False, b"welcome"), (True, b"q"), (False, b"A"),
    ]
    assert not tctx.server.connected
