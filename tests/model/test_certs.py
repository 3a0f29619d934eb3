"""proxycore.certs: the CA file set, leaf certificates, the leaf cache and custom certificates."""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import ssl
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxycore import certs
from proxycore.certs import Cert, CertStore, CertStoreEntry, create_ca, dummy_cert

NOW = datetime.datetime.now(datetime.UTC)


def file_names(basename: str) -> set[str]:
    return {
        f"{basename}-ca.pem",
        f"{basename}-ca.p12",
        f"{basename}-ca-cert.pem",
        f"{basename}-ca-cert.cer",
        f"{basename}-ca-cert.p12",
    }


def mode(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def pem_key(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> CertStore:
    """One CA for the tests that only read from it (RSA key generation is the slow part)."""
    return CertStore.from_store(tmp_path_factory.mktemp("shared") / "conf")


def fresh_store(source: CertStore) -> CertStore:
    """An empty store around an existing CA, so tests can add custom certs without sharing them."""
    return CertStore(source.default_privatekey, source.default_ca)


# -- the CA on disk ------------------------------------------------------------------------


def test_first_start_writes_the_ca_file_set_with_private_permissions(tmp_path: Path):
    conf = tmp_path / "conf"
    store = CertStore.from_store(conf)

    assert set(os.listdir(conf)) == file_names("proxycore")
    assert mode(conf) == 0o700
    assert mode(conf / "proxycore-ca.pem") == 0o600
    assert mode(conf / "proxycore-ca.p12") == 0o600
    assert mode(conf / "proxycore-ca-cert.pem") == 0o644 & ~_umask()  # public: meant for clients

    combined = (conf / "proxycore-ca.pem").read_bytes()
    key = serialization.load_pem_private_key(combined, None)  # unencrypted
    ca = x509.load_pem_x509_certificate(combined)
    assert ca == store.default_ca.to_cryptography()
    assert key.public_key() == ca.public_key()

    cert_pem = (conf / "proxycore-ca-cert.pem").read_bytes()
    assert cert_pem == (conf / "proxycore-ca-cert.cer").read_bytes() == store.ca_pem()
    assert b"PRIVATE KEY" not in cert_pem

    only_cert = pkcs12.load_pkcs12((conf / "proxycore-ca-cert.p12").read_bytes(), None)
    assert only_cert.key is None
    # Without a key the parser reports the certificate among the "additional" ones.
    assert [c.certificate for c in only_cert.additional_certs] == [ca]
    with_key = pkcs12.load_pkcs12((conf / "proxycore-ca.p12").read_bytes(), None)
    assert with_key.key is not None and with_key.cert.certificate == ca


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def test_ca_file_is_private_even_with_a_permissive_umask(tmp_path: Path):
    previous = os.umask(0)
    try:
        CertStore.create_store(tmp_path, "proxycore", 2048)
    finally:
        os.umask(previous)
    assert mode(tmp_path / "proxycore-ca.pem") == 0o600
    assert mode(tmp_path / "proxycore-ca.p12") == 0o600
    assert _umask() == previous


def test_second_start_reloads_the_same_ca(tmp_path: Path):
    first = CertStore.from_store(tmp_path)
    before = (tmp_path / "proxycore-ca.pem").read_bytes()
    second = CertStore.from_store(tmp_path)
    assert second.default_ca.serial == first.default_ca.serial
    assert second.default_ca == first.default_ca
    assert (tmp_path / "proxycore-ca.pem").read_bytes() == before


def test_ca_certificate_properties(store: CertStore):
    ca = store.default_ca.to_cryptography()
    key = store.default_privatekey
    assert key.key_size == 2048 and key.public_key().public_numbers().e == 65537
    name = [("CN", "proxycore"), ("O", "proxycore")]
    assert store.default_ca.subject == name and store.default_ca.issuer == name
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca
    usage = ca.extensions.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
    assert not usage.value.digital_signature
    eku = ca.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert ski == x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    assert isinstance(ca.signature_hash_algorithm, hashes.SHA256)
    start = ca.not_valid_before_utc
    assert NOW - datetime.timedelta(days=2, minutes=5) < start < NOW - datetime.timedelta(days=1)
    assert ca.not_valid_after_utc - start == datetime.timedelta(days=10 * 365 + 2)
    assert store.default_ca.is_ca and not store.default_ca.has_expired()


def test_create_ca_uses_the_given_names_and_random_serials():
    key1, ca1 = create_ca("Org A", "CA A", key_size=2048)
    _, ca2 = create_ca("Org A", "CA A", key_size=2048)
    assert Cert(ca1).cn == "CA A" and Cert(ca1).organization == "Org A"
    assert ca1.serial_number != ca2.serial_number
    assert ca1.serial_number.bit_length() > 64


def test_an_existing_mitmproxy_ca_dir_is_reused(tmp_path: Path):
    conf = tmp_path / ".mitmproxy"
    conf.mkdir()
    # What mitmproxy leaves in its confdir: key + cert in mitmproxy-ca.pem (and friends).
    key, ca = create_ca("mitmproxy", "mitmproxy", 2048)
    (conf / "mitmproxy-ca.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    store = CertStore.from_store(conf, basename="mitmproxy")
    assert store.default_ca.serial == ca.serial_number
    assert store.default_ca.cn == "mitmproxy"
    assert os.listdir(conf) == ["mitmproxy-ca.pem"]  # nothing new written
    leaf = store.get_cert("example.com", ["example.com"]).cert.to_cryptography()
    assert leaf.issuer == ca.subject


def test_create_store_with_the_mitmproxy_basename_names_files_like_mitmproxy(tmp_path: Path):
    CertStore.create_store(tmp_path, "mitmproxy", 2048)
    assert set(os.listdir(tmp_path)) == file_names("mitmproxy")
    assert Cert.from_pem((tmp_path / "mitmproxy-ca-cert.pem").read_bytes()).cn == "mitmproxy"


def test_encrypted_ca_key_needs_the_passphrase(tmp_path: Path):
    key, ca = create_ca("proxycore", "proxycore", 2048)
    (tmp_path / "proxycore-ca.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(b"secret"),
        )
        + ca.public_bytes(serialization.Encoding.PEM)
    )
    with pytest.raises(TypeError):
        CertStore.from_store(tmp_path)
    assert (
        CertStore.from_store(tmp_path, passphrase=b"secret").default_ca.serial == ca.serial_number
    )


def test_a_passphrase_for_an_unencrypted_ca_is_ignored(tmp_path: Path):
    first = CertStore.from_store(tmp_path)
    again = CertStore.from_store(tmp_path, passphrase=b"unused")
    assert again.default_ca == first.default_ca


def expired_ca_pem() -> bytes:
    key, fresh = create_ca("proxycore", "proxycore", 2048)
    old = (
        x509.CertificateBuilder()
        .subject_name(fresh.subject)
        .issuer_name(fresh.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=400))
        .not_valid_after(NOW - datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    return pem_key(key) + old.public_bytes(serialization.Encoding.PEM)


def test_an_expired_ca_is_loaded_with_a_warning(tmp_path: Path, caplog):
    (tmp_path / "proxycore-ca.pem").write_bytes(expired_ca_pem())
    with caplog.at_level(logging.WARNING, logger="proxycore.certs"):
        store = CertStore.from_store(tmp_path)
    assert store.default_ca.has_expired()
    assert any("expired" in r.getMessage() and r.levelno == logging.WARNING for r in caplog.records)


def test_a_valid_ca_loads_without_warnings(tmp_path: Path, caplog):
    with caplog.at_level(logging.WARNING, logger="proxycore.certs"):
        CertStore.from_store(tmp_path)
    assert not caplog.records


def test_extra_certificates_in_the_ca_file_are_the_chain(tmp_path: Path):
    CertStore.create_store(tmp_path, "proxycore", 2048)
    _, other = create_ca("Intermediate Org", "intermediate", 2048)
    with open(tmp_path / "proxycore-ca.pem", "ab") as f:
        f.write(other.public_bytes(serialization.Encoding.PEM))
    store = CertStore.from_store(tmp_path)
    assert store.default_ca.cn == "proxycore"
    entry = store.get_cert("x.test", ["x.test"])
    assert [c.cn for c in entry.chain_certs] == ["proxycore", "intermediate"]
    assert entry.chain_file == tmp_path / "proxycore-ca.pem"


def test_a_single_certificate_ca_file_has_no_chain_file(store: CertStore):
    entry = store.get_cert("single.test", ["single.test"])
    assert entry.chain_file is None
    assert entry.chain_certs == [store.default_ca]


# -- leaf certificates ------------------------------------------------------------------------


def test_leaf_properties(store: CertStore):
    entry = store.get_cert(
        "example.com", ["example.com", "www.example.com", "10.0.0.1", "2001:db8::1"], "Example Org"
    )
    leaf = entry.cert.to_cryptography()
    ca = store.default_ca.to_cryptography()

    assert leaf.issuer == ca.subject
    assert entry.cert.issuer == store.default_ca.subject
    assert entry.cert.subject == [("CN", "example.com"), ("O", "Example Org")]
    assert entry.cert.altnames == ["example.com", "www.example.com", "10.0.0.1", "2001:db8::1"]

    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert not san.critical  # the subject has a CN
    assert san.value.get_values_for_type(x509.DNSName) == ["example.com", "www.example.com"]
    assert san.value.get_values_for_type(x509.IPAddress) == [
        ipaddress.ip_address("10.0.0.1"),
        ipaddress.ip_address("2001:db8::1"),
    ]

    eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]
    aki = leaf.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
    ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    assert aki.key_identifier == ski.digest
    with pytest.raises(x509.ExtensionNotFound):
        leaf.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
    constraints = leaf.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca is False and not entry.cert.is_ca

    start, end = leaf.not_valid_before_utc, leaf.not_valid_after_utc
    assert end - start < datetime.timedelta(days=200)
    assert end - start == datetime.timedelta(days=199)
    assert NOW - datetime.timedelta(days=2, minutes=5) < start < NOW - datetime.timedelta(days=1)
    assert entry.cert.notbefore == start and entry.cert.notafter == end

    assert isinstance(leaf.signature_hash_algorithm, hashes.SHA256)
    # The CA's key pair is reused: no key is generated per host.
    assert entry.privatekey is store.default_privatekey
    assert leaf.public_key() == ca.public_key()
    leaf.verify_directly_issued_by(ca)


def test_leaves_get_random_serials(store: CertStore):
    key, ca = store.default_privatekey, store.default_ca.to_cryptography()
    a = dummy_cert(key, ca, "same.test", ["same.test"])
    b = dummy_cert(key, ca, "same.test", ["same.test"])
    assert a.serial != b.serial and a != b


def test_organization_is_only_set_when_given(store: CertStore):
    key, ca = store.default_privatekey, store.default_ca.to_cryptography()
    assert dummy_cert(key, ca, "plain.test", ["plain.test"]).organization is None
    assert dummy_cert(key, ca, "org.test", ["org.test"], "Org Inc").organization == "Org Inc"


def test_long_common_name_is_left_out_of_the_subject_but_kept_in_the_san(store: CertStore):
    name = "a" * 52 + ".example.com"  # 64 characters: one too many for a CN
    assert len(name) == 64
    entry = store.get_cert(name, [name])
    assert entry.cert.cn is None
    assert entry.cert.subject == []
    assert entry.cert.altnames == [name]
    san = entry.cert.to_cryptography().extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    assert san.critical  # with an empty subject the SAN is the identity

    shorter = name[1:]
    assert store.get_cert(shorter, [shorter]).cert.cn == shorter


def test_no_common_name_at_all(store: CertStore):
    entry = store.get_cert(None, ["nocn.test"])
    assert entry.cert.cn is None and entry.cert.altnames == ["nocn.test"]


def test_international_names_are_written_as_a_labels(store: CertStore):
    entry = store.get_cert(None, ["bücher.example"])
    assert entry.cert.altnames == ["xn--bcher-kva.example"]


def test_crl_distribution_point_is_optional(store: CertStore):
    key, ca = store.default_privatekey, store.default_ca.to_cryptography()
    assert dummy_cert(key, ca, "a.test", ["a.test"]).crl_distribution_points == []
    url = f"http://a.test/mitmproxy-{store.default_ca.serial}.crl"
    with_crl = dummy_cert(key, ca, "a.test", ["a.test"], crl_url=url)
    assert with_crl.crl_distribution_points == [url]


# -- real TLS handshakes with Python's ssl module ----------------------------------------------


def handshake(
    tmp_path: Path, store: CertStore, entry: CertStoreEntry, server_hostname: str
) -> dict:
    """Run a TLS handshake over memory BIOs; the client trusts only our CA and checks the name."""
    chain = tmp_path / "server.pem"
    chain.write_bytes(entry.cert.to_pem() + pem_key(entry.privatekey))
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(chain)

    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.load_verify_locations(cadata=store.ca_pem().decode())
    client_ctx.check_hostname = True
    client_ctx.verify_mode = ssl.CERT_REQUIRED
    # What Python 3.13's default context adds: RFC 5280 strictness (AKI, SKI, key usage).
    client_ctx.verify_flags |= ssl.VERIFY_X509_STRICT
    assert client_ctx.check_hostname

    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname=server_hostname)
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    done = {client: False, server: False}
    for _ in range(20):
        for side in (client, server):
            if not done[side]:
                try:
                    side.do_handshake()
                    done[side] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values()), "handshake did not finish"
    client.write(b"ping")
    s_in.write(c_out.read())
    assert server.read(4) == b"ping"
    return client.getpeercert()


