"""Our certificate authority and the leaf certificates it signs on the fly.

Interception needs a certificate for every host a client visits, signed by a
CA the client trusts. The CA lives in the confdir; leaves are made on demand
and cached. Leaves reuse the CA's key pair instead of generating one per host:
signing is then the only cost (a few milliseconds), which is what keeps
new-connection rates high. Validity, extensions and file names follow
mitmproxy, so clients that accept mitmproxy's certificates accept ours, and an
existing mitmproxy CA directory can be used as is.
"""

from __future__ import annotations

import collections
import datetime
import ipaddress
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

logger = logging.getLogger("proxycore.certs")

CA_VALIDITY = datetime.timedelta(days=10 * 365)
LEAF_VALIDITY = datetime.timedelta(days=199)  # strict clients (Apple, Chrome) reject >= 200 days
BACKDATE = datetime.timedelta(days=2)  # tolerate clients whose clock runs slow
MAX_CN_LENGTH = 64
CACHE_SIZE = 100

PrivateKey = rsa.RSAPrivateKey


class Cert:
    """An X.509 certificate with the accessors mitmproxy addons use."""

    def __init__(self, cert: x509.Certificate) -> None:
        self._cert = cert

    @classmethod
    def from_pem(cls, data: bytes) -> Cert:
        return cls(x509.load_pem_x509_certificate(data))

    @classmethod
    def from_der(cls, data: bytes) -> Cert:
        return cls(x509.load_der_x509_certificate(data))

    def to_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def to_cryptography(self) -> x509.Certificate:
        return self._cert

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Cert) and self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"<Cert(cn={self.cn!r}, altnames={self.altnames!r})>"

    def fingerprint(self) -> bytes:
        return self._cert.fingerprint(hashes.SHA256())

    @property
    def serial(self) -> int:
        return self._cert.serial_number

    @property
    def notbefore(self) -> datetime.datetime:
        return self._cert.not_valid_before_utc

    @property
    def notafter(self) -> datetime.datetime:
        return self._cert.not_valid_after_utc

    @property
    def has_expired(self) -> bool:
        return datetime.datetime.now(datetime.UTC) > self.notafter

    @property
    def subject(self) -> list[tuple[str, str]]:
        return [(a.rfc4514_attribute_name, str(a.value)) for a in self._cert.subject]

    @property
    def issuer(self) -> list[tuple[str, str]]:
        return [(a.rfc4514_attribute_name, str(a.value)) for a in self._cert.issuer]

    def _name_attribute(self, oid: x509.ObjectIdentifier) -> str | None:
        values = self._cert.subject.get_attributes_for_oid(oid)
        return str(values[0].value) if values else None

    @property
    def cn(self) -> str | None:
        return self._name_attribute(NameOID.COMMON_NAME)

    @property
    def organization(self) -> str | None:
        return self._name_attribute(NameOID.ORGANIZATION_NAME)

    @property
    def altnames(self) -> list[str]:
        """DNS names and IP addresses from subjectAltName, in order."""
        try:
            san = self._cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        except x509.ExtensionNotFound:
            return []
        names: list[str] = []
        for name in san:
            if isinstance(name, x509.DNSName):
                names.append(name.value)
            elif isinstance(name, x509.IPAddress):
                names.append(str(name.value))
        return names


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def create_ca(organization: str, cn: str, key_size: int = 2048) -> tuple[PrivateKey, x509.Certificate]:
    """A new CA key pair and self-signed certificate."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    now = _now()
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def _san_entry(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def dummy_cert(
    privkey: PrivateKey,
    cacert: x509.Certificate,
    commonname: str | None,
    sans: Iterable[str],
    organization: str | None = None,
) -> Cert:
    """A leaf for ``sans``, signed by the CA and carrying the CA's own public key."""
    now = _now()
    subject = []
    if commonname is not None and len(commonname) < MAX_CN_LENGTH:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, commonname))
    if organization:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    names = list(dict.fromkeys(sans))
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(cacert.subject)
        .public_key(privkey.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now - BACKDATE + LEAF_VALIDITY)  # the whole period stays under 200 days
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    try:
        ski = cacert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    except x509.ExtensionNotFound:
        pass
    if names:
        # Without a subject CN, the SAN is the certificate's identity and must be critical.
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_san_entry(n) for n in names]), critical=not subject
        )
    return Cert(builder.sign(privkey, hashes.SHA256()))


@dataclass
class CertStoreEntry:
    """A certificate with its private key and the chain served after it."""

    cert: Cert
    privatekey: PrivateKey
    chain_certs: list[Cert] = field(default_factory=list)


def _wildcards(name: str) -> list[str]:
    """``a.b.c`` -> ``a.b.c``, ``*.b.c``, ``*.c`` (the forms a custom certificate may be keyed by)."""
    parts = name.split(".")
    return [name] + ["*." + ".".join(parts[i:]) for i in range(1, len(parts))]


