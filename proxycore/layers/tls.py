"""TLS on either side of the proxy: pyOpenSSL driven over memory BIOs.

A TLS layer wraps one connection (the client for :class:`ClientTLSLayer`, the
server for :class:`ServerTLSLayer`) and sits between its parent and a child
layer: ciphertext for that connection arrives as events and leaves as
``SendData``; the child only ever sees and sends plaintext on the same
connection object. The layer never builds an ``SSL.Connection`` itself: the
``tls_start_client``/``tls_start_server`` hooks must supply one (the TlsConfig
addon does), so addons control certificates, ALPN and verification.

The server side intercepts its child's ``OpenConnection`` for the wrapped
connection: it opens the TCP connection if needed, runs the handshake, and
only then answers the child, so layers below see an already-secured server.
"""

from __future__ import annotations

import dataclasses
import itertools
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

from OpenSSL import SSL

from proxycore.connection import Connection, ConnectionState, Server
from proxycore.net import clienthello as tls_parse
from proxycore.net.tls_bio import READ_CHUNK as READ_CHUNK  # re-exported for older imports
from proxycore.net.tls_bio import PublicPipe, RawPipe, describe_ssl_error, pipe_for
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.tunnel import CLOSED, ESTABLISHING, INACTIVE, OPEN, TunnelLayer

PASSTHROUGH = "passthrough"  # not intercepted: bytes pass both ways untouched
MERGE_LIMIT = 16384  # consecutive sends are joined up to one record's plaintext
# ALPN protocol names that mean HTTP (mitmproxy.proxy.layers.tls.HTTP_ALPNS).
HTTP_ALPNS = (b"h2", b"http/1.1", b"http/1.0", b"http/0.9")


# Hook data and hooks -------------------------------------------------------------


@dataclasses.dataclass(eq=False)
class ClientHelloData:
    """What the ``tls_clienthello`` hook sees and may change."""

    context: Context
    client_hello: tls_parse.ClientHello
    ignore_connection: bool = False
    """Set to pass the connection through untouched (no interception)."""
    establish_server_tls_first: bool = False
    """Set to handshake with the server before answering the client (upstream cert sniffing)."""


@dataclasses.dataclass(eq=False)
class TlsData:
    """A connection about to handshake; ``tls_start_*`` hooks set ``ssl_conn``."""

    conn: Connection
    context: Context
    ssl_conn: SSL.Connection | None = None
    is_dtls: bool = False


@hook_dataclass
class TlsClienthelloHook(StartHook):
    """The client's ClientHello was read; decide whether and how to intercept."""

    name = "tls_clienthello"
    data: ClientHelloData


@hook_dataclass
class TlsStartClientHook(StartHook):
    name = "tls_start_client"
    data: TlsData


@hook_dataclass
class TlsStartServerHook(StartHook):
    name = "tls_start_server"
    data: TlsData


@hook_dataclass
class TlsEstablishedClientHook(StartHook):
    name = "tls_established_client"
    data: TlsData


@hook_dataclass
class TlsEstablishedServerHook(StartHook):
    name = "tls_established_server"
    data: TlsData


@hook_dataclass
class TlsFailedClientHook(StartHook):
    name = "tls_failed_client"
    data: TlsData


@hook_dataclass
class TlsFailedServerHook(StartHook):
    name = "tls_failed_server"
    data: TlsData


# Errors ---------------------------------------------------------------------------

# OpenSSL's X509_V_ERR_* texts for the codes upstream verification usually produces,
# used when the library cannot be asked directly.
_VERIFY_ERRORS = {
    2: "unable to get issuer certificate",
    9: "certificate is not yet valid",
    10: "certificate has expired",
    18: "self-signed certificate",
    19: "self-signed certificate in certificate chain",
    20: "unable to get local issuer certificate",
    21: "unable to verify the first certificate",
    26: "unsupported certificate purpose",
    62: "hostname mismatch",
    64: "IP address mismatch",
}


