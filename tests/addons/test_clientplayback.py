"""Client playback: recorded requests sent again through the real layers and driver.

In-process Master with the default addons (no listener) replaying to real local servers:
plain HTTP, HTTPS and HTTP/2 upstreams, refused connections, idle upstreams, concurrency,
intercepts, and the commands. The proxydump CLI (-C) is covered in test_e2e_replay.py.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxycore import hooks
from proxycore.addons import default_addons
from proxycore.addons.clientplayback import ClientPlayback
from proxycore.connection import Client, Server
from proxycore.exceptions import CommandError, OptionsError
from proxycore.http import HTTPFlow, Request, Response
from proxycore.io import FlowWriter
from proxycore.master import Master
from proxycore.options import Options
from proxycore.tcp import TCPFlow
from tests.e2e_servers import free_port, start_h2, start_http

pytestmark = pytest.mark.e2e

FLOW_HOOKS = ("requestheaders", "request", "responseheaders", "response", "error")
CONNECTION_HOOKS = ("server_connect", "server_connected", "server_disconnected", "server_connect_error")


def tflow(url: str, method: str = "GET", content: bytes = b"", headers: dict[str, str] | None = None) -> HTTPFlow:
    """A finished flow as it would come from a file (not live, with a response)."""
    client = Client(peername=("127.0.0.1", 40001), sockname=("127.0.0.1", 8080))
    flow = HTTPFlow(client, Server(address=None))
    flow.request = Request.make(method, url, content, headers or {})
    flow.response = Response.make(299, b"recorded")
    return flow


class Recorder:
    """Remembers every flow and connection hook, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, Any]] = []

    def names(self, flow: HTTPFlow) -> list[str]:
        return [name for name, obj in self.seen if obj is flow]

    def __getattr__(self, name: str) -> Any:
        if name in FLOW_HOOKS:
            return lambda flow: self.seen.append((name, flow))
        if name in CONNECTION_HOOKS:
            return lambda data: self.seen.append((name, data.server))
        raise AttributeError(name)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


class Harness:
    """A Master with the default addons, running but not listening."""

    def __init__(self, tmp_path: Path, *extra: Any, **options: Any) -> None:
        self.master = Master(Options())
        self.recorder = Recorder()
        self.master.addons.add(*default_addons(), self.recorder, *extra)
        self.master.options.update(server=False, confdir=str(tmp_path / "conf"), **options)
        self.playback: ClientPlayback = next(
            a for a in self.master.addons.chain if isinstance(a, ClientPlayback)
        )

    async def __aenter__(self) -> Harness:
        await self.master.addons.trigger_event(hooks.RunningHook())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.master.addons.trigger_event(hooks.DoneHook())

    def call(self, name: str, *args: Any) -> Any:
        return self.master.commands.call(name, *args)

    async def finished(self) -> None:
        while self.call("replay.client.count"):
            await asyncio.sleep(0.01)


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


def test_replay_goes_to_the_server_with_live_hooks(tmp_path, origin):
    flow = tflow(f"http://127.0.0.1:{origin}/post?x=1", "POST", b"payload", {"X-Test": "yes"})

    async def main() -> None:
        async with Harness(tmp_path) as h:
            h.call("replay.client", [flow])
            assert flow.is_replay == "request" and flow.response is None
            await h.finished()
            names = [n for n, _ in h.recorder.seen]
            assert h.recorder.names(flow) == ["requestheaders", "request", "responseheaders", "response"]
            assert names.index("server_connected") < names.index("responseheaders")
            assert "server_disconnected" in names  # the replay connection is closed afterwards

    run(main())
    info = json.loads(flow.response.content)
    assert info["body"] == "payload" and info["path"] == "/post?x=1"
    assert info["headers"]["x-test"] == "yes"
    assert flow.response.status_code == 200 and flow.error is None
    assert flow.is_replay == "request" and not flow.live
    assert flow.server_conn.peername[1] == origin
    assert flow.client_conn.peername == ("127.0.0.1", 40001)  # the recorded client stays


