"""End-to-end WebSocket and raw TCP: the `websockets` library and asyncio peers through proxydump."""

from __future__ import annotations

import asyncio
import random
import ssl
import time

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

from tests.e2e_servers import make_self_signed
from tests.processes import Proxy

pytestmark = pytest.mark.e2e


async def echo(ws) -> None:
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass


def run(coro) -> object:
    return asyncio.run(asyncio.wait_for(coro, 60))


def random_payloads(count: int, seed: int = 7) -> list[str | bytes]:
    """Text and binary messages with log-uniform sizes from 0 bytes to 1 MiB."""
    rnd = random.Random(seed)
    payloads: list[str | bytes] = []
    for i in range(count):
        size = int(2 ** rnd.uniform(0, 20)) - 1
        if i % 2:
            payloads.append(rnd.randbytes(size))
        else:
            payloads.append("".join(rnd.choice("abcdefghijklmnopqrstuvwxyzäöü€ ") for _ in range(min(size, 300))) * max(1, size // 300))
    return payloads


@pytest.fixture(scope="module")
def plain_proxy(tmp_path_factory):
    p = Proxy(["-q"], tmp_path_factory.mktemp("ws"))
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_ws_thousand_random_messages_echo_intact(plain_proxy):
    payloads = random_payloads(1000)

    async def main():
        async with serve(echo, "127.0.0.1", 0, max_size=None) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/echo", proxy=plain_proxy.url, max_size=None) as ws:
                for payload in payloads:
                    await ws.send(payload)
                    assert await ws.recv() == payload

    run(main())


def test_wss_through_tls_interception(tmp_path):
    cert, key = make_self_signed(tmp_path)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(str(cert), str(key))
    p = Proxy(["-q", "--set", "ssl_insecure=true"], tmp_path)
    # 300 of them still cover every size from 0 bytes to 1 MiB (about 15 per doubling); the
    # plain test above sends 1000 through the same WebSocket layer.
    payloads = random_payloads(300, seed=11)
    try:
        client_ctx = ssl.create_default_context(cafile=p.ca)

        async def main():
            async with serve(echo, "127.0.0.1", 0, ssl=server_ctx, max_size=None) as server:
                port = server.sockets[0].getsockname()[1]
                async with connect(
                    f"wss://localhost:{port}/echo", proxy=p.url, ssl=client_ctx, max_size=None
                ) as ws:
                    for payload in payloads:
                        await ws.send(payload)
                        assert await ws.recv() == payload

        run(main())
    finally:
        assert p.stop() == 0


def test_addon_rewrites_drops_and_injects(tmp_path):
    script = tmp_path / "ws_addon.py"
    script.write_text(
        "from proxycore import ctx\n\n"
        "def websocket_start(flow):\n"
        "    ctx.master.commands.call('inject.websocket', flow, True, b'injected hello', True)\n\n"
        "def websocket_message(flow):\n"
        "    message = flow.websocket.messages[-1]\n"
        "    if message.from_client and b'drop' in message.content:\n"
        "        message.drop()\n"
        "    elif message.from_client and message.is_text:\n"
        "        message.text = message.text.upper()\n"
    )
    p = Proxy(["-s", str(script)], tmp_path)
    seen_by_server: list[str] = []

    async def record(ws) -> None:
        try:
            async for message in ws:
                seen_by_server.append(message)
                await ws.send(f"echo {message}")
        except ConnectionClosed:
            pass  # 4001 is not a "normal" close for the library

    async def main():
        async with serve(record, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", proxy=p.url) as ws:
                assert await ws.recv() == "injected hello"
                await ws.send("please drop this")
                await ws.send("shout")
                assert await ws.recv() == "echo SHOUT"
                await ws.close(4001, "client bye")

    try:
        run(main())
        assert seen_by_server == ["SHOUT"]
        # mitmdump's wording: codes other than 1000/1001/1005 are shown as errors.
        out = p.wait_output("4001")
        assert "WebSocket Error: UNKNOWN_ERROR=4001 (reason: client bye)" in out
    finally:
        assert p.stop() == 0


def test_server_close_code_and_reason_reach_the_client(plain_proxy):
    async def close_soon(ws) -> None:
        await ws.recv()
        await ws.close(4002, "server bye")

    async def main():
        async with serve(close_soon, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", proxy=plain_proxy.url) as ws:
                await ws.send("hi")
                with pytest.raises(ConnectionClosed):
                    await ws.recv()
                return ws.close_code, ws.close_reason

    assert run(main()) == (4002, "server bye")


# Raw TCP ------------------------------------------------------------------------------


def test_raw_tcp_with_tcp_hosts_rewrite_and_inject(tmp_path):
    script = tmp_path / "tcp_addon.py"
    script.write_text(
        "from proxycore import ctx\n\n"
        "def tcp_start(flow):\n"
        "    ctx.master.commands.call('inject.tcp', flow, True, b'welcome;')\n\n"
        "def tcp_message(flow):\n"
        "    message = flow.messages[-1]\n"
        "    if message.from_client:\n"
        "        message.content = message.content.replace(b'ping', b'PING')\n"
    )

    async def tcp_echo(reader, writer) -> None:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        writer.close()

    async def main(proxy: Proxy) -> bytes:
        server = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"ping;")
        received = b""
        deadline = time.monotonic() + 10
        while received.count(b";") < 2 and time.monotonic() < deadline:
            received += await asyncio.wait_for(reader.read(100), 10)
        writer.write_eof()  # half-close: the echo server ends, so does the relay
        rest = await asyncio.wait_for(reader.read(), 10)
        writer.close()
        server.close()
        return received + rest

    p = Proxy(["-s", str(script), "--tcp-hosts", "^127\\.0\\.0\\.1:"], tmp_path)
    try:
        assert run(main(p)) == b"welcome;PING;"
        out = p.wait_output("-> tcp ->")
        assert "<- tcp <-" in out
    finally:
        assert p.stop() == 0
