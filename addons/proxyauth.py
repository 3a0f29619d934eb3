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
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Awaitable, MutableMapping
from pathlib import Path
from typing import Any

from proxycore import ctx
from proxycore.connection import Client
from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow, Response, reason_phrase

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

    # Hooks answer at once when the check is cheap (any, user:pass, credentials an htpasswd
    # check proved right lately); only a real hash check is awaited, in a worker thread.
    # So mitmproxy's synchronous calls (``authenticate_http(flow)``) work as they do there.

    def socks5_auth(self, data: Any) -> Awaitable[None] | None:
        """SOCKS5 username/password sub-negotiation: set ``data.valid`` for good credentials."""
        validator = self.validator
        if validator is None:
            return None
        if not validator.quick(data.username, data.password):
            return self._socks5_later(data)
        self._socks5_verdict(data, validator(data.username, data.password))
        return None

    async def _socks5_later(self, data: Any) -> None:
        assert self.validator is not None
        self._socks5_verdict(data, await self.validator.check(data.username, data.password))

    def _socks5_verdict(self, data: Any, valid: bool) -> None:
        if valid:
            data.valid = True
            self.authenticated[data.client_conn] = (data.username, data.password)
        else:
            logger.warning(
                f"SOCKS5 authentication failed for user {data.username!r} "
                f"from {_peer(data.client_conn)}."
            )

    def http_connect(self, flow: HTTPFlow) -> Awaitable[bool] | None:
        if self.validator is None or not flow.live:
            return None
        return self._authenticate(flow, remember=True)

    def requestheaders(self, flow: HTTPFlow) -> Awaitable[bool] | None:
        if self.validator is None or not flow.live:
            return None  # flows read from a file never reach the network
        if flow.client_conn in self.authenticated:
            flow.metadata["proxyauth"] = self.authenticated[flow.client_conn]
            return None
        if flow.is_replay:
            return None
        return self._authenticate(flow, remember=False)

    def authenticate_http(self, flow: HTTPFlow) -> bool:
        """Check the flow's credentials: strip the header if they are good, else answer
        401/407. (Synchronous, as mitmproxy's; the hooks await slow checks instead.)"""
        assert self.validator is not None
        header, values, credentials = self._http_credentials(flow)
        valid = credentials is not None and self.validator(*credentials)
        return self._http_verdict(flow, header, values, credentials, valid)

    def _authenticate(self, flow: HTTPFlow, remember: bool) -> Awaitable[bool] | None:
        validator = self.validator
        assert validator is not None
        header, values, credentials = self._http_credentials(flow)
        if credentials is not None and not validator.quick(*credentials):
            return self._authenticate_later(flow, remember, header, values, credentials)
        valid = credentials is not None and validator(*credentials)
        if self._http_verdict(flow, header, values, credentials, valid) and remember:
            self.authenticated[flow.client_conn] = flow.metadata["proxyauth"]
        return None

    async def _authenticate_later(
        self, flow: HTTPFlow, remember: bool, header: str, values: list[str], credentials: tuple[str, str]
    ) -> bool:
        assert self.validator is not None
        valid = await self.validator.check(*credentials)
        ok = self._http_verdict(flow, header, values, credentials, valid)
        if ok and remember:
            self.authenticated[flow.client_conn] = flow.metadata["proxyauth"]
        return ok

    @staticmethod
    def _http_credentials(flow: HTTPFlow) -> tuple[str, list[str], tuple[str, str] | None]:
        header = http_auth_header(is_http_proxy(flow))
        values = flow.request.headers.get_all(header)
        credentials = parse_basic_auth(values[0]) if len(values) == 1 else None
        return header, values, credentials

    @staticmethod
    def _http_verdict(
        flow: HTTPFlow, header: str, values: list[str], credentials: tuple[str, str] | None, valid: bool
    ) -> bool:
        if credentials is not None and valid:
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
        flow.response = make_auth_required_response(header == "Proxy-Authorization")
        return False