def verify_error(conn: SSL.Connection) -> str | None:
    """OpenSSL's certificate verification result for ``conn``, None if it passed."""
    try:  # pyOpenSSL's private cffi bindings: no public call gives the result code
        from OpenSSL._util import ffi, lib

        code = lib.SSL_get_verify_result(conn._ssl)
    except (ImportError, AttributeError):
        return None
    if code == 0:
        return None
    try:
        text: str = ffi.string(lib.X509_verify_cert_error_string(code)).decode()
        return text
    except Exception:
        return _VERIFY_ERRORS.get(code, f"verification error {code}")


# The layers ---------------------------------------------------------------------------


class TLSLayer(TunnelLayer):
    """Encrypts and decrypts one connection for its child layer.

    A tunnel whose outer and inner connection are the same object: ciphertext and
    plaintext share the socket.  ``state`` is the tunnel's, plus PASSTHROUGH."""

    tls: SSL.Connection | None
    pipe: RawPipe | PublicPipe | None
    """Moves bytes through ``tls``'s memory BIOs (:mod:`proxycore.net.tls_bio`)."""

    def __init__(self, context: Context, conn: Connection, child: Layer | None = None) -> None:
        super().__init__(context, conn, conn, child)
        self.tls = None
        self.pipe = None
        self._close_forwarded = False
        conn.tls = True

    # ciphertext and plaintext plumbing ------------------------------------------

    def flush(self) -> CommandGenerator[None]:
        """Send whatever OpenSSL has written into the outgoing BIO (nothing if it is empty)."""
        assert self.pipe is not None
        data = self.pipe.take()
        if data:
            yield commands.SendData(self.conn, data)

    def handle_event(self, event: events.Event) -> CommandGenerator[None]:
        """Most events (bytes of an established connection, and everything that only passes
        through to the child) skip ``Layer._run``, whose only job is to pause this layer on
        a blocking command of its own: none comes from them until the child sends a command
        for our connection, and from there on :meth:`child_commands` goes under ``_run``.
        One generator level less per layer for every command of a request."""
        if self._paused is None and self.held_events is None:
            if type(event) is events.DataReceived and event.connection is self.conn:
                if self.state == OPEN and self.pipe is not None:
                    return self.receive_open(event.data)
            elif self.relays(event):
                return self.child_commands(self.child_layer.handle_event(event), under_run=False)
        return super().handle_event(event)

    def relays(self, event: events.Event) -> bool:
        """Whether ``event`` only passes through to the (started) child."""
        return False

    def event_to_child(self, event: events.Event) -> CommandGenerator[None]:
        """Pass ``event`` to the child, encrypting what it sends on our connection."""
        return self.child_commands(self.child_layer.handle_event(event), under_run=True)

    def child_commands(self, child: Iterator[commands.Command], under_run: bool) -> CommandGenerator[None]:
        """The child's commands, those for our connection translated (encrypted...).

        Consecutive small sends (an HTTP/1 head and then its body) are encrypted together:
        one SSL_write, one record and one ciphertext send instead of one each. Any other
        command first sends what is held, so everything the child does keeps its order.
        Without ``_run`` around us (``under_run`` false), the first command for our
        connection other than a send of an established one, which may make us block (an
        open, a handshake's hooks), and all after it go on under ``_run``."""
        held = b""
        for command in child:
            if type(command) is commands.SendData and command.connection is self.conn and self.state == OPEN:
                if held and len(held) + len(command.data) > MERGE_LIMIT:
                    yield from self.send_plaintext(held)
                    held = b""
                held = held + command.data if held else command.data
                continue
            if held:
                yield from self.send_plaintext(held)
                held = b""
            if isinstance(command, commands.ConnectionCommand) and command.connection is self.conn:
                if not under_run:
                    yield from self._run(self.child_commands(itertools.chain((command,), child), True), None)
                    return
                yield from self.command_from_child(command)
            else:
                if type(command) is commands.CloseConnection and command.connection is self.context.client:
                    if not command.half_close:
                        yield from self.close_before_client()
                yield command
        if held:
            yield from self.send_plaintext(held)

    def close_before_client(self) -> CommandGenerator[None]:
        """The client connection closes for good, and with it (the driver closes them right
        after) every server connection: end TLS toward ours with close_notify first. OpenSSL
        refuses to resume the session of a connection freed without one, so a keep-alive
        client that left cost the next connection to that server its resumption."""
        if self.state == OPEN and self.conn is not self.context.client and self.conn.state & ConnectionState.CAN_WRITE:
            yield from self.close(commands.CloseConnection(self.conn))

    def command_from_child(self, command: commands.ConnectionCommand) -> CommandGenerator[None]:
        if self.state == PASSTHROUGH:
            yield command
        else:
            yield from super().command_from_child(command)

    def send_data(self, command: commands.SendData) -> CommandGenerator[None]:
        yield from self.send_plaintext(command.data)

    def send_close(self, command: commands.CloseConnection) -> CommandGenerator[None]:
        yield from self.close(command)

    def send_plaintext(self, data: bytes) -> CommandGenerator[None]:
        if self.state != OPEN or self.pipe is None:
            return  # nothing can be sent on a connection whose handshake failed or closed
        try:
            self.pipe.write(data)
        except SSL.Error as e:
            yield commands.Log(f"TLS error while sending to {_who(self.conn)}: {describe_ssl_error(e)}", logging.DEBUG)
        out = self.pipe.take()  # flush(), without a generator per send
        if out:
            yield commands.SendData(self.conn, out)

    def close(self, command: commands.CloseConnection) -> CommandGenerator[None]:
        if self.state == OPEN and self.tls is not None and not command.half_close:
            try:
                self.tls.shutdown()  # close_notify, so the peer knows the data is complete
            except SSL.Error:
                pass
            yield from self.flush()
        if not command.half_close:
            self.state = CLOSED
        yield command

    def receive_ciphertext(self, data: bytes) -> CommandGenerator[None]:
        assert self.pipe is not None
        self.pipe.feed(data)
        if self.state == ESTABLISHING:
            yield from self.continue_handshake()
        if self.state == OPEN:
            yield from self.read_plaintext()

    def receive_open(self, data: bytes) -> CommandGenerator[None]:
        """:meth:`receive_ciphertext` of an established connection, without ``_run`` (see
        :meth:`handle_event`) unless the peer ended it."""
        assert self.pipe is not None
        self.pipe.feed(data)
        plaintext, end = self.pipe.read()
        if end is not None:
            yield from self._run(self.deliver(plaintext, end), None)
            return
        out = self.pipe.take()  # e.g. key updates or session tickets
        if out:
            yield commands.SendData(self.conn, out)
        if plaintext:
            yield from self.child_commands(
                self.child_layer.handle_event(events.DataReceived(self.conn, plaintext)), under_run=False
            )

    def read_plaintext(self) -> CommandGenerator[None]:
        assert self.pipe is not None
        data, end = self.pipe.read()
        yield from self.deliver(data, end)

    def deliver(self, data: bytes, end: str | None) -> CommandGenerator[None]:
        """Plaintext read to the child, then the peer's close if ``end`` is not None."""
        peer_closed = end is not None
        if end:
            yield commands.Log(f"TLS error from {_who(self.conn)}: {end}", logging.INFO)
        yield from self.flush()  # e.g. key updates or session tickets
        if data:
            yield from self.event_to_child(events.DataReceived(self.conn, data))
        if peer_closed:
            yield from self.forward_close()

    def forward_close(self) -> CommandGenerator[None]:
        if not self._close_forwarded:
            self._close_forwarded = True
            yield from self.event_to_child(events.ConnectionClosed(self.conn))

    # handshake --------------------------------------------------------------------

    def start_handshake(self, start_hook: Callable[[TlsData], StartHook], connect: bool) -> CommandGenerator[None]:
        """Ask addons for an SSL connection object, then send the first flight."""
        data = TlsData(self.conn, self.context)
        yield start_hook(data)
        if data.ssl_conn is None:
            yield from self.handshake_failed(
                self.conn.error or "No TLS context was provided by the tls_start hook."
            )
            return
        self.tls = data.ssl_conn
        self.pipe = pipe_for(self.tls)
        if connect:
            self.tls.set_connect_state()
        else:
            self.tls.set_accept_state()
        self.state = ESTABLISHING
        self.tls_data = data

    def continue_handshake(self) -> CommandGenerator[None]:
        assert self.tls is not None
        try:
            self.tls.do_handshake()
        except SSL.WantReadError:
            yield from self.flush()
            return
        except SSL.Error as e:
            yield from self.flush()  # the alert, so the peer learns why
            yield from self.handshake_failed(self.explain_failure(e))
            return
        # Our last flight (Finished) is sent by handshake_done, after the established hook, as
        # mitmproxy does: an addon sees the connection before the peer can use it.
        self.state = OPEN
        self.record_connection_details()
        yield from self.handshake_done()

    def record_connection_details(self) -> None:
        assert self.tls is not None
        conn = self.conn
        conn.timestamp_tls_setup = time.time()
        conn.alpn = self.tls.get_alpn_proto_negotiated() or b""
        conn.cipher = self.tls.get_cipher_name()
        conn.tls_version = self.tls.get_protocol_version_name()
        chain = list(self.tls.get_peer_cert_chain() or [])
        if conn is self.context.client:
            # Toward a client we are the TLS server, and OpenSSL's peer chain leaves out the
            # peer's own certificate there (request_client_cert): put it first.
            leaf = self.tls.get_peer_certificate()
            if leaf is not None:
                chain.insert(0, leaf)
        if chain:
            conn.certificate_list = [_to_cert(c) for c in chain]

    def explain_failure(self, e: SSL.Error) -> str:
        return describe_ssl_error(e)

    def handshake_failed(self, message: str) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover

    def handshake_done(self) -> CommandGenerator[None]:
        raise NotImplementedError
        yield  # pragma: no cover


