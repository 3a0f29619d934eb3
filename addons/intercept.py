"""Holds flows matching the ``intercept`` filter until someone resumes them (the web UI's
Intercept box, or ``proxyweb --intercept FILTER``)."""

from __future__ import annotations

from typing import Any

from proxycore import ctx, flowfilter
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow


class Intercept:
    """Intercepts at request, response, and each WebSocket/TCP/UDP message or DNS step.

    Setting ``intercept`` switches ``intercept_active`` on (clearing it switches it
    off), as in mitmproxy; replayed flows are never intercepted.
    """

    def __init__(self) -> None:
        self.filter: flowfilter.Filter | None = None

    def load(self, loader: Any) -> None:
        loader.add_option("intercept_active", bool, False, "Intercept toggle")
        loader.add_option("intercept", str | None, None, "Intercept filter expression.")

    def configure(self, updated: set[str]) -> None:
        if "intercept" not in updated:
            return
        expression = ctx.options.intercept
        if expression:
            try:
                self.filter = flowfilter.parse(expression)
            except flowfilter.FilterError as e:
                raise OptionsError(str(e)) from e
            ctx.options.intercept_active = True
        else:
            self.filter = None
            ctx.options.intercept_active = False

    def process_flow(self, flow: Flow) -> None:
        if ctx.options.intercept_active and self.filter and self.filter(flow) and not flow.is_replay:
            flow.intercept()

    request = response = websocket_message = tcp_message = udp_message = process_flow
    dns_request = dns_response = process_flow
