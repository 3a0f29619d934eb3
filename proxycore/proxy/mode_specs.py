"""Proxy mode specifications: ``mode[:data][@[listen_host:]listen_port]``.

``ProxyMode.parse("reverse:https://example.com@127.0.0.1:8443")`` gives a
:class:`ReverseMode` with ``scheme == "https"``, ``address == ("example.com", 443)``
and a custom listen address.  Each mode is a small immutable value (usable as a
dict key); it validates its data when created and raises ``ValueError`` with
mitmproxy's wording, so option errors read the same as with mitmdump.

A client connection records the mode of the listener it came in on
(``client.proxy_mode``); layers read mode data (reverse target, upstream proxy)
from there.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from functools import cache
from typing import Any, ClassVar, Literal, TypeGuard, get_args

ServerScheme = Literal["http", "https", "http3", "tls", "dtls", "tcp", "udp", "dns", "quic"]
TransportProtocol = Literal["tcp", "udp", "both"]

SERVER_SCHEMES: tuple[ServerScheme, ...] = get_args(ServerScheme)
_DEFAULT_SERVER_PORTS = {"http": 80, "https": 443, "http3": 443, "quic": 443, "dns": 53}

_SERVER_SPEC = re.compile(
    r"^(?:(?P<scheme>\w+)://)?(?P<host>\[[^\]]+\]|[^:/]+)(?::(?P<port>\d+))?/?$"
)
_DNS_LABEL = re.compile(r"^[a-z0-9_-]{1,63}$", re.IGNORECASE)


def is_valid_host(host: str) -> bool:
    """A DNS name (underscores allowed, as in the wild) or an IPv4/IPv6 address."""
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        pass
    try:
        encoded = host.encode("idna")
    except UnicodeError:
        return False
    if not encoded or len(encoded) > 255:
        return False
    labels = encoded.decode("ascii").removesuffix(".").split(".")
    return all(_DNS_LABEL.match(label) for label in labels)


@cache
def parse_server_spec(spec: str, default_scheme: str) -> tuple[ServerScheme, tuple[str, int]]:
    """``[scheme://]host[:port][/]`` -> (scheme, (host, port)); ValueError if invalid."""
    match = _SERVER_SPEC.match(spec)
    if not match:
        raise ValueError(f"Invalid server specification: {spec}")
    scheme = match.group("scheme") or default_scheme
    if not _is_server_scheme(scheme):
        raise ValueError(f"Invalid server scheme: {scheme}")
    host = match.group("host")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    if not is_valid_host(host):
        raise ValueError(f"Invalid hostname: {host}")
    if match.group("port"):
        port = int(match.group("port"))
    elif scheme in _DEFAULT_SERVER_PORTS:
        port = _DEFAULT_SERVER_PORTS[scheme]
    else:
        raise ValueError("Port specification missing.")
    if not 0 <= port <= 65535:
        raise ValueError(f"Invalid port: {port}")
    return scheme, (host, port)


def _is_server_scheme(scheme: str) -> TypeGuard[ServerScheme]:
    return scheme in SERVER_SCHEMES


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class ProxyMode:
    """One parsed mode spec; subclasses validate ``data`` in ``__post_init__``."""

    full_spec: str
    """The spec exactly as the user wrote it."""
    data: str
    """The part after ``mode:`` (before ``@``), e.g. the reverse proxy target."""
    custom_listen_host: str | None
    custom_listen_port: int | None

    type_name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    default_port: ClassVar[int | None] = 8080
    transport_protocol: ClassVar[TransportProtocol] = "tcp"
    _registry: ClassVar[dict[str, type[ProxyMode]]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.type_name = cls.__name__.removesuffix("Mode").lower()
        ProxyMode._registry[cls.type_name] = cls

    def __post_init__(self) -> None:
        if self.data:
            raise ValueError("mode takes no arguments")

    @classmethod
    @cache
    def parse(cls, spec: str) -> ProxyMode:
        """Parse ``spec``; ValueError (mitmproxy's message) if it is not valid."""
        head, _, listen = spec.rpartition("@")
        if not head:
            head, listen = listen, ""
        name, _, data = head.partition(":")
        host: str | None = None
        port: int | None = None
        if listen:
            if ":" in listen:
                host, _, port_text = listen.rpartition(":")
            else:
                port_text = listen
            try:
                port = int(port_text)
            except ValueError:
                raise ValueError(f"invalid port: {port_text}") from None
            if not 0 <= port <= 65535:
                raise ValueError(f"invalid port: {port_text}")
        mode_cls = ProxyMode._registry.get(name.lower())
        if mode_cls is None:
            raise ValueError("unknown mode")
        if not issubclass(mode_cls, cls):
            raise ValueError(f"{name!r} is not a spec for a {cls.type_name} mode")
        return mode_cls(full_spec=spec, data=data, custom_listen_host=host, custom_listen_port=port)

    def listen_host(self, default: str | None = None) -> str:
        """Where to bind: the spec's host, else ``default`` (listen_host), else all interfaces."""
        if self.custom_listen_host is not None:
            return self.custom_listen_host
        return default or ""

    def listen_port(self, default: int | None = None) -> int | None:
        """The spec's port, else ``default`` (listen_port), else the mode's default port."""
        if self.custom_listen_port is not None:
            return self.custom_listen_port
        if default is not None:
            return default
        return self.default_port

    # Flows store the spec string; equality and hashing follow it, so a mode also
    # compares equal to its spec string (``client.proxy_mode == "regular"``).
    def __eq__(self, other: object) -> bool:
        if isinstance(other, ProxyMode):
            return self.full_spec == other.full_spec
        if isinstance(other, str):
            return self.full_spec == other
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.full_spec)

    def __repr__(self) -> str:
        return f"ProxyMode.parse({self.full_spec!r})"

    def get_state(self) -> str:
        return self.full_spec

    @classmethod
    def from_state(cls, state: str) -> ProxyMode:
        return ProxyMode.parse(state)


class RegularMode(ProxyMode):
    """Explicit HTTP(S) proxy: absolute-form requests and CONNECT."""

    description = "HTTP(S) proxy"


class TransparentMode(ProxyMode):
    """Connections redirected to us by the OS; the original destination comes from the socket."""

    description = "Transparent Proxy"


class UpstreamMode(ProxyMode):
    """Explicit proxy that sends everything on to another HTTP(S) proxy."""

    description = "HTTP(S) proxy (upstream mode)"
    scheme: Literal["http", "https"]
    address: tuple[str, int]

    def __post_init__(self) -> None:
        scheme, address = parse_server_spec(self.data, "http")
        if scheme not in ("http", "https"):
            raise ValueError("invalid upstream proxy scheme")
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "address", address)