class ServerTLSLayer(TLSLayer):
    """TLS toward the server: handshakes when the connection is opened (or at once, if open)."""

    def __init__(self, context: Context, child: Layer | None = None) -> None:
        super().__init__(context, context.server, child)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            if (
                self.conn.connected
                and self.state == INACTIVE
                and not isinstance(self.child_layer, ClientTLSLayer)
            ):
                # Opened before us (eager connect) and nobody will ask: secure it now. The
                # child starts once that is done, so it never writes into a handshake.
                yield from self.establish_now(event)
            else:
                yield from self.event_to_child(event)
        elif self.held_events is not None and not (
            isinstance(event, events.ConnectionEvent) and event.connection is self.conn
        ):
            self.held_events.append(event)
        elif isinstance(event, events.ConnectionEvent) and event.connection is self.conn:
            if self.state == PASSTHROUGH or self.tls is None:
                # Not ours (yet, or ever: the handshake never started).
                yield from self.event_to_child(event)
            elif isinstance(event, events.DataReceived):
                yield from self.receive_ciphertext(event.data)
            elif isinstance(event, events.ConnectionClosed):
                if self.state == ESTABLISHING:
                    yield from self.handshake_failed("Server closed the connection during the TLS handshake.")
                else:
                    if self.state == OPEN:
                        yield from self.read_plaintext()
                    yield from self.forward_close()
        else:
            yield from self.event_to_child(event)

    def relays(self, event: events.Event) -> bool:
        return not (
            isinstance(event, events.ConnectionEvent) and event.connection is self.conn
        ) and not isinstance(event, events.Start)

    def establish(self) -> CommandGenerator[None]:
        yield from self.start_handshake(TlsStartServerHook, connect=True)
        if self.state == ESTABLISHING:
            yield from self.continue_handshake()

    def handshake_done(self) -> CommandGenerator[None]:
        yield TlsEstablishedServerHook(self.tls_data)
        yield from self.flush()
        client_tls = self.client_tls_above()
        if client_tls is not None:
            client_tls.server_opened(self)
        yield from self.finish(None)

    def client_tls_above(self) -> ClientTLSLayer | None:
        """The TLS layer of our client if it is above us (the HTTP layer of an intercepted
        tunnel opened us for a new server): the client's close does not pass through us then,
        so that layer closes us (:meth:`ClientTLSLayer.close_servers`)."""
        layers = self.context.layers
        for layer in reversed(layers[: layers.index(self)] if self in layers else layers):
            if isinstance(layer, ClientTLSLayer):
                return layer
        return None

    def explain_failure(self, e: SSL.Error) -> str:
        assert self.tls is not None
        problem = verify_error(self.tls)
        if problem:
            return f"Certificate verify failed: {problem}"
        return f"TLS handshake failed: {describe_ssl_error(e)}"

    def handshake_failed(self, message: str) -> CommandGenerator[None]:
        self.conn.error = message
        self.state = CLOSED
        yield commands.Log(f"Server TLS handshake failed with {_who(self.conn)}: {message}", logging.WARNING)
        yield TlsFailedServerHook(getattr(self, "tls_data", TlsData(self.conn, self.context)))
        yield commands.CloseConnection(self.conn)
        yield from self.finish(message)


