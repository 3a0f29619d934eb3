"""Reaching a server through an upstream HTTP(S) proxy (upstream mode).

The layers below talk to ``context.server`` (the origin, whose ``via`` names
the proxy) as if it were a real connection.  This layer owns the real one, to
the proxy: when the child opens the origin, it connects to the proxy, sends
``CONNECT host:port`` (after the ``http_connect_upstream`` hook, where e.g.
upstream_auth adds ``Proxy-Authorization``) and answers the child once the
proxy said 2xx.  From then on bytes and closes are relayed between the two
connection objects.  Plain HTTP requests skip the CONNECT (``send_connect``
False): they go to the proxy as they are, in absolute form.
"""

from __future__ import annotations

import ipaddress
import logging
import time

from proxycore.connection import ConnectionState, Server
from proxycore.http import Headers, HTTPFlow, Request
from proxycore.layers.http._hooks import HttpConnectUpstreamHook
from proxycore.net import http1
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.tunnel import CLOSED, ESTABLISHING, OPEN, TunnelLayer

MAX_RESPONSE_HEAD = 64 * 1024  # an upstream proxy's answer to CONNECT is a few hundred bytes


def connect_authority(address: tuple[str, int]) -> bytes:
    """``host:port`` for a CONNECT request line, IPv6 literals in brackets (RFC 3986)."""
    host, port = address[0], address[1]
    try:
        bracket = isinstance(ipaddress.ip_address(host), ipaddress.IPv6Address)
    except ValueError:
        bracket = False
    encoded = f"[{host}]".encode() if bracket else host.encode("idna")
    return encoded + b":%d" % port


