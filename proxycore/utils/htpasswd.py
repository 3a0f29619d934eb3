"""Apache htpasswd files: read them and check passwords against the hashes ``htpasswd`` writes.

Supported entries (what ``htpasswd`` writes with these flags):

- ``-m`` (the default): ``$apr1$salt$hash``, Apache's MD5 variant (and ``$1$``, the same
  algorithm under crypt's name);
- ``-B``: bcrypt, ``$2y$`` (also ``$2a$``/``$2b$``);
- ``-s``: ``{SHA}`` + base64 of the SHA-1 digest (unsalted);
- ``-2``/``-5``: SHA-256/SHA-512 crypt, ``$5$``/``$6$`` with optional ``rounds=N$``.

``-d`` (DES crypt) and ``-p`` (plain text) entries cannot be told apart and are refused
when the file is read, so a file never half-works.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Callable
from pathlib import Path
from typing import Any

_ITOA64 = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_BCRYPT_PREFIXES = ("$2y$", "$2b$", "$2a$")
_MD5_PREFIXES = ("$apr1$", "$1$")
_SHA_CRYPT_PREFIXES = ("$5$", "$6$")


class HtpasswdError(ValueError):
    """The file cannot be used; the message names the line."""


def _b64_from_24bit(b2: int, b1: int, b0: int, n: int) -> str:
    w = (b2 << 16) | (b1 << 8) | b0
    chars = []
    for _ in range(n):
        chars.append(_ITOA64[w & 0x3F])
        w >>= 6
    return "".join(chars)


def _encode(digest: bytes, order: list[tuple[int, int, int]]) -> str:
    """Four crypt-base64 characters for each byte triple of ``order``."""
    return "".join(_b64_from_24bit(digest[x], digest[y], digest[z], 4) for x, y, z in order)


def _stretch(
    algorithm: Callable[[bytes], Any], digest: bytes, password: bytes, salt: bytes, rounds: int
) -> bytes:
    """The key-stretching loop MD5 crypt and SHA crypt share: each round hashes the previous
    digest with the password and, on rounds not divisible by 3 or 7, the salt and password."""
    for i in range(rounds):
        round_input = password if i & 1 else digest
        if i % 3:
            round_input += salt
        if i % 7:
            round_input += password
        round_input += digest if i & 1 else password
        digest = algorithm(round_input).digest()
    return digest


_MD5_ORDER = [(0, 6, 12), (1, 7, 13), (2, 8, 14), (3, 9, 15), (4, 10, 5)]


def md5_crypt(password: bytes, salt: bytes, magic: bytes = b"$apr1$") -> str:
    """Poul-Henning Kamp's MD5 crypt; Apache's ``$apr1$`` differs only in the magic string."""
    salt = salt[:8]
    alternate = hashlib.md5(password + salt + password).digest()
    ctx = password + magic + salt
    for remaining in range(len(password), 0, -16):
        ctx += alternate[: min(16, remaining)]
    length = len(password)
    while length:
        ctx += b"\0" if length & 1 else password[:1]
        length >>= 1
    final = _stretch(hashlib.md5, hashlib.md5(ctx).digest(), password, salt, 1000)
    encoded = _encode(final, _MD5_ORDER) + _b64_from_24bit(0, 0, final[11], 2)
    return f"{magic.decode()}{salt.decode('ascii', 'replace')}${encoded}"


# Byte order of the final encoding (Drepper's "Unix crypt using SHA-256 and SHA-512").
_SHA256_ORDER = [
    (0, 10, 20), (21, 1, 11), (12, 22, 2), (3, 13, 23), (24, 4, 14),
    (15, 25, 5), (6, 16, 26), (27, 7, 17), (18, 28, 8), (9, 19, 29),
]
_SHA512_ORDER = [
    (0, 21, 42), (22, 43, 1), (44, 2, 23), (3, 24, 45), (25, 46, 4), (47, 5, 26),
    (6, 27, 48), (28, 49, 7), (50, 8, 29), (9, 30, 51), (31, 52, 10), (53, 11, 32),
    (12, 33, 54), (34, 55, 13), (56, 14, 35), (15, 36, 57), (37, 58, 16), (59, 17, 38),
    (18, 39, 60), (40, 61, 19), (62, 20, 41),
]


def _repeat_to(block: bytes, length: int) -> bytes:
    return (block * (length // len(block) + 1))[:length]


def sha_crypt(password: bytes, setting: str) -> str:
    """SHA-256 (``$5$``) or SHA-512 (``$6$``) crypt for ``setting`` = ``$5$[rounds=N$]salt[$...]``."""
    magic = setting[:3]
    algorithm: Callable[..., Any] = hashlib.sha256 if magic == "$5$" else hashlib.sha512
    rest = setting[3:]
    rounds, explicit_rounds = 5000, False
    if rest.startswith("rounds="):
        number, _, rest = rest[7:].partition("$")
        if not number.isdigit():
            raise ValueError("invalid rounds")
        rounds, explicit_rounds = min(max(int(number), 1000), 999_999_999), True
    salt = rest.split("$", 1)[0][:16].encode("ascii")
    p = password

    b = algorithm(p + salt + p).digest()
    ctx = p + salt + _repeat_to(b, len(p))
    length = len(p)
    while length:
        ctx += b if length & 1 else p
        length >>= 1
    a = algorithm(ctx).digest()
    p_seq = _repeat_to(algorithm(p * len(p)).digest(), len(p))
    s_seq = _repeat_to(algorithm(salt * (16 + a[0])).digest(), len(salt))
    c = _stretch(algorithm, a, p_seq, s_seq, rounds)

    if magic == "$5$":
        encoded = _encode(c, _SHA256_ORDER) + _b64_from_24bit(0, c[31], c[30], 3)
    else:
        encoded = _encode(c, _SHA512_ORDER) + _b64_from_24bit(0, 0, c[63], 2)
    rounds_part = f"rounds={rounds}$" if explicit_rounds else ""
    return f"{magic}{rounds_part}{salt.decode()}${encoded}"


def _kind(pwhash: str) -> str | None:
    if pwhash.startswith("{SHA}"):
        return "sha1"
    if pwhash.startswith(_BCRYPT_PREFIXES):
        return "bcrypt"
    if pwhash.startswith(_MD5_PREFIXES):
        return "md5"
    if pwhash.startswith(_SHA_CRYPT_PREFIXES):
        return "sha-crypt"
    return None


def check_hash(password: str, pwhash: str) -> bool:
    """Whether ``password`` matches one htpasswd hash (False for unknown hash kinds)."""
    secret = password.encode("utf-8", "surrogateescape")
    kind = _kind(pwhash)
    try:
        if kind == "sha1":
            expected = base64.b64encode(hashlib.sha1(secret).digest()).decode()
            return hmac.compare_digest(pwhash[5:], expected)
        if kind == "bcrypt":
            import bcrypt

            # Apache's bcrypt only ever looks at the first 72 bytes; the bcrypt package refuses more.
            return bcrypt.checkpw(secret[:72], pwhash.encode("ascii"))
        if kind == "md5":
            magic, _, rest = pwhash[1:].partition("$")
            computed = md5_crypt(secret, rest.split("$", 1)[0].encode("ascii"), f"${magic}$".encode())
            return hmac.compare_digest(computed, pwhash)
        if kind == "sha-crypt":
            return hmac.compare_digest(sha_crypt(secret, pwhash), pwhash)
    except (ValueError, UnicodeError):  # a damaged hash matches nothing
        return False
    return False


class HtpasswdFile:
    """The users of one htpasswd file and their hashes."""

    def __init__(self, content: str) -> None:
        self.users: dict[str, str] = {}
        for number, raw in enumerate(content.splitlines(), 1):
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            user, sep, pwhash = line.partition(":")
            if not sep or not user:
                raise HtpasswdError(f"line {number}: expected user:hash")
            pwhash = pwhash.split(":", 1)[0]  # htdigest-style extra fields are ignored
            if _kind(pwhash) is None:
                raise HtpasswdError(
                    f"line {number}: unsupported hash for user {user!r} (use htpasswd -B, -m, -2, -5 or -s)"
                )
            if _kind(pwhash) == "bcrypt":
                _require_bcrypt()
            self.users[user] = pwhash

    @classmethod
    def from_file(cls, path: Path) -> HtpasswdFile:
        """Read ``path``; OSError if it cannot be read, HtpasswdError if it is malformed."""
        try:
            content = path.read_text("utf-8")
        except UnicodeDecodeError as e:
            raise HtpasswdError(f"not UTF-8 text ({e.reason} at byte {e.start})") from None
        return cls(content)

    def check_password(self, username: str, password: str) -> bool:
        pwhash = self.users.get(username)
        if pwhash is None:
            return False
        return check_hash(password, pwhash)


def _require_bcrypt() -> None:
    try:
        import bcrypt  # noqa: F401
    except ImportError:
        raise HtpasswdError("bcrypt entries need the 'bcrypt' package (pip install bcrypt)") from None
