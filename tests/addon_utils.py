"""Helpers for testing the built-in addons: flows built in memory and addons loaded in a Master."""

from __future__ import annotations

import urllib.parse
from typing import Any

from proxycore.connection import Client, Server
from proxycore.http import Headers, HTTPFlow, Request, Response
from proxycore.master import Master


def tflow(
    url: str = "http://example.com/path",
    method: str = "GET",
    headers: tuple[tuple[str, str], ...] = (),
    content: bytes = b"",
    response: Response | None = None,
    mode: Any = "regular",
    peer: tuple[str, int] = ("127.0.0.1", 50000),
    client: Client | None = None,
) -> HTTPFlow:
    """A live HTTP flow as the proxy would build it (Host header first, then ``headers``)."""
    request = Request.make(method, url, content)
    if not content:
        del request.headers["content-length"]  # a bodiless request, as clients send one
    request.headers.insert(0, "Host", urllib.parse.urlsplit(url).netloc)
    for name, value in headers:
        request.headers.add(name, value)
    if client is None:
        client = Client(peername=peer, sockname=("127.0.0.1", 8080), proxy_mode=mode)
    flow = HTTPFlow(client, Server(address=(request.host, request.port)), live=True)
    flow.request = request
    flow.response = response
    return flow


def tresponse(status: int = 200, content: bytes = b"", headers: tuple[tuple[str, str], ...] = ()) -> Response:
    response = Response.make(status, content)
    for name, value in headers:
        response.headers.add(name, value)
    return response


def load(addon: Any, **options: Any) -> Master:
    """A Master with ``addon`` added and ``options`` set (raises OptionsError like proxydump)."""
    master = Master()
    master.addons.add(addon)
    if options:
        master.options.update(**options)
    return master


def header_fields(headers: Headers) -> list[tuple[str, str]]:
    return headers.items(multi=True)
