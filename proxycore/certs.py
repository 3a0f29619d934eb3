"""Our certificate authority and the leaf certificates it signs on the fly.

To intercept TLS we must present, for every host a client visits, a
certificate signed by a CA the client trusts. The CA lives in the confdir and
is created on first start; leaves are made on demand and cached.

Leaves reuse the CA's own key pair instead of getting a fresh key per host, as
mitmproxy does: a new host then costs one signature (about a millisecond)
rather than an RSA key generation (tens to hundreds of milliseconds), which is
what keeps new-connection rates high. Validity periods, extensions and file
names follow mitmproxy, so clients that accept mitmproxy's certificates accept
ours and an existing ``~/.mitmproxy`` CA can be used unchanged.
"""

from __future__ import annotations

import collections
import contextlib
import datetime
import ipaddress
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.hazmat.primitives.asymmetric.types import (
    CertificateIssuerPrivateKeyTypes,
    CertificatePublicKeyTypes,
)
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from proxycore.utils.pemcheck import EXPIRED_CA_WARNING

if TYPE_CHECKING:
    from OpenSSL import crypto

logger = logging.getLogger("proxycore.certs")

CA_VALIDITY = datetime.timedelta(days=10 * 365)
# Apple and Chrome reject server certificates valid for 200 days or more, so the
# whole notBefore..notAfter span of a leaf stays below that.
LEAF_VALIDITY = datetime.timedelta(days=199)
CERT_EXPIRY = LEAF_VALIDITY  # mitmproxy's name
# Start validity in the past so that clients whose clock runs slow still accept it.
BACKDATE = datetime.timedelta(days=2)
# RFC 5280 upper bound for a CN is 64 characters; longer names go only into the SAN.
MAX_CN_LENGTH = 64
# Generated leaves kept in memory; the oldest is dropped first (read at call time).
CACHE_SIZE = 100

# The RFC 7919 "ffdhe2048" group, for TLS contexts that want DH parameters from a file
# (CertStore.load_dhparam writes it where none exists yet).
FFDHE2048_PEM = b"""-----BEGIN DH PARAMETERS-----
MIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz
+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a
87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7
YdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi
7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD
ssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==
-----END DH PARAMETERS-----
"""


class PassphraseMissing(TypeError, ValueError):
    """An encrypted private key and no passphrase. A TypeError, as the cryptography
    library (and so mitmproxy) raises it, and a ValueError, as proxycore did before."""

PrivateKey = CertificateIssuerPrivateKeyTypes


def _utcnow() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _name_pairs(name: x509.Name) -> list[tuple[str, str]]:
    return [(attr.rfc4514_attribute_name, str(attr.value)) for attr in name]


_name_to_keyval = _name_pairs  # mitmproxy's name (its tests call it)


def _name_text(name: str | x509.GeneralName) -> str:
    """A SAN as text: the name, or the IP address; strings stay as they are."""
    if isinstance(name, x509.DNSName | x509.IPAddress):
        return str(name.value)
    return name if isinstance(name, str) else str(name.value)


class AltNames(list[str]):
    """Subject alternative names as text (proxycore's form) that also compare equal to, and
    contain, cryptography's GeneralName objects (what mitmproxy's Cert.altnames returns)."""

    def __init__(self, names: Iterable[x509.GeneralName]) -> None:
        self.general_names = list(names)
        super().__init__(_name_text(n) for n in self.general_names)

    def __contains__(self, item: object) -> bool:
        if isinstance(item, x509.GeneralName):
            return item in self.general_names
        return super().__contains__(item)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, x509.GeneralNames):
            return list(other) == self.general_names
        return super().__eq__(other)

    __hash__ = None