class CertStore:
    """The CA plus a cache of leaves; custom certificates (``--certs``) take precedence."""

    def __init__(
        self,
        default_privatekey: PrivateKey,
        default_ca: Cert,
        default_chain_certs: list[Cert] | None = None,
    ) -> None:
        self.default_privatekey = default_privatekey
        self.default_ca = default_ca
        self.default_chain_certs = default_chain_certs if default_chain_certs is not None else [default_ca]
        self.custom: dict[str, CertStoreEntry] = {}
        self.generated: collections.OrderedDict[tuple[str | None, tuple[str, ...], str | None], CertStoreEntry] = (
            collections.OrderedDict()
        )

    # the CA on disk ------------------------------------------------------------------

    @classmethod
    def from_store(
        cls, path: str, basename: str = "proxycore", key_size: int = 2048, passphrase: bytes | None = None
    ) -> CertStore:
        """Load ``{basename}-ca.pem`` from ``path``, creating the CA files on first use."""
        ca_file = os.path.join(path, f"{basename}-ca.pem")
        if not os.path.exists(ca_file):
            cls.create_store(path, basename, key_size, passphrase)
        return cls.from_files(ca_file, passphrase)

    @classmethod
    def from_files(cls, ca_file: str, passphrase: bytes | None = None) -> CertStore:
        with open(ca_file, "rb") as f:
            raw = f.read()
        key = serialization.load_pem_private_key(raw, passphrase)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise ValueError(f"{ca_file}: the CA key must be an RSA key")
        certs = [Cert(c) for c in x509.load_pem_x509_certificates(raw)]
        if not certs:
            raise ValueError(f"{ca_file}: no certificate found")
        ca = certs[0]
        if ca.has_expired:
            logger.warning(
                f"The proxycore CA in {ca_file} expired on {ca.notafter:%Y-%m-%d}: clients will "
                "reject intercepted connections. Move the file away to create a new CA."
            )
        return cls(key, ca, certs)

    @staticmethod
    def create_store(path: str, basename: str, key_size: int, passphrase: bytes | None = None) -> None:
        os.makedirs(path, mode=0o700, exist_ok=True)
        key, ca = create_ca(organization=basename, cn=basename, key_size=key_size)
        encryption: serialization.KeySerializationEncryption = (
            serialization.BestAvailableEncryption(passphrase) if passphrase else serialization.NoEncryption()
        )
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, encryption
        )
        cert_pem = ca.public_bytes(serialization.Encoding.PEM)

        def write(name: str, data: bytes, private: bool) -> None:
            target = os.path.join(path, name)
            # Key files are created 0600 from the start, never readable by others even briefly.
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data)

        write(f"{basename}-ca.pem", key_pem + cert_pem, private=True)
        write(f"{basename}-ca-cert.pem", cert_pem, private=False)
        write(f"{basename}-ca-cert.cer", cert_pem, private=False)  # the name Android wants
        write(
            f"{basename}-ca-cert.p12",
            pkcs12.serialize_key_and_certificates(
                basename.encode(), None, ca, None, serialization.NoEncryption()
            ),
            private=False,
        )
        write(
            f"{basename}-ca.p12",
            pkcs12.serialize_key_and_certificates(basename.encode(), key, ca, None, encryption),
            private=True,
        )

    # lookups ----------------------------------------------------------------------------

    def add_cert_file(self, spec: str, path: str, passphrase: bytes | None = None) -> None:
        """A custom certificate (PEM with key) for ``spec`` (a name, ``*.domain`` or ``*``)."""
        with open(path, "rb") as f:
            raw = f.read()
        certs = [Cert(c) for c in x509.load_pem_x509_certificates(raw)]
        key = serialization.load_pem_private_key(raw, passphrase)
        entry = CertStoreEntry(certs[0], key, certs)  # type: ignore[arg-type]
        self.add_cert(entry, spec)

    def add_cert(self, entry: CertStoreEntry, *names: str) -> None:
        keys = [*names]
        if entry.cert.cn:
            keys.append(entry.cert.cn)
        keys.extend(entry.cert.altnames)
        for key in keys:
            self.custom[key] = entry

    def get_cert(
        self, commonname: str | None, sans: list[str], organization: str | None = None
    ) -> CertStoreEntry:
        """The certificate to present for these names: custom if one matches, else a cached leaf."""
        if self.custom:
            for name in [commonname, *sans]:
                if not name:
                    continue
                for candidate in _wildcards(name):
                    entry = self.custom.get(candidate)
                    if entry is not None:
                        return entry
            entry = self.custom.get("*")
            if entry is not None:
                return entry
        key = (commonname, tuple(sans), organization)
        entry = self.generated.get(key)
        if entry is None:
            cert = dummy_cert(
                self.default_privatekey, self.default_ca.to_cryptography(), commonname, sans, organization
            )
            entry = CertStoreEntry(cert, self.default_privatekey, list(self.default_chain_certs))
            self.generated[key] = entry
            while len(self.generated) > CACHE_SIZE:
                self.generated.popitem(last=False)  # first in, first out
        return entry

    def ca_pem(self) -> bytes:
        return self.default_ca.to_pem()
