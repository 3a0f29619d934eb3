"""What the layers send goes out once per event-loop pass (_PassWriter), in order, and never
later than the pass: a close or half-close writes what is pending first. In memory: fake
transports stand in for sockets."""

from __future__ import annotations

import asyncio
from typing import Any

from proxycore.connection import Client, ConnectionState, Server
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import (
    COALESCE_LIMIT,
    WRITE_HIGH_WATER,
    WRITE_PIECE,
    ConnectionHandler,
    _ConnectionProtocol,
)


class Echo(Layer):
    """Sends back what it reads, in two pieces; ``bye`` closes after the echo."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived):
            yield commands.SendData(event.connection, b"<")
            yield commands.SendData(event.connection, event.data)
            if event.data == b"bye":
                yield commands.CloseConnection(event.connection)


class Transport:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def get_write_buffer_size(self) -> int:
        return 0


def handler() -> tuple[ConnectionHandler, Transport]:
    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
    connection_handler = ConnectionHandler(Master(Options()), client, Echo)
    protocol = _ConnectionProtocol(connection_handler, client)
    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    connection_handler.protocols[client] = protocol
    return connection_handler, transport


def test_sends_of_one_pass_go_out_together_after_it():
    async def main() -> None:
        first, first_transport = handler()
        second, second_transport = handler()
        first.data_received(first.client, b"a")
        second.data_received(second.client, b"b")
        first.data_received(first.client, b"c")
        assert first_transport.writes == [] and second_transport.writes == []  # not yet
        await asyncio.sleep(0)  # the next pass
        assert first_transport.writes == [b"<a<c"]  # one write per peer, in order
        assert second_transport.writes == [b"<b"]

    asyncio.run(main())


def test_a_close_writes_what_is_pending_first():
    async def main() -> None:
        connection_handler, transport = handler()
        connection_handler.data_received(connection_handler.client, b"bye")
        assert transport.writes == [b"<bye"] and transport.closed  # not after the pass
        await asyncio.sleep(0)
        assert transport.writes == [b"<bye"]

    asyncio.run(main())


def test_a_peer_s_sends_are_joined_only_up_to_the_coalesce_limit():
    """Each peer's sends of a pass are joined when they add up to at most COALESCE_LIMIT,
    whether the pass wrote to one peer (whose size flush_writes knows) or to several."""
    big = b"x" * COALESCE_LIMIT  # with the "<" one byte over

    async def main() -> None:
        alone, alone_transport = handler()
        alone.data_received(alone.client, big)
        await asyncio.sleep(0)
        assert alone_transport.writes == [b"<", big]
        alone.data_received(alone.client, big[1:])
        await asyncio.sleep(0)
        assert alone_transport.writes == [b"<", big, b"<" + big[1:]]  # exactly the limit

        both, client_transport = handler()
        server = Server(address=("127.0.0.1", 3), state=ConnectionState.OPEN)
        server_protocol = _ConnectionProtocol(both, server)
        server_transport = Transport()
        server_protocol.transport = server_transport  # type: ignore[assignment]
        both.protocols[server] = server_protocol
        both.data_received(both.client, b"a")
        both.data_received(server, big)
        both.data_received(both.client, b"b")
        await asyncio.sleep(0)
        assert client_transport.writes == [b"<a<b"]
        assert server_transport.writes == [b"<", big]

    asyncio.run(main())


def test_outside_an_event_loop_sends_go_out_at_once():
    connection_handler, transport = handler()
    connection_handler.data_received(connection_handler.client, b"a")
    assert transport.writes == [b"<a"]


def test_more_than_the_high_water_mark_goes_out_before_the_pass_ends():
    """A body in flight is written at once, so that a full peer pauses our reading before
    the loop delivers more (uvloop reads one socket up to 32 times in a pass)."""
    from proxycore.proxy.server import WRITE_HIGH_WATER

    async def main() -> None:
        connection_handler, transport = handler()
        small = b"s" * (WRITE_HIGH_WATER // 2)
        connection_handler.data_received(connection_handler.client, small)
        assert transport.writes == []  # below the mark: waits for the end of the pass
        large = b"l" * WRITE_HIGH_WATER
        connection_handler.data_received(connection_handler.client, large)
        assert transport.writes == [b"<", small, b"<", large]  # now, in order
        await asyncio.sleep(0)
        assert transport.writes == [b"<", small, b"<", large]  # nothing written twice

    asyncio.run(main())


class Relay(Layer):
    """Sends back what it reads, as one SendData."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived):
            yield commands.SendData(event.connection, event.data)


class FullTransport(Transport):
    """A transport whose buffer is above the high-water mark until ``drain``."""

    def __init__(self) -> None:
        super().__init__()
        self.buffered = WRITE_HIGH_WATER + 1

    def get_write_buffer_size(self) -> int:
        return self.buffered


def test_a_small_send_waits_behind_pending_data():
    """The pass writes a lone small send straight to the transport only when nothing of the
    peer is pending: else it would overtake the pieces a full buffer holds back."""

    async def main() -> None:
        client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
        connection_handler = ConnectionHandler(Master(Options()), client, Relay)
        protocol = _ConnectionProtocol(connection_handler, client)
        transport = FullTransport()
        protocol.transport = transport  # type: ignore[assignment]
        connection_handler.protocols[client] = protocol
        big = b"b" * (WRITE_PIECE + 1)
        protocol.write(big)  # the buffer is full: all of it waits
        assert transport.writes == [] and protocol.pending
        connection_handler.data_received(client, b"small")
        await asyncio.sleep(0)  # the pass
        assert transport.writes == []  # behind the big one
        transport.buffered = 0
        protocol.flush()  # as resume_writing does
        assert b"".join(transport.writes) == big + b"small"

    asyncio.run(main())