class Cert:
    """An X.509 certificate with the accessors mitmproxy addons expect."""

    def __init__(self, cert: x509.Certificate) -> None:
        if not isinstance(cert, x509.Certificate):
            raise TypeError(f"expected a cryptography Certificate, got {type(cert).__name__}")
        self._cert = cert
        self._fingerprint: bytes | None = None

    # conversions ------------------------------------------------------------------------

    @classmethod
    def from_pem(cls, data: bytes) -> Cert:
        return cls(x509.load_pem_x509_certificate(data))

    @classmethod
    def from_der(cls, data: bytes) -> Cert:
        return cls(x509.load_der_x509_certificate(data))

    @classmethod
    def from_pyopenssl(cls, cert: crypto.X509) -> Cert:
        """Deprecated, as in mitmproxy (pyOpenSSL's X509 is on its way out): use ``Cert(x509)``."""
        import warnings

        warnings.warn("Cert.from_pyopenssl is deprecated: pass a cryptography certificate to Cert()",
                      DeprecationWarning, stacklevel=2)
        return cls(cert.to_cryptography())

    @classmethod
    def from_state(cls, state: bytes) -> Cert:
        """Flow files store certificates as PEM."""
        return cls.from_pem(state)

    def get_state(self) -> bytes:
        return self.to_pem()

    def set_state(self, state: bytes) -> None:
        self._cert = x509.load_pem_x509_certificate(state)
        self._fingerprint = None

    def copy(self) -> Cert:
        return Cert(self._cert)

    def to_pem(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.PEM)

    def to_der(self) -> bytes:
        return self._cert.public_bytes(serialization.Encoding.DER)

    def to_cryptography(self) -> x509.Certificate:
        return self._cert

    def to_pyopenssl(self) -> crypto.X509:
        from OpenSSL import crypto

        return crypto.X509.from_cryptography(self._cert)

    # identity ---------------------------------------------------------------------------

    def fingerprint(self) -> bytes:
        """SHA-256 over the DER encoding (a method, as in mitmproxy); kept once computed,
        since the TLS context cache asks for it on every intercepted connection (7 us)."""
        if self._fingerprint is None:
            self._fingerprint = self._cert.fingerprint(hashes.SHA256())
        return self._fingerprint

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Cert):
            return NotImplemented
        return self.fingerprint() == other.fingerprint()

    def __hash__(self) -> int:
        return hash(self.fingerprint())

    def __repr__(self) -> str:
        return f"<Cert(cn={self.cn!r}, altnames={self.altnames!r})>"

    # fields -----------------------------------------------------------------------------

    def public_key(self) -> CertificatePublicKeyTypes:
        return self._cert.public_key()

    @property
    def serial(self) -> int:
        return self._cert.serial_number

    @property
    def notbefore(self) -> datetime.datetime:
        return self._cert.not_valid_before_utc

    @property
    def notafter(self) -> datetime.datetime:
        return self._cert.not_valid_after_utc

    def has_expired(self) -> bool:
        """True once notAfter has passed (a method, as in mitmproxy)."""
        return _utcnow() > self.notafter

    @property
    def subject(self) -> list[tuple[str, str]]:
        return _name_pairs(self._cert.subject)

    @property
    def issuer(self) -> list[tuple[str, str]]:
        return _name_pairs(self._cert.issuer)

    def _first_subject_value(self, oid: x509.ObjectIdentifier) -> str | None:
        found = self._cert.subject.get_attributes_for_oid(oid)
        return str(found[0].value) if found else None

    @property
    def cn(self) -> str | None:
        return self._first_subject_value(NameOID.COMMON_NAME)

    @property
    def organization(self) -> str | None:
        return self._first_subject_value(NameOID.ORGANIZATION_NAME)

    def _extension(self, kind: type[Any]) -> Any:
        try:
            return self._cert.extensions.get_extension_for_class(kind).value
        except x509.ExtensionNotFound:
            return None

    @property
    def altnames(self) -> AltNames:
        """DNS names and IP addresses from subjectAltName, in certificate order."""
        san = self._extension(x509.SubjectAlternativeName)
        if san is None:
            return AltNames([])
        return AltNames([entry for entry in san if isinstance(entry, x509.DNSName | x509.IPAddress)])

    @property
    def is_ca(self) -> bool:
        constraints = self._extension(x509.BasicConstraints)
        return bool(constraints is not None and constraints.ca)

    @property
    def keyinfo(self) -> tuple[str, int]:
        """Key algorithm and size, e.g. ``("RSA", 2048)``, for display."""
        key = self._cert.public_key()
        if isinstance(key, rsa.RSAPublicKey):
            return "RSA", key.key_size
        if isinstance(key, ec.EllipticCurvePublicKey):
            return f"EC ({key.curve.name})", key.key_size
        if isinstance(key, dsa.DSAPublicKey):
            return "DSA", key.key_size
        return type(key).__name__.removesuffix("PublicKey").strip("_"), getattr(key, "key_size", -1)

    @property
    def crl_distribution_points(self) -> list[str]:
        points = self._extension(x509.CRLDistributionPoints)
        if points is None:
            return []
        return [
            name.value
            for point in points
            for name in point.full_name or ()
            if isinstance(name, x509.UniformResourceIdentifier)
        ]