def test_leaf_verifies_against_the_ca_for_a_dns_name(tmp_path: Path, store: CertStore):
    entry = store.get_cert("secure.example", ["secure.example", "www.secure.example"])
    peer = handshake(tmp_path, store, entry, "www.secure.example")
    assert ("DNS", "www.secure.example") in peer["subjectAltName"]
    assert ((("commonName", "secure.example"),),) == tuple(
        rdn for rdn in peer["subject"] if rdn[0][0] == "commonName"
    )


def test_leaf_verifies_against_the_ca_for_an_ip_address(tmp_path: Path, store: CertStore):
    entry = store.get_cert("192.0.2.7", ["192.0.2.7"])
    peer = handshake(tmp_path, store, entry, "192.0.2.7")
    assert ("IP Address", "192.0.2.7") in peer["subjectAltName"]


def test_leaf_with_only_a_san_verifies(tmp_path: Path, store: CertStore):
    name = "b" * 60 + ".example"
    peer = handshake(tmp_path, store, store.get_cert(name, [name]), name)
    assert ("DNS", name) in peer["subjectAltName"]


def test_a_name_not_in_the_leaf_is_rejected(tmp_path: Path, store: CertStore):
    entry = store.get_cert("right.example", ["right.example"])
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, store, entry, "wrong.example")


