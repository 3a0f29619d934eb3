"""proxycore.net.tls_contexts: mitmproxy's context helpers (mitmproxy.net.tls) for addons."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL

from proxycore.certs import CertStore
from proxycore.net import tls_contexts as t


def test_both_contexts_complete_a_handshake_and_feed_the_key_log(tmp_path, monkeypatch):
    lines: list[bytes] = []
    monkeypatch.setattr(t, "log_master_secret", lambda conn, line: lines.append(line))
    store = CertStore.from_store(tmp_path / "conf")
    entry = store.get_cert("ctx.example", ["ctx.example"])
    client_ctx = t.create_proxy_server_context(
        method=t.Method.TLS_CLIENT_METHOD, min_version=t.DEFAULT_MIN_VERSION, max_version=t.DEFAULT_MAX_VERSION,
        cipher_list=None, ecdh_curve=t.get_curve("secp384r1"), verify=t.Verify.VERIFY_NONE,
        ca_path=None, ca_pemfile=None, client_cert=None, legacy_server_connect=True,
    )
    server_ctx = t.create_client_proxy_context(
        method=t.Method.TLS_SERVER_METHOD, min_version=t.Version.TLS1_3, max_version=t.Version.UNBOUNDED,
        cipher_list=None, ecdh_curve=None, chain_file=None, alpn_select_callback=None,
        request_client_cert=False, extra_chain_certs=[store.default_ca], dhparams=None,
    )
    server = SSL.Connection(server_ctx)
    server.set_accept_state()
    server.use_certificate(entry.cert.to_cryptography())
    server.use_privatekey(entry.privatekey)
    client = SSL.Connection(client_ctx)
    client.set_connect_state()
    a, b = client, server
    for _ in range(10):
        try:
            a.do_handshake()
            b.do_handshake()
            break
        except SSL.WantReadError:
            b.bio_write(a.bio_read(65536))
            a, b = b, a
    assert client.get_protocol_version_name() == "TLSv1.3"
    assert any(line.startswith(b"CLIENT_HANDSHAKE_TRAFFIC_SECRET") for line in lines)


def test_master_secret_logger_appends_lines(tmp_path):
    assert t.make_master_secret_logger(None) is None
    logger = t.make_master_secret_logger(str(tmp_path / "keys" / "log.txt"))
    assert isinstance(logger, t.MasterSecretLogger)
    logger(None, b"LINE 1")
    logger(None, b"LINE 2")
    logger.close()
    assert (tmp_path / "keys" / "log.txt").read_bytes() == b"LINE 1\nLINE 2\n"


def test_versions_curves_and_record_magic():
    assert t.is_supported_version(t.Version.UNBOUNDED) and t.is_supported_version(t.Version.TLS1_2)
    assert not t.is_supported_version(t.Version.SSL3)
    assert isinstance(t.get_curve("secp256r1"), ec.SECP256R1) and t.get_curve(None) is None
    with pytest.raises(ValueError):
        t.get_curve("no-such-curve")
    assert t.starts_like_tls_record(b"\x16\x03\x01") and not t.starts_like_tls_record(b"\x16\x03\x04")
    assert not t.starts_like_tls_record(b"\x16\x03")
    assert t.starts_like_dtls_record(b"\x16\xfe\xfd") and not t.starts_like_dtls_record(b"\x16\x03\x03")
