"""A check of a CA file at start without cryptography (issue 15: idle memory and start time).

cryptography costs ~10 MB resident and ~40 ms to import, and a proxy that never intercepts
TLS never needs it, so the TlsConfig addon parses its CA at the first interception. This
module lets it still reject an unusable CA file at start with one clear error: the file is
read, its PEM blocks decoded and their DER framing checked, and the CA certificate's expiry
read from its validity field. A key or certificate whose inner contents are corrupt passes
here and fails at the real parse (cryptography's).
"""

from __future__ import annotations

import binascii
import datetime
import re
from pathlib import Path

_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL)
_SEQUENCE, _INTEGER, _OCTET_STRING, _UTC_TIME, _GENERALIZED_TIME, _VERSION = 0x30, 0x02, 0x04, 0x17, 0x18, 0xA0
# The elements a private key of each PEM label starts with: PKCS#8 (RFC 5208), PKCS#1 RSA
# (version, n, e, d, p, q, dp, dq, qinv), SEC 1 EC (version, key), OpenSSL's DSA (version,
# p, q, g, y, x).
_KEY_STARTS = {
    b"PRIVATE KEY": (_INTEGER, _SEQUENCE, _OCTET_STRING),
    b"RSA PRIVATE KEY": (_INTEGER,) * 9,
    b"EC PRIVATE KEY": (_INTEGER, _OCTET_STRING),
    b"DSA PRIVATE KEY": (_INTEGER,) * 6,
}
# The text of the warning for an expired CA (arguments: the file, the expiry date).
EXPIRED_CA_WARNING = (
    "The CA certificate in %s expired on %s; clients will reject intercepted "
    "connections. Move the file away to have a new CA created."
)


class CaFileInfo:
    """What start-up needs to know about a CA file that passed the check: its expiry, and
    the bytes checked (the CA parsed later is this one, whatever happens to the file).
    A plain class: a frozen dataclass costs every start ~3 M instructions to make."""

    __slots__ = ("notafter", "raw")

    def __init__(self, notafter: datetime.datetime, raw: bytes) -> None:
        self.notafter = notafter
        self.raw = raw


def check_ca_file(path: Path) -> CaFileInfo:
    """Raise OSError if ``path`` cannot be read, ValueError (saying what is wrong) if it holds
    no usable unencrypted private key and CA certificate."""
    raw = path.read_bytes()
    blocks = [(m.group(1), m.group(2)) for m in _BLOCK.finditer(raw)]
    try:
        keys = [(label, body) for label, body in blocks if label in _KEY_STARTS or label == b"ENCRYPTED PRIVATE KEY"]
        if not keys:
            raise ValueError("no PEM private key found")
        label, body = keys[0]
        if label == b"ENCRYPTED PRIVATE KEY" or b"Proc-Type: 4,ENCRYPTED" in body:
            raise ValueError("the private key is encrypted; the CA key must not be")
        key = _pem_body(body)
        pos, end = _der_element(key, 0, _SEQUENCE, whole=True)
        for tag in _KEY_STARTS[label]:
            pos = _der_element(key, pos, tag)[1]
        if pos > end:
            raise ValueError("malformed DER (element beyond its parent)")
        certs = [body for label, body in blocks if label == b"CERTIFICATE"]
        if not certs:
            raise ValueError("no PEM certificate found")
        for body in certs:
            _der_element(_pem_body(body), 0, _SEQUENCE, whole=True)
        return CaFileInfo(notafter=_notafter(_pem_body(certs[0])), raw=raw)
    except ValueError as e:
        raise ValueError(f"{path.name}: {e}") from None


def _pem_body(body: bytes) -> bytes:
    try:
        return binascii.a2b_base64(b"".join(body.split()), strict_mode=True)
    except binascii.Error as e:
        raise ValueError(f"a PEM block is not valid base64: {e}") from None


def _der_element(data: bytes, pos: int, tag: int, whole: bool = False) -> tuple[int, int]:
    """The (start, end) of the contents of the DER element at ``pos``, which must have ``tag``
    (and, with ``whole``, end where ``data`` ends)."""
    if pos + 2 > len(data) or data[pos] != tag:
        raise ValueError("malformed DER (unexpected element)")
    length, pos = data[pos + 1], pos + 2
    if length & 0x80:
        count = length & 0x7F
        if not 1 <= count <= 4 or pos + count > len(data):
            raise ValueError("malformed DER (bad length)")
        length, pos = int.from_bytes(data[pos:pos + count], "big"), pos + count
    end = pos + length
    if end > len(data) or (whole and end != len(data)):
        raise ValueError("malformed DER (truncated or trailing data)")
    return pos, end


def _notafter(cert: bytes) -> datetime.datetime:
    """The notAfter of an X.509 certificate: Certificate > TBSCertificate > [version], serial,
    signature algorithm, issuer, Validity > notBefore, notAfter."""
    start, _ = _der_element(cert, 0, _SEQUENCE)
    pos, _ = _der_element(cert, start, _SEQUENCE)
    if cert[pos:pos + 1] == bytes([_VERSION]):
        pos = _der_element(cert, pos, _VERSION)[1]
    pos = _der_element(cert, pos, _INTEGER)[1]
    pos = _der_element(cert, pos, _SEQUENCE)[1]  # signature algorithm
    pos = _der_element(cert, pos, _SEQUENCE)[1]  # issuer
    pos, _ = _der_element(cert, pos, _SEQUENCE)  # validity
    _, pos = _time(cert, pos)  # notBefore
    return _time(cert, pos)[0]


def _time(cert: bytes, pos: int) -> tuple[datetime.datetime, int]:
    """The UTCTime or GeneralizedTime at ``pos`` and the position after it."""
    tag = cert[pos] if pos < len(cert) else 0
    if tag not in (_UTC_TIME, _GENERALIZED_TIME):
        raise ValueError("malformed certificate (no validity period)")
    start, end = _der_element(cert, pos, tag)
    text = cert[start:end].decode("ascii", "replace")
    # RFC 5280: UTCTime is YYMMDDHHMMSSZ (YY >= 50 is 19YY), GeneralizedTime YYYYMMDDHHMMSSZ.
    # Read by hand: strptime would import _strptime, calendar and locale at every start.
    digits = text[:-1]
    if not (text.endswith("Z") and digits.isdigit() and len(digits) == (12 if tag == _UTC_TIME else 14)):
        raise ValueError(f"malformed certificate (validity {text!r})")
    if tag == _UTC_TIME:
        year = int(digits[:2])
        digits = str(year + (1900 if year >= 50 else 2000)) + digits[2:]
    month, day, hour, minute, second = (int(digits[i:i + 2]) for i in range(4, 14, 2))
    try:
        when = datetime.datetime(int(digits[:4]), month, day, hour, minute, second, tzinfo=datetime.UTC)
    except ValueError:
        raise ValueError(f"malformed certificate (validity {text!r})") from None
    return when, end