class ClientTLSLayer(TLSLayer):
    """TLS toward the client: reads its ClientHello, then plays the server with our certificate."""

    def __init__(self, context: Context, child: Layer | None = None) -> None:
        super().__init__(context, context.client, child)
        self.hello_buffer = bytearray()
        self.child_started = False
        self.server_layers: list[ServerTLSLayer] = []
        """The open TLS connections toward servers below us (see :meth:`close_servers`)."""

    def relays(self, event: events.Event) -> bool:
        return self.child_started and not (
            isinstance(event, events.ConnectionEvent) and event.connection is self.conn
        ) and not isinstance(event, events.Start)

    def server_opened(self, layer: ServerTLSLayer) -> None:
        self.server_layers = [known for known in self.server_layers if known.state == OPEN]
        self.server_layers.append(layer)

    def send_close(self, command: commands.CloseConnection) -> CommandGenerator[None]:
        if not command.half_close:
            yield from self.close_servers()
        yield from self.close(command)

    def close_servers(self) -> CommandGenerator[None]:
        """Our child closes the client: close_notify to the servers of the TLS layers below
        our child (see :meth:`TLSLayer.close_before_client`, which a TLS layer above us
        runs itself when the close passes through it)."""
        servers, self.server_layers = self.server_layers, []
        for layer in servers:
            yield from layer.close_before_client()

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            return  # the child starts once the handshake is done
        if isinstance(event, events.ConnectionEvent) and event.connection is self.conn:
            if self.state == PASSTHROUGH:
                yield from self.event_to_child(event)
            elif isinstance(event, events.DataReceived):
                if self.state == INACTIVE:
                    yield from self.receive_hello(event.data)
                elif self.state in (ESTABLISHING, OPEN):
                    yield from self.receive_ciphertext(event.data)
            elif isinstance(event, events.ConnectionClosed):
                if self.state == CLOSED and not self.child_started:
                    return  # failed already (e.g. it left while our hooks ran)
                if self.state in (INACTIVE, ESTABLISHING):
                    if self.state == ESTABLISHING:
                        yield from self.handshake_failed("The client disconnected during the handshake.")
                    else:
                        yield commands.CloseConnection(self.conn)
                        self.state = CLOSED
                else:
                    if self.state == OPEN:
                        yield from self.read_plaintext()
                    yield from self.forward_close()
        elif self.child_started:
            yield from self.event_to_child(event)
        # Before the handshake (or after it failed) the child has not started: nothing for it.

    def receive_hello(self, data: bytes) -> CommandGenerator[None]:
        self.hello_buffer += data
        try:
            hello = tls_parse.parse_client_hello(bytes(self.hello_buffer))
        except ValueError as e:
            yield commands.Log(f"Client sent an invalid TLS ClientHello: {e}", logging.INFO)
            yield commands.CloseConnection(self.conn)
            self.state = CLOSED
            return
        if hello is None:
            return
        self.conn.sni = hello.sni
        self.conn.alpn_offers = list(hello.alpn_protocols)
        hello_data = ClientHelloData(self.context, hello)
        yield TlsClienthelloHook(hello_data)
        if hello_data.ignore_connection:
            yield from self.pass_through()
            return
        if hello_data.establish_server_tls_first and not self.context.server.tls_established:
            err = yield commands.OpenConnection(self.context.server)
            if err:
                yield commands.Log(
                    f"Unable to establish TLS with the server ({err}); "
                    "continuing the client handshake without its certificate details.",
                    logging.DEBUG,
                )
        yield from self.start_handshake(TlsStartClientHook, connect=False)
        if self.state != ESTABLISHING:
            return
        if not self.conn.state & ConnectionState.CAN_READ:
            # It hung up while the hooks ran: nothing to answer (mitmproxy sends nothing either).
            self.conn.error = "The client disconnected during the handshake."
            self.state = CLOSED
            yield TlsFailedClientHook(self.tls_data)
            yield commands.CloseConnection(self.conn)
            return
        assert self.pipe is not None
        self.pipe.feed(bytes(self.hello_buffer))
        self.hello_buffer.clear()
        yield from self.continue_handshake()
        if self.state == OPEN:
            yield from self.read_plaintext()

    def pass_through(self) -> CommandGenerator[None]:
        """Not intercepted after all: this layer and a ServerTLS parent step aside."""
        from proxycore.layers.tcp import TCPLayer

        self.state = PASSTHROUGH
        self.conn.tls = False
        index = self.context.layers.index(self) if self in self.context.layers else 0
        parent = self.context.layers[index - 1] if index > 0 else None
        if isinstance(parent, ServerTLSLayer) and parent.state == INACTIVE:
            parent.state = PASSTHROUGH
            parent.conn.tls = False
        self.child_layer = TCPLayer(self.context, ignore=True)
        self.child_started = True
        yield from self.event_to_child(events.Start())
        data, self.hello_buffer = bytes(self.hello_buffer), bytearray()
        yield from self.event_to_child(events.DataReceived(self.conn, data))

    def handshake_done(self) -> CommandGenerator[None]:
        yield TlsEstablishedClientHook(self.tls_data)
        yield from self.flush()
        self.child_started = True
        yield from self.event_to_child(events.Start())

    def handshake_failed(self, message: str) -> CommandGenerator[None]:
        self.conn.error = message
        self.state = CLOSED
        where = self.conn.sni or _server_name(self.context.server) or "this host"
        yield commands.Log(
            f"Client TLS handshake failed: {message} If this happens for every connection to "
            f"{where}, the client probably does not trust the proxycore CA: install it "
            "(see docs/tls.md).",
            logging.WARNING,
        )
        yield TlsFailedClientHook(getattr(self, "tls_data", TlsData(self.conn, self.context)))
        yield commands.CloseConnection(self.conn)

    def explain_failure(self, e: SSL.Error) -> str:
        return f"{describe_ssl_error(e)}."


