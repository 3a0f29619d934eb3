"""Reverse proxy: point a response's Alt-Svc header at our own port, so that clients that
follow it stay with the proxy (unless ``keep_alt_svc_header``)."""

from __future__ import annotations

import re
from typing import Any

from proxycore.http import HTTPFlow
from proxycore.proxy.mode_specs import ReverseMode

# An alternative's authority: optional host, then a port.
_AUTHORITY = re.compile(r"[a-zA-Z0-9.-]*:\d{1,5}")


def update_alt_svc_header(header: str, port: int) -> str:
    """Every ``host:port`` in ``header`` becomes ``:port`` (same host, our port)."""
    return _AUTHORITY.sub(f":{port}", header)


class UpdateAltSvc:
    def __init__(self) -> None:
        self.active = False

    @property
    def hooks_active(self) -> bool:
        """Only with a reverse proxy listener and the header not kept: no cost otherwise."""
        return self.active

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        if updated & {"mode", "keep_alt_svc_header"}:
            self.active = not ctx.options.keep_alt_svc_header and any(
                spec.split(":", 1)[0].split("@", 1)[0].lower() == "reverse" for spec in ctx.options.mode
            )

    def load(self, loader: Any) -> None:
        loader.add_option(
            "keep_alt_svc_header", bool, False,
            "Reverse proxy: pass Alt-Svc response headers on unchanged, even when they would send "
            "clients around the proxy.",
        )

    def responseheaders(self, flow: HTTPFlow) -> None:
        from proxycore import ctx

        response = flow.response
        if response is None or ctx.options.keep_alt_svc_header:
            return
        if not isinstance(flow.client_conn.proxy_mode, ReverseMode) or "alt-svc" not in response.headers:
            return
        sockname = flow.client_conn.sockname
        if sockname:
            response.headers["alt-svc"] = update_alt_svc_header(response.headers["alt-svc"], sockname[1])
