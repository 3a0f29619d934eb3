"""QUIC plumbing shared by the HTTP/3 layers: hook data, the ClientHello read from Initial
packets, and the glue between an aioquic connection and the layer protocol.

aioquic's ``QuicConnection`` is sans-io: it takes datagrams and the current time and hands
back datagrams, events and the time of its next timer. :class:`QuicEndpoint` turns those
into commands (``SendData`` per datagram, ``RequestWakeup`` for the timer) so that a layer
never touches a socket or sleeps. The time given to aioquic is read from this module's
``clock`` (monotonic seconds) at the moment of each call, in one place, so that tests can
replace it with a fake clock for every QUIC connection at once.

aioquic is imported here only; nothing imports this module unless a QUIC connection is
actually seen, so a proxy that never meets QUIC never loads it (see docs/modes.md).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from proxycore.connection import Connection
from proxycore.layers.tls import TlsData
from proxycore.net import clienthello as tls_parse
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer

#: Datagrams held per client while its ClientHello is incomplete (a post-quantum key share
#: spreads a hello over two or three Initial packets; more than this is not a client).
MAX_HELLO_DATAGRAMS = 8
#: HTTP/3 over QUIC v1 (RFC 9114); mitmproxy also accepts the drafts' names.
H3_ALPNS = (b"h3", b"h3-29", b"h3-32")
QUIC_V1 = 0x00000001
QUIC_V2 = 0x6B3343CF

#: While exchanges are open, a QUIC PING to the client this often: its acknowledgement keeps
#: the UDP peer from looking idle to the driver (UDP_IDLE_TIMEOUT, 20 s) during a long wait
#: for a server.
KEEPALIVE_SECONDS = 10.0
#: Where QUIC connections get the time (seconds, any epoch, never going back).
clock: Callable[[], float] = time.monotonic

# aioquic logs every state change of every connection at INFO and DEBUG: in the proxy's
# event log that would drown the flows (proxydump -v shows INFO).
logging.getLogger("quic").setLevel(logging.WARNING)


@dataclasses.dataclass
class QuicTlsSettings:
    """What a ``quic_start_*`` hook decides: the certificate we show (toward clients) or
    how we verify the peer (toward servers). Field names are mitmproxy's."""

    alpn_protocols: list[str] | None = None
    certificate: Any = None  # cryptography x509.Certificate
    certificate_chain: list[Any] = dataclasses.field(default_factory=list)
    certificate_private_key: Any = None
    cipher_suites: list[Any] | None = None
    ca_path: str | None = None
    ca_file: str | None = None
    verify_mode: int | None = None  # ssl.CERT_NONE / CERT_REQUIRED (layers import no ssl)


@dataclasses.dataclass(eq=False)
class QuicTlsData(TlsData):
    """The data of ``quic_start_client``/``quic_start_server``: an addon sets ``settings``."""

    settings: QuicTlsSettings | None = None


@hook_dataclass
class QuicStartClientHook(StartHook):
    """QUIC's TLS handshake with a client is about to begin; set ``data.settings``."""

    name = "quic_start_client"
    data: QuicTlsData


@hook_dataclass
class QuicStartServerHook(StartHook):
    """QUIC's TLS handshake with a server is about to begin; set ``data.settings``."""

    name = "quic_start_server"
    data: QuicTlsData


def is_h3_alpn(alpn: bytes | None) -> bool:
    return alpn in H3_ALPNS


# The ClientHello inside Initial packets -----------------------------------------------


@dataclasses.dataclass
class InitialInfo:
    """What the first datagrams of a QUIC client tell before any handshake."""

    destination_cid: bytes
    version: int
    client_hello: tls_parse.ClientHello


def starts_like_quic(data: bytes) -> bool:
    """A long-header Initial packet of QUIC v1 or v2 (what every client sends first)."""
    if len(data) < 7 or not data[0] & 0x80 or not data[0] & 0x40:
        return False
    version = int.from_bytes(data[1:5], "big")
    return version in (QUIC_V1, QUIC_V2)


