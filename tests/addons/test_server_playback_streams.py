"""Server playback of WebSocket and TCP flows: which recording answers which handshake or
connection (the layers that play them are in tests/layers/test_playback_layers.py, the
whole path with real clients in tests/e2e/test_e2e_server_playback_streams.py)."""

from __future__ import annotations

from typing import Any

from proxycore.addons.serverplayback import ServerPlayback
from proxycore.connection import Client, Server
from proxycore.http import HTTPFlow, Request, Response
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.playback import TcpPlaybackLayer
from proxycore.layers.tcp import TCPLayer
from proxycore.layers.tls import ClientTLSLayer
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import events
from proxycore.proxy.layer import NextLayer
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.testing import make_context
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage

UPGRADE = {"upgrade": "websocket", "connection": "Upgrade"}


def ws_recorded() -> HTTPFlow:
    flow = HTTPFlow(Client(), Server(address=("example.com", 80)))
    flow.request = Request.make("GET", "http://example.com/chat", headers={**UPGRADE, "sec-websocket-key": "old"})
    flow.response = Response.make(101, b"", {**UPGRADE, "sec-websocket-accept": "for the old key"})
    flow.websocket = WebSocketData()
    flow.websocket.messages.append(WebSocketMessage(Opcode.TEXT, False, b"hi"))
    return flow


def tcp_recorded(port: int = 7, server_first: bool = False) -> TCPFlow:
    flow = TCPFlow(Client(), Server(address=("10.0.0.1", port)))
    flow.messages = [TCPMessage(not server_first, b"a"), TCPMessage(server_first, b"b")]
    return flow


def playback(*recorded: Any, **options: Any) -> tuple[Master, ServerPlayback]:
    master = Master(Options())
    addon = ServerPlayback()
    master.addons.add(addon)
    master.options.update(**options)
    master.commands.call("replay.server", list(recorded))
    return master, addon


def test_a_websocket_handshake_gets_the_recorded_101_and_conversation():
    recorded = ws_recorded()
    _master, addon = playback(recorded)
    flow = HTTPFlow(Client(), Server(address=("example.com", 80)), live=True)
    # RFC 6455's example key: the recorded accept is replaced by the one for this key.
    flow.request = Request.make("GET", "http://example.com/chat",
                                headers={**UPGRADE, "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ=="})
    addon.request(flow)
    assert flow.response is not None and flow.response.status_code == 101
    assert flow.response.headers["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert flow.websocket_playback is recorded.websocket and flow.is_replay == "response"


def test_an_unmatched_handshake_follows_server_replay_extra():
    _master, addon = playback(ws_recorded(), server_replay_extra="404")
    flow = HTTPFlow(Client(), Server(address=("example.com", 80)), live=True)
    flow.request = Request.make("GET", "http://example.com/other", headers=UPGRADE)
    addon.request(flow)
    assert flow.response is not None and flow.response.status_code == 404
    assert flow.websocket_playback is None


def ask(addon: ServerPlayback, address: tuple[str, int], chosen: Any = None, client_data: bytes = b"") -> NextLayer:
    context = make_context()
    context.server = Server(address=address)
    nextlayer = NextLayer(context)
    if client_data:
        nextlayer.events.append(events.DataReceived(context.client, client_data))
    nextlayer.layer = chosen(context) if chosen else None
    addon.next_layer(nextlayer)
    return nextlayer


def test_a_tcp_relay_to_a_recorded_server_becomes_its_playback_once():
    master, addon = playback(tcp_recorded(), tcp_recorded(port=8))
    assert master.commands.call("replay.server.count") == 2
    assert isinstance(ask(addon, ("10.0.0.1", 7), TCPLayer).layer, TcpPlaybackLayer)
    assert master.commands.call("replay.server.count") == 1
    assert type(ask(addon, ("10.0.0.1", 7), TCPLayer).layer) is TCPLayer  # used up
    assert type(ask(addon, ("10.0.0.2", 8), TCPLayer).layer) is TCPLayer  # another host


def test_other_choices_stand():
    _master, addon = playback(tcp_recorded(), tcp_recorded(server_first=True), server_replay_reuse=True)
    assert isinstance(ask(addon, ("10.0.0.1", 7), lambda c: HttpLayer(c, HTTPMode.transparent)).layer, HttpLayer)
    ignored = ask(addon, ("10.0.0.1", 7), lambda c: TCPLayer(c, ignore=True)).layer
    assert type(ignored) is TCPLayer
    # Undecided: only a recording where the server speaks first is played before client data.
    _master, client_first = playback(tcp_recorded())
    assert ask(client_first, ("10.0.0.1", 7)).layer is None
    _master, server_first = playback(tcp_recorded(server_first=True))
    assert ask(server_first, ("10.0.0.1", 7), client_data=b"x").layer is None
    assert isinstance(ask(server_first, ("10.0.0.1", 7)).layer, TcpPlaybackLayer)


def test_a_connect_to_a_recorded_tcp_or_websocket_server_is_answered_without_the_server():
    plain_http = ws_recorded()
    plain_http.request.port, plain_http.websocket = 81, None
    _master, addon = playback(tcp_recorded(), ws_recorded(), plain_http)
    for host, port, answered in (("10.0.0.1", 7, True), ("10.0.0.1", 9, False), ("example.com", 80, True),
                                 ("example.com", 81, False)):
        flow = HTTPFlow(Client(), Server(address=None), live=True)
        flow.request = Request.make("CONNECT", f"http://{host}:{port}/")
        flow.request.authority = f"{host}:{port}"
        addon.http_connect(flow)
        assert (flow.response is not None and flow.response.status_code == 200) is answered, (host, port)


def test_stop_forgets_tcp_recordings():
    master, addon = playback(tcp_recorded())
    master.commands.call("replay.server.stop")
    assert master.commands.call("replay.server.count") == 0 and not addon.hooks_active


def test_inside_tls_the_sni_picks_the_recording():
    tls_recorded = tcp_recorded()
    tls_recorded.server_conn.tls, tls_recorded.server_conn.sni = True, "chat.example"
    _master, addon = playback(tls_recorded, server_replay_reuse=True)

    def inside_tls(sni: str) -> Any:
        context = make_context()
        context.server = Server(address=("10.0.0.1", 7))
        context.client.sni = sni
        ClientTLSLayer(context)  # the stack so far: decrypted data from the client
        nextlayer = NextLayer(context)
        nextlayer.layer = TCPLayer(context)
        addon.next_layer(nextlayer)
        return nextlayer.layer

    assert isinstance(inside_tls("chat.example"), TcpPlaybackLayer)
    assert type(inside_tls("other.example")) is TCPLayer
    assert type(ask(addon, ("10.0.0.1", 7), TCPLayer).layer) is TCPLayer  # not without TLS
