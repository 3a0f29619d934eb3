"""Checks on a request's head, made before Tornado reads its body or picks a handler.

* **Host**: a page on ``evil.example`` that rebinds its name to 127.0.0.1 can talk to
  the API from the victim's browser, but it cannot change the ``Host`` header.  So
  only the names the API is reached by are let in: localhost, the loopback
  addresses, the address it listens on and the ``web_allowed_hosts`` option.
* **Body size**: Tornado reads a whole body before any handler runs, so a 403 for a
  missing token would come after 90 MB were read.  Bodies larger than
  :data:`UNAUTHENTICATED_BODY_LIMIT` need credentials in the head (auth cookie,
  Bearer header or ``token`` argument), and none may exceed ``web_max_body_size``.

A refused request gets its answer at once, and the connection is closed without
reading the body (past what a lingering close discards).
"""

from __future__ import annotations

import asyncio
import logging
import socket
from collections.abc import Awaitable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import tornado.iostream
import tornado.web
from tornado import httputil

from proxycore.addons.tlsconfig import is_ip
from proxycore.api.auth import AUTH_COOKIE_VALUE
from proxycore.options import parse_size

logger = logging.getLogger("proxycore.web")

# Enough for the login form and every JSON edit the front end sends.
UNAUTHENTICATED_BODY_LIMIT = 64 * 1024
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
_WILDCARDS = ("", "0.0.0.0", "::")
# After refusing a body: how much of it to read and drop, so that the client sees the
# answer instead of a reset (a close with unread data sends RST).
_LINGER_BYTES = 1024 * 1024
_LINGER_SECONDS = 2.0


def host_name(header: str) -> str | None:
    """The name in a Host header (``[::1]:8081`` -> ``::1``), lower case; None if malformed."""
    try:
        parts = urlsplit(f"//{header.strip()}")
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:  # a bad port or bracket
        return None
    return parts.hostname or None


def host_allowed(name: str, web_host: str, listen_hosts: list[str], extra: list[str]) -> bool:
    if "*" in extra:
        return True
    if name in LOOPBACK_NAMES or name in (n.lower() for n in extra):
        return True
    if web_host.strip("[]").lower() in _WILDCARDS:
        # Every address of the machine is a listen address; an IP literal cannot be rebound.
        return is_ip(name) or name == socket.gethostname().lower()
    return name == web_host.strip("[]").lower() or name in listen_hosts


class Gate(httputil.HTTPMessageDelegate):
    """Wraps Tornado's routing delegate for one request: passes it on, or answers itself."""

    def __init__(self, app: Any, inner: httputil.HTTPMessageDelegate, conn: Any) -> None:
        self.app = app
        self.inner = inner
        self.conn = conn
        self.refused = False

    def headers_received(
        self,
        start_line: httputil.RequestStartLine | httputil.ResponseStartLine,
        headers: httputil.HTTPHeaders,
    ) -> Awaitable[None] | None:
        assert isinstance(start_line, httputil.RequestStartLine)
        problem = self.check(start_line, headers)
        if problem is not None:
            self.refused = True
            status, message = problem
            logger.warning(f"{status} {start_line.method} {start_line.path}: {message}")
            self.refuse(status, message)
            return None
        return self.inner.headers_received(start_line, headers)

    def check(self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> tuple[int, str] | None:
        options = self.app.master.options
        header = headers.get("Host", "")
        name = host_name(header)
        listen_hosts = [str(address[0]).lower() for address in self.app.listen_addresses]
        if name is None or not host_allowed(name, options.web_host, listen_hosts, options.web_allowed_hosts):
            return 403, (
                f"Host header {header!r} is not one this web interface is reached by "
                "(DNS rebinding protection). Behind a reverse proxy, add the name to the "
                "web_allowed_hosts option."
            )
        limit = parse_size(options.web_max_body_size) or 0
        length = _content_length(headers)
        chunked = "chunked" in headers.get("Transfer-Encoding", "").lower()
        if (chunked or (length or 0) > UNAUTHENTICATED_BODY_LIMIT) and not self.authenticated(start_line, headers):
            return 403, "Authentication required before sending a request body this large."
        if length is not None and length > limit:
            return 413, f"Request body too large: {length} bytes, web_max_body_size is {limit}."
        self.conn.set_max_body_size(limit)
        return None

    def authenticated(self, start_line: httputil.RequestStartLine, headers: httputil.HTTPHeaders) -> bool:
        """The AuthMixin's three ways, read from the head alone."""
        app = self.app
        cookies = httputil.parse_cookie(headers.get("Cookie", ""))
        cookie = cookies.get(app.auth_cookie_name())
        if cookie is not None:
            value = tornado.web.decode_signed_value(
                app.settings["cookie_secret"], app.auth_cookie_name(), cookie, min_version=2
            )
            if value == AUTH_COOKIE_VALUE:
                return True
        scheme, _, password = headers.get("Authorization", "").partition(" ")
        if scheme != "Bearer" or not password:
            tokens = parse_qs(urlsplit(start_line.path).query).get("token", [])
            password = tokens[0] if tokens else ""
        return bool(password) and app.auth.is_valid_password(password)

    def refuse(self, status: int, message: str) -> None:
        body = message.encode()
        head = (
            f"HTTP/1.1 {status} {httputil.responses.get(status, 'Error')}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode()
        stream = self.conn.detach()  # Tornado stops here: no body is read, no handler runs
        task = asyncio.get_running_loop().create_task(_answer_and_close(stream, head + body))
        self.app.background.add(task)
        task.add_done_callback(self.app.background.discard)

    def data_received(self, chunk: bytes) -> Awaitable[None] | None:
        return None if self.refused else self.inner.data_received(chunk)

    def finish(self) -> None:
        if not self.refused:
            self.inner.finish()

    def on_connection_close(self) -> None:
        if not self.refused:
            self.inner.on_connection_close()


def _content_length(headers: httputil.HTTPHeaders) -> int | None:
    try:
        return int(headers["Content-Length"])
    except (KeyError, ValueError):
        return None  # a bad value is Tornado's 400 to give


async def _answer_and_close(stream: tornado.iostream.IOStream, data: bytes) -> None:
    try:
        await stream.write(data)
        stream.socket.shutdown(socket.SHUT_WR)
        dropped = 0
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _LINGER_SECONDS
        while dropped < _LINGER_BYTES and loop.time() < deadline:
            chunk = await asyncio.wait_for(
                stream.read_bytes(65536, partial=True), deadline - loop.time()
            )
            dropped += len(chunk)
    except (tornado.iostream.StreamClosedError, OSError, TimeoutError):
        pass
    finally:
        stream.close()
