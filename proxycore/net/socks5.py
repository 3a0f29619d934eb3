"""SOCKS v5 wire format, server side (RFC 1928, username/password auth from RFC 1929).

Pure functions over a byte buffer: each ``parse_*`` returns ``None`` while the
message is incomplete, or ``(message, bytes consumed)``; a message that can
never become valid raises :class:`Socks5Error` (with the reply code to send, if
any).  Nothing else is ever raised, whatever the input.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

VERSION = 0x05
AUTH_VERSION = 0x01  # version of the username/password subnegotiation

METHOD_NO_AUTHENTICATION_REQUIRED = 0x00
METHOD_USER_PASSWORD = 0x02
METHOD_NO_ACCEPTABLE_METHODS = 0xFF

CMD_CONNECT = 0x01
CMD_BIND = 0x02
CMD_UDP_ASSOCIATE = 0x03

ATYP_IPV4 = 0x01
ATYP_DOMAINNAME = 0x03
ATYP_IPV6 = 0x04

REP_SUCCEEDED = 0x00
REP_GENERAL_FAILURE = 0x01
REP_NETWORK_UNREACHABLE = 0x03
REP_HOST_UNREACHABLE = 0x04
REP_CONNECTION_REFUSED = 0x05
REP_COMMAND_NOT_SUPPORTED = 0x07
REP_ADDRESS_TYPE_NOT_SUPPORTED = 0x08

AUTH_SUCCEEDED = b"\x01\x00"
AUTH_FAILED = b"\x01\x01"


class Socks5Error(ValueError):
    """The client sent something we cannot serve; ``reply_code`` is what to answer (None: just close)."""

    def __init__(self, message: str, reply_code: int | None = None) -> None:
        super().__init__(message)
        self.reply_code = reply_code


@dataclass(frozen=True)
class Greeting:
    """The client's version/method selection message."""

    methods: bytes


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str


@dataclass(frozen=True)
class ConnectRequest:
    """A CONNECT request; ``host`` is an IP address or a domain name."""

    host: str
    port: int


def parse_greeting(buf: bytes) -> tuple[Greeting, int] | None:
    if len(buf) < 2:
        return None
    if buf[0] != VERSION:
        guess = ""
        if buf[:3].isupper():
            guess = "Probably not a SOCKS request but a regular HTTP request. "
        raise Socks5Error(f"{guess}Invalid SOCKS version. Expected 0x05, got 0x{buf[0]:x}")
    end = 2 + buf[1]
    if len(buf) < end:
        return None
    return Greeting(bytes(buf[2:end])), end


def parse_credentials(buf: bytes) -> tuple[Credentials, int] | None:
    """Username/password subnegotiation. Its version byte must be 0x01 (RFC 1929);
    mitmproxy does not check it."""
    if buf and buf[0] != AUTH_VERSION:
        raise Socks5Error(f"Invalid SOCKS5 username/password version. Expected 0x01, got 0x{buf[0]:x}")
    if len(buf) < 2:
        return None
    user_end = 2 + buf[1]
    if len(buf) < user_end + 1:
        return None
    end = user_end + 1 + buf[user_end]
    if len(buf) < end:
        return None
    username = bytes(buf[2:user_end]).decode("utf-8", "backslashreplace")
    password = bytes(buf[user_end + 1 : end]).decode("utf-8", "backslashreplace")
    return Credentials(username, password), end


def parse_request(buf: bytes) -> tuple[ConnectRequest, int] | None:
    if len(buf) < 4:
        return None
    if buf[0] != VERSION or buf[1] != CMD_CONNECT or buf[2] != 0x00:
        raise Socks5Error(f"Unsupported SOCKS5 request: {bytes(buf)!r}", REP_COMMAND_NOT_SUPPORTED)
    atyp = buf[3]
    if atyp == ATYP_IPV4:
        addr_end = 4 + 4
    elif atyp == ATYP_IPV6:
        addr_end = 4 + 16
    elif atyp == ATYP_DOMAINNAME:
        if len(buf) < 5:
            return None
        addr_end = 5 + buf[4]
    else:
        raise Socks5Error(f"Unknown address type: {atyp}", REP_ADDRESS_TYPE_NOT_SUPPORTED)
    end = addr_end + 2
    if len(buf) < end:
        return None
    raw = bytes(buf[4:addr_end])
    if atyp == ATYP_IPV4:
        host = str(ipaddress.IPv4Address(raw))
    elif atyp == ATYP_IPV6:
        host = str(ipaddress.IPv6Address(raw))
    else:
        host = raw[1:].decode("ascii", "replace")
        if not host:
            raise Socks5Error("Invalid SOCKS5 request: empty domain name", REP_GENERAL_FAILURE)
    port = int.from_bytes(buf[addr_end:end], "big")
    return ConnectRequest(host, port), end


def method_selection(method: int) -> bytes:
    return bytes([VERSION, method])


def reply(code: int) -> bytes:
    """A reply with an all-zero IPv4 bind address (clients do not use it for CONNECT)."""
    return bytes([VERSION, code, 0x00, ATYP_IPV4]) + bytes(6)


def reply_code_for(error: str) -> int:
    """The reply code for a failed upstream connection, from the driver's error text."""
    text = error.lower()
    if "refused" in text:
        return REP_CONNECTION_REFUSED
    if "network is unreachable" in text:
        return REP_NETWORK_UNREACHABLE
    return REP_HOST_UNREACHABLE
