"""HTTP/3 and QUIC peers for tests, on aioquic's own API.

For the sans-io tests (no sockets): ``Clock`` (a fake clock to install as
``proxycore.layers.quic.clock``), ``make_cert`` (a certificate for example.com, as aioquic
takes it), and the addresses the in-memory peers pretend to have.

For end-to-end tests, real peers on 127.0.0.1:

- ``H3Origin``: an HTTP/3 server on a free UDP port of 127.0.0.1, run in a thread with its
  own event loop. Every request is answered 200 with a JSON echo of method, path, headers
  and body (``/status/N`` answers N; ``/big/N`` N bytes); an ``alt-svc`` header names the
  origin's own port, so tests can see the proxy rewrite it.
- ``h3_request``: one request with aioquic's client (``aioquic.asyncio.connect`` and an
  ``H3Connection``), verifying the server against a given CA file and server name.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aioquic.asyncio import QuicConnectionProtocol, connect, serve
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived, H3Event, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import ConnectionTerminated, QuicEvent

from tests.e2e_servers import make_self_signed

CLIENT_ADDR = ("127.0.0.1", 50000)
SERVER_ADDR = ("192.0.2.1", 443)


class Clock:
    """Seconds that only move when a test says so (``clock.now += 1``)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_cert(directory: Path) -> tuple[Any, Any, Path]:
    """A self-signed certificate for example.com: (certificate, key, path of the PEM)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    cert_path, key_path = make_self_signed(directory, cn="example.com", names=("example.com",))
    certificate = x509.load_pem_x509_certificate(cert_path.read_bytes())
    key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    return certificate, key, cert_path


class _OriginProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3: H3Connection | None = None
        self.requests: dict[int, dict[str, Any]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if self.h3 is None:
            self.h3 = H3Connection(self._quic)
        for h3_event in self.h3.handle_event(event):
            self.h3_event(h3_event)

    def h3_event(self, event: H3Event) -> None:
        if isinstance(event, HeadersReceived):
            request = self.requests.setdefault(event.stream_id, {"headers": {}, "body": b""})
            for name, value in event.headers:
                request["headers"][name.decode()] = value.decode()
        elif isinstance(event, DataReceived):
            self.requests.setdefault(event.stream_id, {"headers": {}, "body": b""})["body"] += event.data
        else:
            return
        if event.stream_ended:
            self.answer(event.stream_id, self.requests.pop(event.stream_id))

    def answer(self, stream_id: int, request: dict[str, Any]) -> None:
        assert self.h3 is not None
        headers = request["headers"]
        path = headers.get(":path", "")
        status, body = 200, b""
        if path.startswith("/status/"):
            status = int(path.split("/")[2])
            body = b"status %d" % status
        elif path.startswith("/big/"):
            body = b"x" * int(path.split("/")[2])
        else:
            body = json.dumps(
                {"method": headers.get(":method"), "path": path, "headers": headers,
                 "body": request["body"].decode("latin-1")}
            ).encode()
        port = self._transport.get_extra_info("sockname")[1] if self._transport else 0
        self.h3.send_headers(
            stream_id,
            [(b":status", b"%d" % status), (b"content-length", b"%d" % len(body)),
             (b"alt-svc", b'h3=":%d"; ma=60' % port), (b"server", b"h3-origin")],
        )
        self.h3.send_data(stream_id, body, end_stream=True)
        self.transmit()


class H3Origin:
    """An aioquic HTTP/3 server in a background thread (see module docstring)."""

    def __init__(self, tls_dir: Path, names: tuple[str, ...] = ("localhost", "127.0.0.1")) -> None:
        self.cert, self.key = make_self_signed(tls_dir, cn="h3-origin", names=names)
        self.loop = asyncio.new_event_loop()
        self.port = 0
        self._server: Any = None
        ready = threading.Event()
        self.thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self.thread.start()
        if not ready.wait(10):
            raise RuntimeError("HTTP/3 origin did not start")

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        config = QuicConfiguration(is_client=False, alpn_protocols=H3_ALPN)
        config.load_cert_chain(self.cert, self.key)
        self._server = self.loop.run_until_complete(
            serve("127.0.0.1", 0, configuration=config, create_protocol=_OriginProtocol)
        )
        self.port = self._server._transport.get_extra_info("sockname")[1]
        ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        def stop() -> None:
            self._server.close()
            self.loop.stop()

        self.loop.call_soon_threadsafe(stop)
        self.thread.join(5)


@dataclass
class H3Response:
    status: int
    headers: dict[str, str]
    body: bytes
    alpn: str | None = None
    peer_certificate: Any = None
    extra: dict[str, Any] = field(default_factory=dict)


class _ClientProtocol(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.h3 = H3Connection(self._quic)
        self.waiters: dict[int, asyncio.Future[H3Response]] = {}
        self.partial: dict[int, H3Response] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, ConnectionTerminated):
            for waiter in self.waiters.values():
                if not waiter.done():
                    waiter.set_exception(ConnectionError(f"QUIC closed: {event.reason_phrase}"))
        for h3_event in self.h3.handle_event(event):
            response = self.partial.setdefault(h3_event.stream_id, H3Response(0, {}, b""))  # type: ignore[attr-defined]
            if isinstance(h3_event, HeadersReceived):
                for name, value in h3_event.headers:
                    if name == b":status":
                        response.status = int(value)
                    else:
                        response.headers[name.decode()] = value.decode()
            elif isinstance(h3_event, DataReceived):
                response.body += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                waiter = self.waiters.pop(h3_event.stream_id, None)  # type: ignore[attr-defined]
                if waiter is not None and not waiter.done():
                    waiter.set_result(self.partial.pop(h3_event.stream_id))  # type: ignore[attr-defined]

    async def request(self, method: str, authority: str, path: str, body: bytes, headers: list[tuple[str, str]]) -> H3Response:
        stream_id = self._quic.get_next_available_stream_id()
        fields = [(b":method", method.encode()), (b":scheme", b"https"), (b":authority", authority.encode()),
                  (b":path", path.encode()), *[(k.encode(), v.encode()) for k, v in headers]]
        self.h3.send_headers(stream_id, fields, end_stream=not body)
        if body:
            self.h3.send_data(stream_id, body, end_stream=True)
        waiter: asyncio.Future[H3Response] = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self.transmit()
        return await waiter


async def _h3_requests(
    port: int, requests: list[tuple[str, str, bytes]], server_name: str, cafile: str | None,
    headers: list[tuple[str, str]],
) -> list[H3Response]:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, server_name=server_name)
    if cafile is None:
        config.verify_mode = ssl.CERT_NONE
    else:
        config.load_verify_locations(cafile)
    async with connect("127.0.0.1", port, configuration=config, create_protocol=_ClientProtocol, wait_connected=True) as client:
        assert isinstance(client, _ClientProtocol)
        answers = await asyncio.gather(
            *(client.request(method, server_name, path, body, headers) for method, path, body in requests)
        )
        tls = client._quic.tls
        for answer in answers:
            answer.alpn = tls.alpn_negotiated
            answer.peer_certificate = getattr(tls, "_peer_certificate", None)
        return list(answers)


def h3_request(
    port: int, method: str = "GET", path: str = "/", body: bytes = b"", *, server_name: str = "localhost",
    cafile: str | None = None, headers: list[tuple[str, str]] | None = None, timeout: float = 15,
) -> H3Response:
    """One HTTP/3 request to 127.0.0.1:``port``, verifying against ``cafile`` (None: no check)."""
    return h3_requests(port, [(method, path, body)], server_name=server_name, cafile=cafile,
                       headers=headers, timeout=timeout)[0]


def h3_requests(
    port: int, requests: list[tuple[str, str, bytes]], *, server_name: str = "localhost",
    cafile: str | None = None, headers: list[tuple[str, str]] | None = None, timeout: float = 15,
) -> list[H3Response]:
    """Several concurrent requests on one HTTP/3 connection."""
    coro = _h3_requests(port, requests, server_name, cafile, headers or [])
    return asyncio.run(asyncio.wait_for(coro, timeout))


# Raw QUIC (no HTTP/3): an echo service with ALPN "echo" ----------------------------------------

ECHO_ALPN = ["echo"]


class _EchoProtocol(QuicConnectionProtocol):
    """Answers each stream, once the client finished it, with what it sent in upper case."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.received: dict[int, bytes] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        from aioquic.quic.events import StreamDataReceived

        if isinstance(event, StreamDataReceived):
            self.received[event.stream_id] = self.received.get(event.stream_id, b"") + event.data
            if event.end_stream:
                self._quic.send_stream_data(event.stream_id, self.received.pop(event.stream_id).upper(), end_stream=True)
                self.transmit()