def read_client_hello(datagrams: list[bytes]) -> InitialInfo | None:
    """The ClientHello carried by a client's Initial packets, or None if it is not complete
    yet; ValueError if the datagrams are not QUIC Initial packets we can read.

    Initial packets are protected with keys derived from the client's destination
    connection id alone (RFC 9001 section 5.2), so the proxy can read them like anyone on
    the path can: decrypt each packet and put its CRYPTO frames together by offset."""
    from aioquic.buffer import Buffer, BufferReadError
    from aioquic.quic.crypto import CryptoError, CryptoPair
    from aioquic.quic.packet import QuicPacketType, pull_quic_header

    chunks: dict[int, bytes] = {}
    first_cid: bytes | None = None
    version = 0
    for datagram in datagrams:
        buf = Buffer(data=datagram)
        while not buf.eof():
            start = buf.tell()
            if start and not datagram[start] & 0x40:
                break  # padding after the coalesced packets (the fixed bit is never 0)
            try:
                header = pull_quic_header(buf, host_cid_length=8)
            except (ValueError, BufferReadError) as e:
                raise ValueError(f"not a QUIC packet: {e}") from None
            if header.packet_type != QuicPacketType.INITIAL:
                if header.version is None:
                    break  # a short header runs to the end of the datagram
                buf.seek(start + header.packet_length)
                continue
            if first_cid is None:
                first_cid, version = header.destination_cid, header.version or QUIC_V1
            end = start + header.packet_length
            crypto = CryptoPair()
            crypto.setup_initial(cid=first_cid, is_client=False, version=version)
            try:
                _, payload, _ = crypto.decrypt_packet(datagram[start:end], buf.tell() - start, 0)
            except (CryptoError, ValueError) as e:
                raise ValueError(f"cannot decrypt a QUIC Initial packet: {e}") from None
            buf.seek(end)
            chunks.update(_crypto_frames(payload))
    if first_cid is None:
        raise ValueError("no QUIC Initial packet")
    stream = bytearray()
    for offset in sorted(chunks):
        if offset > len(stream):
            break  # a gap: a later datagram fills it
        stream[offset:] = chunks[offset]
        if len(stream) >= tls_parse.MAX_HELLO:
            raise ValueError("QUIC ClientHello too large")
    if len(stream) < 4:
        return None
    if stream[0] != tls_parse.CLIENT_HELLO:
        raise ValueError("the first QUIC handshake message is not a ClientHello")
    length = int.from_bytes(stream[1:4], "big")
    if len(stream) < 4 + length:
        return None
    hello = tls_parse.parse_hello_body(bytes(stream[4 : 4 + length]))
    return InitialInfo(first_cid, version, hello)


def _crypto_frames(payload: bytes) -> dict[int, bytes]:
    """CRYPTO frame data by offset from a decrypted Initial payload (RFC 9000 section 19);
    Initial packets may only hold PADDING, PING, ACK, CRYPTO and CONNECTION_CLOSE."""
    from aioquic.buffer import Buffer, BufferReadError

    buf = Buffer(data=payload)
    found: dict[int, bytes] = {}
    try:
        while not buf.eof():
            kind = buf.pull_uint_var()
            if kind in (0x00, 0x01):  # PADDING, PING
                continue
            if kind in (0x02, 0x03):  # ACK (0x03: with ECN counts)
                buf.pull_uint_var()
                buf.pull_uint_var()
                ranges = buf.pull_uint_var()
                buf.pull_uint_var()
                for _ in range(ranges):
                    buf.pull_uint_var()
                    buf.pull_uint_var()
                if kind == 0x03:
                    for _ in range(3):
                        buf.pull_uint_var()
            elif kind == 0x06:  # CRYPTO
                offset = buf.pull_uint_var()
                length = buf.pull_uint_var()
                found[offset] = buf.pull_bytes(length)
            elif kind == 0x1C:  # CONNECTION_CLOSE
                break
            else:
                raise ValueError(f"unexpected frame type {kind:#x} in a QUIC Initial packet")
    except BufferReadError:
        raise ValueError("truncated frame in a QUIC Initial packet") from None
    return found


# Driving an aioquic connection from a layer -----------------------------------------------