class HttpUpstreamTunnel(TunnelLayer):
    """Carries the server connection ``context.server`` over a connection to its ``via`` proxy.

    The open/wait/answer bookkeeping is :class:`TunnelLayer`'s; this class speaks CONNECT."""

    conn: Server
    tunnel_conn: Server

    def __init__(
        self, context: Context, tunnel_conn: Server, send_connect: bool, child: Layer | None = None
    ) -> None:
        super().__init__(context, tunnel_conn, context.server, child)
        self.send_connect = send_connect
        self.buf = b""

    @classmethod
    def make(cls, context: Context, send_connect: bool, child: Layer | None = None) -> Layer:
        """The stack that reaches ``context.server`` through its proxy: TLS first for https proxies."""
        assert context.server.via is not None
        scheme, address = context.server.via
        proxy = Server(address=tuple(address))
        tunnel = cls(context, proxy, send_connect, child)
        if scheme != "https":
            return tunnel
        from proxycore.layers.tls import ServerTLSLayer

        proxy.sni = address[0]
        proxy.alpn_offers = [b"http/1.1"]
        tls_context = context.fork()
        tls_context.server = proxy  # the TLS hooks then see the proxy as their server
        return ServerTLSLayer(tls_context, tunnel)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.ConnectionEvent) and event.connection is self.tunnel_conn:
            if isinstance(event, events.DataReceived):
                if self.state == ESTABLISHING:
                    yield from self.receive_connect_response(event.data)
                elif self.state == OPEN:
                    yield from self.event_to_child(events.DataReceived(self.conn, event.data))
            elif isinstance(event, events.ConnectionClosed):
                if self.state == ESTABLISHING:
                    yield from self.tunnel_failed("Upstream proxy closed the connection.")
                elif self.state == OPEN:
                    self.conn.state &= ~ConnectionState.CAN_READ
                    yield from self.event_to_child(events.ConnectionClosed(self.conn))
        else:
            yield from self.event_to_child(event)

    # the child's commands for the origin, carried over the proxy connection -----------

    def send_data(self, command: commands.SendData) -> CommandGenerator[None]:
        if self.state == OPEN:
            yield commands.SendData(self.tunnel_conn, command.data)

    def send_close(self, command: commands.CloseConnection) -> CommandGenerator[None]:
        if command.half_close:
            self.conn.state &= ~ConnectionState.CAN_WRITE
        else:
            self.conn.state = ConnectionState.CLOSED
            self.conn.timestamp_end = time.time()
            self.state = CLOSED
        if self.tunnel_conn.state is not ConnectionState.CLOSED:
            yield commands.CloseConnection(self.tunnel_conn, command.half_close)

    def other_command(self, command: commands.ConnectionCommand) -> CommandGenerator[None]:
        if isinstance(command, (commands.PauseReading, commands.ResumeReading)):
            yield type(command)(self.tunnel_conn)  # only the real connection can be paused
        else:
            yield command

    # establishing ---------------------------------------------------------------------

    def open_failed(self, err: str) -> CommandGenerator[None]:
        yield from self.tunnel_failed(f"upstream proxy {self.proxy_name}: {err}")

    def establish(self) -> CommandGenerator[None]:
        if not self.send_connect:
            yield from self.tunnel_open()
            return
        flow = self.make_connect_flow()
        yield HttpConnectUpstreamHook(flow)
        yield commands.SendData(self.tunnel_conn, http1.assemble_request_head(flow.request))

    def make_connect_flow(self) -> HTTPFlow:
        assert self.conn.address is not None
        authority = connect_authority(self.conn.address)
        headers = Headers()
        if getattr(self.context.options, "http_connect_send_host_header", True):
            headers.fields = (*headers.fields, (b"Host", authority))
        now = time.time()
        flow = HTTPFlow(self.context.client, self.tunnel_conn)
        flow.request = Request(
            host=self.conn.address[0],
            port=self.conn.address[1],
            method=b"CONNECT",
            scheme=b"",
            authority=authority,
            path=b"",
            http_version=b"HTTP/1.1",
            headers=headers,
            content=b"",
            trailers=None,
            timestamp_start=now,
            timestamp_end=now,
        )
        return flow

    def receive_connect_response(self, data: bytes) -> CommandGenerator[None]:
        self.buf += data
        end = http1.find_head_end(self.buf)
        if end == -1:
            if len(self.buf) > MAX_RESPONSE_HEAD:
                yield from self.tunnel_failed(f"Error connecting to {self.proxy_name}: response head too long")
            return
        head, rest = self.buf[:end], self.buf[end:]
        self.buf = b""
        try:
            response = http1.parse_response_head(head)
        except http1.ProtocolError as e:
            yield commands.Log(f"{self.proxy_name}: {e}", logging.INFO)
            yield from self.tunnel_failed(f"Error connecting to {self.proxy_name}: {e}")
            return
        if not 200 <= response.status_code < 300:
            yield commands.Log(f"{self.proxy_name}: {head!r}", logging.DEBUG)
            yield from self.tunnel_failed(
                f"Upstream proxy {self.proxy_name} refused HTTP CONNECT request: "
                f"{response.status_code} {response.reason}"
            )
            return
        yield from self.tunnel_open()
        if rest:
            yield from self.event_to_child(events.DataReceived(self.conn, rest))

    def tunnel_open(self) -> CommandGenerator[None]:
        self.state = OPEN
        self.conn.state = ConnectionState.OPEN
        self.conn.timestamp_start = self.conn.timestamp_tcp_setup = time.time()
        self.conn.peername = self.tunnel_conn.peername
        self.conn.sockname = self.tunnel_conn.sockname
        yield from self.finish(None)

    def tunnel_failed(self, err: str) -> CommandGenerator[None]:
        self.state = CLOSED
        self.conn.error = err
        self.conn.state = ConnectionState.CLOSED
        if self.tunnel_conn.state is not ConnectionState.CLOSED:
            yield commands.CloseConnection(self.tunnel_conn)
        yield from self.finish(err)

    @property
    def proxy_name(self) -> str:
        from proxycore.utils.human import format_address

        return format_address(self.tunnel_conn.address)
