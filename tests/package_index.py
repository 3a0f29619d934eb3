"""A package index on 127.0.0.1 that serves one wheel, for proxyweb's first-use fetch.

proxyweb finds mitmproxy's front end through the index in ``PIP_INDEX_URL``; pointing that at
this server runs the same code path as a real first start, with the pinned wheel from
.cache/downloads instead of the network.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from proxycore.api import frontend


@dataclass
class Index:
    """What the index serves (tests may change it) and the paths it was asked for."""

    wheel: bytes
    json_pages: bool = False  # answer PEP 691 JSON when asked for it, else PEP 503 HTML
    listed: bool = True  # False: the project page lists another release only
    requests: list[str] = field(default_factory=list)
    url: str = ""  # the index URL, as PIP_INDEX_URL takes it


@contextmanager
def serve_index(wheel: bytes) -> Iterator[Index]:
    state = Index(wheel)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's name)
            state.requests.append(self.path)
            if self.path == "/simple/mitmproxy/":
                name = frontend.WHEEL if state.listed else "mitmproxy-0.1-py3-none-any.whl"
                if state.json_pages and "json" in self.headers.get("Accept", ""):
                    files = [{"filename": name, "url": f"../../files/{name}", "hashes": {}}]
                    self.reply(json.dumps({"files": files}).encode(), "application/vnd.pypi.simple.v1+json")
                else:
                    page = f'<html><body><a href="/files/{name}#sha256=00">{name}</a><br/></body></html>'
                    self.reply(page.encode(), "text/html")
            elif self.path == f"/files/{frontend.WHEEL}":
                self.reply(state.wheel, "application/octet-stream")
            else:
                self.send_error(404)

        def reply(self, body: bytes, content_type: str) -> None:
            self.send_response(200)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/simple"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)
