"""Proxy authentication (option ``proxyauth``): HTTP Basic for HTTP proxies, username and
password for SOCKS5, WWW-Authenticate for reverse proxies.

Once a client connection has authenticated a CONNECT (or a SOCKS5 handshake), the
requests inside that tunnel are not asked again; plain HTTP requests through the proxy
carry credentials on every request, as clients do.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hmac
import logging
import weakref
from collections import OrderedDict
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

from proxycore import ctx
from proxycore.connection import Client
from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow, Response, reason_phrase
from proxycore.utils.htpasswd import HtpasswdError, HtpasswdFile

logger = logging.getLogger("proxycore.proxyauth")

REALM = "mitmproxy"  # what mitmproxy announces; clients may have remembered credentials for it

class ProxyAuth:
    @property
    def hooks_active(self) -> bool:
        """Only with ``proxyauth`` set."""
        return self.validator is not None

    def __init__(self) -> None:
        self.validator: Validator | None = None
        # Client connections authenticated by a CONNECT or a SOCKS5 handshake: the requests
        # inside their tunnels are not challenged again.
        self.authenticated: MutableMapping[Client, tuple[str, str]] = weakref.WeakKeyDictionary()

    def configure(self, updated: set[str]) -> None:
        if "proxyauth" in updated:
            self.validator = make_validator(ctx.options.proxyauth)

    async def socks5_auth(self, data: Any) -> None:
        """SOCKS5 username/password sub-negotiation: set ``data.valid`` for good credentials."""
        validator = self.validator
        if validator is None:
            return
        if await validator.check(data.username, data.password):
            data.valid = True
            self.authenticated[data.client_conn] = (data.username, data.password)
        else:
            logger.warning(
                f"SOCKS5 authentication failed for user {data.username!r} "
                f"from {_peer(data.client_conn)}."
            )

    async def http_connect(self, flow: HTTPFlow) -> None:
        if self.validator is not None and flow.live and await self.authenticate_http(flow):
            self.authenticated[flow.client_conn] = flow.metadata["proxyauth"]

    async def requestheaders(self, flow: HTTPFlow) -> None:
        if self.validator is None or not flow.live:
            return  # flows read from a file never reach the network
        if flow.client_conn in self.authenticated:
            flow.metadata["proxyauth"] = self.authenticated[flow.client_conn]
        elif not flow.is_replay:
            await self.authenticate_http(flow)

    async def authenticate_http(self, flow: HTTPFlow) -> bool:
        """Check the flow's credentials: strip the header if they are good, else answer 401/407."""
        validator = self.validator
        assert validator is not None
        is_proxy = is_http_proxy(flow)
        header = "Proxy-Authorization" if is_proxy else "Authorization"
        values = flow.request.headers.get_all(header)
        credentials = parse_basic_auth(values[0]) if len(values) == 1 else None
        if credentials is not None and await validator.check(*credentials):
            flow.metadata["proxyauth"] = credentials
            del flow.request.headers[header]
            return True
        if not values:
            logger.debug(f"No {header} header from {_peer(flow.client_conn)}.")
        elif credentials is None:
            logger.warning(f"Malformed {header} header from {_peer(flow.client_conn)}.")
        else:
            logger.warning(
                f"Authentication failed for user {credentials[0]!r} from {_peer(flow.client_conn)}."
            )
        flow.response = make_auth_required_response(is_proxy)
        return False


class Validator:
    """Checks a username and password. ``check`` is what the proxy awaits."""

    def __call__(self, username: str, password: str) -> bool:
        raise NotImplementedError

    async def check(self, username: str, password: str) -> bool:
        return self(username, password)


class AcceptAll(Validator):
    def __call__(self, username: str, password: str) -> bool:
        return True


class SingleUser(Validator):
    def __init__(self, spec: str) -> None:
        username, _, _ = spec.partition(":")
        if not username:
            raise OptionsError("Invalid single-user auth specification: the username is empty.")
        self.username = username
        self._expected = spec.encode("utf-8", "surrogateescape")

    def __call__(self, username: str, password: str) -> bool:
        given = f"{username}:{password}".encode("utf-8", "surrogateescape")
        return username == self.username and hmac.compare_digest(given, self._expected)


