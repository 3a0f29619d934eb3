"""Option ``stickycookie``: remember cookies servers set and add them to later requests that
match the filter, so a session started in one client carries over to others (e.g. curl).

The jar is keyed by (domain, port, path) like mitmproxy's: the cookie's Domain and Path
attributes, else the request host and ``/``. A request gets every remembered cookie whose
domain matches its host (subdomains included for ``.example.com``-style domains), whose port
equals its port, and whose path is a prefix of its path; its own Cookie header is replaced.
Expired cookies (Expires in the past, Max-Age <= 0) are removed from the jar.
"""

from __future__ import annotations

import time
from collections import defaultdict
from typing import TYPE_CHECKING

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.http import HTTPFlow
from proxycore.utils import filteroption

if TYPE_CHECKING:
    from proxycore import flowfilter

Origin = tuple[str, int, str]


def jar_key(attrs: dict[str, str | None], flow: HTTPFlow) -> Origin:
    return (attrs.get("domain") or flow.request.host, flow.request.port, attrs.get("path") or "/")


def domain_match(host: str, domain: str) -> bool:
    from http import cookiejar  # with urllib.request and http.client: only once a cookie is stuck

    # domain_match is in http.cookiejar but undocumented, so typeshed leaves it out
    match = cookiejar.domain_match  # type: ignore[attr-defined]
    return bool(match(host, domain) or match(host, domain.strip(".")))


def is_expired(attrs: dict[str, str | None], now: float | None = None) -> bool:
    """Expires wins over Max-Age when both are present, as in mitmproxy."""
    now = time.time() if now is None else now
    if "expires" in attrs:
        import email.utils  # only with stickycookie on, not at every start (~0.6 MB, issue 15)

        parsed = email.utils.parsedate_tz(attrs["expires"] or "")
        if parsed:
            return email.utils.mktime_tz(parsed) <= now
        return False
    if "max-age" in attrs:
        try:
            return int(attrs["max-age"] or "") <= 0  # a bare "Max-Age" is no age
        except ValueError:
            return False
    return False


class StickyCookie:
    @property
    def hooks_active(self) -> bool:
        """Only with a ``stickycookie`` filter."""
        return self.flt is not None

    def __init__(self) -> None:
        self.jar: defaultdict[Origin, dict[str, str | None]] = defaultdict(dict)
        self.flt: flowfilter.Filter | None = None

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "stickycookie", str | None, None, "Set sticky cookie filter. Matched against requests."
        )

    def configure(self, updated: set[str]) -> None:
        if "stickycookie" in updated:
            self.flt = filteroption.parse_option(ctx.options.stickycookie)

    def response(self, flow: HTTPFlow) -> None:
        if self.flt is None or flow.response is None:
            return
        for name, (value, raw_attrs) in flow.response.cookies.items(multi=True):
            if not name:
                continue  # "Set-Cookie: =x" or an empty header: nothing to send back
            attrs = {k.lower(): v for k, v in raw_attrs.items()}
            key = jar_key(attrs, flow)
            if not domain_match(flow.request.host, key[0]):
                continue  # a server may not set cookies for other domains
            if is_expired(attrs):
                self.jar[key].pop(name, None)
                if not self.jar[key]:
                    del self.jar[key]
            else:
                self.jar[key][name] = value

    def request(self, flow: HTTPFlow) -> None:
        if self.flt is None or not self.flt(flow):
            return
        request = flow.request
        cookies: list[tuple[str, str | None]] = []
        for (domain, port, path), values in self.jar.items():
            if domain_match(request.host, domain) and request.port == port and request.path.startswith(path):
                cookies.extend(values.items())
        if cookies:
            flow.metadata["stickycookie"] = True
            request.headers["cookie"] = "; ".join(f"{k}={v}" for k, v in cookies)