def test_a_leaf_from_another_ca_is_rejected(tmp_path: Path, store: CertStore):
    key, other_ca = create_ca("other", "other", 2048)
    entry = CertStoreEntry(dummy_cert(key, other_ca, "x.example", ["x.example"]), key)
    with pytest.raises(ssl.SSLCertVerificationError):
        handshake(tmp_path, store, entry, "x.example")


# -- the cache ------------------------------------------------------------------------------


def test_a_cache_hit_returns_the_same_entry(store: CertStore):
    local = fresh_store(store)
    first = local.get_cert("hit.test", ["hit.test"])
    assert local.get_cert("hit.test", ["hit.test"]) is first
    assert local.get_cert("hit.test", ("hit.test",)) is first  # any sequence of names
    assert local.get_cert("hit.test", ["hit.test", "other.test"]) is not first
    assert local.get_cert(None, ["hit.test"]) is not first


def test_generated_entries_are_evicted_first_in_first_out(store: CertStore):
    local = fresh_store(store)
    first = local.get_cert("n0.test", ["n0.test"])
    second = local.get_cert("n1.test", ["n1.test"])
    for i in range(2, certs.CACHE_SIZE + 1):
        local.get_cert(f"n{i}.test", [f"n{i}.test"])
        if i == 50:
            # A hit does not refresh an entry: eviction is FIFO, not LRU.
            assert local.get_cert("n0.test", ["n0.test"]) is first
    assert len(local.generated) == certs.CACHE_SIZE == 100
    assert ("n0.test", ("n0.test",)) not in local.generated
    assert local.get_cert("n1.test", ["n1.test"]) is second
    assert local.get_cert("n0.test", ["n0.test"]) is not first  # regenerated
    assert ("n1.test", ("n1.test",)) not in local.generated  # now the oldest, pushed out
    assert len(local.generated) == 100