def test_an_addon_can_change_the_replayed_request(tmp_path, origin):
    class Rewrite:
        def request(self, flow: HTTPFlow) -> None:
            flow.request.path = "/get?rewritten=1"

    flow = tflow(f"http://127.0.0.1:{origin}/get?original=1")

    async def main() -> None:
        async with Harness(tmp_path, Rewrite()) as h:
            h.call("replay.client", [flow])
            await h.finished()

    run(main())
    assert json.loads(flow.response.content)["path"] == "/get?rewritten=1"


def test_refused_connection_fails_the_flow_and_the_next_one_goes_on(tmp_path, origin):
    dead = tflow(f"http://127.0.0.1:{free_port()}/nobody")
    alive = tflow(f"http://127.0.0.1:{origin}/get?after=1")

    async def main() -> None:
        async with Harness(tmp_path) as h:
            h.call("replay.client", [dead, alive])
            await h.finished()
            assert h.recorder.names(dead) == ["requestheaders", "request", "error"]

    run(main())
    assert "Connection refused" in dead.error.msg and dead.response is None
    assert alive.response.status_code == 200


def test_https_upstream(tmp_path):
    server, port = start_http(tmp_path)
    flow = tflow(f"https://localhost:{port}/get?tls=1")
    try:

        async def main() -> None:
            async with Harness(tmp_path, ssl_insecure=True) as h:
                h.call("replay.client", [flow])
                await h.finished()

        run(main())
    finally:
        server.shutdown()
    assert json.loads(flow.response.content)["path"] == "/get?tls=1"
    assert flow.server_conn.tls and flow.server_conn.sni == "localhost"


def test_https_upstream_certificate_is_verified(tmp_path):
    server, port = start_http(tmp_path)
    flow = tflow(f"https://localhost:{port}/get")
    try:

        async def main() -> None:
            async with Harness(tmp_path) as h:
                h.call("replay.client", [flow])
                await h.finished()

        run(main())
    finally:
        server.shutdown()
    assert flow.response is None and "certificate" in flow.error.msg.lower()


def test_http2_upstream_when_the_recorded_client_offered_h2(tmp_path):
    _loop, port = start_h2(tmp_path)
    flow = tflow(f"https://localhost:{port}/h2?x=1", "POST", b"over h2")
    flow.client_conn.alpn_offers = [b"h2", b"http/1.1"]

    async def main() -> None:
        async with Harness(tmp_path, ssl_insecure=True) as h:
            h.call("replay.client", [flow])
            await h.finished()

    run(main())
    assert flow.response.http_version == "HTTP/2.0"
    assert json.loads(flow.response.content) == {
        "path": "/h2?x=1", "method": "POST", "protocol": "h2", "body": "over h2"
    }


