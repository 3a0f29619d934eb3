"""Flows built in memory with fixed, recognisable contents, for tests that need a flow of each
kind (HTTP, WebSocket, TCP) without a proxy: the filter language, commands, the view, the
web API. Addon tests that need a live flow as the proxy builds it use tests/addon_utils.py."""

from __future__ import annotations

from pathlib import Path

from proxycore.connection import Client, Server
from proxycore.flow import Error
from proxycore.http import HTTPFlow, Request, Response
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.websocket import Opcode, WebSocketData, WebSocketMessage

# Every kind of flow as real mitmdump wrote them (tests/data/README.md says how).
CORPUS = Path(__file__).parent / "data" / "corpus-all.mitm"


def http_flow(
    *,
    response: bool = False,
    error: bool = False,
    url: str = "http://address:22/path",
    method: str = "GET",
    req_body: bytes = b"content",
    req_headers: dict[str, str] | None = None,
    resp_body: bytes = b"message",
    resp_headers: dict[str, str] | None = None,
    status: int = 200,
) -> HTTPFlow:
    flow = HTTPFlow(Client(peername=("127.0.0.1", 22)), Server(address=("address", 22)))
    flow.request = Request.make(method, url, req_body, req_headers or {"header": "qvalue"})
    if response:
        flow.response = Response.make(
            status, resp_body, resp_headers or {"header-response": "svalue"}
        )
    if error:
        flow.error = Error("error")
    return flow


def ws_flow() -> HTTPFlow:
    flow = http_flow(response=True, status=101)
    flow.websocket = WebSocketData()
    flow.websocket.messages = [
        WebSocketMessage(Opcode.TEXT, True, b"hello from client"),
        WebSocketMessage(Opcode.BINARY, False, b"\x00binary from server"),
    ]
    return flow


def tcp_flow() -> TCPFlow:
    flow = TCPFlow(Client(peername=("10.0.0.1", 5000)), Server(address=("tcp.example", 7)))
    flow.messages = [TCPMessage(True, b"ping request"), TCPMessage(False, b"pong reply")]
    return flow