def _who(conn: Connection) -> str:
    if isinstance(conn, Server):
        return _server_name(conn) or "server"
    return "client"


def _server_name(server: Server) -> str | None:
    if server.sni:
        return server.sni
    if server.address:
        return f"{server.address[0]}:{server.address[1]}"
    return None


def _to_cert(x509: Any) -> Any:
    """pyOpenSSL X509 -> proxycore.certs.Cert (what mitmproxy keeps in certificate_list)."""
    from proxycore.certs import Cert

    return Cert(x509.to_cryptography())


# mitmproxy's module-level ClientHello helpers (code written for mitmproxy imports them from
# here); the parsing itself is proxycore.net.clienthello's.


def handshake_record_contents(data: bytes) -> Iterator[bytes]:
    """Payloads of the complete TLS handshake records at the start of ``data``."""
    offset = 0
    while len(data) - offset >= 5:
        header = data[offset : offset + 5]
        if not tls_parse.starts_like_tls(header):
            raise ValueError(f"Expected TLS record, got {header!r}")
        length = int.from_bytes(header[3:5], "big")
        if length == 0:
            raise ValueError("Record must not be empty")
        end = offset + 5 + length
        if end > len(data):
            return
        yield data[offset + 5 : end]
        offset = end


def get_client_hello(data: bytes) -> bytes | None:
    """The ClientHello handshake message (with its 4-byte header) from the client's first
    records, or None while it is incomplete."""
    body = tls_parse.get_client_hello(data)
    if body is None:
        return None
    return bytes([tls_parse.CLIENT_HELLO]) + len(body).to_bytes(3, "big") + body


