"""URL pieces: parse/unparse, query encoding, default ports (``mitmproxy.net.http.url``)."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Sequence
from typing import Any, AnyStr

_DEFAULT_PORTS: dict[Any, int] = {"http": 80, b"http": 80, "https": 443, b"https": 443}
_AUTHORITY = re.compile(r"^(?P<host>[^:]+|\[.+\])(?::(?P<port>\d+))?$")


def default_port(scheme: AnyStr) -> int | None:
    return _DEFAULT_PORTS.get(scheme)


def hostport(scheme: AnyStr, host: AnyStr, port: int) -> AnyStr:
    """``host`` alone on the scheme's default port, else ``host:port``."""
    if default_port(scheme) == port:
        return host
    if isinstance(host, bytes):
        return b"%s:%d" % (host, port)
    return f"{host}:{port}"


def parse(url: str | bytes) -> tuple[bytes, bytes, int, bytes]:
    """(scheme, host, port, path) of an absolute http(s) URL; ValueError if it is not one."""
    raw = url.encode("ascii", "surrogateescape") if isinstance(url, str) else url
    parts = urllib.parse.urlparse(raw)
    if not parts.hostname:
        raise ValueError("No hostname given")
    scheme = parts.scheme
    try:
        host = parts.hostname.decode("ascii").encode("idna")
    except (UnicodeError, ValueError):
        raise ValueError("Invalid hostname") from None
    try:
        port = parts.port
    except ValueError:
        raise ValueError("Invalid port") from None
    if port is None:
        port = default_port(scheme)
        if port is None:
            raise ValueError(f"Unknown scheme: {scheme!r}")
    if not 0 < port < 65536:
        raise ValueError("Invalid port")
    path = urllib.parse.urlunparse((b"", b"", *parts[2:])) or b"/"
    return scheme, host, port, path


def unparse(scheme: AnyStr, host: AnyStr, port: int, path: AnyStr) -> AnyStr:
    authority = hostport(scheme, host, port)
    if isinstance(scheme, str):
        return f"{scheme}://{authority}{path}"
    return b"%s://%s%s" % (scheme, authority, path)


def encode(s: Sequence[tuple[str, str]], similar_to: str | None = None) -> str:
    """A query string of the pairs; keys without "=" stay so if ``similar_to`` had such keys."""
    encoded = urllib.parse.urlencode(s, False, errors="surrogateescape")
    if encoded and similar_to and any("=" not in p for p in similar_to.split("&")):
        encoded = encoded.replace("=&", "&")
        if encoded.endswith("="):
            encoded = encoded[:-1]
    return encoded


def decode(s: str) -> list[tuple[str, str]]:
    return urllib.parse.parse_qsl(s, keep_blank_values=True, errors="surrogateescape")


def quote(b: str, safe: str = "/") -> str:
    return urllib.parse.quote(b, safe=safe, errors="surrogateescape")


def unquote(s: str) -> str:
    return urllib.parse.unquote(s, errors="surrogateescape")


def parse_authority(authority: AnyStr, check: bool) -> tuple[str, int | None]:
    """(host, port or None) of a Host header / authority; ValueError when malformed and ``check``."""
    text = authority.decode("utf-8", "surrogateescape") if isinstance(authority, bytes) else authority
    m = _AUTHORITY.match(text)
    try:
        if not m:
            raise ValueError(f"Invalid authority: {text!r}")
        host = m.group("host")
        if isinstance(authority, bytes):
            host = host.encode("utf-8").decode("idna")
        if host.startswith("[") and host.endswith("]"):
            host = host[1:-1]
        port = int(m.group("port")) if m.group("port") else None
        if port is not None and not 0 < port < 65536:
            raise ValueError(f"Invalid port: {port}")
        return host, port
    except (ValueError, UnicodeError):
        if check:
            raise ValueError(f"Invalid authority: {text!r}") from None
        return text, None