class Htpasswd(Validator):
    """Users of an htpasswd file.

    Password hashes are made to be slow (bcrypt at cost 12 takes a third of a second), so
    ``check`` hashes in a worker thread, never stalling other connections, and remembers the
    last credentials that were right: a client sending them with every request pays once.
    """

    REMEMBERED = 256

    def __init__(self, path_text: str) -> None:
        path = Path(path_text).expanduser()
        try:
            self.htpasswd = HtpasswdFile.from_file(path)
        except OSError as e:
            raise OptionsError(f"Could not open htpasswd file: {path} ({e.strerror or e})") from None
        except HtpasswdError as e:
            raise OptionsError(f"Invalid htpasswd file {path}: {e}") from None
        self._verified: OrderedDict[tuple[str, str], None] = OrderedDict()

    def __call__(self, username: str, password: str) -> bool:
        return self._remembered(username, password) or self._remember(
            username, password, self.htpasswd.check_password(username, password)
        )

    async def check(self, username: str, password: str) -> bool:
        if self._remembered(username, password):
            return True
        valid = await asyncio.to_thread(self.htpasswd.check_password, username, password)
        return self._remember(username, password, valid)

    def _remembered(self, username: str, password: str) -> bool:
        key = (username, password)
        if key in self._verified:
            self._verified.move_to_end(key)
            return True
        return False

    def _remember(self, username: str, password: str, valid: bool) -> bool:
        if valid:
            self._verified[(username, password)] = None
            while len(self._verified) > self.REMEMBERED:
                self._verified.popitem(last=False)
        return valid


def make_validator(spec: str | None) -> Validator | None:
    """The credential check for a ``proxyauth`` value; OptionsError if it cannot be used."""
    if not spec:
        return None
    if spec == "any":
        return AcceptAll()
    if spec.startswith("@"):
        return Htpasswd(spec[1:])
    if spec.startswith(("ldap:", "ldaps:")):
        raise OptionsError("LDAP proxy authentication (proxyauth=ldap:...) is not supported.")
    if ":" in spec:
        return SingleUser(spec)
    raise OptionsError(
        f"Invalid proxyauth specification {spec!r}: expected user:pass, any or @path/to/htpasswd."
    )


def parse_basic_auth(value: str) -> tuple[str, str] | None:
    """(username, password) from ``Basic base64(user:pass)``, or None if that is not what it is."""
    parts = value.split()
    if len(parts) != 2 or parts[0].lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(parts[1], validate=True)
    except (binascii.Error, ValueError):
        return None
    try:
        text = decoded.decode("utf-8")
    except UnicodeDecodeError:
        text = decoded.decode("latin-1")  # what older clients send
    username, sep, password = text.partition(":")
    if not sep:
        return None
    return username, password


def make_basic_auth(username: str, password: str) -> str:
    """The header value a client sends for these credentials."""
    return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode("ascii")


def http_auth_header(is_proxy: bool) -> str:
    """The request header that carries credentials: to a proxy, or to a web server."""
    return "Proxy-Authorization" if is_proxy else "Authorization"


def mkauth(username: str, password: str, scheme: str = "basic") -> str:
    """An Authorization value for these credentials, as mitmproxy's helper writes it
    (with its trailing newline; ``make_basic_auth`` is the header-ready form)."""
    return f"{scheme} {base64.b64encode(f'{username}:{password}'.encode()).decode('ascii')}\n"


def parse_http_basic_auth(s: str) -> tuple[str, str, str]:
    """(scheme, username, password) of a Basic credentials value; ValueError if it is not one."""
    parsed = parse_basic_auth(s)
    if parsed is None:
        raise ValueError(f"Invalid basic auth credential: {s!r}")
    return s.split()[0], *parsed


def is_http_proxy(flow: HTTPFlow) -> bool:
    """True if the client talks to us as to a proxy (407), False as to a web server (401)."""
    return proxy_mode_name(flow.client_conn.proxy_mode) in ("regular", "upstream")


def proxy_mode_name(mode: Any) -> str:
    """``regular`` for "regular@8080", "reverse" for "reverse:http://...", and mode objects' type."""
    name = getattr(mode, "type_name", None)
    if isinstance(name, str):
        return name
    return str(mode).split("@", 1)[0].split(":", 1)[0]


def make_auth_required_response(is_proxy: bool) -> Response:
    if is_proxy:
        status, header = 407, "Proxy-Authenticate"
    else:
        status, header = 401, "WWW-Authenticate"
    title = f"{status} {reason_phrase(status)}"
    body = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return Response.make(status, body, {header: f'Basic realm="{REALM}"'})


def _peer(client: Any) -> str:
    peer = getattr(client, "peername", None)
    return f"{peer[0]}:{peer[1]}" if peer else "unknown client"
