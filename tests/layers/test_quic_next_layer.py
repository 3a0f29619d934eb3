"""next_layer for datagrams that start a QUIC connection, in modes that deliver UDP with its
destination (the reverse modes have their own stacks, see tests/e2e/test_e2e_http3.py)."""

from __future__ import annotations

import re
import ssl
from typing import Any

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from proxycore.addons.next_layer import NextLayer as NextLayerAddon
from proxycore.connection import ConnectionState, TransportProtocol
from proxycore.layers.http import HttpLayer
from proxycore.layers.quic import QuicClientHelloLayer
from proxycore.layers.tls import ClientHelloData, TlsClienthelloHook
from proxycore.layers.udp import UDPLayer
from proxycore.proxy import commands, events
from proxycore.proxy.layer import Layer, NextLayer
from proxycore.proxy.mode_specs import ProxyMode
from proxycore.testing import Placeholder, Playbook, make_context, reply


def initial_datagrams(alpn: list[str], sni: str = "quic.example") -> list[bytes]:
    config = QuicConfiguration(is_client=True, alpn_protocols=alpn, server_name=sni)
    config.verify_mode = ssl.CERT_NONE
    quic = QuicConnection(configuration=config)
    quic.connect(("192.0.2.1", 443), 1.0)
    return [d for d, _ in quic.datagrams_to_send(1.0)]


def decide(datagrams: list[bytes], **options: object):
    tctx = make_context()
    tctx.options.update(**options)
    tctx.client.proxy_mode = ProxyMode.parse("transparent")
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.server.address = ("192.0.2.1", 443)
    tctx.server.transport_protocol = TransportProtocol.UDP
    nextlayer = NextLayer(tctx)
    for datagram in datagrams:
        nextlayer.events.append(events.DataReceived(tctx.client, datagram))
    addon = NextLayerAddon()
    addon._ignore = [re.compile(p) for p in options.get("ignore_hosts", [])]  # type: ignore[union-attr]
    return addon.decide(nextlayer), tctx


def stack(layer: object) -> list[type]:
    chosen = []
    while layer is not None:
        chosen.append(type(layer))
        layer = getattr(layer, "child_layer", None)
    return chosen


def test_an_http3_client_gets_http3_on_both_sides() -> None:
    layer, tctx = decide(initial_datagrams(["h3"]))
    assert stack(layer) == [QuicClientHelloLayer, HttpLayer]
    assert tctx.server.transport_protocol == TransportProtocol.UDP and tctx.server.tls
    assert tctx.server.sni == "quic.example"


def test_quic_that_is_not_http3_and_other_datagrams_are_relayed_as_udp() -> None:
    layer, _ = decide(initial_datagrams(["doq"]))
    assert isinstance(layer, UDPLayer) and layer.flow is not None
    layer, _ = decide([b"\xc0\x00\x00\x00\x01" + b"\x00" * 40])
    assert isinstance(layer, UDPLayer)
    layer, _ = decide([b"plain datagram"])
    assert isinstance(layer, UDPLayer)


def test_an_incomplete_client_hello_waits_and_ignore_hosts_sees_the_sni() -> None:
    # Many ALPN offers make a ClientHello larger than one Initial packet.
    datagrams = initial_datagrams(["h3", *(f"proto-{i:03d}-{'x' * 40}" for i in range(40))])
    assert len(datagrams) > 1
    layer, _ = decide(datagrams[:1])
    assert layer is None  # the rest of the hello is still to come
    layer, _ = decide(datagrams)
    assert stack(layer) == [QuicClientHelloLayer, HttpLayer]
    # The same Initial cut short cannot be decrypted: that is not QUIC we can read.
    layer, _ = decide([datagrams[0][:200]])
    assert isinstance(layer, UDPLayer)
    layer, _ = decide(datagrams, ignore_hosts=[r"\.example$"])
    assert isinstance(layer, UDPLayer) and layer.flow is None  # ignored: relayed, not recorded


def test_the_http3_option_decides_whether_reverse_https_listens_on_udp() -> None:
    from proxycore.addons import default_addons
    from proxycore.addons.proxyserver import make_listener
    from proxycore.master import Master
    from proxycore.options import Options
    from proxycore.proxy.server import ProxyListener
    from proxycore.proxy.server_udp import DatagramListener, DualListener

    master = Master(Options())
    master.addons.add(*default_addons())
    https, http3, quic = (ProxyMode.parse(f"reverse:{s}://example.com") for s in ("https", "http3", "quic"))
    assert type(make_listener(master, https)) is DualListener
    assert type(make_listener(master, http3)) is DatagramListener
    assert type(make_listener(master, quic)) is DatagramListener
    assert type(make_listener(master, ProxyMode.parse("reverse:http://example.com"))) is ProxyListener
    master.options.update(http3=False)
    assert type(make_listener(master, https)) is ProxyListener


# tls_clienthello for QUIC --------------------------------------------------------------------


class Recorder(Layer):
    """A child layer that only remembers what it was given."""

    def __init__(self, context: Any) -> None:
        super().__init__(context)
        self.seen: list[events.Event] = []

    def _handle_event(self, event: events.Event) -> Any:
        self.seen.append(event)
        return
        yield


def hello_context() -> Any:
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.server.address = ("192.0.2.1", 443)
    tctx.server.transport_protocol = TransportProtocol.UDP
    tctx.server.state = ConnectionState.OPEN
    tctx.server.timestamp_start = 1.0
    return tctx


