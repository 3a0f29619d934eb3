"""The driver's own reading switch: bytes a loop delivers while we asked for a pause (uvloop
does so right after connection_made) wait, in order, until reading is switched on."""

from __future__ import annotations

import pytest

from proxycore.proxy.server import _ConnectionProtocol


class Transport:
    def __init__(self) -> None:
        self.calls: list[str] = []

    def pause_reading(self) -> None:
        self.calls.append("pause")

    def resume_reading(self) -> None:
        self.calls.append("resume")

    def is_closing(self) -> bool:
        return False


class Handler:
    def __init__(self) -> None:
        self.seen: list[object] = []

    def data_received(self, connection: object, data: bytes) -> None:
        self.seen.append(data)

    def read_closed(self, connection: object, exc: object) -> None:
        self.seen.append("eof")


def make() -> tuple[_ConnectionProtocol, Transport, Handler]:
    handler = Handler()
    protocol = _ConnectionProtocol(handler, object())  # type: ignore[arg-type]
    transport = Transport()
    protocol.transport = transport  # type: ignore[assignment]
    return protocol, transport, handler


def test_data_during_a_pause_is_held_and_delivered_in_order():
    protocol, transport, handler = make()
    protocol.set_reading(False)
    protocol.data_received(b"a")
    protocol.data_received(b"b")
    assert handler.seen == [] and transport.calls[-1] == "pause"
    protocol.set_reading(True)
    assert handler.seen == [b"a", b"b"] and transport.calls[-1] == "resume"
    protocol.data_received(b"c")
    assert handler.seen == [b"a", b"b", b"c"]


def test_eof_during_a_pause_comes_after_the_held_data():
    protocol, transport, handler = make()
    protocol.set_reading(False)
    protocol.data_received(b"a")
    protocol.eof_received()
    assert handler.seen == []
    protocol.set_reading(True)
    assert handler.seen == [b"a", "eof"]


def test_hold_pauses_the_transport_only_once_something_arrives():
    protocol, transport, handler = make()
    protocol.hold()
    assert transport.calls == []  # nothing arrived: no pause (and no epoll_ctl) at all
    protocol.set_reading(True)
    assert handler.seen == []
    protocol.hold()
    protocol.data_received(b"a")
    assert handler.seen == [] and transport.calls[-1] == "pause"
    protocol.set_reading(True)
    assert handler.seen == [b"a"] and transport.calls[-1] == "resume"


@pytest.mark.e2e
def test_accept_takes_a_waiting_connection_and_waits_for_the_next():
    import asyncio
    import socket

    from proxycore.proxy.server import _accept

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        listener = socket.create_server(("127.0.0.1", 0))
        listener.setblocking(False)
        address = listener.getsockname()
        first = socket.create_connection(address)
        conn = await asyncio.wait_for(_accept(loop, listener), 5)  # already waiting
        assert not conn.getblocking() and conn.getpeername() == first.getsockname()
        pending = asyncio.ensure_future(_accept(loop, listener))
        await asyncio.sleep(0.05)
        assert not pending.done()  # nothing waits: it waits for the next one
        second = socket.create_connection(address)
        conn2 = await asyncio.wait_for(pending, 5)
        assert not conn2.getblocking() and conn2.getpeername() == second.getsockname()
        for s in (conn, conn2, first, second, listener):
            s.close()

    asyncio.run(scenario())


def test_switching_is_idempotent():
    protocol, transport, _ = make()
    protocol.set_reading(True)
    protocol.set_reading(False)
    protocol.set_reading(False)
    assert transport.calls == ["pause"]
