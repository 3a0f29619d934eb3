"""next_layer for datagrams that start a QUIC connection, in modes that deliver UDP with its
destination (the reverse modes have their own stacks, see tests/test_e2e_http3.py)."""

from __future__ import annotations

import re
import ssl

from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection

from proxycore.addons.next_layer import NextLayer as NextLayerAddon
from proxycore.connection import TransportProtocol
from proxycore.layers.http import HttpLayer
from proxycore.layers.udp import UDPLayer
from proxycore.proxy import events
from proxycore.proxy.layer import NextLayer
from proxycore.proxy.mode_specs import ProxyMode
from proxycore.testing import make_context


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


def test_an_http3_client_gets_http3_on_both_sides() -> None:
    layer, tctx = decide(initial_datagrams(["h3"]))
    assert isinstance(layer, HttpLayer)
    assert tctx.server.transport_protocol == TransportProtocol.UDP and tctx.server.tls
    assert tctx.server.sni == "quic.example"


def test_quic_that_is_not_http3_and_other_datagrams_are_relayed_as_udp() -> None:
    layer, _ = decide(initial_datagrams(["doq"]))
    assert isinstance(layer, UDPLayer) and layer.flow is not None
    layer, _ = decide([b"\xc0\x00\x00\x00\x01" + b"\x00" * 40])
    assert isinstance(layer, UDPLayer)
    layer, _ = decide([b"plain datagram"])
    assert isinstance(layer, UDPLayer)
    layer, _ = decide(initial_datagrams(["h3"]), http3=False)
    assert isinstance(layer, UDPLayer)


def test_an_incomplete_client_hello_waits_and_ignore_hosts_sees_the_sni() -> None:
    # Many ALPN offers make a ClientHello larger than one Initial packet.
    datagrams = initial_datagrams(["h3", *(f"proto-{i:03d}-{'x' * 40}" for i in range(40))])
    assert len(datagrams) > 1
    layer, _ = decide(datagrams[:1])
    assert layer is None  # the rest of the hello is still to come
    layer, _ = decide(datagrams)
    assert isinstance(layer, HttpLayer)
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