class QuicEndpoint:
    """One aioquic ``QuicConnection`` on one proxycore connection.

    ``flush()`` yields the commands that carry out what aioquic wants now: datagrams to
    send and, when its timer moved earlier, a wakeup. A wakeup that comes back is handed
    to ``timer_fired``; aioquic's ``handle_timer`` may run early (it checks each deadline
    itself), so one armed wakeup is enough and later ones are only asked for when the
    deadline moves closer."""

    def __init__(self, conn: Connection, quic: Any) -> None:
        self.conn = conn
        self.quic = quic
        self.wakeup: commands.RequestWakeup | None = None
        self.wakeup_at: float | None = None

    @staticmethod
    def now() -> float:
        return clock()

    def receive(self, data: bytes) -> None:
        peer = self.conn.peername or ("0.0.0.0", 0)
        self.quic.receive_datagram(data, peer, clock())

    def timer_fired(self, event: events.Event) -> bool:
        """Is ``event`` our wakeup? Then aioquic has handled its timer."""
        if self.wakeup is None or not isinstance(event, events.Wakeup) or event.command is not self.wakeup:
            return False
        self.wakeup = self.wakeup_at = None
        self.quic.handle_timer(clock())
        return True

    def events(self) -> Iterator[Any]:
        while (event := self.quic.next_event()) is not None:
            yield event

    def flush(self) -> Iterator[commands.Command]:
        now = clock()
        for data, _ in self.quic.datagrams_to_send(now):
            yield commands.SendData(self.conn, data)
        deadline = self.quic.get_timer()
        if deadline is None:
            return
        if self.wakeup is None or self.wakeup_at is None or deadline < self.wakeup_at:
            self.wakeup_at = deadline
            self.wakeup = commands.RequestWakeup(max(0.0, deadline - now))
            yield self.wakeup


# The two handshakes -----------------------------------------------------------------------


def configuration(is_client: bool, settings: QuicTlsSettings, server_name: str | None) -> Any:
    from aioquic.quic.configuration import QuicConfiguration

    config = QuicConfiguration(
        is_client=is_client,
        alpn_protocols=settings.alpn_protocols or ["h3"],
        server_name=server_name,
    )
    if settings.cipher_suites:
        config.cipher_suites = settings.cipher_suites
    if is_client:
        if settings.verify_mode is not None:
            config.verify_mode = settings.verify_mode
        config.cafile = settings.ca_file
        config.capath = settings.ca_path
        if settings.certificate is not None:  # a client certificate for the server
            config.certificate = settings.certificate
            config.private_key = settings.certificate_private_key
            config.certificate_chain = list(settings.certificate_chain)
    else:
        config.certificate = settings.certificate
        config.private_key = settings.certificate_private_key
        config.certificate_chain = list(settings.certificate_chain)
    return config


def start_client_side(
    context: Context, info: InitialInfo, datagrams: list[bytes]
) -> CommandGenerator[tuple[QuicEndpoint, QuicTlsData] | None]:
    """Answer a client's QUIC handshake (we are its server) with what ``quic_start_client``
    decides; the datagrams read so far go in at once. Returns the endpoint and the hook's
    data, or None after closing the client (no settings)."""
    from aioquic.quic.connection import QuicConnection

    client = context.client
    client.sni = info.client_hello.sni
    client.alpn_offers = list(info.client_hello.alpn_protocols)
    data = QuicTlsData(client, context)
    yield QuicStartClientHook(data)
    if data.settings is None:
        # An addon may have said why (e.g. the CA could not be loaded): keep its reason.
        client.error = client.error or "No QUIC TLS settings were provided by any addon (quic_start_client)."
        yield commands.Log(f"Client QUIC handshake failed: {client.error}", "warn")
        yield commands.CloseConnection(client)
        return None
    quic = QuicConnection(
        configuration=configuration(False, data.settings, None),
        original_destination_connection_id=info.destination_cid,
    )
    endpoint = QuicEndpoint(client, quic)
    for datagram in datagrams:
        endpoint.receive(datagram)
    return endpoint, data


def start_server_side(
    context: Context, alpn_offers: list[bytes]
) -> CommandGenerator[tuple[QuicEndpoint, QuicTlsData] | None]:
    """Begin a QUIC handshake with the context's server (we are its client) with what
    ``quic_start_server`` decides. Returns the endpoint and the hook's data, or None after
    closing the server connection (no settings)."""
    from aioquic.quic.connection import QuicConnection

    server = context.server
    if server.sni is None and server.address:
        server.sni = context.client.sni or server.address[0]
    server.alpn_offers = list(alpn_offers)
    data = QuicTlsData(server, context)
    yield QuicStartServerHook(data)
    if data.settings is None:
        server.error = "No QUIC TLS settings were provided by any addon (quic_start_server)."
        yield commands.Log(f"Server QUIC handshake failed: {server.error}", "warn")
        yield commands.CloseConnection(server)
        return None
    quic = QuicConnection(configuration=configuration(True, data.settings, server.sni))
    endpoint = QuicEndpoint(server, quic)
    quic.connect(server.peername or server.address, endpoint.now())
    return endpoint, data


