"""SendData finds its peer's protocol by the connection's identity (``_send_targets``),
not by ``protocols[connection]``: a Connection's ``__hash__`` is Python code, asked twice
per keep-alive request. The memo must never send to a protocol the driver let go of."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.connection import Client, Connection, ConnectionState, Server
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import ConnectionHandler, _ConnectionProtocol
from tests.proxy.test_pass_writer import Transport


class ToServer(Layer):
    """Sends what the client says to ``server``, what anyone else says to the client."""

    server: Server

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived):
            client = self.context.client
            yield commands.SendData(self.server if event.connection is client else client, event.data)


def make_handler() -> tuple[ConnectionHandler, Server]:
    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
    server = Server(address=("example.com", 80), state=ConnectionState.OPEN)

    def layer(context: Any) -> Layer:
        made = ToServer(context)
        made.server = server
        return made

    handler = ConnectionHandler(Master(Options()), client, layer)
    return handler, server


class PausableTransport(Transport):
    paused = False

    def pause_reading(self) -> None:
        self.paused = True

    def resume_reading(self) -> None:
        self.paused = False


def attach(handler: ConnectionHandler, connection: Connection, transport: Transport | None = None) -> Transport:
    protocol = _ConnectionProtocol(handler, connection)
    transport = transport or Transport()
    protocol.transport = transport  # type: ignore[assignment]
    handler.protocols[connection] = protocol
    return transport


def test_repeated_sends_do_not_hash_the_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    handler, server = make_handler()
    client_transport = attach(handler, handler.client)
    server_transport = attach(handler, server)
    hashed: list[Connection] = []
    original = Connection.__hash__

    def counting_hash(self: Connection) -> int:
        hashed.append(self)
        return original(self)

    monkeypatch.setattr(Connection, "__hash__", counting_hash)
    for i in range(5):  # outside an event loop every send is written at once
        handler.data_received(handler.client, b"q%d" % i)
        handler.data_received(server, b"a%d" % i)
    assert server_transport.writes == [b"q%d" % i for i in range(5)]
    assert client_transport.writes == [b"a%d" % i for i in range(5)]
    assert hashed.count(server) <= 1 and hashed.count(handler.client) <= 1  # the first send only


def test_a_closed_connection_is_forgotten_and_a_new_protocol_is_used() -> None:
    handler, server = make_handler()
    attach(handler, handler.client)
    first = attach(handler, server)
    handler.data_received(handler.client, b"one")
    assert first.writes == [b"one"]
    handler._close(server)  # the driver lets go of the protocol
    assert first.closed
    handler.data_received(handler.client, b"lost")  # closed: sent nowhere
    server.state = ConnectionState.OPEN  # reopened on a new socket
    second = attach(handler, server)
    handler.data_received(handler.client, b"two")
    assert first.writes == [b"one"] and second.writes == [b"two"]


def test_an_equal_but_other_connection_object_finds_the_protocol_of_its_id() -> None:
    """Connections are equal by ``id`` (copies from flow files): a copy still reaches the
    protocol ``protocols`` gives for it, as before the memo."""
    handler, server = make_handler()
    attach(handler, handler.client)
    transport = attach(handler, server)
    copy = Server(address=server.address, state=ConnectionState.OPEN)
    copy.id = server.id
    handler.layer.server = copy  # type: ignore[attr-defined]
    for text in (b"a", b"b"):
        handler.data_received(handler.client, text)
    handler.layer.server = server  # type: ignore[attr-defined]
    handler.data_received(handler.client, b"c")
    assert transport.writes == [b"a", b"b", b"c"]


def test_socket_reads_reach_the_layers_directly_and_count_while_a_peer_is_full() -> None:
    """_ConnectionProtocol.data_received does ConnectionHandler.data_received's usual case
    itself; while a peer's buffer is full it leaves the read to the handler, which counts it."""
    handler, server = make_handler()
    client_transport = attach(handler, handler.client, PausableTransport())
    server_transport = attach(handler, server, PausableTransport())
    client_protocol = handler.protocols[handler.client]
    handler._client_silent = True
    client_protocol.data_received(b"q")  # as uvloop calls it
    assert server_transport.writes == [b"q"] and handler._client_silent is False
    handler.writable(client_protocol, False)  # the client's buffer is full
    assert server_transport.paused and not client_transport.paused  # only the full peer is read
    client_protocol.data_received(b"more")
    assert client_protocol.read_while_full == 4
    assert server_transport.writes == [b"q", b"more"]
