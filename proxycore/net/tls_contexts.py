"""mitmproxy's TLS context helpers (``mitmproxy.net.tls``) for addons that build their own
pyOpenSSL contexts, e.g. in a ``tls_start_*`` hook. proxycore's TlsConfig addon builds its
contexts itself; these helpers follow the same choices (key log, version bounds)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterable
from enum import Enum
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from OpenSSL import SSL


class Method(Enum):
    TLS_SERVER_METHOD = SSL.TLS_SERVER_METHOD
    TLS_CLIENT_METHOD = SSL.TLS_CLIENT_METHOD
    DTLS_SERVER_METHOD = SSL.DTLS_SERVER_METHOD
    DTLS_CLIENT_METHOD = SSL.DTLS_CLIENT_METHOD


class Version(Enum):
    UNBOUNDED = 0
    SSL3 = SSL.SSL3_VERSION
    TLS1 = SSL.TLS1_VERSION
    TLS1_1 = SSL.TLS1_1_VERSION
    TLS1_2 = SSL.TLS1_2_VERSION
    TLS1_3 = SSL.TLS1_3_VERSION


class Verify(Enum):
    VERIFY_NONE = SSL.VERIFY_NONE
    VERIFY_PEER = SSL.VERIFY_PEER


DEFAULT_MIN_VERSION = Version.TLS1_2
DEFAULT_MAX_VERSION = Version.UNBOUNDED



def _curve_classes() -> dict[str, type]:
    """cryptography's curve classes by their OpenSSL name (``secp256r1`` ...)."""
    found: dict[str, type] = {}
    for cls in vars(ec).values():
        name = getattr(cls, "name", None)
        if isinstance(cls, type) and isinstance(name, str):
            found[name] = cls
    return found


_CURVES = _curve_classes()


def is_supported_version(version: Version) -> bool:
    """Whether this OpenSSL build (and its security level) still speaks ``version``."""
    if version is Version.UNBOUNDED:
        return True
    try:
        context = SSL.Context(SSL.TLS_CLIENT_METHOD)
        context.set_min_proto_version(version.value)
        context.set_max_proto_version(version.value)
        conn = SSL.Connection(context)
        conn.set_connect_state()
        conn.do_handshake()  # only writes a ClientHello, if any version is left
    except SSL.WantReadError:
        return True
    except SSL.Error:
        return False  # not built in, or below the security level
    return True


def get_curve(name: str | None) -> ec.EllipticCurve | None:
    """The named elliptic curve (``secp256r1``...), None for None."""
    if name is None:
        return None
    try:
        return _CURVES[name]()
    except KeyError:
        raise ValueError(f"unknown elliptic curve: {name}") from None


class MasterSecretLogger:
    """A key log callback that appends to ``filename`` (NSS key log format, for Wireshark)."""

    def __init__(self, filename: Path | str) -> None:
        self.filename = Path(filename).expanduser()
        self.file: Any = None
        self.lock = threading.Lock()

    def __call__(self, connection: SSL.Connection, keymaterial: bytes) -> None:
        with self.lock:
            if self.file is None:
                self.filename.parent.mkdir(parents=True, exist_ok=True)
                self.file = self.filename.open("ab")
            self.file.write(keymaterial + b"\n")
            self.file.flush()

    def close(self) -> None:
        with self.lock:
            if self.file is not None:
                self.file.close()
                self.file = None


def make_master_secret_logger(filename: str | None) -> MasterSecretLogger | None:
    return MasterSecretLogger(filename) if filename else None


log_master_secret = make_master_secret_logger(
    os.environ.get("MITMPROXY_SSLKEYLOGFILE") or os.environ.get("SSLKEYLOGFILE")
)


def _context(
    method: Method, min_version: Version, max_version: Version, cipher_list: Iterable[str] | None, ecdh_curve: ec.EllipticCurve | None
) -> SSL.Context:
    context = SSL.Context(method.value)
    if min_version is not Version.UNBOUNDED:
        context.set_min_proto_version(min_version.value)
    if max_version is not Version.UNBOUNDED:
        context.set_max_proto_version(max_version.value)
    context.set_options(SSL.OP_CIPHER_SERVER_PREFERENCE | SSL.OP_NO_COMPRESSION)
    if cipher_list is not None:
        context.set_cipher_list(b":".join(c.encode() for c in cipher_list))
    if ecdh_curve is not None:
        context.set_tmp_ecdh(ecdh_curve)
    logger = globals()["log_master_secret"]  # looked up now: tests and addons may replace it
    if logger is not None:
        context.set_keylog_callback(logger)
    return context


def accept_all(conn: SSL.Connection, cert: Any, errno: int, depth: int, preverify_ok: int) -> bool:
    """A verify callback that accepts every certificate (verification happens elsewhere)."""
    return True


def create_proxy_server_context(
    *,
    method: Method,
    min_version: Version,
    max_version: Version,
    cipher_list: Iterable[str] | None,
    ecdh_curve: ec.EllipticCurve | None,
    verify: Verify,
    ca_path: str | None,
    ca_pemfile: str | None,
    client_cert: str | None,
    legacy_server_connect: bool,
) -> SSL.Context:
    """A context for our connections to servers (we are the TLS client)."""
    context = _context(method, min_version, max_version, cipher_list, ecdh_curve)
    context.set_verify(verify.value, None)
    if ca_path or ca_pemfile:
        context.load_verify_locations(ca_pemfile, ca_path)
    else:
        import certifi

        context.load_verify_locations(certifi.where())
    if client_cert:
        context.use_privatekey_file(client_cert)
        context.use_certificate_chain_file(client_cert)
    if legacy_server_connect:
        context.set_options(SSL.OP_LEGACY_SERVER_CONNECT)
    return context


def create_client_proxy_context(
    *,
    method: Method,
    min_version: Version,
    max_version: Version,
    cipher_list: Iterable[str] | None,
    ecdh_curve: ec.EllipticCurve | None,
    chain_file: Path | None,
    alpn_select_callback: Callable[[SSL.Connection, list[bytes]], Any] | None,
    request_client_cert: bool,
    extra_chain_certs: Iterable[Any],
    dhparams: Any,
) -> SSL.Context:
    """A context for connections from clients (we are the TLS server); the leaf and its key
    are set per connection."""
    context = _context(method, min_version, max_version, cipher_list, ecdh_curve)
    if chain_file is not None:
        for cert in x509.load_pem_x509_certificates(Path(chain_file).read_bytes())[1:]:
            context.add_extra_chain_cert(cert)  # the intermediates after the CA file's first
    for cert in extra_chain_certs:
        context.add_extra_chain_cert(cert.to_cryptography() if hasattr(cert, "to_cryptography") else cert)
    if alpn_select_callback is not None:
        context.set_alpn_select_callback(alpn_select_callback)
    if request_client_cert:
        context.set_verify(Verify.VERIFY_PEER.value, accept_all)
    if dhparams:
        context.load_tmp_dh(str(dhparams).encode())
    return context


def starts_like_tls_record(d: bytes) -> bool:
    """A TLS handshake record header (record versions 3.0 to 3.3)."""
    return len(d) > 2 and d[0] == 0x16 and d[1] == 0x03 and d[2] <= 0x03


def starts_like_dtls_record(d: bytes) -> bool:
    """A DTLS handshake record header (DTLS 1.0 or 1.2)."""
    return len(d) > 2 and d[0] == 0x16 and d[1] == 0xFE and d[2] in (0xFD, 0xFE)
