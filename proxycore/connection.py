"""Client and server connection objects shared by layers, flows and the driver.

Layers only read and write these attributes; the driver is the one that turns
them into sockets.  Equality is by ``id`` so a connection can be used as a key
and survives copies made by get_state/set_state.
"""

from __future__ import annotations

import dataclasses
import enum
import time
from dataclasses import dataclass, field
from operator import attrgetter, is_
from typing import Any, ClassVar, TypeVar

from proxycore.proxy.mode_specs import ProxyMode
from proxycore.utils.ids import new_id

Address = tuple[str, int]


class ConnectionState(enum.Flag):
    """Which directions of a connection are still usable."""

    CLOSED = 0
    CAN_READ = 1
    CAN_WRITE = 2
    OPEN = CAN_READ | CAN_WRITE


class TransportProtocol(enum.StrEnum):
    TCP = "tcp"
    UDP = "udp"


@dataclass(eq=False, repr=False, kw_only=True)
class Connection:
    """Fields common to both ends of a proxied connection (mitmproxy's names)."""

    peername: Address | None = None
    sockname: Address | None = None
    state: ConnectionState = ConnectionState.CLOSED
    transport_protocol: TransportProtocol = TransportProtocol.TCP
    error: str | None = None
    tls: bool = False
    certificate_list: list[Any] = field(default_factory=list)
    alpn: bytes | None = None
    alpn_offers: list[bytes] = field(default_factory=list)
    cipher: str | None = None
    cipher_list: list[str] = field(default_factory=list)
    tls_version: str | None = None
    sni: str | None = None
    timestamp_start: float | None = None
    timestamp_end: float | None = None
    timestamp_tls_setup: float | None = None
    id: str = field(default_factory=new_id)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Connection) and self.id == other.id

    def __hash__(self) -> int:
        return hash(self.id)

    @property
    def connected(self) -> bool:
        return self.state is ConnectionState.OPEN

    @property
    def tls_established(self) -> bool:
        return self.timestamp_tls_setup is not None

    #: The attributes (besides the lists) that get_state() reads, as one C call (state_key).
    _key_values: ClassVar[attrgetter[tuple[Any, ...]]]

    def state_key(self) -> tuple[Any, ...] | None:
        """The objects get_state() is made from, but the id. While a connection's key holds
        the same objects (by identity) as an earlier key for which ``frozen_key`` was true,
        its get_state() is the same: a flow writer keeps the frame of the state by id and
        key (proxycore/io/io.py) instead of making and comparing the state for every flow.
        None for a connection with a certificate, an object that can change (its key would
        never be ``frozen_key``: no use making it)."""
        if self.certificate_list or getattr(self, "mitmcert", None) is not None:
            return None
        key = self._key_values(self)
        if self.alpn_offers or self.cipher_list:
            # (each list's items after a separator: [a], [] and [], [a] differ)
            key += (_END, *self.alpn_offers, _END, *self.cipher_list)
        return key

    def _state_common(self) -> dict[str, Any]:
        certificates = self.certificate_list
        return {
            "peername": self.peername,
            "sockname": self.sockname,
            "id": self.id,
            "transport_protocol": str(self.transport_protocol),
            "error": self.error,
            "tls": self.tls,
            # (no comprehension, a function call in 3.11, for the usual empty list)
            "certificate_list": [_cert_state(c) for c in certificates] if certificates else [],
            "alpn": self.alpn,
            "alpn_offers": list(self.alpn_offers),
            "cipher": self.cipher,
            "cipher_list": list(self.cipher_list),
            "tls_version": self.tls_version,
            "sni": self.sni,
            "timestamp_start": self.timestamp_start,
            "timestamp_end": self.timestamp_end,
            "timestamp_tls_setup": self.timestamp_tls_setup,
        }

    def _set_state_common(self, state: dict[str, Any]) -> None:
        self.id = state["id"]
        self.peername = _address(state.get("peername"))
        self.sockname = _address(state.get("sockname"))
        self.error = state.get("error")
        self.alpn = state.get("alpn")
        self.alpn_offers = list(state.get("alpn_offers") or [])
        self.cipher = state.get("cipher")
        self.cipher_list = list(state.get("cipher_list") or [])
        self.tls_version = state.get("tls_version")
        self.sni = state.get("sni")
        self.timestamp_start = state.get("timestamp_start")
        self.timestamp_end = state.get("timestamp_end")
        self.timestamp_tls_setup = state.get("timestamp_tls_setup")
        protocol = state.get("transport_protocol") or "tcp"
        self.transport_protocol = _PROTOCOLS.get(protocol) or TransportProtocol(protocol)
        self.tls = bool(state.get("tls"))
        certificates = state.get("certificate_list")
        self.certificate_list = [_cert_from_state(c) for c in certificates] if certificates else []

    def __repr__(self) -> str:
        name = type(self).__name__
        return f"{name}({self._describe()}, state={self.state.name or 'CLOSED'})"

    def _describe(self) -> str:  # pragma: no cover - overridden
        return self.id