DTLS_RECORD_HEADER = 13  # type, version, epoch, sequence number (6), length
DTLS_HANDSHAKE_HEADER = 12  # type, length (3), message sequence (2), fragment offset (3), length (3)


def dtls_handshake_record_contents(data: bytes) -> Iterator[bytes]:
    """The contents of the complete DTLS handshake records at the start of ``data``;
    ValueError for anything else (a record of another kind, an empty one)."""
    offset = 0
    while len(data) - offset >= DTLS_RECORD_HEADER:
        if data[offset] != 0x16 or data[offset + 1] != 0xFE:
            raise ValueError(f"Expected DTLS record, got {data[offset:offset + 3]!r}")
        length = int.from_bytes(data[offset + 11 : offset + 13], "big")
        if length == 0:
            raise ValueError("Record must not be empty")
        end = offset + DTLS_RECORD_HEADER + length
        if end > len(data):
            return
        yield data[offset + DTLS_RECORD_HEADER : end]
        offset = end


def get_dtls_client_hello(data: bytes) -> bytes | None:
    """The DTLS ClientHello handshake message (with its 12-byte header) from the client's
    first records, or None while it is incomplete."""
    message = b""
    for content in dtls_handshake_record_contents(data):
        message += content
        if len(message) >= DTLS_HANDSHAKE_HEADER:
            size = DTLS_HANDSHAKE_HEADER + int.from_bytes(message[1:4], "big")
            if len(message) >= size:
                return message[:size]
    return None


def dtls_parse_client_hello(data: bytes) -> tls_parse.ClientHello | None:
    """The parsed DTLS ClientHello from the client's first records, None while incomplete."""
    message = get_dtls_client_hello(data)
    if message is None:
        return None
    hello = tls_parse.ClientHello(message[DTLS_HANDSHAKE_HEADER:], dtls=True)
    _ = hello.sni, hello.alpn_protocols  # malformed extensions fail here, not later
    return hello


def parse_client_hello(data: bytes) -> tls_parse.ClientHello | None:
    """The parsed ClientHello from the client's first records, None while incomplete."""
    return tls_parse.parse_client_hello(data)


class MockTLSLayer(Layer):
    """A stand-in for ServerTLSLayer in layer tests: no TLS at all, so the child's bytes go
    out and come in as they are. Tests swap it in with
    ``monkeypatch.setattr(tls, "ServerTLSLayer", tls.MockTLSLayer)`` (mitmproxy's name)."""

    def __init__(self, context: Context, child: Layer | None = None) -> None:
        super().__init__(context)
        self.child_layer = child

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.child_layer is not None:
            yield from self.child_layer.handle_event(event)
