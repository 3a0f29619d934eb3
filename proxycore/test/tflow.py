"""Ready-made flows and connections for addon tests (mitmproxy's ``tflow`` helpers).

Every timestamp is fixed (around 2000-01-01) and each call returns new objects, so
tests may change what they get.
"""

from __future__ import annotations

import uuid
from typing import Any

from proxycore import dns, flow, http, tcp, udp, websocket
from proxycore.connection import Client, ConnectionState, Server, TransportProtocol
from proxycore.proxy.mode_specs import ProxyMode
from proxycore.test.tutils import tdnsreq, tdnsresp, treq, tresp
from proxycore.websocket import Opcode

__all__ = [
    "DummyFlow",
    "tclient_conn",
    "tdummyflow",
    "terr",
    "tflow",
    "tflows",
    "tserver_conn",
    "ttcpflow",
    "tudpflow",
    "tdnsflow",
    "twebsocket",
    "twebsocketflow",
    "treq",
    "tresp",
]


def tclient_conn() -> Client:
    """An open client connection from 127.0.0.1:22 that has negotiated TLS 1.2."""
    return Client(
        id=str(uuid.uuid4()),
        peername=("127.0.0.1", 22),
        sockname=("", 0),
        timestamp_start=946681200,
        timestamp_tls_setup=946681201,
        timestamp_end=946681206,
        sni="address",
        cipher="cipher",
        alpn=b"http/1.1",
        tls_version="TLSv1.2",
        state=ConnectionState.OPEN,
        proxy_mode=ProxyMode.parse("regular"),
    )


def tserver_conn() -> Server:
    """A closed server connection to address:22 (peer 192.168.0.1)."""
    return Server(
        id=str(uuid.uuid4()),
        address=("address", 22),
        peername=("192.168.0.1", 22),
        sockname=("address", 22),
        timestamp_start=946681202,
        timestamp_tcp_setup=946681203,
        timestamp_tls_setup=946681204,
        timestamp_end=946681205,
        sni="address",
        tls_version="TLSv1.2",
        state=ConnectionState.CLOSED,
    )


def terr(content: str = "error") -> flow.Error:
    return flow.Error(content, 946681207)


def _conns(client_conn: Any, server_conn: Any) -> tuple[Client, Server]:
    """``True`` (the default of the older helpers) means: make a fresh one."""
    return (
        tclient_conn() if client_conn is True or client_conn is None else client_conn,
        tserver_conn() if server_conn is True or server_conn is None else server_conn,
    )


def tflow(
    *,
    client_conn: Client | None = None,
    server_conn: Server | None = None,
    req: http.Request | None = None,
    resp: bool | http.Response = False,
    err: bool | flow.Error = False,
    ws: bool | websocket.WebSocketData = False,
    live: bool = True,
) -> http.HTTPFlow:
    """An HTTP flow; ``resp``/``err``/``ws`` = True add the default response/error/WebSocket."""
    client, server = _conns(client_conn, server_conn)
    request = req if req is not None else treq()
    response = tresp() if resp is True else resp
    error = terr() if err is True else err
    data = twebsocket() if ws is True else ws
    if response is not False and not isinstance(response, http.Response):
        raise TypeError(f"resp must be a bool or a Response, not {response!r}")
    if error is not False and not isinstance(error, flow.Error):
        raise TypeError(f"err must be a bool or an Error, not {error!r}")
    f = http.HTTPFlow(client, server)
    f.timestamp_created = request.timestamp_start
    f.request = request
    f.response = response or None
    f.error = error or None
    f.websocket = data or None
    f.live = live
    return f


def ttcpflow(client_conn: Any = True, server_conn: Any = True, messages: Any = True, err: Any = None) -> tcp.TCPFlow:
    """A TCP flow with "hello" from the client and "it's me" from the server."""
    client, server = _conns(client_conn, server_conn)
    if messages is True:
        messages = [
            tcp.TCPMessage(True, b"hello", 946681204.2),
            tcp.TCPMessage(False, b"it's me", 946681204.5),
        ]
    f = tcp.TCPFlow(client, server)
    f.timestamp_created = client.timestamp_start or f.timestamp_created
    f.messages = messages
    f.error = terr() if err is True else err
    f.live = True
    return f


