"""Request.pretty_url and pretty_host read each value once now; the results are what the
former property-by-property code gave (kept here as the oracle)."""

from __future__ import annotations

import itertools

import pytest

from proxycore.http import Request, _default_port, _hostport


def _former_pretty_host(request: Request) -> str:
    hostport = request.host_header
    if not hostport:
        return request.host
    if hostport.startswith("["):
        return hostport[1 : hostport.find("]")]
    return hostport.rsplit(":", 1)[0] if hostport.count(":") == 1 else hostport


def _former_pretty_url(request: Request) -> str:
    if request.data.method.upper() == b"CONNECT":
        return request.url
    hostport = request.host_header
    if not hostport or not request.data.scheme:
        return request.url
    pretty_port = _default_port(request.scheme)
    if ":" in hostport.rsplit("]", 1)[-1]:
        try:
            pretty_port = int(hostport.rsplit(":", 1)[1])
        except ValueError:
            pass
    host = _former_pretty_host(request)
    return f"{request.scheme}://{_hostport(request.scheme, host, pretty_port)}{request._url_path}"


HOSTS = [
    None, "", "example.com", "example.com:80", "example.com:443", "example.com:8443",
    "example.com:abc", "[::1]", "[::1]:8080", "[::1]:abc", "a:b:c", "b\u00fccher.de:81",
]  # fmt: skip


@pytest.mark.parametrize(
    ("method", "scheme", "host", "version", "path"),
    list(
        itertools.product(
            ["GET", "CONNECT"],
            ["http", "https", ""],
            HOSTS,
            ["HTTP/1.1", "HTTP/2.0"],
            ["/p?q", "*"],
        )
    ),
)
def test_pretty_url_and_host_are_unchanged(
    method: str, scheme: str, host: str | None, version: str, path: str
) -> None:
    request = Request(
        "origin.example", 8080, method, scheme, host if version == "HTTP/2.0" and host else "",
        path, version, {"Host": host} if host is not None else {}, b"", None, 0.0, 0.0,
    )  # fmt: skip
    assert request.pretty_host == _former_pretty_host(request)
    assert request.pretty_url == _former_pretty_url(request)
