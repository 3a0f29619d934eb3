"""The driver (proxycore.proxy.server) with real sockets on 127.0.0.1, in-process.

Each test runs its own event loop with a Master, a ProxyListener and plain
asyncio peers, so connection lifetimes, hook concurrency, backpressure and
timeouts are observed on real TCP connections.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from proxycore.addons.next_layer import NextLayer
from proxycore.layers.modes import HttpProxy
from proxycore.layers.tcp import TCPLayer
from proxycore.master import Master
from proxycore.proxy import events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import ProxyListener

pytestmark = pytest.mark.e2e

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 20))


async def serve(handler: Handler) -> tuple[asyncio.base_events.Server, int]:
    server = await asyncio.start_server(handler, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def proxy(master: Master, make_layer: Callable[[Context], Layer]) -> tuple[ProxyListener, int]:
    listener = ProxyListener(master, make_layer)
    await listener.start("127.0.0.1", 0)
    return listener, listener.addresses[0][1]


def tcp_to(port: int) -> Callable[[Context], Layer]:
    """A top layer that relays the client to 127.0.0.1:port."""

    def make(context: Context) -> Layer:
        context.server.address = ("127.0.0.1", port)
        return TCPLayer(context)

    return make


async def read_all(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.read(), 5)


async def http_get(port: int, url: str) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    host = url.split("/")[2]
    writer.write(f"GET {url} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
    data = await read_all(reader)
    writer.close()
    return data


async def http_origin(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """A tiny HTTP/1.1 server: answers every request with its path."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            path = head.split(b" ", 2)[1]
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n%s" % (len(path), path))
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        writer.close()


