"""Real local upstream servers for end-to-end tests (HTTP/1.1 and HTTPS on 127.0.0.1)."""

from __future__ import annotations

import datetime
import http.server
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class Handler(http.server.BaseHTTPRequestHandler):
    """Routes: /get, /post (echo), /chunked-echo, /status/N, /big/N, /conn (client port)."""

    protocol_version = "HTTP/1.1"
    server_version = "e2e-upstream"

    def log_message(self, format: str, *args: object) -> None:
        return

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            out = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return out
                out += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _send(self, status: int, body: bytes, content_type: str = "application/json", **extra: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra.items():
            self.send_header(k.replace("_", "-"), v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _info(self, body: bytes = b"") -> bytes:
        return json.dumps(
            {
                "method": self.command,
                "path": self.path,
                "headers": {k.lower(): v for k, v in self.headers.items()},
                "body": body.decode("latin-1"),
                "client_port": self.client_address[1],
            }
        ).encode()

    def do_GET(self) -> None:
        if self.path.startswith("/status/"):
            code = int(self.path.split("/")[2])
            self._send(code, b"status %d" % code, "text/plain")
        elif self.path.startswith("/big/"):
            self._send(200, b"x" * int(self.path.split("/")[2]), "application/octet-stream")
        else:
            self._send(200, self._info())

    do_HEAD = do_GET
    do_DELETE = do_GET

    def do_POST(self) -> None:
        body = self._body()
        self._send(200, self._info(body))

    do_PUT = do_POST


class RecordingHandler(Handler):
    """The echo server, remembering every request path it was sent (to prove one never came)."""

    seen: list[str] = []

    def parse_request(self) -> bool:
        ok = super().parse_request()
        if ok:
            self.seen.append(self.path)
        return ok


class ThreadingServer(http.server.ThreadingHTTPServer):
    daemon_threads = True


class ThreadingServer6(ThreadingServer):
    address_family = socket.AF_INET6


def start_http(
    tls_dir: Path | None = None,
    host: str = "127.0.0.1",
    port: int = 0,
    names: tuple[str, ...] = ("localhost", "127.0.0.1"),
    handler: type[Handler] = Handler,
) -> tuple[ThreadingServer, int]:
    """Start an HTTP (or HTTPS, with a self-signed cert for ``names``) server, by default
    on a free port of 127.0.0.1."""
    server_class = ThreadingServer6 if ":" in host else ThreadingServer
    server = server_class((host, port), handler)
    if tls_dir is not None:
        cert, key = make_self_signed(tls_dir, names=names)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return server, server.server_address[1]


def make_self_signed(
    directory: Path, cn: str = "upstream.e2e", names: tuple[str, ...] = ("localhost", "127.0.0.1")
) -> tuple[Path, Path]:
    """A self-signed ECDSA certificate (its own CA) for ``names``: DNS names and IPs."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "upstream.crt", directory / "upstream.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


@contextmanager
def tcp_echo_server() -> Iterator[int]:
    """A TCP origin on 127.0.0.1 that sends back what each connection sends, one connection
    at a time; yields its port."""
    server = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                while data := conn.recv(65536):
                    conn.sendall(data)

    threading.Thread(target=serve, daemon=True).start()
    try:
        yield server.getsockname()[1]
    finally:
        server.close()


@contextmanager
def udp_echo_server() -> Iterator[int]:
    """A UDP origin on 127.0.0.1 answering ``echo: <datagram>``; yields its port."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.2)
    done = threading.Event()

    def serve() -> None:
        while not done.is_set():
            try:
                data, peer = sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            sock.sendto(b"echo: " + data, peer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield sock.getsockname()[1]
    finally:
        done.set()
        thread.join()
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_h2(tls_dir: Path, seen: list[str] | None = None) -> tuple[Any, int]:
    """An HTTP/2-only TLS server (ALPN h2) in a background thread.

    Every request is answered with JSON describing it; ``/size/N`` sends N bytes
    instead (flow-controlled), and a path containing ``trailers`` adds a trailer.
    ``/sink`` counts the request body instead of keeping it and answers with the count;
    ``/slow-sink`` does too, but hands back flow-control credit only 0.2 s after each chunk.
    The path of every request whose headers arrive is appended to ``seen``."""
    import asyncio
    import ssl

    import h2.config
    import h2.connection
    import h2.events
    import h2.exceptions

    cert, key = make_self_signed(tls_dir)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(str(cert), str(key))
    context.set_alpn_protocols(["h2"])
    started = threading.Event()
    state: dict[str, Any] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False, header_encoding=None))
        conn.initiate_connection()
        writer.write(conn.data_to_send())
        requests: dict[int, dict[str, Any]] = {}
        window_open = asyncio.Event()

        def acknowledge(size: int, stream_id: int) -> None:
            try:
                conn.acknowledge_received_data(size, stream_id)
                writer.write(conn.data_to_send())
            except (h2.exceptions.ProtocolError, ConnectionError):
                pass

        async def respond(stream_id: int, info: dict[str, Any]) -> None:
            try:
                await send_response(stream_id, info)
            except h2.exceptions.ProtocolError:
                pass  # the client reset the stream meanwhile

        async def send_response(stream_id: int, info: dict[str, Any]) -> None:
            path = info["path"]
            if path.startswith(("/sink", "/slow-sink")):
                body = json.dumps({"path": path, "received": info["received"]}).encode()
                content_type = "application/json"
            elif path.startswith("/size/"):
                body = b"x" * int(path.split("/")[2])
                content_type = "application/octet-stream"
            else:
                body = json.dumps(
                    {"path": path, "method": info["method"], "protocol": "h2", "body": info["body"].decode(errors="replace")}
                ).encode()
                content_type = "application/json"
            conn.send_headers(stream_id, [(b":status", b"200"), (b"content-type", content_type.encode())])
            while body:
                window = min(conn.local_flow_control_window(stream_id), conn.max_outbound_frame_size)
                if window <= 0:
                    window_open.clear()
                    writer.write(conn.data_to_send())
                    await window_open.wait()
                    continue
                conn.send_data(stream_id, body[:window])
                body = body[window:]
            if "trailers" in path:
                conn.send_headers(stream_id, [(b"x-trailer", b"yes")], end_stream=True)
            else:
                conn.end_stream(stream_id)
            writer.write(conn.data_to_send())

        try:
            while data := await reader.read(65536):
                for event in conn.receive_data(data):
                    if isinstance(event, h2.events.RequestReceived):
                        headers = dict(event.headers)
                        requests[event.stream_id] = {
                            "path": headers[b":path"].decode(),
                            "method": headers[b":method"].decode(),
                            "body": b"",
                            "received": 0,
                        }
                        if seen is not None:
                            seen.append(headers[b":path"].decode())
                    elif isinstance(event, h2.events.DataReceived):
                        info = requests[event.stream_id]
                        info["received"] += len(event.data)
                        if info["path"].startswith("/slow-sink"):
                            asyncio.get_running_loop().call_later(
                                0.2, acknowledge, event.flow_controlled_length, event.stream_id
                            )
                        else:
                            conn.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
                        if not info["path"].startswith(("/sink", "/slow-sink")):
                            info["body"] += event.data
                    elif isinstance(event, h2.events.StreamEnded):
                        if event.stream_id in requests:
                            asyncio.ensure_future(respond(event.stream_id, requests[event.stream_id]))
                    elif isinstance(event, h2.events.WindowUpdated):
                        window_open.set()
                writer.write(conn.data_to_send())
        except (ConnectionError, h2.exceptions.ProtocolError):
            pass
        finally:
            writer.close()

    def serve() -> None:
        loop = asyncio.new_event_loop()
        state["loop"] = loop

        async def main() -> None:
            server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=context)
            state["port"] = server.sockets[0].getsockname()[1]
            started.set()
            await asyncio.Event().wait()

        loop.run_until_complete(main())

    threading.Thread(target=serve, daemon=True).start()
    started.wait(10)
    return state["loop"], state["port"]


class Origin:
    """A raw HTTP/1 origin on 127.0.0.1:0 that answers every request with ``head`` and then
    ``body_size`` bytes (None: without end), and notes when each connection is gone."""

    def __init__(self, head: bytes, body_size: int | None) -> None:
        self.head, self.body_size = head, body_size
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.closed_at: list[float] = []
        self.sent: list[int] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._answer, args=(conn,), daemon=True).start()

    def _answer(self, conn: socket.socket) -> None:
        conn.settimeout(30)
        sent = 0
        chunk = b"x" * 65536
        try:
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            conn.sendall(self.head)
            while self.body_size is None or sent < self.body_size:
                part = chunk if self.body_size is None else chunk[: self.body_size - sent]
                conn.sendall(part)
                sent += len(part)
            time.sleep(30)  # leave closing to the proxy
        except OSError:
            pass
        finally:
            self.sent.append(sent)
            self.closed_at.append(time.monotonic())
            conn.close()

    def close(self) -> None:
        self.listener.close()
