"""Peak RSS of proxydump while it relays one large WebSocket message.

    .venv/bin/python bench/ws_rss.py [--mib 64] [--fragments] [--down]

Starts proxydump (websocket_message_size_limit raised above the message) and a
`websockets` server on 127.0.0.1; a client sends one message through the proxy (to the
server, or with --down the server sends it to the client), as one frame or as 1 MiB
fragments. Prints the proxy's RSS when idle and its peak (VmHWM) after the message.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from websockets.asyncio.client import connect  # noqa: E402
from websockets.asyncio.server import serve  # noqa: E402

from tests.processes import Proxy  # noqa: E402


def peak_mib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) // 1024
    raise SystemExit("no /proc/PID/status")


async def relay(proxy: Proxy, size: int, fragments: bool, down: bool) -> tuple[int, int]:
    def payload() -> bytes | list[bytes]:
        data = b"m" * size
        return [data[i : i + (1 << 20)] for i in range(0, size, 1 << 20)] if fragments else data

    async def handler(ws) -> None:
        async for _message in ws:
            await ws.send(payload() if down else b"ok")

    async with serve(handler, "127.0.0.1", 0, max_size=None, compression=None) as server:
        port = server.sockets[0].getsockname()[1]
        async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url, max_size=None, compression=None) as ws:
            idle = peak_mib(proxy.proc.pid)
            await ws.send(b"go" if down else payload())
            answer = await ws.recv()
            assert len(answer) == (size if down else 2)
            return idle, peak_mib(proxy.proc.pid)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=64)
    parser.add_argument("--fragments", action="store_true", help="1 MiB fragments instead of one frame")
    parser.add_argument("--down", action="store_true", help="server to client instead of client to server")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        limit = f"websocket_message_size_limit={args.mib * 2}m"
        proxy = Proxy(["--set", limit], Path(tmp))
        try:
            idle, peak = asyncio.run(relay(proxy, args.mib << 20, args.fragments, args.down))
        finally:
            proxy.stop()
    shape = "1 MiB fragments" if args.fragments else "one frame"
    way = "server to client" if args.down else "client to server"
    print(f"{args.mib} MiB message, {shape}, {way}: proxy RSS idle {idle} MiB, peak {peak} MiB")


if __name__ == "__main__":
    main()
