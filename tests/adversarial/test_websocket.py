"""WebSocket messages that are too big to hold (the "Also" list): over
websocket_message_size_limit both sides get 1009 and the origin nothing; under a raised
limit a 64 MiB message in one frame is relayed without copies of it piling up."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed

MESSAGE = 64 * 1024 * 1024


async def close_client(ws) -> None:
    """Close the test's client. CPython 3.11's selector transport, once a close has drained
    its write buffer, has dropped its loop without counting the connection as lost, and the
    abort() websockets then calls raises AttributeError: the connection is closed all the
    same (a fault of the client's interpreter, not of the proxy)."""
    try:
        await ws.close()
    except AttributeError as e:
        if "call_soon" not in str(e):
            raise


async def send_through(
    proxy_url: str, fragmented: bool, download: bool = False
) -> tuple[int | None, list[int], int | None, bytes | None]:
    """Send one 64 MiB message through the proxy to a server that answers with the size it
    got (with ``download``, the client sends b"go" and the server answers with the 64 MiB);
    returns (client close code, sizes the server got, server close code, the answer)."""
    got: list[int] = []
    server_close: list[int | None] = []

    async def handler(ws) -> None:
        try:
            async for message in ws:
                got.append(len(message))
                await ws.send(b"d" * MESSAGE if download else str(len(message)).encode())
        except ConnectionClosed:
            pass
        server_close.append(ws.close_code)

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        answer = None
        ws = await connect(f"ws://127.0.0.1:{port}/", proxy=proxy_url, max_size=None, compression=None,
                           open_timeout=10, close_timeout=10)
        payload = b"go" if download else b"w" * MESSAGE
        try:
            if fragmented:
                await ws.send([payload[i : i + (1 << 20)] for i in range(0, MESSAGE, 1 << 20)])
            else:
                await ws.send(payload)
            del payload
            answer = await asyncio.wait_for(ws.recv(), 30)
        except ConnectionClosed:
            pass
        finally:
            await close_client(ws)
        client_close = ws.close_code
        for _ in range(100):
            if server_close:
                break
            await asyncio.sleep(0.05)
    return client_close, got, server_close[0] if server_close else None, answer


@pytest.mark.parametrize("how", ["one frame", "fragments"])
def test_websocket_huge_message(attack, how):
    proxy = attack.proxy()  # websocket_message_size_limit: 32m by default
    client_close, got, server_close, answer = asyncio.run(
        asyncio.wait_for(send_through(proxy.url, how == "fragments"), 60)
    )
    assert (client_close, server_close) == (1009, 1009)
    assert got == [] and answer is None
    attack.outcome = "1009 (message too big) to both sides; the origin got nothing"
    attack.check()


@pytest.mark.parametrize("direction", ["to server", "to client"])
def test_websocket_large_message_relayed(attack, direction):
    proxy = attack.proxy("--set", "websocket_message_size_limit=100m")
    download = direction == "to client"
    client_close, got, server_close, answer = asyncio.run(
        asyncio.wait_for(send_through(proxy.url, False, download=download), 60)
    )
    if download:
        assert got == [2] and answer == b"d" * MESSAGE
    else:
        assert got == [MESSAGE] and answer == str(MESSAGE).encode()
    assert client_close == 1000
    attack.outcome = f"one {MESSAGE >> 20} MiB frame relayed {direction}, peak {attack.peak_rss:.0f} MiB"
    attack.check()
