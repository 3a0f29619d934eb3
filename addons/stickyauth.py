"""Option ``stickyauth``: remember the last Authorization header sent to each host and add it
to later requests to that host that match the filter and carry none."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore import ctx
from proxycore.addonmanager import Loader
from proxycore.http import HTTPFlow
from proxycore.utils import filteroption

if TYPE_CHECKING:
    from proxycore import flowfilter


class StickyAuth:
    @property
    def hooks_active(self) -> bool:
        """Only with a ``stickyauth`` filter."""
        return self.flt is not None

    def __init__(self) -> None:
        self.flt: flowfilter.Filter | None = None
        self.hosts: dict[str, str] = {}

    def load(self, loader: Loader) -> None:
        loader.add_option(
            "stickyauth", str | None, None, "Set sticky auth filter. Matched against requests."
        )

    def configure(self, updated: set[str]) -> None:
        if "stickyauth" in updated:
            self.flt = filteroption.parse_option(ctx.options.stickyauth)

    def request(self, flow: HTTPFlow) -> None:
        if self.flt is None:
            return
        host = flow.request.host
        if "authorization" in flow.request.headers:
            self.hosts[host] = flow.request.headers["authorization"]
        elif self.flt(flow) and host in self.hosts:
            flow.request.headers["authorization"] = self.hosts[host]
