"""Top layers of the proxy modes: each learns (or asks) where a client wants to go,
then hands the connection to a NextLayer, where the next_layer hook picks the protocol.

- regular / upstream: :class:`HttpProxy` / :class:`HttpUpstreamProxy`; the HTTP
  layer below reads the destination from each request (or CONNECT).
- reverse: :class:`ReverseProxy`, the destination is the mode's fixed target.
- transparent: :class:`TransparentProxy`, the driver filled in the original
  destination of the redirected socket.
- socks5: :class:`Socks5Proxy` speaks the SOCKS v5 handshake first.
"""

from __future__ import annotations

import dataclasses
import logging

from proxycore.connection import Client, TransportProtocol
from proxycore.net import socks5
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer, NextLayer
from proxycore.proxy.mode_specs import ReverseMode


class HttpProxy(Layer):
    """Regular (explicit) proxy: the next_layer hook picks HttpLayer(regular) for the client."""

    child_layer: NextLayer

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.child_layer = NextLayer(self.context)

    def handle_event(self, event: events.Event) -> CommandGenerator[None]:
        # Never blocks itself, so the child's generator can be handed up unwrapped. Once the
        # NextLayer has decided and waits for nothing, the event goes to its layer from here:
        # NextLayer.handle_event's own rule, read inline (one call less for each of a
        # keep-alive request's two DataReceived).
        child = self.child_layer
        layer = child.layer
        if layer is not None and child._paused is None:
            return layer.handle_event(event)
        return child.handle_event(event)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        return self.child_layer.handle_event(event)


class HttpUpstreamProxy(HttpProxy):
    """Explicit proxy in upstream mode: the next_layer hook picks HttpLayer(upstream)."""


class DestinationKnown(Layer):
    """A mode that knows the server before any byte is read: connect now if the strategy
    is eager (so server-first protocols and TLS details are seen), then delegate."""

    child_layer: Layer

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.child_layer = NextLayer(self.context)
        self.delegating = False

    def handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if self.delegating:
            return self.child_layer.handle_event(event)
        return super().handle_event(event)

    def finish_start(self) -> CommandGenerator[str | None]:
        """Open the server (eager strategy), then start the child; returns an error or None."""
        server = self.context.server
        if self.context.options.connection_strategy == "eager" and server.address:
            err: str | None = yield commands.OpenConnection(server)
            if err:
                host, port = server.address[0], server.address[1]
                yield commands.Log(f"Cannot connect to {host}:{port}: {err}", logging.INFO)
                self._goto(self.state_done)
                return err
        # From now on (events queued meanwhile included) everything belongs to the child.
        self.delegating = True
        self._goto(self.child_layer.handle_event)
        yield from self.child_layer.handle_event(events.Start())
        return None

    def state_done(self, event: events.Event) -> CommandGenerator[None]:
        return
        yield


class ReverseProxy(DestinationKnown):
    """Every connection goes to the reverse proxy's fixed target."""

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if not isinstance(event, events.Start):
            return
        spec = self.context.client.proxy_mode
        assert isinstance(spec, ReverseMode), spec
        server = self.context.server
        server.address = spec.address
        if spec.scheme in ("http3", "quic"):
            server.transport_protocol = TransportProtocol.UDP
            server.tls = True  # QUIC always is; the HTTP/3 client layer does its handshake
        elif spec.scheme in ("http", "https", "tls", "tcp"):
            server.transport_protocol = TransportProtocol.TCP  # also for an HTTP/3 client
        else:
            server.transport_protocol = self.context.client.transport_protocol  # UDP stays UDP
        if spec.scheme in ("https", "tls", "http3", "quic", "dtls"):
            if not self.context.options.keep_host_header:
                server.sni = spec.address[0]
        err = yield from self.finish_start()
        if err:
            yield commands.CloseConnection(self.context.client)


class TransparentProxy(DestinationKnown):
    """The OS redirected the connection to us; the driver set ``server.address`` to where it was going."""

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if not isinstance(event, events.Start):
            return
        assert self.context.server.address, "transparent mode needs the original destination"
        err = yield from self.finish_start()
        if err:
            yield commands.CloseConnection(self.context.client)


