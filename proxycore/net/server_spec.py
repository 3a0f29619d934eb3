"""``scheme://host:port`` server specs (upstream proxies, reverse targets), mitmproxy's module."""

from __future__ import annotations

from proxycore.proxy.mode_specs import parse_server_spec

ServerSpec = tuple[str, tuple[str, int]]


def parse(server_spec: str, default_scheme: str) -> ServerSpec:
    """("http"|"https"|..., (host, port)); ValueError for a malformed spec."""
    return parse_server_spec(server_spec, default_scheme)
