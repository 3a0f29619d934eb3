"""The primary's end of a worker channel (proxycore/workers/pool.py, ``_Channel``): messages
are parsed from whatever the reads bring (several in one read, one split over several) and
handled in order; a burst's records are appended together but never after a flow that came
behind them; an observer that awaits holds the later messages back, reading paused."""

from __future__ import annotations

import asyncio
import io
import logging

import pytest
from hypothesis import given
from hypothesis import strategies as st

from addons.dumper import Dumper
from addons.save import Save
from addons.view import View as ViewAddon
from proxycore import workers
from proxycore.io.io import FlowEncoder
from proxycore.test import taddons
from proxycore.test.tflow import tflow, ttcpflow, twebsocketflow
from proxycore.workers.pool import WorkerPool, _Channel
from tests.hypothesis_budget import budget


class Transport:
    """What the channel uses of its transport, recorded."""

    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.closed = False
        self.paused = False
        self.pauses = 0

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        self.paused = True
        self.pauses += 1

    def resume_reading(self) -> None:
        self.paused = False


class View:
    """An observer (by its class name) that notes the ids of its flows; it awaits for the
    flows whose id is in ``awaits``."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.awaits: set[str] = set()

    def response(self, flow):
        self.seen.append(flow.id)
        return asyncio.sleep(0.01) if flow.id in self.awaits else None


HELLO = workers.encode(("hello", 3, 4242))


def flow_message(flow) -> bytes:
    return workers.encode(("flow", "response", False, flow.get_state()))


def record(n: int) -> bytes:
    return workers.encode(("record", b"record %d;" % n))


def run(view, chunks, awaits=()):
    """Feed ``chunks`` to a channel as its reads, let the loop finish; the channel, its
    transport and the pool."""
    view.awaits = set(awaits)

    async def main():
        pool = WorkerPool()
        channel, transport = _Channel(pool), Transport()
        channel.connection_made(transport)
        for chunk in chunks:
            channel.data_received(chunk)
            while channel.busy or channel.held:  # as the transport: no reads while paused
                assert transport.paused
                await asyncio.sleep(0.005)
        for _ in range(3):
            await asyncio.sleep(0)  # the flush the loop runs after a burst
        return channel, transport, pool

    return asyncio.run(main())


def expected_file(items) -> bytes:
    return b"".join(FlowEncoder().encode(i) if not isinstance(i, int) else b"record %d;" % i for i in items)


def stream(items) -> bytes:
    return HELLO + b"".join(record(i) if isinstance(i, int) else flow_message(i) for i in items)


def test_several_messages_in_one_read_in_order(tmp_path):
    view, save = View(), Save()
    path = tmp_path / "out.mitm"
    flows = [tflow(resp=True) for _ in range(3)]
    items = [0, 1, flows[0], 2, flows[1], flows[2], 3, 4]
    with taddons.context(view, save) as tctx:
        tctx.configure(save, save_stream_file=str(path))
        channel, transport, pool = run(view, [stream(items)])
        assert pool.workers[3] is channel.worker and channel.worker.pid == 4242
        assert view.seen == [f.id for f in flows]
        save.done()
    # the records before a flow are in the file before it, those behind it after it
    assert path.read_bytes() == expected_file(items)
    assert transport.pauses == 0 and not transport.closed


@budget(30, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=400), max_size=12), st.lists(st.integers(0, 5), max_size=6))
def test_messages_split_anywhere_arrive_whole_and_in_order(tmp_path_factory, cuts, awaited):
    view, save = View(), Save()
    path = tmp_path_factory.mktemp("channel") / "out.mitm"
    flows = [tflow(resp=True) for _ in range(6)]
    items = [0, flows[0], flows[1], 1, 2, flows[2], flows[3], 3, flows[4], flows[5], 4]
    data = stream(items)
    chunks, at = [], 0
    for cut in cuts:
        chunks.append(data[at : at + cut])
        at += cut
    chunks.append(data[at:])
    with taddons.context(view, save) as tctx:
        tctx.configure(save, save_stream_file=str(path))
        channel, transport, _ = run(view, chunks, {flows[i].id for i in awaited})
        assert view.seen == [f.id for f in flows]
        assert not channel.partial and not channel.waiting and not transport.paused
        save.done()
    assert path.read_bytes() == expected_file(items)


def test_an_awaiting_observer_holds_back_the_messages_behind_its_flow(tmp_path):
    view, save = View(), Save()
    path = tmp_path / "out.mitm"
    flows = [tflow(resp=True) for _ in range(2)]
    items = [flows[0], 0, flows[1], 1]
    with taddons.context(view, save) as tctx:
        tctx.configure(save, save_stream_file=str(path))

        async def main():
            view.awaits = {flows[0].id}
            channel, transport = _Channel(WorkerPool()), Transport()
            channel.connection_made(transport)
            channel.data_received(stream(items))
            assert transport.paused and channel.busy and view.seen == [flows[0].id]
            assert len(channel.waiting) == 3  # record 0, flows[1], record 1: not handled yet
            while channel.busy:
                await asyncio.sleep(0.005)
            assert not transport.paused and not channel.waiting
            assert view.seen == [f.id for f in flows]

        asyncio.run(main())
        save.done()
    assert path.read_bytes() == expected_file(items)


def test_a_channel_that_does_not_say_hello_first_is_closed():
    with taddons.context(View()):

        async def main():
            pool = WorkerPool()
            channel, transport = _Channel(pool), Transport()
            channel.connection_made(transport)
            channel.data_received(record(0) + HELLO)
            return channel, transport, pool

        channel, transport, pool = asyncio.run(main())
    assert transport.closed and channel.worker is None and not pool.workers


def test_a_message_too_large_closes_the_channel_and_a_lost_one_leaves_the_pool(caplog):
    with taddons.context(View()):

        async def main():
            pool = WorkerPool()
            channel, transport = _Channel(pool), Transport()
            channel.connection_made(transport)
            channel.data_received(HELLO)
            assert pool.workers[3] is channel.worker
            with caplog.at_level(logging.ERROR, "proxycore.workers"):
                channel.data_received((workers.MAX_MESSAGE + 1).to_bytes(4, "big") + b"x")
            assert transport.closed and "channel message of" in caplog.text
            garbled = _Channel(pool), Transport()
            garbled[0].connection_made(garbled[1])
            with caplog.at_level(logging.ERROR, "proxycore.workers"):
                garbled[0].data_received(b"\x00\x00\x00\x02\xff\xff")  # not marshal data
            assert garbled[1].closed and "bad marshal data" in caplog.text
            channel.connection_lost(None)
            return pool

        assert asyncio.run(main()).workers == {}


def test_the_observers_called_follow_the_addons_loaded():
    """The observers' handlers are kept per hook while the manager's hook index is the
    same: an observer added (or removed) later is called (or not) from then on."""

    class Dumper:  # an observer by its class name; it has no update hook
        def __init__(self) -> None:
            self.seen: list[str] = []

        def response(self, flow):
            self.seen.append(flow.id)

    view, dumper = View(), Dumper()
    with taddons.context(view) as tctx:
        pool = WorkerPool()
        assert [c[0] for c in pool._calls("response")] == [view]
        tctx.master.addons.add(dumper)
        assert [c[0] for c in pool._calls("response")] == [view, dumper]
        channel, transport = _Channel(pool), Transport()
        channel.connection_made(transport)
        flow = tflow(resp=True)
        channel.data_received(HELLO + flow_message(flow))
        assert view.seen == dumper.seen == [flow.id]
        tctx.master.addons.remove(dumper)
        assert [c[0] for c in pool._calls("response")] == [view]


def test_reads_that_come_close_together_pause_reading_briefly():
    """Under load a worker's flows come a read at a time: the channel then waits HOLD_OFF
    before reading again (the messages wait in the socket), unless the read was large or
    ended inside a message (a flow with a large body is read at full speed)."""
    from proxycore.workers import pool as pool_module

    with taddons.context(View()):

        async def main():
            channel, transport = _Channel(WorkerPool()), Transport()
            channel.connection_made(transport)
            channel.data_received(HELLO)
            assert not transport.paused  # the first read: nothing came just before
            channel.data_received(record(0))
            assert transport.paused and channel.held
            await asyncio.sleep(pool_module.HOLD_OFF * 3)
            assert not transport.paused and not channel.held
            channel.data_received(record(1))  # long after the read before
            assert not transport.paused
            half = record(1)
            channel.data_received(half[:3])  # soon after, but the rest is on its way
            assert not transport.paused
            channel.data_received(half[3:] + record(2) * (pool_module.HOLD_OFF_BELOW // len(half)))
            assert not transport.paused  # a large read: more may be waiting
            channel.data_received(record(3))
            assert transport.paused
            transport.close()  # a channel closed meanwhile is left alone
            await asyncio.sleep(pool_module.HOLD_OFF * 3)
            assert transport.paused and transport.pauses == 2

        asyncio.run(main())


def test_a_message_that_cannot_be_read_is_logged_and_the_next_ones_delivered(caplog):
    view = View()
    good = tflow(resp=True)
    with taddons.context(view):
        channel, transport = _Channel(WorkerPool()), Transport()
        channel.connection_made(transport)
        state = tflow(resp=True).get_state()
        del state["request"]  # (its connections can be read, the flow cannot)
        broken = workers.encode(("flow", "response", False, state))
        with caplog.at_level(logging.ERROR, "proxycore.workers"):
            channel.data_received(HELLO + broken + flow_message(good))
    assert "sent a message that cannot be read: KeyError('request')" in caplog.text
    assert view.seen == [good.id] and not transport.closed


class ViewOfErrors(View):
    """The View observer that also holds the flows it is shown (as the view does: the
    primary keeps a flow only while someone does) and notes those that end in an error."""

    def __init__(self) -> None:
        super().__init__()
        self.held: list = []
        self.ended: list[tuple[str, str]] = []

    def requestheaders(self, flow):
        self.held.append(flow)

    def error(self, flow):
        self.ended.append((flow.id, flow.error.msg))


ViewOfErrors.__name__ = "View"  # (the primary picks its observers by class name)


def test_a_channel_closed_while_an_observer_awaits_ends_after_the_messages_behind_it():
    """The worker exits (EOF) while the primary's observer still awaits: the messages it
    sent before are handled first, then its live flows end with an error, and only then is
    the channel counted as read to the end (the primary's done waits for that)."""
    view = ViewOfErrors()
    flows = [tflow(resp=True) for _ in range(2)]
    live = tflow()
    with taddons.context(view):

        async def main():
            pool = WorkerPool()
            view.awaits = {flows[0].id}
            channel, transport = _Channel(pool), Transport()
            channel.connection_made(transport)
            opened = workers.encode(("flow", "requestheaders", True, live.get_state()))
            channel.data_received(HELLO + opened + stream(flows)[len(HELLO) :])
            assert channel.busy and channel.ended in pool._reading
            channel.connection_lost(None)
            assert not channel.ended.done() and pool.workers  # flows[1] is still waiting
            await asyncio.wait_for(channel.ended, 5)
            assert view.seen == [f.id for f in flows] and not pool.workers
            assert view.ended == [(live.id, "Worker process exited.")]
            assert not pool._reading

        asyncio.run(main())


SESSIONS = {
    "tcp": ["tcp_start", "tcp_message", "tcp_message", "tcp_end"],
    "websocket": [
        "requestheaders",
        "request",
        "responseheaders",
        "response",
        "websocket_start",
        "websocket_message",
        "websocket_message",
        "websocket_end",
    ],
}


def observers_dumper() -> list:
    return [Dumper(io.StringIO())]


def observers_view() -> list:
    return [ViewAddon()]


@pytest.mark.parametrize("observers", [observers_dumper, observers_view])
def test_closed_websocket_and_tcp_sessions_leave_no_flow_kept(observers):
    """The primary keeps a live WebSocket or TCP flow for the messages that come alone; it
    asks for the end hooks too, whatever its observers implement (proxydump's output has
    ``tcp_message`` but no ``tcp_end``: each closed TCP flow stayed until its worker exited)."""
    with taddons.context(*observers()):
        pool = WorkerPool()
        wanted = set(pool._wanted_hooks()[0])
        channel, transport = _Channel(pool), Transport()
        channel.connection_made(transport)
        channel.data_received(HELLO)
        for i in range(50):
            kind = "tcp" if i % 2 else "websocket"
            flow = ttcpflow() if kind == "tcp" else twebsocketflow()
            for hook in SESSIONS[kind]:
                if hook in wanted:
                    live = hook not in workers.LAST_HOOKS or hook == "response"
                    channel.data_received(workers.encode(("flow", hook, live, flow.get_state())))
        assert {"tcp_message", "websocket_message"} <= wanted
        assert channel.worker.streams == {}


def test_a_listen_change_waits_for_every_worker_and_a_refused_one_goes_back():
    """A change of the listen options is answered by each worker (``listen_update``): its
    outcome (what PUT /options awaits) is the first error, and then the options go back; a
    worker that is gone counts as one that followed."""

    async def main() -> None:
        pool = WorkerPool()
        with taddons.context(pool) as tctx:
            tctx.options.update(listen_port=8080)  # (no worker yet: nothing to answer)
            before = 8080
            channels = []
            for index in (1, 2):
                channel = _Channel(pool)
                channel.connection_made(Transport())
                channel.data_received(workers.encode(("hello", index, 100 + index)))
                channels.append(channel)
            pool._listen_applied = {n: getattr(tctx.options, n) for n in workers.LISTEN_OPTIONS}

            tctx.configure(pool, listen_port=before + 1)
            channels[0].data_received(workers.encode(("listen_update", None)))
            await asyncio.sleep(0.01)
            assert not pool.update_task.done()  # the other worker has not answered
            channels[1].data_received(workers.encode(("listen_update", "no such port")))
            assert await asyncio.wait_for(pool.update_task, 1) == "no such port"
            assert tctx.options.listen_port == before  # back, as the workers went back
            assert pool._listen_failure == "no such port"
            for channel in channels:  # (the options going back are a change they answer too)
                channel.data_received(workers.encode(("listen_update", None)))
            assert await asyncio.wait_for(pool.update_task, 1) is None

            tctx.configure(pool, listen_port=before + 2)
            channels[0].data_received(workers.encode(("listen_update", None)))
            channels[1].connection_lost(None)
            assert await asyncio.wait_for(pool.update_task, 1) is None
            assert tctx.options.listen_port == before + 2 and pool._listen_failure is None

    asyncio.run(main())
