"""Default ``next_layer`` decisions: which layer handles a connection (or tunnel) next."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from proxycore.connection import TransportProtocol
from proxycore.exceptions import OptionsError
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.modes import HttpProxy, HttpUpstreamProxy, ReverseProxy
from proxycore.layers.tcp import TCPLayer
from proxycore.proxy import events
from proxycore.proxy.layer import Layer
from proxycore.proxy.layer import NextLayer as NextLayerData
from proxycore.proxy.mode_specs import ReverseMode

_HTTP_METHOD = re.compile(rb"^[A-Za-z]{1,16} \S")


def looks_like_tls(data: bytes) -> bool:
    """A TLS handshake record: content type 22, version 3.0–3.3."""
    return len(data) >= 3 and data[0] == 0x16 and data[1] == 0x03 and data[2] <= 0x03


def looks_like_http(data: bytes) -> bool:
    return bool(_HTTP_METHOD.match(data[:32]))


class NextLayer:
    """Picks layers the way mitmproxy does for the modes proxycore supports so far."""

    def __init__(self) -> None:
        self._ignore: list[re.Pattern[str]] = []
        self._allow: list[re.Pattern[str]] = []
        self._tcp: list[re.Pattern[str]] = []
        self._udp: list[re.Pattern[str]] = []

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        options = ctx.options
        if updated & {"ignore_hosts", "allow_hosts", "tcp_hosts", "udp_hosts"}:
            self._ignore = _compile("ignore_hosts", options.ignore_hosts)
            self._allow = _compile("allow_hosts", options.allow_hosts)
            self._tcp = _compile("tcp_hosts", options.tcp_hosts)
            self._udp = _compile("udp_hosts", getattr(options, "udp_hosts", []))

    def next_layer(self, nextlayer: NextLayerData) -> None:
        if nextlayer.layer is None:
            nextlayer.layer = self.decide(nextlayer)

    def decide(self, nextlayer: NextLayerData) -> Layer | None:
        context = nextlayer.context
        parent = context.layers[-1] if context.layers else None
        client_data = nextlayer.data_client()
        if isinstance(parent, HttpProxy):
            mode = HTTPMode.upstream if isinstance(parent, HttpUpstreamProxy) else HTTPMode.regular
            if looks_like_tls(client_data):
                # TLS straight to the proxy port: a "secure web proxy" client.
                from proxycore.layers.tls import ClientTLSLayer

                return _stack(ClientTLSLayer(context), HttpLayer(context, mode))
            return HttpLayer(context, mode)
        hosts = _host_candidates(nextlayer)
        if context.client.transport_protocol == TransportProtocol.UDP:
            return self._decide_udp(nextlayer, hosts)
        is_tls = looks_like_tls(client_data) and not _is_client_tls(parent)
        if is_tls and (self._ignore or self._allow):
            from proxycore.net.clienthello import parse_client_hello  # first TLS with host rules

            try:
                hello = parse_client_hello(client_data)
            except ValueError:
                hello = None
            else:
                if hello is None:
                    return None  # wait for the whole ClientHello: its SNI decides
            if hello is not None and hello.sni:
                address = context.server.address
                port = address[1] if address else 443
                hosts = [f"{hello.sni}:{port}", hello.sni, *hosts]
        if self._ignored(hosts):
            return TCPLayer(context, ignore=not context.options.show_ignored_hosts)
        if isinstance(parent, ReverseProxy) and len(context.layers) == 1:
            return _reverse_proxy_stack(nextlayer)
        server_data = nextlayer.data_server()
        if _http_alpn(context.client.alpn) and not is_tls and not self._tcp_host(hosts):
            # The TLS handshake agreed on HTTP: decide now. Waiting for bytes would let an
            # HTTP/2 server's SETTINGS, sent as soon as its handshake ends, arrive before the
            # client's preface and pass for a server-speaks-first protocol.
            return HttpLayer(context, HTTPMode.transparent)
        if server_data and not client_data:
            return TCPLayer(context)  # the server speaks first: not HTTP
        if not client_data:
            return None
        if is_tls:
            from proxycore.layers.tls import ClientTLSLayer, ServerTLSLayer

            return _stack(ServerTLSLayer(context), ClientTLSLayer(context))
        if self._tcp_host(hosts):
            return TCPLayer(context)
        if looks_like_http(client_data):
            return HttpLayer(context, HTTPMode.transparent)
        if len(client_data) < 3 and client_data.isalpha():
            return None  # could still become an HTTP verb
        if not context.options.rawtcp:
            return HttpLayer(context, HTTPMode.transparent)  # no raw TCP: treat it as (bad) HTTP
        return TCPLayer(context)

    def _decide_udp(self, nextlayer: NextLayerData, hosts: list[str]) -> Layer | None:
        """Datagrams, in mitmproxy's order: ignored hosts, the reverse scheme, QUIC,
        ``udp_hosts``, DNS by port; raw UDP otherwise."""
        from proxycore.layers.udp import UDPLayer  # with the first datagram, not at start

        context = nextlayer.context
        spec = context.client.proxy_mode
        h3_hello = None
        if context.options.http3 and not isinstance(spec, ReverseMode):
            h3_hello = _quic_client_hello(nextlayer)
            if h3_hello is None:
                return None  # a QUIC Initial whose ClientHello is not complete yet
            if h3_hello is not False and h3_hello.sni:
                hosts = [f"{h3_hello.sni}:{context.server.address[1] if context.server.address else 443}",
                         h3_hello.sni, *hosts]
        if self._ignored(hosts):
            return UDPLayer(context, ignore=not context.options.show_ignored_hosts)
        if isinstance(spec, ReverseMode) and spec.scheme == "udp":
            return UDPLayer(context)
        # QUIC toward a QUIC server starts with tls_clienthello (QuicClientHelloLayer), which
        # may still turn the connection into an untouched UDP relay.
        from proxycore.layers.quic import QuicClientHelloLayer

        if not context.options.http3:
            from proxycore.layers.quic import starts_like_quic

            if isinstance(spec, ReverseMode) and spec.scheme in ("quic", "http3") or starts_like_quic(
                nextlayer.data_client()
            ):
                # QUIC is off: its datagrams are swallowed, so clients fall back to TCP.
                return QuicClientHelloLayer(context, UDPLayer(context, ignore=True))
        if isinstance(spec, ReverseMode) and spec.scheme == "quic":
            from proxycore.layers.quic_raw import RawQuicLayer

            return _stack(QuicClientHelloLayer(context), RawQuicLayer(context))
        if h3_hello:
            # QUIC to a server that speaks HTTP/3 (wherever a mode delivers UDP with its
            # destination): HTTP/3 on both sides, as mitmproxy intercepts it.
            context.server.transport_protocol = TransportProtocol.UDP
            context.server.tls = True
            if context.server.sni is None:
                context.server.sni = h3_hello.sni
            return _stack(QuicClientHelloLayer(context), HttpLayer(context, HTTPMode.transparent))
        if isinstance(spec, ReverseMode) and spec.scheme in ("http3", "https"):
            # HTTP/3 from the client (its UDP port exists for nothing else); toward the target
            # the scheme decides (https: TLS over TCP, whatever HTTP version it offers).
            if spec.scheme == "https":
                from proxycore.layers.tls import ServerTLSLayer

                return _stack(ServerTLSLayer(context), HttpLayer(context, HTTPMode.transparent))
            return _stack(QuicClientHelloLayer(context), HttpLayer(context, HTTPMode.transparent))
        if isinstance(spec, ReverseMode) and spec.scheme == "dns":
            from proxycore.layers.dns import DNSLayer

            return DNSLayer(context)
        # As in mitmproxy, udp_hosts applies where no reverse scheme or QUIC decided.
        if any(p.search(h) for p in self._udp for h in hosts):
            return UDPLayer(context)
        address = context.server.address
        if address and address[1] in (53, 5353):
            from proxycore.layers.dns import DNSLayer

            return DNSLayer(context)
        return UDPLayer(context)

    def _ignored(self, hosts: Sequence[str]) -> bool:
        if self._ignore and any(p.search(h) for p in self._ignore for h in hosts):
            return True
        if self._allow and not any(p.search(h) for p in self._allow for h in hosts):
            return True
        return False

    def _tcp_host(self, hosts: Sequence[str]) -> bool:
        """A ``tcp_hosts`` pattern names the destination: relay raw TCP."""
        return any(p.search(h) for p in self._tcp for h in hosts)


def _quic_client_hello(nextlayer: NextLayerData) -> Any:
    """The ClientHello of a QUIC client that offers HTTP/3; None while it is incomplete;
    False when the datagrams are not such a QUIC start (relay them as UDP)."""
    from proxycore.layers.quic import (
        H3_ALPNS,
        MAX_HELLO_DATAGRAMS,
        read_client_hello,
        starts_like_quic,
    )

    client = nextlayer.context.client
    datagrams = [e.data for e in nextlayer.events if isinstance(e, events.DataReceived) and e.connection is client]
    if not datagrams or not starts_like_quic(datagrams[0]):
        return False
    try:
        info = read_client_hello(datagrams)
    except ValueError:
        return False
    if info is None:
        return None if len(datagrams) < MAX_HELLO_DATAGRAMS else False
    if not any(p in H3_ALPNS for p in info.client_hello.alpn_protocols):
        return False  # QUIC, but not HTTP/3 (DNS over QUIC, ...): relayed as UDP
    return info.client_hello


# proxycore.layers.tls is imported where a TLS layer is first made, not at start: it loads
# pyOpenSSL and cryptography (~11 MB resident), which a proxy for plain HTTP never uses.


def _is_client_tls(layer: Layer | None) -> bool:
    """Whether ``layer`` is a ClientTLSLayer (asked only of data that looks like TLS)."""
    from proxycore.layers.tls import ClientTLSLayer

    return isinstance(layer, ClientTLSLayer)


def _http_alpn(alpn: bytes | None) -> bool:
    """Whether the client's TLS handshake agreed on HTTP (no ALPN without TLS)."""
    if alpn is None:
        return False
    from proxycore.layers.tls import HTTP_ALPNS

    return alpn in HTTP_ALPNS


