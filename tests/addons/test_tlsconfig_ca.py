"""TlsConfig's CA at start and at the first interception (issue 15: cryptography is imported
at the first TLS interception, not at start).

What a user relies on stays: the CA files are created at start, an unusable CA file is an
OptionsError at start, an expired CA is one warning at start, and ``certstore`` answers as
mitmproxy's does.  A file that passes the check at start but that cryptography refuses
fails each interception with the reason, logged once."""

from __future__ import annotations

import base64
import logging
from pathlib import Path

import pytest

from proxycore.addons.tlsconfig import TlsConfig
from proxycore.exceptions import OptionsError
from proxycore.layers.quic import QuicTlsData
from proxycore.layers.tls import TlsData
from proxycore.proxy.context import Context
from proxycore.test.tflow import tclient_conn
from tests.addon_utils import load
from tests.model.test_certs import expired_ca_pem
from tests.processes import seed_ca

CA_FILES = {"proxycore-ca.pem", "proxycore-ca.p12", "proxycore-ca-cert.pem", "proxycore-ca-cert.cer",
            "proxycore-ca-cert.p12"}


def start_client(addon: TlsConfig, master) -> TlsData:
    client = tclient_conn()
    client.sni = "example.com"
    data = TlsData(client, Context(client, master.options))
    addon.tls_start_client(data)
    return data


def test_the_ca_files_are_made_at_start_and_parsed_at_the_first_use(tmp_path: Path) -> None:
    addon = TlsConfig()
    master = load(addon, confdir=str(tmp_path))
    assert set(p.name for p in tmp_path.iterdir()) == CA_FILES
    assert addon._certstore is None  # not parsed yet
    data = start_client(addon, master)
    assert data.ssl_conn is not None
    assert addon._certstore is not None and addon.certstore.default_ca.cn == "proxycore"


@pytest.mark.parametrize("content", [b"", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_a_broken_ca_file_is_an_options_error_at_start(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "proxycore-ca.pem").write_bytes(content)
    with pytest.raises(OptionsError, match=f"Cannot load or create the CA in {tmp_path}: proxycore-ca.pem: "):
        load(TlsConfig(), confdir=str(tmp_path))


def test_an_expired_ca_warns_once_at_start(tmp_path: Path, caplog) -> None:
    (tmp_path / "proxycore-ca.pem").write_bytes(expired_ca_pem())
    addon = TlsConfig()
    with caplog.at_level(logging.WARNING):
        master = load(addon, confdir=str(tmp_path))
        assert [r.getMessage() for r in caplog.records if "expired" in r.getMessage()]
        caplog.clear()
        assert start_client(addon, master).ssl_conn is not None
    assert not [r for r in caplog.records if "expired" in r.getMessage()]


def write_bogus_key_ca(conf: Path) -> None:
    """A CA file whose key is well framed for the check at start (version, n, e, ... as
    INTEGERs) but no RSA key cryptography loads."""
    seed_ca(conf)
    pem = (conf / "proxycore-ca.pem").read_bytes()
    cert = pem[pem.index(b"-----BEGIN CERTIFICATE-----"):]
    bogus = b"\x30\x1b" + b"\x02\x01\x00" * 9
    (conf / "proxycore-ca.pem").write_bytes(
        b"-----BEGIN RSA PRIVATE KEY-----\n" + base64.b64encode(bogus) + b"\n-----END RSA PRIVATE KEY-----\n" + cert
    )


def test_a_ca_key_cryptography_refuses_fails_each_interception_logged_once(tmp_path: Path, caplog) -> None:
    conf = tmp_path / "conf"
    write_bogus_key_ca(conf)
    addon = TlsConfig()
    master = load(addon, confdir=str(conf))
    with caplog.at_level(logging.ERROR, logger="proxycore.tls"):
        first, second = start_client(addon, master), start_client(addon, master)
    for data in (first, second):
        assert data.ssl_conn is None
        assert data.context.client.error.startswith(f"Cannot load the CA in {conf}: ")
    assert [r.getMessage() for r in caplog.records] == [first.context.client.error]


def test_quic_fails_the_same_way(tmp_path: Path) -> None:
    conf = tmp_path / "conf"
    write_bogus_key_ca(conf)
    addon = TlsConfig()
    master = load(addon, confdir=str(conf))
    context = Context(tclient_conn(), master.options)
    data = QuicTlsData(context.client, context)
    addon.quic_start_client(data)
    assert data.settings is None
    assert context.client.error.startswith(f"Cannot load the CA in {conf}: ")


def test_custom_certs_parse_the_ca_at_start(tmp_path: Path) -> None:
    seed_ca(tmp_path / "conf")
    custom = tmp_path / "custom.pem"
    custom.write_bytes((tmp_path / "conf" / "proxycore-ca.pem").read_bytes())
    addon = TlsConfig()
    load(addon, confdir=str(tmp_path / "conf"), certs=[f"custom.test={custom}"])
    assert addon._certstore is not None and "custom.test" in addon._certstore.custom


@pytest.mark.parametrize("change", ["removed", "replaced"])
def test_the_ca_in_use_is_the_one_checked_at_start_whatever_happens_to_the_file(tmp_path: Path, change: str) -> None:
    """Clients trust the CA of the start (onboarding served it): a CA file removed or
    replaced before the first interception neither makes a new CA nor swaps it."""
    conf = tmp_path / "conf"
    addon = TlsConfig()
    master = load(addon, confdir=str(conf))
    at_start = (conf / "proxycore-ca-cert.pem").read_bytes()
    for path in conf.iterdir():
        path.unlink()
    if change == "replaced":
        seed_ca(tmp_path / "other")
        (conf / "proxycore-ca.pem").write_bytes((tmp_path / "other" / "proxycore-ca.pem").read_bytes())
    data = start_client(addon, master)
    assert data.ssl_conn is not None
    assert addon.certstore.ca_pem() == at_start
    assert {p.name for p in conf.iterdir()} == (set() if change == "removed" else {"proxycore-ca.pem"})