# -- creating certificates ------------------------------------------------------------------


def create_ca(
    organization: str, cn: str, key_size: int = 2048
) -> tuple[rsa.RSAPrivateKey, x509.Certificate]:
    """A fresh RSA key and a self-signed CA certificate for it, valid for ten years."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=key_size)
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization),
        ]
    )
    start = _utcnow() - BACKDATE
    usage = x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + BACKDATE + CA_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(usage, critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
    )
    return key, builder.sign(key, hashes.SHA256())


def _general_name(name: str | x509.GeneralName) -> x509.GeneralName:
    """An IPAddress entry for an IP literal, else a DNSName (A-label form for IDNs)."""
    if isinstance(name, x509.GeneralName):
        return name
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        pass
    if not name.isascii():
        with contextlib.suppress(UnicodeError):
            name = name.encode("idna").decode("ascii")
    return x509.DNSName(name)


def _authority_key_id(cacert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    """Point at the CA's SKI so clients pick the right issuer when several share a subject."""
    try:
        ski = cacert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        key = cacert.public_key()
        # A CA's key signs, so it is one of the issuer key types; cryptography types a
        # certificate's key more widely (X25519, ML-KEM ...).
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(key)  # type: ignore[arg-type]
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)


def _signature_hash(key: PrivateKey) -> hashes.SHA256 | None:
    # Ed25519/Ed448 keys sign without a separate digest.
    return (
        hashes.SHA256()
        if isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey)
        else None
    )


def dummy_cert(
    privkey: PrivateKey,
    cacert: x509.Certificate,
    commonname: str | None,
    sans: Iterable[str | x509.GeneralName],
    organization: str | None = None,
    crl_url: str | None = None,
) -> Cert:
    """A leaf for ``sans`` signed by the CA and carrying the CA's own public key.

    Reusing the CA key pair means no key generation per host. The leaf gets no
    SKI of its own: identical SKIs on CA and leaf confuse Windows SChannel.
    """
    subject = []
    if commonname is not None and len(commonname) < MAX_CN_LENGTH:
        subject.append(x509.NameAttribute(NameOID.COMMON_NAME, commonname))
    if organization is not None:
        subject.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    has_cn = bool(subject) and subject[0].oid == NameOID.COMMON_NAME
    start = _utcnow() - BACKDATE
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name(subject))
        .issuer_name(cacert.subject)
        .public_key(cacert.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + LEAF_VALIDITY)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(_authority_key_id(cacert), critical=False)
    )
    general_names = list(dict.fromkeys(_general_name(n) for n in sans))
    if general_names:
        # RFC 5280 4.2.1.6: with an empty subject the SAN carries the identity and is critical.
        builder = builder.add_extension(
            x509.SubjectAlternativeName(general_names), critical=not has_cn
        )
    if crl_url:
        point = x509.DistributionPoint(
            full_name=[x509.UniformResourceIdentifier(crl_url)],
            relative_name=None,
            reasons=None,
            crl_issuer=None,
        )
        builder = builder.add_extension(x509.CRLDistributionPoints([point]), critical=False)
    return Cert(builder.sign(privkey, _signature_hash(privkey)))


