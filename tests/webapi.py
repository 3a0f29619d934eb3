"""Test helpers for the web API: an in-process proxyweb master on a background loop,
and small synchronous HTTP and WebSocket clients for it (all on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import http.client
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from websockets.sync.client import ClientConnection, connect

from proxycore.addons.termlog import TermLog
from proxycore.options import Options
from proxycore.tools import web
from proxycore.tools.errorcheck import StartupErrorCheck
from tests.processes import seed_ca

TOKEN = "0123456789abcdef0123456789abcdef"
XSRF = "testxsrf1"


class WebServer:
    """proxyweb's addon chain (view, event store, web API, proxy) running in a thread."""

    def __init__(self, tmp: Path, **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.log = io.StringIO()
        self.termlog = TermLog(self.log)
        self.errorcheck = StartupErrorCheck()
        opts = Options()
        self.master = web.make_master(opts, self.termlog, self.errorcheck)
        settings = {
            "web_port": 0,
            "web_open_browser": False,
            "web_password": TOKEN,
            "web_fetch_frontend": False,  # never the network; tests/api/test_web_frontend.py covers it
            "listen_host": "127.0.0.1",
            "listen_port": 0,
            "confdir": str(tmp / "conf"),
        }
        settings.update(options)
        seed_ca(Path(settings["confdir"]))  # tests/processes.py: one CA per test process
        opts.update(**settings)
        self.view = self.master.view
        self.web = self.master.addons.get("web")
        self.events = self.master.addons.get("eventstore")
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.web.addresses:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise AssertionError(f"web server did not start:\n{self.log.getvalue()}")
            time.sleep(0.01)
        self.port = self.web.addresses[0][1]

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_until_complete(self.master.run())

    @property
    def proxy_port(self) -> int:
        proxyserver = self.master.addons.get("proxyserver")
        return proxyserver.listen_addrs()[0][1]

    @property
    def url(self) -> str:
        """The proxy's URL (what tests.processes.curl passes to curl -x)."""
        return f"http://127.0.0.1:{self.proxy_port}"

    def add(self, *flows: Any) -> None:
        """Put flows into the view (on the server's loop)."""
        self.call(lambda: self.view.add(list(flows)))

    def wait_for_flows(self, count: int, timeout: float = 10) -> None:
        deadline = time.monotonic() + timeout
        while self.call(lambda: len(self.view)) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"only {self.call(lambda: len(self.view))} of {count} flows loaded")
            time.sleep(0.02)

    def call(self, func: Callable[[], Any]) -> Any:
        """Run ``func`` on the server's loop (the view is not thread-safe) and return its result."""

        async def wrapper() -> Any:
            result = func()
            if asyncio.iscoroutine(result):
                result = await result
            return result

        future: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(wrapper(), self.loop)
        return future.result(10)

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.master.shutdown)
        self.thread.join(10)
        self.termlog.uninstall()
        self.errorcheck.uninstall()
        self.loop.close()


@contextlib.contextmanager
def running(tmp: Path, **options: Any) -> Iterator[WebServer]:
    """A WebServer for the duration of a with block (fixtures: ``with running(...) as s: yield s``)."""
    server = WebServer(tmp, **options)
    try:
        yield server
    finally:
        server.stop()


class Response:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.body[:200]!r}>"


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | str | None = None,
    headers: dict[str, str] | None = None,
    *,
    auth: bool = True,
    xsrf: bool = True,
) -> Response:
    """One request; by default authenticated (Bearer) and with a matching XSRF cookie+header."""
    all_headers = dict(headers or {})
    if auth:
        all_headers.setdefault("Authorization", f"Bearer {TOKEN}")
    if xsrf and method not in ("GET", "HEAD", "OPTIONS"):
        cookie = all_headers.get("Cookie")
        all_headers["Cookie"] = f"_mitmproxy_xsrf={XSRF}" + (f"; {cookie}" if cookie else "")
        all_headers.setdefault("X-XSRFToken", XSRF)
    if isinstance(body, str):
        body = body.encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body, headers=all_headers)
        r = conn.getresponse()
        return Response(r.status, r.headers, r.read())
    finally:
        conn.close()


def put_json(port: int, path: str, data: Any, **kw: Any) -> Response:
    return request(port, "PUT", path, json.dumps(data), {"Content-Type": "application/json"}, **kw)


def ws_connect(port: int, *, token: str | None = TOKEN, **kw: Any) -> ClientConnection:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    headers.update(kw.pop("headers", {}))
    return connect(
        f"ws://127.0.0.1:{port}/updates",
        additional_headers=headers,
        proxy=None,
        max_queue=None,
        open_timeout=10,
        **kw,
    )


def ws_recv(ws: ClientConnection, timeout: float = 10) -> dict[str, Any]:
    return json.loads(ws.recv(timeout=timeout))


def ws_until(ws: ClientConnection, kind: str, timeout: float = 10) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Read until a message of ``kind`` arrives; return it and everything read before."""
    before = []
    deadline = time.monotonic() + timeout
    while True:
        message = ws_recv(ws, max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message, before
        before.append(message)


def ws_drain(ws: ClientConnection, quiet: float = 0.3) -> list[dict[str, Any]]:
    """Everything that arrives until the socket has been quiet for ``quiet`` seconds."""
    out = []
    while True:
        try:
            out.append(ws_recv(ws, quiet))
        except TimeoutError:
            return out