async def _hold_connections(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    await reader.read()  # never answers; ends when the proxy hangs up
    writer.close()


def test_an_idle_upstream_times_out_and_the_queue_goes_on(tmp_path, origin):
    async def main() -> tuple[HTTPFlow, HTTPFlow]:
        silent = await asyncio.start_server(_hold_connections, "127.0.0.1", 0)
        port = silent.sockets[0].getsockname()[1]
        stuck = tflow(f"http://127.0.0.1:{port}/never")
        after = tflow(f"http://127.0.0.1:{origin}/get")
        async with Harness(tmp_path, tcp_timeout=1) as h:
            h.call("replay.client", [stuck, after])
            await h.finished()
        silent.close()
        return stuck, after

    stuck, after = run(main())
    assert stuck.error is not None and stuck.response is None
    assert after.response.status_code == 200


def test_unlimited_concurrency_replays_all_at_once(tmp_path):
    """The origin answers only once it holds three requests: sequential replay would hang."""
    waiting: list[asyncio.StreamWriter] = []
    all_there = asyncio.Event()

    async def gather_three(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        waiting.append(writer)
        if len(waiting) == 3:
            all_there.set()
        await all_there.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
        await writer.drain()
        writer.close()

    async def main() -> list[HTTPFlow]:
        origin = await asyncio.start_server(gather_three, "127.0.0.1", 0)
        port = origin.sockets[0].getsockname()[1]
        flows = [tflow(f"http://127.0.0.1:{port}/{i}") for i in range(3)]
        async with Harness(tmp_path, client_replay_concurrency=-1) as h:
            h.call("replay.client", flows)
            await asyncio.sleep(0)
            await h.finished()
        origin.close()
        return flows

    flows = run(main())
    assert [f.response.content for f in flows] == [b"ok"] * 3


def test_intercepted_replay_waits_for_resume(tmp_path, origin):
    class Hold:
        def __init__(self) -> None:
            self.held: list[HTTPFlow] = []

        def request(self, flow: HTTPFlow) -> None:
            flow.intercept()
            self.held.append(flow)

    hold = Hold()
    flow = tflow(f"http://127.0.0.1:{origin}/get")

    async def main() -> None:
        async with Harness(tmp_path, hold) as h:
            h.call("replay.client", [flow])
            while not hold.held:
                await asyncio.sleep(0.01)
            await asyncio.sleep(0.2)
            assert h.call("replay.client.count") == 1 and flow.response is None
            h.call("flow.resume", [flow])
            await h.finished()

    run(main())
    assert flow.response.status_code == 200


def test_flows_that_cannot_be_replayed_are_skipped_with_a_reason(tmp_path, caplog):
    live = tflow("http://example.com/")
    live.live = True
    intercepted = tflow("http://example.com/")
    intercepted.intercept()
    missing = tflow("http://example.com/")
    missing.request.raw_content = None
    connect = tflow("http://example.com:443/", "CONNECT")
    tcp = TCPFlow(Client(), Server(address=None))
    h = Harness(tmp_path)
    h.call("replay.client", [live, intercepted, missing, connect, tcp])
    assert h.call("replay.client.count") == 0
    for reason in (
        "Can't replay live flow.",
        "Can't replay intercepted flow.",
        "Can't replay flow with missing content.",
        "Can't replay CONNECT requests.",
        "Can't replay a flow without a server address.",
    ):
        assert reason in caplog.text


def test_stop_clears_the_queue_and_restores_the_flows(tmp_path):
    flows = [tflow(f"http://example.com/{i}") for i in range(3)]
    h = Harness(tmp_path)  # not running: nothing leaves the queue
    h.call("replay.client", flows)
    assert h.call("replay.client.count") == 3
    assert all(f.response is None and f.is_replay == "request" for f in flows)
    h.call("replay.client.stop")
    assert h.call("replay.client.count") == 0
    assert all(f.response.status_code == 299 and f.is_replay is None for f in flows)


def test_replay_from_a_file_and_the_option(tmp_path, origin):
    path = tmp_path / "flows.mitm"
    with path.open("wb") as f:
        writer = FlowWriter(f)
        for i in range(2):
            writer.add(tflow(f"http://127.0.0.1:{origin}/get?n={i}"))

    async def main() -> None:
        async with Harness(tmp_path) as h:
            h.call("replay.client.file", path)
            await h.finished()
            h.master.options.update(client_replay=[str(path)])
            await h.finished()
            responses = [obj for name, obj in h.recorder.seen if name == "response"]
            paths = [json.loads(f.response.content)["path"] for f in responses]
            assert paths == ["/get?n=0", "/get?n=1"] * 2

    run(main())


def test_bad_files_and_values_are_clear_errors(tmp_path):
    h = Harness(tmp_path)
    with pytest.raises(CommandError, match="Cannot read client replay file .*nope.mitm: No such file"):
        h.call("replay.client.file", tmp_path / "nope.mitm")
    with pytest.raises(OptionsError, match="Cannot read client replay file"):
        h.master.options.update(client_replay=[str(tmp_path / "nope.mitm")])
    with pytest.raises(OptionsError, match="-1 and 1"):
        h.master.options.update(client_replay_concurrency=2)
    garbage = tmp_path / "garbage.mitm"
    garbage.write_bytes(b"this is not a flow file")
    with pytest.raises(OptionsError, match="garbage.mitm"):
        h.master.options.update(client_replay=[str(garbage)])
