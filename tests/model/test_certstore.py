"""The CA files and leaf certificates (proxycore.certs)."""

from __future__ import annotations

import datetime
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from proxycore import certs
from proxycore.certs import CertStore, create_ca, dummy_cert

CA_FILES = [
    "proxycore-ca.pem",
    "proxycore-ca-cert.pem",
    "proxycore-ca-cert.cer",
    "proxycore-ca-cert.p12",
    "proxycore-ca.p12",
]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CertStore:
    return CertStore.from_store(str(tmp_path_factory.mktemp("ca") / "conf"))


def test_ca_files_are_created_once_with_private_permissions(tmp_path: Path):
    conf = tmp_path / "conf"
    first = CertStore.from_store(str(conf))
    assert sorted(os.listdir(conf)) == sorted(CA_FILES)
    assert stat.S_IMODE(os.stat(conf).st_mode) == 0o700
    assert stat.S_IMODE(os.stat(conf / "proxycore-ca.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(conf / "proxycore-ca.p12").st_mode) == 0o600
    assert (conf / "proxycore-ca-cert.pem").read_bytes() == (conf / "proxycore-ca-cert.cer").read_bytes()
    second = CertStore.from_store(str(conf))
    assert second.default_ca.serial == first.default_ca.serial


def test_a_mitmproxy_ca_directory_is_used_as_is(tmp_path: Path):
    CertStore.create_store(str(tmp_path), "mitmproxy", 2048)
    serial = x509.load_pem_x509_certificate((tmp_path / "mitmproxy-ca-cert.pem").read_bytes()).serial_number
    store = CertStore.from_store(str(tmp_path), "mitmproxy")
    assert store.default_ca.serial == serial
    assert not (tmp_path / "proxycore-ca.pem").exists()


def test_ca_properties():
    key, ca = create_ca("proxycore", "proxycore", 2048)
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).critical
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537
    assert ca.not_valid_before_utc < datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)


def test_leaf_properties(store: CertStore):
    entry = store.get_cert("example.com", ["example.com", "www.example.com", "10.0.0.1"], "Example Org")
    leaf = entry.cert.to_cryptography()
    ca = store.default_ca.to_cryptography()
    assert leaf.issuer == ca.subject
    assert entry.cert.cn == "example.com" and entry.cert.organization == "Example Org"
    assert entry.cert.altnames == ["example.com", "www.example.com", "10.0.0.1"]
    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert ExtendedKeyUsageOID.SERVER_AUTH in eku
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    validity = leaf.not_valid_after_utc - leaf.not_valid_before_utc
    assert validity < datetime.timedelta(days=200)
    assert leaf.not_valid_before_utc < datetime.datetime.now(datetime.UTC) - datetime.timedelta(days=1)
    # The CA's key pair is reused: no key generation per host.
    assert leaf.public_key().public_numbers() == store.default_privatekey.public_key().public_numbers()


def test_long_common_name_lives_only_in_the_san(store: CertStore):
    name = "a" * 60 + ".example.com"
    entry = store.get_cert(name, [name])
    assert entry.cert.cn is None and entry.cert.altnames == [name]
    san = entry.cert.to_cryptography().extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert san.critical  # the SAN is the only identity


def handshake(store: CertStore, entry: certs.CertStoreEntry, hostname: str) -> dict:
    """A TLS handshake over memory BIOs: a Python client trusting only our CA, verifying hostname."""
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    pem_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    chain = pem_dir / f"leaf-{os.getpid()}-{id(entry)}.pem"
    chain.write_bytes(
        entry.cert.to_pem()
        + entry.privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    try:
        server_ctx.load_cert_chain(str(chain))
    finally:
        chain.unlink()
    client_ctx = ssl.create_default_context(cadata=store.ca_pem().decode())
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        for side in (client, server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
    client.do_handshake()
    return client.getpeercert()


def test_leaf_passes_python_hostname_verification_for_a_name(store: CertStore):
    entry = store.get_cert("secure.example", ["secure.example"])
    cert = handshake(store, entry, "secure.example")
    assert ("DNS", "secure.example") in cert["subjectAltName"]


def test_leaf_passes_python_verification_for_an_ip(store: CertStore):
    entry = store.get_cert("192.0.2.7", ["192.0.2.7"])
    cert = handshake(store, entry, "192.0.2.7")
    assert ("IP Address", "192.0.2.7") in cert["subjectAltName"]


def test_wrong_name_is_rejected_by_python(store: CertStore):
    entry = store.get_cert("right.example", ["right.example"])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(store, entry, "wrong.example")


def test_cache_returns_the_same_entry_and_evicts_oldest_first(tmp_path: Path, monkeypatch):
    store = CertStore.from_store(str(tmp_path))
    monkeypatch.setattr(certs, "CACHE_SIZE", 3)
    first = store.get_cert("a.test", ["a.test"])
    assert store.get_cert("a.test", ["a.test"]) is first
    for name in ("b.test", "c.test", "d.test"):
        store.get_cert(name, [name])
    assert len(store.generated) == 3
    assert store.get_cert("a.test", ["a.test"]) is not first  # evicted, regenerated


def test_custom_certificates_by_name_wildcard_and_default(tmp_path: Path, store: CertStore):
    key, _ = create_ca("x", "x")
    ca = store.default_ca.to_cryptography()
    custom = dummy_cert(store.default_privatekey, ca, "custom.example", ["custom.example", "*.wild.example"])
    path = tmp_path / "custom.pem"
    path.write_bytes(
        custom.to_pem()
        + store.default_privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    local = CertStore(store.default_privatekey, store.default_ca)
    local.add_cert_file("pinned.example", str(path))
    assert local.get_cert("pinned.example", ["pinned.example"]).cert == custom
    assert local.get_cert("custom.example", []).cert == custom
    assert local.get_cert("a.wild.example", ["a.wild.example"]).cert == custom
    assert local.get_cert("other.example", ["other.example"]).cert != custom
    local.add_cert_file("*", str(path))
    assert local.get_cert("other.example", ["other.example"]).cert == custom


def test_chain_certificates_come_from_the_ca_file(tmp_path: Path):
    CertStore.create_store(str(tmp_path), "proxycore", 2048)
    _, extra = create_ca("intermediate", "intermediate")
    with open(tmp_path / "proxycore-ca.pem", "ab") as f:
        f.write(extra.public_bytes(serialization.Encoding.PEM))
    store = CertStore.from_store(str(tmp_path))
    entry = store.get_cert("x.test", ["x.test"])
    assert [c.cn for c in entry.chain_certs] == ["proxycore", "intermediate"]


def test_expired_ca_warns(tmp_path: Path, caplog):
    store = CertStore.from_store(str(tmp_path))
    ca = store.default_ca
    monkey_now = ca.notafter + datetime.timedelta(days=1)

    class Later(datetime.datetime):
        @classmethod
        def now(cls, tz=None):
            return monkey_now

    import proxycore.certs as module

    original = module.datetime.datetime
    module.datetime.datetime = Later  # type: ignore[misc]
    try:
        with caplog.at_level("WARNING", logger="proxycore.certs"):
            CertStore.from_store(str(tmp_path))
    finally:
        module.datetime.datetime = original  # type: ignore[misc]
    assert "expired" in caplog.text