class ReverseMode(ProxyMode):
    """Acts as the server itself and forwards everything to one fixed target."""

    scheme: ServerScheme
    address: tuple[str, int]

    def __post_init__(self) -> None:
        scheme, address = parse_server_spec(self.data, "https")
        object.__setattr__(self, "scheme", scheme)
        object.__setattr__(self, "address", address)

    @property
    def description(self) -> str:  # type: ignore[override]  # per instance here, a class constant elsewhere
        return f"reverse proxy to {self.data}"

    @property
    def default_port(self) -> int | None:  # type: ignore[override]  # as description
        return 53 if self.scheme == "dns" else 8080

    @property
    def transport_protocol(self) -> TransportProtocol:  # type: ignore[override]  # as description
        if self.scheme in ("http3", "dtls", "udp", "quic"):
            return "udp"
        if self.scheme in ("dns", "https"):
            return "both"
        return "tcp"


class Socks5Mode(ProxyMode):
    """SOCKS v5 proxy (RFC 1928), optionally with username/password authentication."""

    description = "SOCKS v5 proxy"
    default_port = 1080


class DnsMode(ProxyMode):
    description = "DNS server"
    default_port = 53
    transport_protocol = "both"


class WireGuardMode(ProxyMode):
    description = "WireGuard server"
    default_port = 51820
    transport_protocol = "udp"

    def __post_init__(self) -> None:
        pass  # data: the path of a WireGuard configuration file


class LocalMode(ProxyMode):
    description = "Local redirector"
    default_port = None
    transport_protocol = "both"

    def __post_init__(self) -> None:
        pass  # data: which processes to redirect


class TunMode(ProxyMode):
    description = "TUN interface"
    default_port = None
    transport_protocol = "both"

    def __post_init__(self) -> None:
        pass  # data: the interface name