def test_tcp_relay_propagates_half_close():
    """The client's EOF reaches the server, whose answer still reaches the client."""

    async def answer_after_eof(reader, writer):
        data = await reader.read()  # until the proxy forwards the client's EOF
        writer.write(b"got " + data)
        await writer.drain()
        writer.close()

    async def main():
        origin, origin_port = await serve(answer_after_eof)
        listener, port = await proxy(Master(), tcp_to(origin_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"hello")
        writer.write_eof()
        assert await read_all(reader) == b"got hello"
        writer.close()
        await listener.stop()
        origin.close()

    run(main())


def test_refused_upstream_closes_only_that_client():
    async def main():
        free, free_port = await serve(lambda r, w: None)
        free.close()
        await free.wait_closed()
        listener, port = await proxy(Master(), tcp_to(free_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await read_all(reader) == b""
        writer.close()
        # The listener is still there for the next client.
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert await read_all(reader) == b""
        await listener.stop()

    run(main())


class SlowRequests:
    """Holds requests for /slow until released; everything else passes at once."""

    def __init__(self) -> None:
        self.release = asyncio.Event()
        self.seen: list[str] = []

    async def request(self, flow) -> None:
        self.seen.append(flow.request.path)
        if flow.request.path == "/slow":
            await self.release.wait()


def http_master(*addons: Any) -> Master:
    master = Master()
    master.addons.add(NextLayer(), *addons)
    return master


def test_slow_hook_does_not_block_other_connections():
    async def main():
        origin, origin_port = await serve(http_origin)
        slow = SlowRequests()
        listener, port = await proxy(http_master(slow), HttpProxy)
        base = f"http://127.0.0.1:{origin_port}"
        pending = asyncio.ensure_future(http_get(port, base + "/slow"))
        while "/slow" not in slow.seen:
            await asyncio.sleep(0.01)
        fast = await http_get(port, base + "/fast")
        assert fast.startswith(b"HTTP/1.1 200") and fast.endswith(b"/fast")
        assert not pending.done()
        slow.release.set()
        assert (await pending).endswith(b"/slow")
        await listener.stop()
        origin.close()

    run(main())


def test_intercepted_flow_waits_for_resume():
    class Intercept:
        def __init__(self) -> None:
            self.flows: list[Any] = []

        def request(self, flow) -> None:
            flow.intercept()
            self.flows.append(flow)

    async def main():
        origin, origin_port = await serve(http_origin)
        addon = Intercept()
        listener, port = await proxy(http_master(addon), HttpProxy)
        pending = asyncio.ensure_future(http_get(port, f"http://127.0.0.1:{origin_port}/held"))
        while not addon.flows:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.2)
        assert not pending.done(), "an intercepted flow must not be forwarded"
        addon.flows[0].resume()
        assert (await pending).endswith(b"/held")
        await listener.stop()
        origin.close()

    run(main())


class Exploding(Layer):
    """A layer with a bug: it raises on the first data it sees."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived):
            raise RuntimeError("boom")
        return
        yield


def test_a_crashing_layer_ends_only_its_connection(caplog):
    async def main():
        origin, origin_port = await serve(http_origin)
        listener, port = await proxy(http_master(), HttpProxy)
        crashing, crash_port = await proxy(http_master(), Exploding)
        reader, writer = await asyncio.open_connection("127.0.0.1", crash_port)
        writer.write(b"anything")
        assert await read_all(reader) == b""
        writer.close()
        # The same master keeps serving, on this listener and on the other one.
        ok = await http_get(port, f"http://127.0.0.1:{origin_port}/still-here")
        assert ok.endswith(b"/still-here")
        await listener.stop()
        await crashing.stop()
        origin.close()

    with caplog.at_level(logging.ERROR, logger="proxycore.proxy"):
        run(main())
    assert "proxycore has crashed" in caplog.text and "RuntimeError: boom" in caplog.text


def test_tcp_timeout_closes_idle_connections():
    async def main():
        origin, origin_port = await serve(http_origin)
        master = http_master()
        master.options.update(tcp_timeout=1)
        listener, port = await proxy(master, tcp_to(origin_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        start = time.monotonic()
        assert await read_all(reader) == b""
        assert 0.9 < time.monotonic() - start < 4
        writer.close()
        await listener.stop()
        origin.close()

    run(main())


def test_backpressure_stops_reading_from_a_fast_sender():
    """An upstream that never reads: the proxy buffers a bounded amount, then stops reading."""
    async def main():
        stalled: list[asyncio.StreamWriter] = []
        got_connection = asyncio.Event()

        async def never_read(reader, writer):
            stalled.append(writer)
            got_connection.set()
            await asyncio.sleep(30)

        origin, origin_port = await serve(never_read)
        listener, port = await proxy(Master(), tcp_to(origin_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        await got_connection.wait()
        chunk = b"x" * 65536
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline and sent < 200 * 2**20:
            writer.write(chunk)
            sent += len(chunk)
            try:
                await asyncio.wait_for(writer.drain(), 0.2)
            except TimeoutError:
                break  # the proxy stopped reading us: backpressure works
        # Kernel socket buffers on both hops plus the proxy's high-water mark, not 200 MiB.
        assert sent < 32 * 2**20
        writer.transport.abort()
        for w in stalled:
            w.transport.abort()
        await listener.stop()
        origin.close()

    run(main())


def test_stop_closes_open_connections():
    async def main():
        origin, origin_port = await serve(http_origin)
        listener, port = await proxy(Master(), tcp_to(origin_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET /x HTTP/1.1\r\n\r\n")
        assert (await reader.readuntil(b"/x")).startswith(b"HTTP/1.1 200")
        await listener.stop()
        assert await read_all(reader) == b""
        writer.close()
        origin.close()

    run(main())


def test_last_hooks_run_even_though_the_client_is_gone():
    """tcp_end fires as the connection closes; the handler must not cancel it on the way out."""

    class Recorder:
        def __init__(self) -> None:
            self.ended = asyncio.Event()

        async def tcp_end(self, flow) -> None:
            await asyncio.sleep(0.05)  # still running when the handler tears down
            self.ended.set()

    async def close_at_once(reader, writer):
        await reader.read()
        writer.close()

    async def main():
        origin, origin_port = await serve(close_at_once)
        recorder = Recorder()
        master = Master()
        master.addons.add(recorder)
        listener, port = await proxy(master, tcp_to(origin_port))
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"x")
        writer.write_eof()
        assert await read_all(reader) == b""
        await asyncio.wait_for(recorder.ended.wait(), 5)
        writer.close()
        await listener.stop()
        origin.close()

    run(main())


def test_a_closed_connection_leaves_no_pending_wakeup_behind():
    """The HTTP/1 layer arms request_head_timeout with the first bytes: the timer must go
    with the connection, not keep its handler alive for 30 seconds."""

    async def main():
        listener, port = await proxy(http_master(), HttpProxy)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET http://example.com/ HTTP/1.1\r\n")
        await asyncio.sleep(0.1)
        (handler,) = listener.handlers.values()
        assert handler._head_timer is not None  # the head timeout is pending
        writer.close()
        for _ in range(100):
            if not listener.handlers:
                break
            await asyncio.sleep(0.01)
        assert not listener.handlers
        assert not handler._wakeups and handler._head_timer is None
        await listener.stop()

    run(main())


def test_a_client_that_never_says_anything_is_closed_after_request_head_timeout():
    async def main():
        master = http_master()
        master.options.update(request_head_timeout=1)
        listener, port = await proxy(master, HttpProxy)
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        started = time.monotonic()
        assert await asyncio.wait_for(reader.read(), 5) == b""
        assert 0.9 < time.monotonic() - started < 3
        writer.close()
        await listener.stop()

    run(main())


async def _idle_close_after(head_timeout: int, keepalive: int) -> tuple[float, bool]:
    """One keep-alive GET through the proxy right after connecting, then silence: seconds
    until the proxy closes the connection, and whether it was still open at half of that."""
    origin, origin_port = await serve(http_origin)
    master = http_master()
    master.options.update(request_head_timeout=head_timeout, keepalive_timeout=keepalive)
    listener, port = await proxy(master, HttpProxy)
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    url = f"http://127.0.0.1:{origin_port}/x"
    writer.write(f"GET {url} HTTP/1.1\r\nHost: 127.0.0.1:{origin_port}\r\n\r\n".encode())
    await asyncio.wait_for(reader.readuntil(b"\r\n\r\n/x"), 5)
    answered = time.monotonic()
    await asyncio.sleep(keepalive / 2)
    open_at_half = not reader.at_eof()
    assert await asyncio.wait_for(reader.read(), 10) == b""
    took = time.monotonic() - answered
    writer.close()
    await listener.stop()
    origin.close()
    return took, open_at_half


def test_keepalive_timeout_due_after_the_earlier_head_timer():
    """The driver keeps one loop timer for the head timers and re-arms it when it fires
    early: the idle timer that replaced the first request's (shorter) one still counts."""
    took, open_at_half = run(_idle_close_after(head_timeout=1, keepalive=2))
    assert open_at_half
    assert 1.8 < took < 3.5


def test_keepalive_timeout_due_before_the_earlier_head_timer():
    """An idle timer due before the loop timer moves it earlier."""
    took, _ = run(_idle_close_after(head_timeout=4, keepalive=1))
    assert 0.8 < took < 2.5


def test_listener_addresses_follow_its_sockets():
    """addresses are read once per set of sockets, and a restart on another port shows the new one."""

    async def scenario() -> None:
        listener = ProxyListener(Master(), tcp_to(1))
        assert listener.addresses == []
        await listener.start("127.0.0.1", 0)
        first = listener.addresses
        assert first == [listener.sockets[0].getsockname()[:2]]
        first.append(("changed", 0))  # a copy: the caller cannot change the listener's
        assert listener.addresses == first[:1]
        await listener.stop()
        assert listener.addresses == []
        await listener.start("127.0.0.1", 0)
        assert listener.addresses == [listener.sockets[0].getsockname()[:2]]
        await listener.stop()

    run(scenario())