class QuicEchoServer(H3Origin):
    """The echo service in a background thread, on a free UDP port of 127.0.0.1."""

    def _run(self, ready: threading.Event) -> None:
        asyncio.set_event_loop(self.loop)
        config = QuicConfiguration(is_client=False, alpn_protocols=ECHO_ALPN)
        config.load_cert_chain(self.cert, self.key)
        self._server = self.loop.run_until_complete(
            serve("127.0.0.1", 0, configuration=config, create_protocol=_EchoProtocol)
        )
        self.port = self._server._transport.get_extra_info("sockname")[1]
        ready.set()
        self.loop.run_forever()


class _EchoClient(QuicConnectionProtocol):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.answers: dict[int, bytes] = {}
        self.waiters: dict[int, asyncio.Future[bytes]] = {}

    def quic_event_received(self, event: QuicEvent) -> None:
        from aioquic.quic.events import StreamDataReceived

        if isinstance(event, StreamDataReceived):
            self.answers[event.stream_id] = self.answers.get(event.stream_id, b"") + event.data
            if event.end_stream and event.stream_id in self.waiters:
                self.waiters.pop(event.stream_id).set_result(self.answers.pop(event.stream_id))

    async def ask(self, message: bytes) -> bytes:
        stream_id = self._quic.get_next_available_stream_id()
        waiter: asyncio.Future[bytes] = asyncio.get_running_loop().create_future()
        self.waiters[stream_id] = waiter
        self._quic.send_stream_data(stream_id, message, end_stream=True)
        self.transmit()
        return await waiter


def quic_echo(port: int, messages: list[bytes], *, server_name: str, cafile: str, timeout: float = 15) -> list[bytes]:
    """Each message on its own stream of one QUIC connection; the answers in order."""

    async def run() -> list[bytes]:
        config = QuicConfiguration(is_client=True, alpn_protocols=ECHO_ALPN, server_name=server_name)
        config.load_verify_locations(cafile)
        async with connect("127.0.0.1", port, configuration=config, create_protocol=_EchoClient) as client:
            assert isinstance(client, _EchoClient)
            return list(await asyncio.gather(*(client.ask(m) for m in messages)))

    return asyncio.run(asyncio.wait_for(run(), timeout))