class Validator:
    """Checks a username and password. ``check`` is what the proxy awaits."""

    def __call__(self, username: str, password: str) -> bool:
        raise NotImplementedError

    def quick(self, username: str, password: str) -> bool:
        """Whether calling the validator for these credentials is cheap enough to do on
        the event loop."""
        return True

    async def check(self, username: str, password: str) -> bool:
        if self.quick(username, password):
            return self(username, password)
        return await asyncio.to_thread(self, username, password)


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
        import hmac  # hashlib and OpenSSL's digests: only once a client sends credentials

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
        from proxycore.utils.htpasswd import HtpasswdError, HtpasswdFile

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

    def quick(self, username: str, password: str) -> bool:
        return (username, password) in self._verified

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


class Ldap(Validator):
    """Users of an LDAP directory:
    ``ldap[s]:host[:port]:bind-dn:bind-password:subtree[?search_filter_key=attribute]``.

    The proxy binds as ``bind-dn``, looks the user up under ``subtree`` by ``attribute``
    (``cn`` unless given), then binds as the entry found with the password the client
    sent. Every check is a network round trip, so it runs in a worker thread. Needs the
    ldap3 package (``pip install 'proxycore[ldap]'``).
    """

    def __init__(self, spec: str) -> None:
        parts = spec.split(":")
        invalid = OptionsError(
            f"Invalid LDAP specification {spec!r}: expected "
            "ldap[s]:host[:port]:bind-dn:bind-password:subtree[?search_filter_key=attribute]."
        )
        if parts[0] not in ("ldap", "ldaps") or len(parts) not in (5, 6):
            raise invalid
        port: int | None = None
        if len(parts) == 6:
            if not parts[2].isdigit():
                raise invalid
            port = int(parts.pop(2))
        scheme, host, bind_dn, bind_password, subtree = parts
        subtree, _, query = subtree.partition("?")
        self.filter_key = "cn"
        if query:
            name, _, value = query.partition("=")
            if name != "search_filter_key" or not value:
                raise invalid
            self.filter_key = value
        if not host or not bind_dn or not subtree:
            raise invalid
        try:
            import ldap3
        except ImportError:
            raise OptionsError("LDAP proxy authentication needs the ldap3 package (pip install ldap3).") from None
        self.ldap3 = ldap3
        self.subtree = subtree
        self.lock = threading.Lock()  # one bound connection, used by one check at a time
        try:
            self.server = ldap3.Server(host, port=port, use_ssl=scheme == "ldaps")
            self.conn = ldap3.Connection(self.server, bind_dn, bind_password, auto_bind=True)
        except Exception as e:  # ldap3 raises many kinds (socket, bind, TLS)
            raise OptionsError(f"Cannot bind to the LDAP server {host}: {e}") from None

    def make_search_filter(self, username: str) -> str:
        """The search filter for ``username``, its special characters escaped (RFC 4515)."""
        escaped = "".join(f"\\{ord(c):02x}" if c in "\\*()\0" else c for c in username)
        return f"({self.filter_key}={escaped})"

    def quick(self, username: str, password: str) -> bool:
        return not username or not password  # only a refusal is decided without the server

    def __call__(self, username: str, password: str) -> bool:
        if not username or not password:
            return False  # an empty password would be an anonymous bind: always "valid"
        with self.lock:
            self.conn.search(self.subtree, self.make_search_filter(username))
            found = self.conn.response
            if not found:
                return False
            user_dn = found[0]["dn"]
        try:
            return bool(self.ldap3.Connection(self.server, user_dn, password, auto_bind=True))
        except Exception as e:  # a wrong password is a bind error
            logger.debug(f"LDAP bind as {user_dn!r} failed: {e}")
            return False


def make_validator(spec: str | None) -> Validator | None:
    """The credential check for a ``proxyauth`` value; OptionsError if it cannot be used."""
    if not spec:
        return None
    if spec == "any":
        return AcceptAll()
    if spec.startswith("@"):
        return Htpasswd(spec[1:])
    if spec.startswith("ldap"):  # (as in mitmproxy, a user name starting with "ldap" is taken for LDAP)
        return Ldap(spec)
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
