"""Serve an ASGI or WSGI web app from inside the proxy, for one host (and port).

Requests for that host never leave the proxy: the app answers them (handy for a control
page or a fake API).  The response is sent once the app has finished it (no streaming);
only HTTP is served (no ASGI lifespan or WebSocket).
"""

from __future__ import annotations

import asyncio
import io
import logging
import sys
import urllib.parse
from collections.abc import Callable, Iterable
from typing import Any

from proxycore import ctx, http

logger = logging.getLogger(__name__)

_ASGI_HTTP_VERSIONS = {"HTTP/1.0": "1.0", "HTTP/1.1": "1.1", "HTTP/2.0": "2"}


class ASGIApp:
    """Answers requests for ``host`` (and ``port``, if given) with ``asgi_app``."""

    def __init__(self, asgi_app: Callable[..., Any], host: str, port: int | None = None) -> None:
        self.asgi_app, self.host, self.port = asgi_app, host, port

    @property
    def name(self) -> str:
        return f"asgiapp:{self.host}:{self.port}"

    def should_serve(self, flow: http.HTTPFlow) -> bool:
        return bool(
            flow.request.pretty_host == self.host
            and (self.port is None or flow.request.port == self.port)
            and flow.live
            and not flow.error
            and not flow.response
        )

    async def request(self, flow: http.HTTPFlow) -> None:
        if self.should_serve(flow):
            await serve(self.asgi_app, flow)


class WSGIApp(ASGIApp):
    """The same for a WSGI app (Flask, Bottle...): it runs in a worker thread."""

    def __init__(self, wsgi_app: Callable[..., Any], host: str, port: int | None = None) -> None:
        super().__init__(wsgi_to_asgi(wsgi_app), host, port)


def make_scope(flow: http.HTTPFlow) -> dict[str, Any]:
    """The ASGI HTTP connection scope for the flow's request."""
    raw_path = flow.request.data.path
    path, _, query = raw_path.partition(b"?")
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.1"},
        "http_version": _ASGI_HTTP_VERSIONS.get(flow.request.http_version, "1.1"),
        "method": flow.request.method,
        "scheme": flow.request.scheme,
        "path": urllib.parse.unquote(path.decode("latin-1")),
        "raw_path": raw_path,
        "query_string": query,
        "headers": [(name.lower(), value) for name, value in flow.request.headers.fields],
        "client": flow.client_conn.peername,
        "server": (flow.request.host, flow.request.port),
        "extensions": {"proxycore.master": ctx.master, "mitmproxy.master": ctx.master},
    }


async def serve(app: Callable[..., Any], flow: http.HTTPFlow) -> None:
    """Run ``app`` for the flow's request and put its answer in ``flow.response`` (a 500 page
    if the app fails or never answers)."""
    done = asyncio.Event()
    body_sent = False
    finished = False

    async def receive() -> dict[str, Any]:
        nonlocal body_sent
        if not body_sent:
            body_sent = True
            return {"type": "http.request", "body": flow.request.raw_content or b"", "more_body": False}
        await done.wait()
        return {"type": "http.disconnect"}

    async def send(event: dict[str, Any]) -> None:
        nonlocal finished
        if event["type"] == "http.response.start":
            flow.response = http.Response.make(event["status"], b"", event.get("headers", []))
            flow.response.decode()
        elif event["type"] == "http.response.body":
            assert flow.response is not None, "http.response.body before http.response.start"
            flow.response.content = (flow.response.content or b"") + event.get("body", b"")
            finished = not event.get("more_body", False)
        else:
            raise AssertionError(f"Unexpected ASGI event: {event['type']}")

    try:
        await app(make_scope(flow), receive, send)
        if not finished:
            raise RuntimeError("the app sent no complete response")
    except Exception as e:
        logger.exception(f"Error in ASGI app: {e}")
        flow.response = http.Response.make(500, b"ASGI Error.")
    finally:
        done.set()


def wsgi_to_asgi(wsgi_app: Callable[..., Any]) -> Callable[..., Any]:
    """An ASGI app that runs ``wsgi_app`` (PEP 3333) in a thread for each request."""

    async def app(scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]) -> None:
        body = b""
        while True:
            event = await receive()
            body += event.get("body", b"")
            if not event.get("more_body"):
                break
        status, headers, chunks = await asyncio.get_running_loop().run_in_executor(
            None, _run_wsgi, wsgi_app, _environ(scope, body)
        )
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": b"".join(chunks)})

    return app


def _environ(scope: dict[str, Any], body: bytes) -> dict[str, Any]:
    host, port = scope["server"]
    environ: dict[str, Any] = {
        "REQUEST_METHOD": scope["method"],
        "SCRIPT_NAME": "",
        "PATH_INFO": scope["path"].encode("utf-8").decode("latin-1"),
        "QUERY_STRING": scope["query_string"].decode("latin-1"),
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "SERVER_PROTOCOL": f"HTTP/{scope['http_version']}",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": scope["scheme"],
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": True,
        "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }
    if scope.get("client"):
        environ["REMOTE_ADDR"] = scope["client"][0]
    for name, value in scope["headers"]:
        key = name.decode("latin-1").upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            environ["CONTENT_TYPE"] = value.decode("latin-1")
        elif key != "CONTENT_LENGTH":
            key = f"HTTP_{key}"
            text = value.decode("latin-1")
            environ[key] = f"{environ[key]},{text}" if key in environ else text
    return environ


def _run_wsgi(wsgi_app: Callable[..., Any], environ: dict[str, Any]) -> tuple[int, list[tuple[bytes, bytes]], list[bytes]]:
    started: list[Any] = []
    written: list[bytes] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Callable[[bytes], None]:
        if exc_info and started:
            raise exc_info[1].with_traceback(exc_info[2])
        started[:] = [status, headers]
        return written.append

    result: Iterable[bytes] = wsgi_app(environ, start_response)
    try:
        chunks = written + [chunk for chunk in result if chunk]
    finally:
        close = getattr(result, "close", None)
        if close:
            close()
    if not started:
        raise RuntimeError("the WSGI app did not call start_response")
    status, headers = started
    encoded = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    return int(status.split(" ", 1)[0]), encoded, chunks
