"""The intercept addon: matching flows wait for flow.resume, flow.kill ends them.

Unit tests for the filter and option handling, then the real proxy in-process (default
addons, a listener on 127.0.0.1) with curl and raw TCP clients against local servers.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterator
from pathlib import Path
from typing import Any

import pytest

from proxycore import hooks
from proxycore.addons import default_addons
from proxycore.addons.intercept import Intercept
from proxycore.connection import Client, Server
from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow, Request, Response
from proxycore.master import Master
from proxycore.options import Options
from proxycore.tcp import TCPFlow, TCPMessage
from tests.e2e_servers import start_http


def intercept_master(**options: Any) -> tuple[Master, Intercept]:
    master = Master(Options())
    addon = Intercept()
    master.addons.add(addon)
    master.options.update(**options)
    return master, addon


def http_flow(path: str = "/", response: bool = False) -> HTTPFlow:
    flow = HTTPFlow(Client(), Server(address=("example.com", 80)), live=True)
    flow.request = Request.make("GET", f"http://example.com{path}")
    if response:
        flow.response = Response.make(200, b"body")
    return flow


def test_matching_flows_are_intercepted_at_request_and_response():
    _master, addon = intercept_master(intercept="~u /held")
    held, passed = http_flow("/held"), http_flow("/other")
    addon.request(held)
    addon.request(passed)
    assert held.intercepted and not passed.intercepted
    held.resume()
    held.response = Response.make(200)
    addon.response(held)
    assert held.intercepted


def test_filter_decides_the_phase():
    _master, addon = intercept_master(intercept="~s")
    flow = http_flow()
    addon.request(flow)
    assert not flow.intercepted  # ~s needs a response
    flow.response = Response.make(200)
    addon.response(flow)
    assert flow.intercepted


def test_setting_a_filter_activates_and_clearing_it_deactivates():
    master, addon = intercept_master()
    assert master.options.intercept_active is False
    master.options.update(intercept="~q")
    assert master.options.intercept_active is True
    master.options.update(intercept_active=False)
    flow = http_flow()
    addon.request(flow)
    assert not flow.intercepted  # switched off: the filter stays but holds nothing
    master.options.update(intercept=None)
    assert master.options.intercept_active is False and addon.filter is None


def test_replayed_flows_are_never_held():
    _master, addon = intercept_master(intercept="~q")
    flow = http_flow()
    flow.is_replay = "request"
    addon.request(flow)
    assert not flow.intercepted


def test_messages_are_intercepted_too():
    _master, addon = intercept_master(intercept="~tcp")
    flow = TCPFlow(Client(), Server(address=("example.com", 1)), live=True)
    flow.messages.append(TCPMessage(True, b"hi"))
    addon.tcp_message(flow)
    assert flow.intercepted
    assert all(callable(getattr(addon, h)) for h in ("websocket_message", "udp_message", "dns_request"))


@pytest.mark.parametrize("bad", ["~nope", "~q &", "(~q"])
def test_a_bad_filter_is_a_clear_option_error(bad):
    master, _addon = intercept_master()
    with pytest.raises(OptionsError, match=r"^intercept: Invalid filter expression"):
        master.options.update(intercept=bad)
    assert master.options.intercept is None and master.options.intercept_active is False


# Through the real proxy --------------------------------------------------------------


class Seen:
    def __init__(self) -> None:
        self.flows: list[Any] = []
        self.errors: list[Any] = []

    def request(self, flow: Any) -> None:
        self.flows.append(flow)

    def tcp_start(self, flow: Any) -> None:
        self.flows.append(flow)

    def error(self, flow: Any) -> None:
        self.errors.append(flow)


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


class Proxy:
    """The default addons with a listener on 127.0.0.1 (random port), in this event loop."""

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        self.master = Master(Options())
        self.seen = Seen()
        self.master.addons.add(*default_addons(), self.seen)
        self.master.options.update(
            listen_host="127.0.0.1", listen_port=0, confdir=str(tmp_path / "conf"), **options
        )

    async def __aenter__(self) -> Proxy:
        await self.master.addons.trigger_event(hooks.RunningHook())
        server = self.master.addons.get("proxyserver")
        self.port = server.listen_addrs()[0][1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.master.addons.trigger_event(hooks.DoneHook())

    def call(self, name: str, *args: Any) -> Any:
        return self.master.commands.call(name, *args)

    async def curl(self, url: str, *args: str) -> asyncio.subprocess.Process:
        return await asyncio.create_subprocess_exec(
            "curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{self.port}", *args, url,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )

    async def first_flow(self) -> Any:
        while not self.seen.flows:
            await asyncio.sleep(0.01)
        return self.seen.flows[0]

    async def held_curl(self, url: str) -> tuple[asyncio.subprocess.Process, Any]:
        """curl ``url`` through the proxy; the process and its flow, once intercept holds it."""
        curl = await self.curl(url)
        return curl, await until_held(await self.first_flow())


async def until_held(flow: Any) -> Any:
    """``flow`` once intercept holds it (run()'s timeout bounds the wait)."""
    while not flow.intercepted:
        await asyncio.sleep(0.01)
    return flow


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


async def still_waiting(process: asyncio.subprocess.Process) -> bool:
    try:
        await asyncio.wait_for(asyncio.shield(process.wait()), 0.3)
    except TimeoutError:
        return True
    return False


@pytest.mark.e2e
def test_curl_hangs_until_the_flow_is_resumed(tmp_path, origin):
    async def main() -> None:
        async with Proxy(tmp_path, intercept="~q") as proxy:
            curl, flow = await proxy.held_curl(f"http://127.0.0.1:{origin}/get?held=1")
            assert await still_waiting(curl)
            assert flow.intercepted and flow.response is None
            proxy.call("flow.resume", [flow])
            out, err = await curl.communicate()
            assert curl.returncode == 0, err
            assert b'"path": "/get?held=1"' in out

    run(main())


@pytest.mark.e2e
def test_killing_an_intercepted_flow_gives_the_client_an_error(tmp_path, origin):
    async def main() -> None:
        async with Proxy(tmp_path, intercept="~q") as proxy:
            curl, flow = await proxy.held_curl(f"http://127.0.0.1:{origin}/get")
            assert await still_waiting(curl)
            proxy.call("flow.kill", [flow])
            out, err = await curl.communicate()
            assert curl.returncode == 52 and out == b""  # curl: empty reply from server
            assert proxy.seen.errors == [flow] and flow.error.msg == "Connection killed."

    run(main())


@pytest.mark.e2e
def test_an_intercepted_response_can_be_edited_before_it_is_resumed(tmp_path, origin):
    async def main() -> None:
        async with Proxy(tmp_path, intercept="~s") as proxy:
            curl, flow = await proxy.held_curl(f"http://127.0.0.1:{origin}/status/404")
            assert flow.response.status_code == 404 and await still_waiting(curl)
            flow.response.status_code = 200
            flow.response.text = "edited while held"
            proxy.call("flow.resume", [flow])
            out, _ = await curl.communicate()
            assert out == b"edited while held"

    run(main())


async def _echo(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    while data := await reader.read(1024):
        writer.write(data)
        await writer.drain()
    writer.close()


@pytest.mark.e2e
def test_tcp_messages_wait_for_resume(tmp_path):
    async def main() -> None:
        echo = await asyncio.start_server(_echo, "127.0.0.1", 0)
        port = echo.sockets[0].getsockname()[1]
        async with Proxy(tmp_path, intercept="~tcp") as proxy:
            reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
            writer.write(f"CONNECT 127.0.0.1:{port} HTTP/1.1\r\n\r\n".encode())
            assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
            writer.write(b"\x00\x01 raw bytes")
            flow = await proxy.first_flow()
            assert isinstance(flow, TCPFlow)
            await until_held(flow)
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(reader.read(100), 0.3)
            flow.resume()
            # The echo comes back as a second message, intercepted in turn.
            await until_held(flow)
            flow.resume()
            assert await asyncio.wait_for(reader.read(100), 5) == b"\x00\x01 raw bytes"
            writer.close()
        echo.close()

    run(main())


@pytest.mark.e2e
def test_the_documented_example_holds_and_releases(tmp_path, origin):
    import re

    doc = (Path(__file__).parents[2] / "docs" / "replay.md").read_text()
    (source,) = re.findall(r"```python\n(# release\.py.*?)```", doc, re.S)
    script = tmp_path / "release.py"
    script.write_text(source)

    async def main() -> None:
        async with Proxy(tmp_path, scripts=[str(script)]) as proxy:
            assert proxy.master.options.intercept == "~q & ~u /admin"
            curl, _ = await proxy.held_curl(f"http://127.0.0.1:{origin}/get/admin")
            out, err = await curl.communicate()
            assert curl.returncode == 0, err
            assert b'"path": "/get/admin"' in out
            other = await proxy.curl(f"http://127.0.0.1:{origin}/get/public")
            assert (await other.communicate())[0] and not proxy.seen.flows[1].intercepted

    run(main())


@pytest.mark.e2e
def test_websocket_messages_wait_for_resume(tmp_path):
    from websockets.asyncio.client import connect
    from websockets.asyncio.server import serve

    async def echo(ws: Any) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> None:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with Proxy(tmp_path, intercept="~websocket & ~b ping") as proxy:
                url = f"ws://127.0.0.1:{port}/echo"
                async with connect(url, proxy=f"http://127.0.0.1:{proxy.port}") as ws:
                    flow = await proxy.first_flow()
                    await ws.send("ping")
                    await until_held(flow)
                    with pytest.raises(TimeoutError):
                        await asyncio.wait_for(ws.recv(), 0.3)
                    flow.websocket.messages[-1].text = "ping, edited"
                    flow.resume()
                    # The echo matches the filter too and is held in turn.
                    await until_held(flow)
                    flow.resume()
                    assert await asyncio.wait_for(ws.recv(), 5) == "ping, edited"

    run(main())
