"""proxycore.utils.pemcheck: the check of the CA file at start, without cryptography.

It must accept every CA file cryptography accepts (each key format, UTCTime and
GeneralizedTime validity) and read the same expiry, and reject with a ValueError the files
a user actually ends up with: truncated, not PEM, without key or certificate, encrypted."""

from __future__ import annotations

import base64
import datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa

from proxycore.certs import Cert, CertStore
from proxycore.utils.pemcheck import check_ca_file

NOW = datetime.datetime.now(datetime.UTC).replace(microsecond=0)


def ca_pem(key, not_after: datetime.datetime, fmt=serialization.PrivateFormat.TraditionalOpenSSL,
           encryption: serialization.KeySerializationEncryption | None = None,
           not_before: datetime.datetime | None = None) -> bytes:
    name = x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "pemcheck")])
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before or NOW - datetime.timedelta(days=10)).not_valid_after(not_after)
        .sign(key, hashes.SHA256())
    )
    encryption = encryption or serialization.NoEncryption()
    return (key.private_bytes(serialization.Encoding.PEM, fmt, encryption)
            + cert.public_bytes(serialization.Encoding.PEM))


@pytest.fixture(scope="module")
def keys() -> dict:
    return {"rsa": rsa.generate_private_key(public_exponent=65537, key_size=2048),
            "ec": ec.generate_private_key(ec.SECP256R1()), "dsa": dsa.generate_private_key(2048)}


@pytest.fixture(scope="module")
def rsa_key(keys):
    return keys["rsa"]


@pytest.mark.parametrize("kind", ["rsa", "rsa-pkcs8", "ec", "ec-pkcs8", "dsa"])
@pytest.mark.parametrize("years", [1, 40])  # 40: after 2049, a GeneralizedTime
def test_accepts_what_cryptography_loads_and_reads_the_same_expiry(tmp_path: Path, keys, kind, years):
    key = keys[kind.split("-")[0]]
    fmt = serialization.PrivateFormat.PKCS8 if kind.endswith("pkcs8") else serialization.PrivateFormat.TraditionalOpenSSL
    path = tmp_path / "proxycore-ca.pem"
    path.write_bytes(ca_pem(key, NOW + datetime.timedelta(days=365 * years), fmt))
    info = check_ca_file(path)
    assert info.notafter == Cert.from_pem(path.read_bytes()).notafter
    CertStore.from_files(path)  # and cryptography agrees the file is usable


@pytest.mark.parametrize("expired", [NOW - datetime.timedelta(days=3),
                                     datetime.datetime(1999, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)])
def test_an_expired_ca_passes_with_its_past_expiry(tmp_path: Path, rsa_key, expired) -> None:
    path = tmp_path / "ca.pem"
    path.write_bytes(ca_pem(rsa_key, expired, not_before=expired - datetime.timedelta(days=30)))
    assert check_ca_file(path).notafter == expired == Cert.from_pem(path.read_bytes()).notafter


def broken_files(good: bytes) -> dict[str, bytes]:
    key_end = good.index(b"-----END RSA PRIVATE KEY-----") + len(b"-----END RSA PRIVATE KEY-----\n")
    key, cert = good[:key_end], good[key_end:]
    cert_lines = cert.splitlines(keepends=True)
    return {
        "empty": b"",
        "not PEM": b"\x00\x01garbage" * 50,
        "truncated in the key": good[:400],
        "truncated in the certificate": key + b"".join(cert_lines[:5]) + cert_lines[-1],
        "key only": key,
        "certificate only": cert,
        "base64 damaged": key.replace(key.splitlines()[3], b"!!" + key.splitlines()[3][2:]) + cert,
        "a framed but empty key": (b"-----BEGIN RSA PRIVATE KEY-----\n"
                                   + base64.b64encode(b"\x30\x03\x02\x01\x00")
                                   + b"\n-----END RSA PRIVATE KEY-----\n" + cert),
    }


BROKEN = ["empty", "not PEM", "truncated in the key", "truncated in the certificate", "key only",
          "certificate only", "base64 damaged", "a framed but empty key"]


@pytest.mark.parametrize("case", BROKEN)
def test_rejects_broken_files_saying_which(tmp_path: Path, rsa_key, case: str) -> None:
    path = tmp_path / "proxycore-ca.pem"
    path.write_bytes(broken_files(ca_pem(rsa_key, NOW + datetime.timedelta(days=30)))[case])
    with pytest.raises(ValueError, match=r"^proxycore-ca\.pem: "):
        check_ca_file(path)
    with pytest.raises((ValueError, TypeError)):  # cryptography refuses them too
        CertStore.from_files(path)


def test_rejects_an_encrypted_key(tmp_path: Path, rsa_key) -> None:
    path = tmp_path / "proxycore-ca.pem"
    for fmt in (serialization.PrivateFormat.PKCS8, serialization.PrivateFormat.TraditionalOpenSSL):
        path.write_bytes(ca_pem(rsa_key, NOW + datetime.timedelta(days=30), fmt,
                                serialization.BestAvailableEncryption(b"secret")))
        with pytest.raises(ValueError, match="encrypted"):
            check_ca_file(path)


def test_a_missing_file_is_an_oserror(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        check_ca_file(tmp_path / "nothing.pem")