def test_tls_clienthello_sees_a_quic_client_hello_then_the_child_gets_everything() -> None:
    tctx = hello_context()
    child = Recorder(tctx)
    datagrams = initial_datagrams(["h3", *(f"proto-{i:03d}-{'x' * 40}" for i in range(40))], sni="h.example")
    data = Placeholder(ClientHelloData)
    playbook = Playbook(QuicClientHelloLayer(tctx, child))
    for datagram in datagrams[:-1]:
        playbook >> events.DataReceived(tctx.client, datagram)  # not the whole hello yet
    assert playbook >> events.DataReceived(tctx.client, datagrams[-1]) << TlsClienthelloHook(data) >> reply()
    assert data().client_hello.sni == "h.example" and tctx.client.sni == "h.example"
    assert [type(e) for e in child.seen] == [events.Start] + [events.DataReceived] * len(datagrams)


def test_ignore_connection_relays_the_quic_datagrams_untouched() -> None:
    tctx = hello_context()
    datagrams = initial_datagrams(["h3"])
    assert (
        Playbook(QuicClientHelloLayer(tctx, Recorder(tctx)))
        >> events.DataReceived(tctx.client, datagrams[0])
        << TlsClienthelloHook(Placeholder(ClientHelloData))
        >> reply(side_effect=lambda data: setattr(data, "ignore_connection", True))
        << commands.SendData(tctx.server, datagrams[0])
        >> events.DataReceived(tctx.server, b"answer")
        << commands.SendData(tctx.client, b"answer")
    )


def test_datagrams_that_are_no_quic_start_go_to_the_child_without_a_hook() -> None:
    tctx = hello_context()
    child = Recorder(tctx)
    assert Playbook(QuicClientHelloLayer(tctx, child)) >> events.DataReceived(tctx.client, b"junk")
    assert [type(e) for e in child.seen] == [events.Start, events.DataReceived]


def test_with_http3_off_quic_is_swallowed() -> None:
    layer, _ = decide(initial_datagrams(["h3"]), http3=False)
    assert stack(layer) == [QuicClientHelloLayer, UDPLayer]
    layer, _ = decide([b"plain datagram"], http3=False)
    assert stack(layer) == [UDPLayer]  # not QUIC: relayed as before
    tctx = hello_context()
    tctx.options.update(http3=False)
    assert (
        Playbook(QuicClientHelloLayer(tctx, UDPLayer(tctx, ignore=True)), logs=True)
        >> events.DataReceived(tctx.client, initial_datagrams(["h3"])[0])
        << commands.Log("Swallowing QUIC handshake because HTTP/3 is disabled.", "debug")
        >> events.DataReceived(tctx.client, b"more")
    )


def test_mitmproxy_names_for_quic_scripts() -> None:
    import importlib
    import sys

    from proxycore.compat import install_mitmproxy_alias, uninstall_mitmproxy_alias

    install_mitmproxy_alias()
    try:
        mquic = importlib.import_module("mitmproxy.proxy.layers.quic")
    finally:
        uninstall_mitmproxy_alias()
        for name in [n for n in sys.modules if n == "mitmproxy" or n.startswith("mitmproxy.")]:
            del sys.modules[name]

    assert mquic.QuicTlsData is __import__("proxycore.layers.quic", fromlist=["x"]).QuicTlsData
    from proxycore.layers.quic_raw import RawQuicLayer

    assert mquic.RawQuicLayer is RawQuicLayer
    hello = mquic.quic_parse_client_hello_from_datagrams(initial_datagrams(["h3"], sni="m.example"))
    assert hello is not None and hello.sni == "m.example"
    assert mquic.error_code_to_str(0x10C) == "H3_REQUEST_CANCELLED"
    assert mquic.error_code_to_str(0x0) == "H3_NO_ERROR" or mquic.error_code_to_str(0x0) == "NO_ERROR"
    assert mquic.error_code_to_str(0x7777) == "unknown error (0x7777)"


def _decide_udp(mode: str, port: int, datagram: bytes, udp_hosts: list[str]) -> Layer | None:
    tctx = make_context()
    tctx.client.proxy_mode = ProxyMode.parse(mode)
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.server.address = ("192.0.2.53", port)
    tctx.server.transport_protocol = TransportProtocol.UDP
    nextlayer = NextLayer(tctx)
    nextlayer.events.append(events.DataReceived(tctx.client, datagram))
    addon = NextLayerAddon()
    addon._udp = [re.compile(p) for p in udp_hosts]
    return addon.decide(nextlayer)


def test_udp_hosts_relay_datagrams_to_a_dns_port_as_udp_where_no_scheme_decides() -> None:
    """mitmproxy's order: a reverse scheme and QUIC come first, then udp_hosts, then DNS by port."""
    from proxycore.layers.dns import DNSLayer

    assert isinstance(_decide_udp("transparent", 53, b"game data", []), DNSLayer)
    assert isinstance(_decide_udp("transparent", 53, b"game data", [r"192\.0\.2\.53:53"]), UDPLayer)
    assert isinstance(_decide_udp("transparent", 53, b"game data", ["other.example"]), DNSLayer)
    assert isinstance(_decide_udp("reverse:dns://192.0.2.53:53", 53, b"q", [r"192\.0\.2\.53"]), DNSLayer)
    h3 = _decide_udp("transparent", 443, initial_datagrams(["h3"])[0], [r"192\.0\.2\.53"])
    assert stack(h3) == [QuicClientHelloLayer, HttpLayer]
