"""The TlsConfig addon's answers to quic_start_client and quic_start_server."""

from __future__ import annotations

import ssl
from pathlib import Path

import certifi
from cryptography import x509

from proxycore.addons.tlsconfig import TlsConfig
from proxycore.connection import TransportProtocol
from proxycore.layers.quic import QuicTlsData, QuicTlsSettings
from proxycore.test import taddons
from proxycore.testing import make_context


def quic_context() -> object:
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.client.sni = "quic.example"
    tctx.client.alpn_offers = [b"h3", b"h3-29", b"something-else"]
    tctx.server.address = ("192.0.2.7", 443)
    return tctx


def test_quic_start_client_gets_a_leaf_for_the_sni_from_our_ca(tmp_path: Path) -> None:
    addon = TlsConfig()
    with taddons.context(addon) as tctx:
        tctx.options.update(confdir=str(tmp_path))
        context = quic_context()
        data = QuicTlsData(context.client, context)
        addon.quic_start_client(data)
        settings = data.settings
        assert settings is not None
        assert settings.alpn_protocols == ["h3", "h3-29"]
        names = settings.certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert "quic.example" in names.get_values_for_type(x509.DNSName)
        ca = x509.load_pem_x509_certificate((tmp_path / "proxycore-ca-cert.pem").read_bytes())
        assert settings.certificate.issuer == ca.subject
        assert settings.certificate_private_key.public_key() == settings.certificate.public_key()
        # An addon that answered first wins.
        mine = QuicTlsSettings(alpn_protocols=["h3"])
        data = QuicTlsData(context.client, context, settings=mine)
        addon.quic_start_client(data)
        assert data.settings is mine


def test_quic_start_server_verifies_like_tls_unless_told_otherwise(tmp_path: Path) -> None:
    addon = TlsConfig()
    with taddons.context(addon) as tctx:
        tctx.options.update(confdir=str(tmp_path))
        context = quic_context()
        data = QuicTlsData(context.server, context)
        addon.quic_start_server(data)
        assert data.settings == QuicTlsSettings(alpn_protocols=["h3"], verify_mode=ssl.CERT_REQUIRED,
                                                ca_file=certifi.where())
        tctx.options.update(ssl_verify_upstream_trusted_ca=str(tmp_path / "cas.pem"))
        data = QuicTlsData(context.server, context)
        addon.quic_start_server(data)
        assert data.settings.ca_file == str(tmp_path / "cas.pem") and data.settings.verify_mode == ssl.CERT_REQUIRED
        tctx.options.update(ssl_insecure=True)
        data = QuicTlsData(context.server, context)
        addon.quic_start_server(data)
        assert data.settings.verify_mode == ssl.CERT_NONE
