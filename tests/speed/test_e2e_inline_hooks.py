"""Hooks whose handlers are plain functions run without a task; an async handler among them
still holds the flow until it is done, and the handlers keep their order (issue 15)."""

from __future__ import annotations

import urllib.request

import pytest

from tests.e2e.test_e2e import Proxy
from tests.e2e_servers import start_http

pytestmark = pytest.mark.e2e

SCRIPT = '''
import asyncio


class First:
    def response(self, flow):
        flow.response.headers["x-order"] = "first"


class Slow:
    async def response(self, flow):
        await asyncio.sleep(0.05)
        flow.response.headers["x-order"] += ",slow"


class Last:
    def response(self, flow):
        flow.response.headers["x-order"] += ",last"

    def request(self, flow):
        if flow.request.path == "/kill":
            flow.kill()


addons = [First(), Slow(), Last()]
'''


def test_plain_and_async_handlers_in_order(tmp_path) -> None:
    server, port = start_http()
    script = tmp_path / "order.py"
    script.write_text(SCRIPT)
    proxy = Proxy(["-q", "-s", str(script)], tmp_path)
    try:
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))
        for _ in range(3):  # keep-alive or not, every exchange runs all three
            with opener.open(f"http://127.0.0.1:{port}/x", timeout=10) as response:
                assert response.headers["x-order"] == "first,slow,last"
        with pytest.raises(OSError):  # killed in a plain request handler: no answer
            opener.open(f"http://127.0.0.1:{port}/kill", timeout=10)
        with opener.open(f"http://127.0.0.1:{port}/y", timeout=10) as response:
            assert response.status == 200
    finally:
        assert proxy.stop() == 0
        server.shutdown()
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