def tudpflow(client_conn: Any = True, server_conn: Any = True, messages: Any = True, err: Any = None) -> udp.UDPFlow:
    """A UDP flow with "hello" from the client and "it's me" from the server."""
    client, server = _conns(client_conn, server_conn)
    if messages is True:
        messages = [udp.UDPMessage(True, b"hello", 946681204.2), udp.UDPMessage(False, b"it's me", 946681204.5)]
    f = udp.UDPFlow(client, server)
    f.timestamp_created = client.timestamp_start or f.timestamp_created
    f.messages = messages
    f.error = terr() if err is True else err
    f.live = True
    return f


def tdnsflow(
    *,
    client_conn: Client | None = None,
    server_conn: Server | None = None,
    req: dns.DNSMessage | None = None,
    resp: bool | dns.DNSMessage = False,
    err: bool | flow.Error = False,
    live: bool = True,
) -> dns.DNSFlow:
    """A DNS flow from a ``dns`` mode client over UDP: tdnsreq, optionally answered or failed."""
    if client_conn is None:
        client_conn = tclient_conn()
        client_conn.proxy_mode = ProxyMode.parse("dns")
        client_conn.transport_protocol = TransportProtocol.UDP
    if server_conn is None:
        server_conn = tserver_conn()
        server_conn.transport_protocol = TransportProtocol.UDP
    request = req if req is not None else tdnsreq()
    f = dns.DNSFlow(client_conn, server_conn)
    f.timestamp_created = request.timestamp or 946681200
    f.request = request
    f.response = (tdnsresp() if resp is True else resp) or None
    f.error = (terr() if err is True else err) or None
    f.live = live
    return f


def twebsocket(messages: bool = True) -> websocket.WebSocketData:
    """A WebSocket closed normally (1000) by the server, with three messages."""
    data = websocket.WebSocketData()
    if messages:
        data.messages = [
            websocket.WebSocketMessage(Opcode.BINARY, True, b"hello binary", 946681203),
            websocket.WebSocketMessage(Opcode.TEXT, True, b"hello text", 946681204),
            websocket.WebSocketMessage(Opcode.TEXT, False, b"it's me", 946681205),
        ]
    data.close_reason = "Close Reason"
    data.close_code = 1000
    data.closed_by_client = False
    data.timestamp_end = 946681205
    return data


def twebsocketflow(
    messages: bool = True, err: Any = None, close_code: int | None = None, close_reason: str = ""
) -> http.HTTPFlow:
    """An HTTP flow upgraded to a WebSocket (GET /ws answered 101)."""
    f = http.HTTPFlow(tclient_conn(), tserver_conn())
    f.request = http.Request(
        "example.com", 80, b"GET", b"http", b"example.com", b"/ws", b"HTTP/1.1",
        headers=http.Headers(
            connection="upgrade", upgrade="websocket", sec_websocket_version="13", sec_websocket_key="1234"
        ),
        content=b"", trailers=None, timestamp_start=946681200, timestamp_end=946681201,
    )
    f.response = http.Response(
        b"HTTP/1.1", 101, reason=b"Switching Protocols",
        headers=http.Headers(connection="upgrade", upgrade="websocket", sec_websocket_accept=b""),
        content=b"", trailers=None, timestamp_start=946681202, timestamp_end=946681203,
    )
    f.websocket = twebsocket(messages)
    f.websocket.close_reason = close_reason
    if close_code is not None:
        f.websocket.close_code = close_code
    else:
        f.websocket.close_code = 1006 if err is True else 1000  # abnormal / normal closure
    f.live = True
    return f


class DummyFlow(flow.Flow):
    """A flow that is neither HTTP nor TCP (for addons that must ignore other kinds)."""


def tdummyflow(client_conn: Any = True, server_conn: Any = True, err: Any = None) -> DummyFlow:
    client, server = _conns(client_conn, server_conn)
    f = DummyFlow(client, server)
    f.error = terr() if err is True else err
    f.live = True
    return f


def tflows() -> list[flow.Flow]:
    """One flow of each kind, as mitmproxy's list has them."""
    return [
        tflow(resp=True), tflow(err=True), tflow(ws=True), ttcpflow(), ttcpflow(err=True),
        tudpflow(), tudpflow(err=True), tdnsflow(resp=True), tdnsflow(req=tdnsreq(questions=[])),
        tdnsflow(err=True),
    ]
