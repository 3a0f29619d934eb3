"""Client replay of a WebSocket flow: the handshake is sent again, then the client's recorded
messages, against a real `websockets` echo server; the replayed flow records the new
conversation, with its own close."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.server import serve

from proxycore.connection import Client, Server
from proxycore.http import HTTPFlow, Request, Response
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage
from tests.addons.test_clientplayback import Harness, run

pytestmark = pytest.mark.e2e


def recorded_websocket(port: int) -> HTTPFlow:
    flow = HTTPFlow(Client(peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080)), Server(address=None))
    flow.request = Request.make("GET", f"http://127.0.0.1:{port}/chat", b"", {
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==",
    })
    flow.response = Response.make(101, b"", {
        "Upgrade": "websocket", "Connection": "Upgrade", "Sec-WebSocket-Accept": "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=",
    })
    flow.websocket = WebSocketData()
    flow.websocket.messages = [
        WebSocketMessage(Opcode.TEXT, True, "grüß".encode(), 10.0),
        WebSocketMessage(Opcode.TEXT, False, b"old answer", 10.1),
        WebSocketMessage(Opcode.BINARY, True, b"\x00\xffbin", 10.5),
    ]
    flow.websocket.close_code = 1000
    return flow


class Ends:
    def __init__(self) -> None:
        self.ended: list[HTTPFlow] = []

    def websocket_end(self, flow: HTTPFlow) -> None:
        self.ended.append(flow)


@pytest.mark.parametrize("timing", [False, True])
def test_websocket_flow_replayed_against_an_echo_server(tmp_path, timing: bool) -> None:
    received: list[object] = []

    async def echo(ws) -> None:
        async for message in ws:
            received.append(message)
            await ws.send(message)

    ends = Ends()

    async def go() -> HTTPFlow:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            flow = recorded_websocket(port)
            async with Harness(tmp_path, ends, client_replay_timing=timing) as h:
                h.call("replay.client", [flow])
                await asyncio.wait_for(h.finished(), 20)
            return flow

    flow = run(go())
    assert received == ["grüß", b"\x00\xffbin"]
    assert ends.ended == [flow] and flow.is_replay == "request"
    assert flow.response.status_code == 101 and flow.error is None
    expected = [(Opcode.TEXT, "grüß".encode()), (Opcode.BINARY, b"\x00\xffbin")]
    for from_client in (True, False):  # each direction in order; the two may interleave
        sent = [(m.type, m.content) for m in flow.websocket.messages if m.from_client is from_client]
        assert sent == expected
    assert flow.websocket.close_code == 1000 and flow.websocket.closed_by_client is True
    sent = [m.timestamp for m in flow.websocket.messages if m.from_client]
    if timing:
        assert sent[1] - sent[0] >= 0.45
