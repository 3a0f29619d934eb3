"""``--workers``: a worker sends the flows that finish in one event-loop pass to the primary
in one write (PrimaryLink.flush), and that write comes before anything the driver writes to
a peer (server.BEFORE_WRITES): a worker killed after a client heard its answer loses no
finished flow. A socket pair stands in for the channel."""

from __future__ import annotations

import asyncio
import logging
import marshal
import socket
import threading
import time

import pytest

from proxycore import workers
from proxycore.proxy import server
from proxycore.test.tflow import tflow
from proxycore.workers import child
from proxycore.workers.child import HOLD_AT_MOST, LogForwarder, PrimaryLink
from tests.proxy.test_pass_writer import handler


@pytest.fixture(autouse=True)
def _no_hold_left():
    """A failing test must not leave the driver calling its link (module state)."""
    yield
    server.BEFORE_WRITES = None


async def _link() -> tuple[PrimaryLink, socket.socket]:
    """A link whose channel is one end of a socket pair (the primary's end returned), that
    sends each finished flow as a record, as for proxydump -q -w."""
    ours, primary = socket.socketpair()
    _, writer = await asyncio.open_unix_connection(sock=ours)
    link = PrimaryLink(writer, asyncio.get_running_loop())
    link.wanted = link.records = frozenset({"response"})
    primary.setblocking(False)
    return link, primary


def _received(primary: socket.socket) -> list[tuple]:
    """The messages waiting in the primary's end, after checking they came in one piece."""
    try:
        data = primary.recv(1 << 20)
    except BlockingIOError:
        return []
    messages = []
    while data:
        (length,) = workers._LENGTH.unpack_from(data)
        messages.append(marshal.loads(data[4 : 4 + length]))
        data = data[4 + length :]
    return messages


def test_the_flows_of_one_pass_go_out_in_one_write_at_its_end():
    async def main() -> None:
        link, primary = await _link()
        link.response(tflow(resp=True))
        link.response(tflow(resp=True))
        assert _received(primary) == []  # held for the pass
        assert server.BEFORE_WRITES == link.flush
        await asyncio.sleep(0)  # the end of the pass
        received = _received(primary)
        assert [kind for kind, _ in received] == ["record", "record"]
        assert server.BEFORE_WRITES is None and link.held == []
        link.response(tflow(resp=True))  # the next pass holds again
        await asyncio.sleep(0)
        assert len(_received(primary)) == 1

    asyncio.run(main())


def test_the_held_flows_are_in_the_channel_before_the_driver_writes_to_a_peer():
    """A client answered within the pass (here a write at once, above the high-water mark)
    finds the flow with the primary already; and the pass writes it first."""

    async def main() -> None:
        link, primary = await _link()
        connection_handler, transport = handler()
        in_channel_at_write = []
        write = transport.write

        def noting_write(data: object) -> None:
            in_channel_at_write.append(len(_received(primary)))
            write(data)

        transport.write = noting_write  # type: ignore[method-assign]  # (notes what the primary had)
        link.response(tflow(resp=True))
        connection_handler.data_received(connection_handler.client, b"x" * server.WRITE_HIGH_WATER)
        assert in_channel_at_write[:1] == [1]
        link.response(tflow(resp=True))
        connection_handler.data_received(connection_handler.client, b"small")  # at the pass end
        await asyncio.sleep(0)
        assert in_channel_at_write[-1] == 1 and server.BEFORE_WRITES is None

    asyncio.run(main())


def test_a_full_channel_holds_the_worker_until_the_primary_reads():
    """Nothing else may go out first: the flush waits, and every byte arrives in order."""

    async def main() -> None:
        link, primary = await _link()
        primary.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        flows = [tflow(resp=True) for _ in range(200)]
        for flow in flows:  # far more than the socket buffers hold
            flow.response.content = b"y" * 4000
            link.response(flow)
        expected = b"".join(link.held)
        got = bytearray()

        def primary_reads() -> None:
            time.sleep(0.2)  # the worker is waiting meanwhile
            primary.setblocking(True)
            while len(got) < len(expected):
                got.extend(primary.recv(1 << 16))

        reader = threading.Thread(target=primary_reads)
        reader.start()
        started = time.monotonic()
        link.flush()
        assert time.monotonic() - started >= 0.1  # it waited for the reader
        reader.join(10)
        assert bytes(got) == expected

    asyncio.run(main())


def test_a_gone_primary_does_not_fail_the_flow():
    async def main() -> None:
        link, primary = await _link()
        primary.close()
        link.response(tflow(resp=True))
        link.flush()  # EPIPE: dropped (the worker stops when its channel reads EOF)
        assert link.held == [] and server.BEFORE_WRITES is None

    asyncio.run(main())


def test_a_large_message_makes_only_its_flow_wait_and_keeps_the_order():
    """A message above HOLD_AT_MOST goes out at once (what is held first), and its flow
    waits for the channel (drain) instead of the whole worker; while the channel is behind,
    a small one goes the same way, behind it."""

    async def main() -> None:
        link, primary = await _link()
        link.writer.transport.set_write_buffer_limits(high=0)  # as in run()
        small, large, after = tflow(resp=True), tflow(resp=True), tflow(resp=True)
        large.response.content = b"L" * (4 * HOLD_AT_MOST + 1)
        assert link.response(small) is None and link.held
        waiting = link.response(large)
        assert waiting is not None and link.held == []  # the socket pair cannot take it all
        behind = link.response(after)
        assert behind is not None and link.held == []
        got = bytearray()

        async def primary_reads() -> None:
            while True:
                try:
                    data = primary.recv(1 << 16)
                except BlockingIOError:
                    await asyncio.sleep(0.001)
                    continue
                if not data:
                    return
                got.extend(data)

        reading = asyncio.ensure_future(primary_reads())
        await asyncio.wait_for(waiting, 10)
        await asyncio.wait_for(behind, 10)
        link.writer.close()
        await asyncio.sleep(0.05)
        reading.cancel()
        ids = []
        while got:
            (length,) = workers._LENGTH.unpack_from(got)
            record = marshal.loads(bytes(got[4 : 4 + length]))[1]
            ids.append(next(f.id for f in (small, large, after) if f.id.encode() in record))
            del got[: 4 + length]
        assert ids == [small.id, large.id, after.id]

    asyncio.run(main())


@pytest.mark.parametrize("wanted", [True, False])
def test_log_lines_before_the_primary_answers_are_kept_bounded_then_sent_or_dropped(
    monkeypatch, wanted
):
    """A worker's first lines (a script's load, "listening at") come before the primary says
    whether it has an event log: they wait (the first MAX_EARLY_LINES, the rest counted)."""
    monkeypatch.setattr(child, "MAX_EARLY_LINES", 3)
    log = logging.getLogger("proxycore.test.early")

    async def main() -> None:
        link, primary = await _link()
        forwarder = LogForwarder(link)
        forwarder.install()
        try:
            for i in range(5):
                log.warning("early %d", i)
            await asyncio.sleep(0)
            assert _received(primary) == []
            forwarder.answered(wanted)
            log.warning("later")
            for _ in range(3):
                await asyncio.sleep(0)
            texts = [text for _, _, text in _received(primary)]
            assert (forwarder in logging.getLogger().handlers) == wanted  # (not wanted: removed)
        finally:
            logging.getLogger().removeHandler(forwarder)
        if wanted:
            assert [t.rsplit("] ", 1)[-1] for t in texts] == [
                "early 0",
                "early 1",
                "early 2",
                "2 more log lines of this worker's start were left out.",
                "later",
            ]
        else:
            assert texts == []

    asyncio.run(main())
