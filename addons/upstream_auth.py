"""HTTP Basic credentials toward what is upstream of us (option ``upstream_auth``, "user:pass").

- upstream mode: ``Proxy-Authorization`` on the CONNECT we send to the upstream
  proxy, and on plain HTTP requests forwarded to it (requests inside a CONNECT
  tunnel go to the origin and get nothing);
- reverse mode: ``Authorization`` on every request to the target.
"""

from __future__ import annotations

import base64

from proxycore.exceptions import OptionsError
from proxycore.http import HTTPFlow
from proxycore.proxy.mode_specs import ReverseMode, UpstreamMode


def parse_upstream_auth(auth: str) -> bytes:
    """``user:pass`` -> the Basic credentials header value; OptionsError without a ``user:``."""
    name, sep, _ = auth.partition(":")
    if not sep or not name:
        raise OptionsError(f"Invalid upstream auth specification: {auth}")
    return b"Basic " + base64.b64encode(auth.encode("utf-8", "surrogateescape"))


class UpstreamAuth:
    @property
    def hooks_active(self) -> bool:
        """Only with ``upstream_auth`` set."""
        return self.auth is not None

    def __init__(self) -> None:
        self.auth: bytes | None = None

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        if "upstream_auth" in updated:
            value = ctx.options.upstream_auth
            self.auth = None if value is None else parse_upstream_auth(value)

    def http_connect_upstream(self, flow: HTTPFlow) -> None:
        if self.auth:
            flow.request.headers["Proxy-Authorization"] = self.auth

    def requestheaders(self, flow: HTTPFlow) -> None:
        if not self.auth:
            return
        mode = flow.client_conn.proxy_mode
        if isinstance(mode, UpstreamMode) and flow.request.scheme == "http" and not _in_tunnel(flow):
            flow.request.headers["Proxy-Authorization"] = self.auth
        elif isinstance(mode, ReverseMode):
            flow.request.headers["Authorization"] = self.auth


def _in_tunnel(flow: HTTPFlow) -> bool:
    """A request inside a client's CONNECT tunnel is for the origin, not the upstream proxy."""
    server = flow.server_conn
    return server.address is not None and server.via is not None