def test_cache_size_is_read_at_call_time(store: CertStore, monkeypatch):
    monkeypatch.setattr(certs, "CACHE_SIZE", 2)
    local = fresh_store(store)
    for name in ("a.test", "b.test", "c.test"):
        local.get_cert(name, [name])
    assert [k[0] for k in local.generated] == ["b.test", "c.test"]


# -- custom certificates (--certs) --------------------------------------------------------------


def write_custom(tmp_path: Path, name: str, cn: str | None, sans: list[str], with_key: bool = True):
    """A leaf with its own EC key (as a user-supplied certificate would have), written as PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    issuer_key, issuer = create_ca("Custom CA", "Custom CA", 2048)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)] if cn else [])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=30))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(s) for s in sans]), critical=False)
        .sign(issuer_key, hashes.SHA256())
    )
    path = tmp_path / name
    data = cert.public_bytes(serialization.Encoding.PEM) + issuer.public_bytes(
        serialization.Encoding.PEM
    )
    path.write_bytes(data + (pem_key(key) if with_key else b""))
    return path, Cert(cert)


def test_custom_cert_by_exact_name_cn_and_san(tmp_path: Path, store: CertStore):
    local = fresh_store(store)
    path, custom = write_custom(
        tmp_path, "c.pem", "custom.example", ["custom.example", "alt.example"]
    )
    local.add_cert_file("pinned.example", path)

    for cn, sans in [
        ("pinned.example", ["pinned.example"]),
        ("custom.example", []),
        (None, ["alt.example"]),
        ("unrelated.example", ["unrelated.example", "alt.example"]),  # any SAN may match
    ]:
        entry = local.get_cert(cn, sans)
        assert entry.cert == custom
        assert isinstance(entry.privatekey, ec.EllipticCurvePrivateKey)
        assert [c.cn for c in entry.chain_certs] == ["custom.example", "Custom CA"]
        assert entry.chain_file == path
    generated = local.get_cert("other.example", ["other.example"])
    assert generated.cert != custom and generated.cert.cn == "other.example"
    assert not local.generated.keys() & {("custom.example", ())}


def test_custom_cert_by_wildcard(tmp_path: Path, store: CertStore):
    local = fresh_store(store)
    path, custom = write_custom(tmp_path, "w.pem", None, ["*.wild.example"])
    local.add_cert_file("*.spec.example", path)
    assert local.get_cert("a.wild.example", ["a.wild.example"]).cert == custom
    assert local.get_cert("deep.a.wild.example", []).cert == custom  # *.wild.example form of it
    assert local.get_cert("x.spec.example", ["x.spec.example"]).cert == custom
    assert local.get_cert("wild.example", ["wild.example"]).cert != custom


def test_custom_cert_for_everything_and_precedence(tmp_path: Path, store: CertStore):
    local = fresh_store(store)
    star_path, star = write_custom(tmp_path, "star.pem", "fallback.example", ["fallback.example"])
    exact_path, exact = write_custom(tmp_path, "exact.pem", "exact.example", ["exact.example"])
    local.add_cert_file("*", star_path)
    local.add_cert_file("exact.example", exact_path)
    assert local.get_cert("anything.test", ["anything.test"]).cert == star
    assert local.get_cert(None, []).cert == star
    assert local.get_cert("exact.example", ["exact.example"]).cert == exact  # names before "*"
    assert not local.generated  # nothing was generated


def test_custom_cert_without_a_key_must_use_the_ca_key(tmp_path: Path, store: CertStore):
    local = fresh_store(store)
    mine = dummy_cert(
        store.default_privatekey, store.default_ca.to_cryptography(), "ca-key.example", []
    )
    path = tmp_path / "nokey.pem"
    path.write_bytes(mine.to_pem())
    local.add_cert_file("ca-key.example", path)
    assert local.get_cert("ca-key.example", []).privatekey is store.default_privatekey

    foreign, _ = write_custom(tmp_path, "foreign.pem", "f.example", ["f.example"], with_key=False)
    with pytest.raises(ValueError, match="no usable private key"):
        local.add_cert_file("f.example", foreign)


def test_custom_cert_with_a_mismatched_key_is_refused(tmp_path: Path, store: CertStore):
    path, custom = write_custom(tmp_path, "bad.pem", "bad.example", ["bad.example"], with_key=False)
    path.write_bytes(path.read_bytes() + pem_key(ec.generate_private_key(ec.SECP256R1())))
    with pytest.raises(ValueError, match="does not match"):
        fresh_store(store).add_cert_file("bad.example", path)


def test_a_ca_given_as_custom_cert_warns(tmp_path: Path, store: CertStore, caplog):
    key, ca = create_ca("oops", "oops", 2048)
    path = tmp_path / "ca-as-leaf.pem"
    path.write_bytes(ca.public_bytes(serialization.Encoding.PEM) + pem_key(key))
    with caplog.at_level(logging.WARNING, logger="proxycore.certs"):
        fresh_store(store).add_cert_file("*", path)
    assert "CA certificate" in caplog.text


def test_asterisk_forms():
    assert CertStore.asterisk_forms("a.b.c") == ["a.b.c", "*.b.c", "*.c"]
    assert CertStore.asterisk_forms("localhost") == ["localhost"]
    assert CertStore.asterisk_forms("10.1.2.3") == ["10.1.2.3"]
    assert CertStore.asterisk_forms("::1") == ["::1"]


# -- the Cert wrapper ---------------------------------------------------------------------------


def test_cert_round_trips_and_accessors(store: CertStore):
    entry = store.get_cert("wrap.test", ["wrap.test", "192.0.2.1"], "Wrap Org")
    cert = entry.cert
    der = cert.to_der()
    assert Cert.from_der(der) == cert == Cert.from_pem(cert.to_pem())
    assert Cert.from_state(cert.get_state()) == cert
    assert hash(Cert.from_der(der)) == hash(cert)
    assert len(cert.fingerprint()) == 32
    assert cert.fingerprint() == cert.to_cryptography().fingerprint(hashes.SHA256())
    assert cert.serial == cert.to_cryptography().serial_number
    assert cert.issuer == [("CN", "proxycore"), ("O", "proxycore")]
    assert cert.organization == "Wrap Org"
    assert cert.altnames == ["wrap.test", "192.0.2.1"]
    assert cert.keyinfo == ("RSA", 2048)
    assert not cert.has_expired()
    with pytest.deprecated_call():
        assert Cert.from_pyopenssl(cert.to_pyopenssl()) == cert
    assert "wrap.test" in repr(cert)
    assert cert != store.default_ca and cert != "not a cert"


# mitmproxy's forms: SANs as cryptography GeneralName objects, a broken chain file -----------


def test_sans_may_be_general_names_and_altnames_compare_both_ways(store):
    names = [x509.DNSName("gn.example"), x509.IPAddress(ipaddress.ip_address("192.0.2.7"))]
    entry = store.get_cert("gn.example", names)
    assert entry is store.get_cert("gn.example", ["gn.example", "192.0.2.7"])  # same cache key
    altnames = entry.cert.altnames
    assert altnames == ["gn.example", "192.0.2.7"]
    assert altnames == x509.GeneralNames(names)
    assert x509.DNSName("gn.example") in altnames and "192.0.2.7" in altnames
    assert x509.DNSName("other.example") not in altnames
    assert CertStore.asterisk_forms(x509.DNSName("a.b.example")) == ["a.b.example", "*.b.example", "*.example"]
    assert entry.cert.copy() == entry.cert and entry.cert.copy() is not entry.cert
    assert certs.CERT_EXPIRY == certs.LEAF_VALIDITY


def test_a_broken_chain_after_the_leaf_is_a_warning_and_the_leaf_is_used(store, tmp_path, caplog):
    entry = store.get_cert("chain.example", ["chain.example"])
    pem = entry.cert.to_pem() + pem_key(store.default_privatekey)
    pem += b"-----BEGIN CERTIFICATE-----\nMAMCAQ==\n-----END CERTIFICATE-----\n"  # truncated DER
    path = tmp_path / "broken-chain.pem"
    path.write_bytes(pem)
    with caplog.at_level(logging.WARNING):
        store.add_cert_file("chain.example", path)
    assert "Failed to read certificate chain" in caplog.text
    custom = store.get_cert("chain.example", [])
    assert custom.cert == entry.cert and custom.chain_certs == [entry.cert] and custom.chain_file is None


def test_fingerprint_follows_set_state(store: CertStore):
    """The fingerprint is kept once computed; loading other state must not keep the old one."""
    a = store.get_cert("fp-a.example", ["fp-a.example"]).cert
    b = store.get_cert("fp-b.example", ["fp-b.example"]).cert
    cert = Cert(a.to_cryptography())
    assert cert.fingerprint() == a.to_cryptography().fingerprint(hashes.SHA256())
    cert.set_state(b.get_state())
    assert cert.fingerprint() == b.to_cryptography().fingerprint(hashes.SHA256())
    assert cert == b and cert != a