# -- the store ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CertStoreEntry:
    """What a TLS server context needs: certificate, key and the chain sent after the leaf.

    ``chain_file`` is the CA file when it holds more than one certificate
    (mitmproxy's field); ``chain_certs`` are those certificates, already parsed.
    """

    cert: Cert
    privatekey: PrivateKey
    chain_file: Path | None = None
    chain_certs: list[Cert] = field(default_factory=list)


def _load_private_key(data: bytes, passphrase: bytes | None) -> PrivateKey:
    """Load a PEM key; a passphrase given for an unencrypted key is ignored (as mitmproxy does)."""
    try:
        key = serialization.load_pem_private_key(data, passphrase)
    except TypeError:
        if passphrase is None:
            raise
        key = serialization.load_pem_private_key(data, None)
    if not isinstance(
        key,
        rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey | dsa.DSAPrivateKey,
    ):
        raise ValueError(f"unsupported private key type for signing: {type(key).__name__}")
    return key


def _same_public_key(a: CertificatePublicKeyTypes, b: Any) -> bool:
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(serialization.Encoding.DER, spki) == b.public_bytes(
        serialization.Encoding.DER, spki
    )


@contextlib.contextmanager
def _private_umask() -> Iterator[None]:
    """Files created inside are readable by their owner only (umask |= 077)."""
    previous = os.umask(0o077)
    os.umask(previous | 0o077)
    try:
        yield
    finally:
        os.umask(previous)


def _write(path: Path, data: bytes, private: bool) -> None:
    if private:
        with _private_umask():
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        # A file left over from an earlier attempt keeps its mode under O_TRUNC; tighten it.
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