# SOCKS v5 ---------------------------------------------------------------------------


@dataclasses.dataclass
class Socks5AuthData:
    """Credentials a SOCKS5 client sent; an addon sets ``valid`` to let it in."""

    client_conn: Client
    username: str
    password: str
    valid: bool = False


@hook_dataclass
class Socks5AuthHook(StartHook):
    """A SOCKS5 client sent a username and password (only asked for when ``proxyauth`` is set).

    Set ``data.valid = True`` to accept them."""

    name = "socks5_auth"
    data: Socks5AuthData


class Socks5Proxy(DestinationKnown):
    """Reads the SOCKS5 greeting, optional username/password and the CONNECT request,
    connects (eager strategy), replies, and hands the rest to the child."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.buf = b""
        self.step = self.step_greeting

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.DataReceived) and event.connection is self.context.client:
            self.buf += event.data
            try:
                yield from self.step()
            except socks5.Socks5Error as e:
                answer = b"" if e.reply_code is None else socks5.reply(e.reply_code)
                yield from self.fail(str(e), answer)
        elif isinstance(event, events.ConnectionClosed) and event.connection is self.context.client:
            if self.buf:
                yield commands.Log(
                    f"Client closed connection before completing SOCKS5 handshake: {self.buf!r}"
                )
            yield commands.CloseConnection(self.context.client)
            self._goto(self.state_done)

    def fail(self, message: str, answer: bytes = b"") -> CommandGenerator[None]:
        """Send ``answer`` (if any), close, and log why."""
        if answer:
            yield commands.SendData(self.context.client, answer)
        yield commands.CloseConnection(self.context.client)
        yield commands.Log(message, logging.INFO)
        self._goto(self.state_done)

    def step_greeting(self) -> CommandGenerator[None]:
        parsed = socks5.parse_greeting(self.buf)
        if parsed is None:
            return
        greeting, used = parsed
        if getattr(self.context.options, "proxyauth", None):
            method, next_step, kind = socks5.METHOD_USER_PASSWORD, self.step_auth, "user/password"
        else:
            method, next_step, kind = socks5.METHOD_NO_AUTHENTICATION_REQUIRED, self.step_connect, "no"
        if method not in greeting.methods:
            yield from self.fail(
                f"Client does not support SOCKS5 with {kind} authentication.",
                socks5.method_selection(socks5.METHOD_NO_ACCEPTABLE_METHODS),
            )
            return
        yield commands.SendData(self.context.client, socks5.method_selection(method))
        self.buf = self.buf[used:]
        self.step = next_step
        yield from self.step()

    def step_auth(self) -> CommandGenerator[None]:
        parsed = socks5.parse_credentials(self.buf)
        if parsed is None:
            return
        credentials, used = parsed
        data = Socks5AuthData(self.context.client, credentials.username, credentials.password)
        yield Socks5AuthHook(data)
        if not data.valid:
            yield commands.SendData(self.context.client, socks5.AUTH_FAILED)
            yield from self.fail("authentication failed")
            return
        yield commands.SendData(self.context.client, socks5.AUTH_SUCCEEDED)
        self.buf = self.buf[used:]
        self.step = self.step_connect
        yield from self.step()

    def step_connect(self) -> CommandGenerator[None]:
        parsed = socks5.parse_request(self.buf)
        if parsed is None:
            return
        request, used = parsed
        self.buf = self.buf[used:]
        self.context.server.address = (request.host, request.port)
        err = yield from self.finish_start()
        if err:
            yield commands.SendData(self.context.client, socks5.reply(socks5.reply_code_for(err)))
            yield commands.CloseConnection(self.context.client)
            return
        yield commands.SendData(self.context.client, socks5.reply(socks5.REP_SUCCEEDED))
        rest, self.buf = self.buf, b""
        if rest:
            yield from self.child_layer.handle_event(events.DataReceived(self.context.client, rest))