# tls_clienthello for QUIC ----------------------------------------------------------------


class QuicClientHelloLayer(Layer):
    """Holds a QUIC client's first datagrams until its ClientHello is complete, fires
    ``tls_clienthello`` (as mitmproxy does for QUIC), then hands everything to its child
    (the HTTP/3 or raw QUIC stack), or, if an addon set ``ignore_connection``, relays the
    datagrams untouched to the server instead. With the ``http3`` option off it drops
    every datagram, as mitmproxy does, so that the client falls back to TCP.

    Datagrams that are not a readable QUIC start go to the child as they are: it closes
    the client with the reason."""

    def __init__(self, context: Context, child_layer: Layer | None = None) -> None:
        super().__init__(context)
        self.child_layer = child_layer
        self.held: list[events.Event] = []
        self.decided = False

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        assert self.child_layer is not None
        if self.decided:
            yield from self.child_layer.handle_event(event)
            return
        if not getattr(self.context.options, "http3", True):
            if isinstance(event, events.DataReceived) and not self.held:
                self.held.append(event)
                yield commands.Log("Swallowing QUIC handshake because HTTP/3 is disabled.", "debug")
            return  # the client gives up on QUIC and uses TCP
        self.held.append(event)
        if not (isinstance(event, events.DataReceived) and event.connection is self.context.client):
            if isinstance(event, events.ConnectionClosed):
                yield from self.decide(None)
            return
        datagrams = [e.data for e in self.held if isinstance(e, events.DataReceived) and e.connection is self.context.client]
        try:
            info = read_client_hello(datagrams) if starts_like_quic(datagrams[0]) else None
        except ValueError:
            info = None
        else:
            if info is None and starts_like_quic(datagrams[0]) and len(datagrams) < MAX_HELLO_DATAGRAMS:
                return  # more of the hello is on its way
        yield from self.decide(info)

    def decide(self, info: InitialInfo | None) -> CommandGenerator[None]:
        from proxycore.layers.tls import ClientHelloData, TlsClienthelloHook

        if info is not None:
            self.context.client.sni = info.client_hello.sni
            self.context.client.alpn_offers = list(info.client_hello.alpn_protocols)
            data = ClientHelloData(self.context, info.client_hello)
            yield TlsClienthelloHook(data)
            if data.ignore_connection:
                from proxycore.layers.udp import UDPLayer

                show = bool(getattr(self.context.options, "show_ignored_hosts", False))
                self.child_layer = UDPLayer(self.context, ignore=not show)
        self.decided = True
        child = self.child_layer
        assert child is not None
        held, self.held = self.held, []
        for event in held:
            yield from child.handle_event(event)


# mitmproxy's names in this module -----------------------------------------------------------


def quic_parse_client_hello_from_datagrams(datagrams: list[bytes]) -> tls_parse.ClientHello | None:
    """mitmproxy's helper: the ClientHello in a client's first datagrams, None while it is
    incomplete, ValueError if they are not a QUIC Initial we can read."""
    info = read_client_hello(datagrams)
    return None if info is None else info.client_hello


def error_code_to_str(error_code: int) -> str:
    """A QUIC or HTTP/3 error code by name (``H3_REQUEST_CANCELLED``), else in hex."""
    from aioquic.h3.connection import ErrorCode as H3ErrorCode
    from aioquic.quic.packet import QuicErrorCode

    for codes in (H3ErrorCode, QuicErrorCode):
        try:
            return codes(error_code).name
        except ValueError:
            continue
    return f"unknown error (0x{error_code:x})"


def __getattr__(name: str) -> Any:
    """``RawQuicLayer`` lives in its own module (it imports this one)."""
    if name == "RawQuicLayer":
        from proxycore.layers.quic_raw import RawQuicLayer

        return RawQuicLayer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