class CertStore:
    """The CA plus a FIFO cache of generated leaves; ``--certs`` files take precedence."""

    # Generated leaves kept: CACHE_SIZE unless set for this store (mitmproxy's name).
    STORE_CAP: int | None = None

    def __init__(
        self,
        default_privatekey: PrivateKey,
        default_ca: Cert,
        default_chain_file: Path | str | None = None,
    ) -> None:
        self.default_privatekey = default_privatekey
        self.default_ca = default_ca
        self.default_chain_file = Path(default_chain_file) if default_chain_file else None
        self.dhparams: Path | None = None
        if self.default_chain_file is not None:
            raw = self.default_chain_file.read_bytes()
            self.default_chain_certs = [Cert(c) for c in x509.load_pem_x509_certificates(raw)]
        else:
            self.default_chain_certs = [default_ca]
        # Custom certificates by name ("a.b.c", "*.b.c", "*") and generated ones by (cn, sans).
        self.custom: dict[str, CertStoreEntry] = {}
        self.generated: collections.OrderedDict[
            tuple[str | None, tuple[str, ...]], CertStoreEntry
        ] = collections.OrderedDict()

    # mitmproxy's static helpers ------------------------------------------------------------

    @staticmethod
    def umask_secret() -> contextlib.AbstractContextManager[None]:
        """Files created inside are readable by their owner only (umask |= 077)."""
        return _private_umask()

    @staticmethod
    def load_dhparam(path: Path | str) -> Any:
        """The DH parameters in ``path`` (written there first, RFC 7919 ffdhe2048, if missing)."""
        from cryptography.hazmat.primitives.serialization import load_pem_parameters

        path = Path(path)
        if not path.exists():
            path.write_bytes(FFDHE2048_PEM)
        return load_pem_parameters(path.read_bytes())

    # the CA on disk -----------------------------------------------------------------------

    @classmethod
    def from_store(
        cls,
        path: Path | str,
        basename: str = "proxycore",
        key_size: int = 2048,
        passphrase: bytes | None = None,
        *,
        warn_expired: bool = True,
    ) -> CertStore:
        """Load ``{basename}-ca.pem`` from ``path``, creating the CA file set on first start.

        ``warn_expired=False``: the caller has already warned about an expired CA."""
        path = Path(path)
        ca_file = path / f"{basename}-ca.pem"
        if not ca_file.exists():
            cls.create_store(path, basename, key_size)
        return cls.from_files(ca_file, passphrase=passphrase, warn_expired=warn_expired)

    @classmethod
    def from_files(
        cls,
        ca_file: Path | str,
        dhparam_file: Path | str | None = None,
        passphrase: bytes | None = None,
        *,
        warn_expired: bool = True,
    ) -> CertStore:
        """A store from a PEM file holding the CA key, the CA certificate and optional chain.

        ``dhparam_file`` (mitmproxy's second argument) is kept as ``dhparams`` for contexts
        built with proxycore.net.tls_contexts; proxycore's own contexts use ECDHE only."""
        ca_file = Path(ca_file)
        return cls.from_pem(ca_file.read_bytes(), ca_file, dhparam_file, passphrase, warn_expired=warn_expired)

    @classmethod
    def from_pem(
        cls,
        raw: bytes,
        ca_file: Path,
        dhparam_file: Path | str | None = None,
        passphrase: bytes | None = None,
        *,
        warn_expired: bool = True,
    ) -> CertStore:
        """``from_files`` with the file's contents already read (``ca_file`` names it)."""
        key = _load_private_key(raw, passphrase)
        certs = x509.load_pem_x509_certificates(raw)  # raises ValueError when there is none
        ca = Cert(certs[0])
        if ca.has_expired() and warn_expired:
            logger.warning(EXPIRED_CA_WARNING, ca_file, ca.notafter.date().isoformat())
        store = cls(key, ca, ca_file if len(certs) > 1 else None)
        store.dhparams = Path(dhparam_file) if dhparam_file else None
        return store

    @staticmethod
    def create_store(
        path: Path | str,
        basename: str,
        key_size: int = 2048,
        organization: str | None = None,
        cn: str | None = None,
    ) -> None:
        """Create a CA and write it in every format clients need (key files owner-only)."""
        path = Path(path)
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        key, ca = create_ca(organization or basename, cn or basename, key_size)
        key_pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        )
        cert_pem = ca.public_bytes(serialization.Encoding.PEM)
        label = basename.encode()
        no_password = serialization.NoEncryption()
        _write(path / f"{basename}-ca.pem", key_pem + cert_pem, private=True)
        _write(
            path / f"{basename}-ca.p12",
            pkcs12.serialize_key_and_certificates(label, key, ca, None, no_password),
            private=True,
        )
        _write(path / f"{basename}-ca-cert.pem", cert_pem, private=False)
        _write(path / f"{basename}-ca-cert.cer", cert_pem, private=False)  # Android wants .cer
        _write(
            path / f"{basename}-ca-cert.p12",
            pkcs12.serialize_key_and_certificates(label, None, ca, None, no_password),
            private=False,
        )

    def ca_pem(self) -> bytes:
        """The CA certificate as PEM, for serving to clients that install it."""
        return self.default_ca.to_pem()

    # custom certificates ------------------------------------------------------------------

    def add_cert_file(self, spec: str, path: Path | str, passphrase: bytes | None = None) -> None:
        """Register a ``--certs [spec=]path`` PEM (certificate, its key, optional chain).

        Without a key in the file, the certificate must belong to the CA key.
        """
        path = Path(path)
        raw = path.read_bytes()
        cert = Cert(x509.load_pem_x509_certificate(raw))
        chain_file: Path | None = path
        try:
            chain = [Cert(c) for c in x509.load_pem_x509_certificates(raw)]
        except ValueError as e:
            # The leaf is usable; a broken chain after it only costs clients the intermediates.
            logger.warning("Failed to read certificate chain of %s (%s): presenting the certificate alone.", path, e)
            chain, chain_file = [cert], None
        try:
            key = _load_private_key(raw, passphrase)
        except TypeError as e:  # an encrypted key and no passphrase
            raise PassphraseMissing(f"{e} (see cert_passphrase)") from None
        except ValueError as e:
            if not _same_public_key(cert.public_key(), self.default_privatekey.public_key()):
                raise ValueError(f"no usable private key in {path}: {e}") from e
            key = self.default_privatekey
        else:
            if not _same_public_key(cert.public_key(), key.public_key()):
                raise ValueError(f"the private key in {path} does not match its certificate")
        if cert.is_ca:
            logger.warning(
                "%s holds a CA certificate, not a leaf: --certs expects the certificate to present "
                "for a domain, the CA goes into the confdir.",
                path,
            )
        self.add_cert(CertStoreEntry(cert, key, chain_file, chain), spec or "*")

    def add_cert(self, entry: CertStoreEntry, *names: str) -> None:
        """Index ``entry`` by its CN, each SAN and the extra ``names`` (later ones win)."""
        if entry.cert.cn:
            self.custom[entry.cert.cn] = entry
        for altname in entry.cert.altnames:
            self.custom[altname] = entry
        for name in names:
            self.custom[name] = entry

    @staticmethod
    def asterisk_forms(name: str | x509.GeneralName) -> list[str]:
        """``a.b.c`` -> ``["a.b.c", "*.b.c", "*.c"]``; an IP address only matches itself."""
        name = _name_text(name)
        try:
            ipaddress.ip_address(name)
        except ValueError:
            labels = name.split(".")
            return [name] + ["*." + ".".join(labels[i:]) for i in range(1, len(labels))]
        return [name]

    def _custom_match(self, commonname: str | None, sans: Iterable[str]) -> CertStoreEntry | None:
        names = [commonname, *sans] if commonname else list(sans)
        for name in names:
            for key in self.asterisk_forms(name):
                entry = self.custom.get(key)
                if entry is not None:
                    return entry
        return self.custom.get("*")

    # leaves -------------------------------------------------------------------------------

    def get_cert(
        self,
        commonname: str | None,
        sans: Iterable[str | x509.GeneralName],
        organization: str | None = None,
        crl_url: str | None = None,
    ) -> CertStoreEntry:
        """The entry to present for these names: a matching custom one, else a (cached) leaf.

        Lookup order follows mitmproxy: the CN and each SAN in their wildcard forms,
        then ``*``, then the exact ``(cn, sans)`` pair. Misses are generated and cached.
        """
        names = tuple(_name_text(n) for n in sans)  # text, or mitmproxy's GeneralName objects
        if self.custom:
            entry = self._custom_match(commonname, names)
            if entry is not None:
                return entry
        key = (commonname, names)
        entry = self.generated.get(key)
        if entry is not None:
            return entry
        cert = dummy_cert(
            self.default_privatekey,
            self.default_ca.to_cryptography(),
            commonname,
            names,
            organization,
            crl_url,
        )
        entry = CertStoreEntry(
            cert, self.default_privatekey, self.default_chain_file, self.default_chain_certs
        )
        self.generated[key] = entry
        cap = CACHE_SIZE if self.STORE_CAP is None else self.STORE_CAP
        while len(self.generated) > cap:
            self.generated.popitem(last=False)
        return entry

    @property
    def certs(self) -> dict[tuple[str | None, x509.GeneralNames], CertStoreEntry]:
        """The generated leaves keyed as mitmproxy keys them: (common name, GeneralNames)."""
        return {(cn, x509.GeneralNames([_general_name(n) for n in sans])): e for (cn, sans), e in self.generated.items()}