_COMMON_KEY = (
    "peername", "sockname", "transport_protocol", "error", "tls", "alpn", "cipher",
    "tls_version", "sni", "timestamp_start", "timestamp_end", "timestamp_tls_setup",
)  # fmt: skip
_END = object()  # ends each list's items in a state key
_PROTOCOLS = {p.value: p for p in TransportProtocol}  # (a dict lookup costs less than the enum call)
_PLAIN = frozenset({type(None), bool, int, float, str, bytes})


def same_objects(kept: tuple[Any, ...], key: tuple[Any, ...]) -> bool:
    """Whether a ``state_key`` holds the very objects of one kept earlier (identity, not
    equality: 1, True and 1.0 are equal and give different states)."""
    return len(kept) == len(key) and all(map(is_, kept, key))


def frozen_key(key: tuple[Any, ...]) -> bool:
    """Whether the objects of a ``state_key`` cannot change: plain values, tuples of them and
    transport protocols (so the same objects give the same state; a certificate, a list in
    place of a tuple or any other object can, and is not trusted)."""
    for value in key:
        kind = type(value)
        if kind in _PLAIN or value is _END or kind is TransportProtocol:
            continue
        if kind is not tuple or not frozen_key(value):
            return False
    return True


def _address(value: Any) -> Address | None:
    if value is None:
        return None
    # IPv6 peernames may carry (host, port, flowinfo, scope_id); keep them all.
    return tuple(value)


def _cert_state(cert: Any) -> Any:
    """Certificates are stored as PEM bytes (proxycore.certs.Cert in memory)."""
    return cert.to_pem() if hasattr(cert, "to_pem") else cert


def _cert_from_state(value: Any) -> Any:
    if isinstance(value, bytes):
        from proxycore.certs import Cert

        return Cert.from_pem(value)
    return value


@dataclass(eq=False, repr=False, kw_only=True)
class Client(Connection):
    """The connection from the proxy's user (browser, curl…) to the proxy."""

    proxy_mode: ProxyMode = dataclasses.field(default_factory=lambda: ProxyMode.parse("regular"))
    """The mode of the listener this client connected to (a spec string is parsed)."""
    mitmcert: Any = None

    def __post_init__(self) -> None:
        if self.timestamp_start is None:
            self.timestamp_start = time.time()
        if isinstance(self.proxy_mode, str):
            self.proxy_mode = ProxyMode.parse(self.proxy_mode)

    def _describe(self) -> str:
        return f"peer={self.peername}"

    @property
    def address(self) -> Address | None:
        """mitmproxy's older name for ``peername``, still used by scripts."""
        return self.peername

    @address.setter
    def address(self, value: Address | None) -> None:
        self.peername = value

    _key_values = attrgetter(*_COMMON_KEY, "mitmcert", "proxy_mode.full_spec")

    def get_state(self) -> dict[str, Any]:
        state = self._state_common()
        state["mitmcert"] = _cert_state(self.mitmcert)
        state["proxy_mode"] = self.proxy_mode.full_spec
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self._set_state_common(state)
        self.proxy_mode = ProxyMode.from_state(state.get("proxy_mode") or "regular")
        self.mitmcert = _cert_from_state(state.get("mitmcert"))

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Client:
        return _from_state(cls, state)


@dataclass(eq=False, repr=False, kw_only=True)
class Server(Connection):
    """The connection from the proxy to the upstream server (or upstream proxy)."""

    address: Address | None = None
    via: Any = None
    timestamp_tcp_setup: float | None = None

    def _describe(self) -> str:
        return f"address={self.address}"

    _key_values = attrgetter(*_COMMON_KEY, "address", "timestamp_tcp_setup", "via")

    def get_state(self) -> dict[str, Any]:
        state = self._state_common()
        state["address"] = self.address
        state["timestamp_tcp_setup"] = self.timestamp_tcp_setup
        state["via"] = self.via
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        self._set_state_common(state)
        self.address = _address(state.get("address"))
        self.timestamp_tcp_setup = state.get("timestamp_tcp_setup")
        self.via = state.get("via")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Server:
        return _from_state(cls, state)


_C = TypeVar("_C", Client, Server)


def _from_state(cls: type[_C], state: dict[str, Any]) -> _C:
    """A connection made from its state without ``__init__``: set_state sets every field
    but ``state`` (the defaults' new id, proxy mode and clock reading were thrown away)."""
    if cls.__init__ is not _INITS.get(cls):  # a subclass with its own: let it run
        connection = cls()
    else:
        connection = object.__new__(cls)
        connection.state = ConnectionState.CLOSED
    connection.set_state(state)
    return connection


_INITS: dict[type, Any] = {Client: Client.__init__, Server: Server.__init__}