def _stack(*layers: Layer) -> Layer:
    """Chain layers created top-down (so each one's context lists its parents) and return the top."""
    for parent, child in zip(layers, layers[1:], strict=False):
        parent.child_layer = child  # type: ignore[attr-defined]  # all but the last take a child
    return layers[0]


def _reverse_proxy_stack(nextlayer: NextLayerData) -> Layer | None:
    """The target's scheme says what we speak to it; the client may or may not use TLS to us
    (plain HTTP to an https reverse proxy works, as in mitmproxy)."""
    context = nextlayer.context
    client_data = nextlayer.data_client()
    if client_data[:1] == b"\x16" and len(client_data) < 3 and not nextlayer.data_server():
        return None  # could be the start of a TLS record: wait for the rest of its header
    spec = context.client.proxy_mode
    assert isinstance(spec, ReverseMode)
    client_tls = looks_like_tls(client_data)
    layers: list[Layer] = []
    if spec.scheme in ("https", "tls"):
        from proxycore.layers.tls import ServerTLSLayer

        layers.append(ServerTLSLayer(context))
    if client_tls:
        from proxycore.layers.tls import ClientTLSLayer

        layers.append(ClientTLSLayer(context))
    if spec.scheme in ("http", "https"):
        layers.append(HttpLayer(context, HTTPMode.transparent))
    elif spec.scheme == "dns":
        from proxycore.layers.dns import DNSLayer

        layers.append(DNSLayer(context))
    else:
        layers.append(TCPLayer(context))
    return _stack(*layers)


def _compile(option: str, patterns: Sequence[str]) -> list[re.Pattern[str]]:
    """The option's regexes; a bad one is an OptionsError (the update is refused), not a crash."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except (re.error, OverflowError, RecursionError) as e:
            raise OptionsError(f"Invalid regular expression in {option}: {pattern!r}: {e}") from None
    return compiled


def _host_candidates(nextlayer: NextLayerData) -> list[str]:
    address = nextlayer.context.server.address
    if address is None:
        return []
    host, port = address
    return [f"{host}:{port}", host]
