"""The onboarding app: ``http://mitm.it/`` (``onboarding_host``) through the proxy serves a
page with our CA certificate, for installing it on a device.

Requests to any other host never reach this addon: its request hook carries a ``gate``
(a host comparison) that the driver checks before starting a hook task, so the app costs
nothing per request while it is not used.
"""

from __future__ import annotations

import html
import os
from typing import Any

from proxycore.http import HTTPFlow, Response

APP_HOST = "mitm.it"
# Versions whose Host header is not where the request's host is read first (the authority is).
_MULTIPLEXED = (b"HTTP/2.0", b"HTTP/3")
# path -> (file suffix, content type)
CERT_FORMATS = {
    "/cert/pem": ("pem", "application/x-x509-ca-cert"),
    "/cert/p12": ("p12", "application/x-pkcs12"),
    "/cert/cer": ("cer", "application/x-x509-ca-cert"),
}

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{product}: install the CA certificate</title>
<meta name="viewport" content="width=device-width, initial-scale=1"></head>
<body style="font-family: sans-serif; max-width: 40em; margin: 2em auto; line-height: 1.5">
<h1>Install the {product} CA certificate</h1>
<p>This page comes from the proxy itself: your traffic goes through {product}. To let it
show HTTPS traffic, install its certificate authority and mark it as trusted.</p>
<ul>
<li><a href="/cert/pem">PEM</a> (Linux, macOS, Firefox, most tools)</li>
<li><a href="/cert/p12">PKCS#12</a> (Windows)</li>
<li><a href="/cert/cer">CER</a> (Android, iOS)</li>
</ul>
<p>Only install a certificate authority you created yourself: whoever holds its key can
read your encrypted traffic.</p>
</body></html>
"""


class Onboarding:
    name = "onboarding"

    def __init__(self) -> None:
        self._host = APP_HOST
        self._first_byte: int | None = APP_HOST.encode()[0]  # see _wants
        self.enabled = True
        self.confdir = "~/.proxycore"

        def request(flow: HTTPFlow) -> None:
            self.serve(flow)

        request.gate = self._wants  # type: ignore[attr-defined]  # read by the addon manager
        self.request = request

    @property
    def host(self) -> str:
        return self._host

    @host.setter
    def host(self, value: str) -> None:
        self._host = value
        try:  # its first byte as a Host header's bytes would give it (None: no quick test)
            self._first_byte = value.encode("utf-8", "surrogateescape")[0]
        except (UnicodeEncodeError, IndexError):
            self._first_byte = None

    @property
    def hooks_active(self) -> bool:
        return self.enabled

    def load(self, loader: Any) -> None:
        loader.add_option("onboarding", bool, True, "Serve the onboarding app (CA certificate downloads).")
        loader.add_option(
            "onboarding_host", str, APP_HOST,
            "Host name of the onboarding app; in transparent mode an IP address when no DNS entry "
            "points the name at the proxy.",
        )

    def configure(self, updated: set[str]) -> None:
        from proxycore import ctx

        self.host = ctx.options.onboarding_host
        self.enabled = ctx.options.onboarding
        self.confdir = ctx.options.confdir

    def _wants(self, flow: HTTPFlow) -> bool:
        """Whether the request is for the app's host (``pretty_host``, as mitmproxy compares).

        Asked for every request: ``pretty_host`` is cut from the Host header (or authority)
        when there is one, so a header that does not contain our host rules it out at the
        cost of a substring test instead of the parsing. Before that, an HTTP/1 request's
        one Host field is tested as it came, by its first byte: ``pretty_host`` is then the
        start of its text (or what follows a "["), so a field that starts with neither our
        host's first byte nor "[" cannot name our host. (An int compare: a ``bytes``
        substring test or slice costs ~1k instructions, about what a call does.)"""
        request = flow.request
        if request is None:
            return False
        data = request.data
        first = self._first_byte
        if first is not None and data.http_version not in _MULTIPLEXED:
            raw = data.headers.get_raw(b"host")
            if raw is not None and len(raw) == 1:
                value = raw[0]
                if value and value[0] != first and value[0] != 0x5B:  # b"["
                    return False
        hostport = request.host_header
        if hostport and self.host not in hostport:
            return False
        return request.pretty_host == self.host

    def serve(self, flow: HTTPFlow) -> None:
        """The request hook (see __init__): answer requests for the app's host."""
        if not self._wants(flow) or flow.response is not None or flow.error is not None or not flow.live:
            return
        flow.response = self.answer(flow.request.path.split("?", 1)[0])

    def answer(self, path: str) -> Response:
        from proxycore.version import MITMPROXY

        product = MITMPROXY.split(" ")[0]
        if path in ("/", "/index.html"):
            page = PAGE.format(product=html.escape(product))
            return Response.make(200, page.encode(), {"Content-Type": "text/html; charset=utf-8"})
        if path in CERT_FORMATS:
            suffix, content_type = CERT_FORMATS[path]
            data = self._read_cert(suffix)
            if data is None:
                return Response.make(404, b"No CA certificate in the proxy's confdir yet.\n",
                                     {"Content-Type": "text/plain"})
            filename = f"{product}-ca-cert.{suffix}"
            return Response.make(200, data, {
                "Content-Type": content_type, "Content-Disposition": f"attachment; filename={filename}",
            })
        return Response.make(404, b"Not found.\n", {"Content-Type": "text/plain"})

    def _read_cert(self, suffix: str) -> bytes | None:
        """The CA certificate file tlsconfig uses (ours, or a mitmproxy confdir's)."""
        confdir = os.path.expanduser(self.confdir)
        for basename in ("proxycore", "mitmproxy"):
            path = os.path.join(confdir, f"{basename}-ca-cert.{suffix}")
            try:
                with open(path, "rb") as f:
                    return f.read()
            except OSError:
                continue
        return None
