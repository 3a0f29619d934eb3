"""mitmproxy-style scripts (tests/data/mitmproxy_scripts), unmodified, through proxydump.

Real peers only: an HTTP and an HTTPS origin on loopback, a WebSocket echo server, a raw
TCP server, curl and the websockets client.  Every hook family and every helper module the
scripts import leaves an effect checked here.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socketserver
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect
from websockets.asyncio.server import serve

from tests.e2e_servers import start_http
from tests.processes import Proxy

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

SCRIPTS = Path(__file__).parents[1] / "data" / "mitmproxy_scripts"


class PongHandler(socketserver.BaseRequestHandler):
    """Raw TCP: answers every chunk with b"pong:" + chunk."""

    def handle(self) -> None:
        while data := self.request.recv(4096):
            self.request.sendall(b"pong:" + data)


@pytest.fixture(scope="module")
def origins(tmp_path_factory) -> Iterator[dict[str, int]]:
    http_server, http_port = start_http()
    https_server, https_port = start_http(tls_dir=tmp_path_factory.mktemp("origin-tls"))
    tcp_server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), PongHandler)
    tcp_server.daemon_threads = True
    threading.Thread(target=tcp_server.serve_forever, daemon=True).start()
    yield {"http": http_port, "https": https_port, "tcp": tcp_server.server_address[1]}
    for server in (http_server, https_server, tcp_server):
        server.shutdown()


@pytest.fixture(scope="module")
def proxy(tmp_path_factory, origins) -> Iterator[Proxy]:
    p = Proxy(
        [
            "-s", str(SCRIPTS / "http_surface.py"),
            "-s", str(SCRIPTS / "streams_and_tls.py"),
            "-s", str(SCRIPTS / "web_apps.py"),
            "--set", "greeting=howdy",  # an option the script declares
            "--tcp-hosts", rf"^127\.0\.0\.1:{origins['tcp']}$",
            "-k",
        ],
        tmp_path_factory.mktemp("mitmscripts"),
    )
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr() + p.stdout(), p.stderr() + p.stdout()
    assert "Addon error" not in p.stderr() + p.stdout(), p.stderr() + p.stdout()


def curl(proxy: Proxy, url: str, *args: str) -> tuple[dict[str, str], bytes]:
    result = subprocess.run(
        ["curl", "-s", "-D", "-", "--max-time", "20", "-x", proxy.url, "--cacert", proxy.ca, *args, url],
        capture_output=True, timeout=30,
    )
    assert result.returncode == 0, result.stderr
    head, _, body = result.stdout.partition(b"\r\n\r\n")
    while body.startswith(b"HTTP/"):  # the CONNECT answer came first
        head, _, body = body.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {"status": lines[0].split(" ")[1]}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    return headers, body


def test_http_hooks_options_commands_and_modules(proxy, origins):
    headers, body = curl(proxy, f"http://127.0.0.1:{origins['http']}/filtered?q=1")
    assert headers["status"] == "200"
    assert headers["x-greeting"] == "howdy"  # --set for a script option
    assert headers["x-command"] == "hi bob"
    assert headers["x-strutils"] == "\\x00ab"
    assert headers["x-human"] == "2.0k"
    assert headers["x-emoji"] == "\U0001f44d".encode().decode("latin-1")
    assert headers["x-server-spec"] == "('https', ('example.com', 443))"
    assert headers["x-url"] == "example.com:8443"
    assert headers["x-status-name"] == "Not Found"
    assert headers["x-filter"] == "True"
    assert headers["x-servers"] == "1"
    assert headers["x-proxyserver"] == "True"
    assert headers["x-exceptions"] == "True"
    assert headers["x-async"] == "awaited"
    seen = json.loads(body)["headers"]
    assert seen["x-concurrent"] == "True"
    assert seen["x-client-address"] == "127.0.0.1"

    other, _ = curl(proxy, f"http://127.0.0.1:{origins['http']}/get")
    assert other["x-filter"] == "False"


def test_response_made_in_request_hook(proxy, origins):
    headers, body = curl(proxy, f"http://127.0.0.1:{origins['http']}/teapot")
    assert (headers["status"], body) == ("418", b"short and stout")


def test_multipart_form_with_bytes_keys(proxy, origins):
    _, body = curl(proxy, f"http://127.0.0.1:{origins['http']}/post", "-F", "field=from-form")
    assert json.loads(body)["headers"]["x-form-field"] == "from-form"


def test_log_levels(proxy, origins):
    log = proxy.stderr()  # the event log; `running` has run once the proxy listens
    assert "surface: alert level works" in log
    assert "surface: ctx.log works" in log


def test_tls_hooks(proxy, origins):
    headers, _ = curl(proxy, f"https://localhost:{origins['https']}/get")
    assert headers["status"] == "200"
    assert headers["x-sni"] == "localhost"
    assert headers["x-tls-established"] == "True"
    assert headers["x-server-connected"] == "True"


def test_websocket_hook(proxy):
    async def echo(ws) -> None:
        async for message in ws:
            await ws.send(message)

    async def main() -> list[str | bytes]:
        async with serve(echo, "127.0.0.1", 0) as server:
            port = server.sockets[0].getsockname()[1]
            async with connect(f"ws://127.0.0.1:{port}/", proxy=proxy.url) as ws:
                await ws.send("shout")
                first = await ws.recv()
                await ws.send(b"binary stays")
                return [first, await ws.recv()]

    assert asyncio.run(asyncio.wait_for(main(), 30)) == ["SHOUT", b"binary stays"]


def test_tcp_hook(proxy, origins):
    async def main() -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", proxy.port)
        writer.write(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % origins["tcp"])
        assert (await reader.readuntil(b"\r\n\r\n")).startswith(b"HTTP/1.1 200")
        writer.write(b"ping")
        answer = await reader.read(100)
        writer.close()
        return answer

    assert asyncio.run(asyncio.wait_for(main(), 30)) == b"PONG:ping"


def test_wsgi_and_asgi_apps(proxy):
    headers, body = curl(proxy, "http://wsgi.example/hello?x=1")
    assert (headers["status"], headers["x-app"], body) == ("200", "wsgi", b"wsgi GET /hello?x=1")
    headers, body = curl(proxy, "http://asgi.example/", "-d", "payload")
    assert (headers["status"], headers["x-app"], body) == ("201", "asgi", b"asgi POST payload")


def test_option_validation_in_a_script_refuses_bad_value(tmp_path):
    from tests.processes import proxydump

    r = proxydump("-n", "-s", str(SCRIPTS / "http_surface.py"), "--set", "greeting=forbidden")
    assert r.returncode == 1
    assert "greeting may not be 'forbidden'" in r.stderr
