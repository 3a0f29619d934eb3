"""Holds flows that match the ``intercept`` filter until they are resumed or killed.

A matching flow is intercepted at each point where mitmproxy stops it: the request,
the response, and every TCP/UDP/WebSocket message (DNS too). The driver then keeps
the hook open until ``flow.resume()`` (or the ``flow.resume`` command); ``flow.kill()``
ends it instead. Replayed flows are never held.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from proxycore import ctx
from proxycore.exceptions import OptionsError

if TYPE_CHECKING:
    from proxycore import flowfilter


class Intercept:
    @property
    def hooks_active(self) -> bool:
        """Only while a filter is set and interception is on."""
        return self.filter is not None and bool(ctx.options.intercept_active)

    def __init__(self) -> None:
        self.filter: flowfilter.Filter | None = None

    def load(self, loader: Any) -> None:
        # ``intercept`` (the filter) is one of the engine's options; the switch is ours.
        loader.add_option("intercept_active", bool, False, "Intercept toggle")

    def configure(self, updated: set[str]) -> None:
        if "intercept" not in updated:
            return
        spec = ctx.options.intercept
        if spec:
            from proxycore import flowfilter

            try:
                self.filter = flowfilter.parse(spec)
            except flowfilter.FilterError as e:
                raise OptionsError(f"intercept: {e}") from e
            ctx.options.intercept_active = True
        else:
            self.filter = None
            ctx.options.intercept_active = False

    @property
    def filt(self) -> flowfilter.Filter | None:
        """mitmproxy's name for ``filter``."""
        return self.filter

    def should_intercept(self, flow: Any) -> bool:
        return bool(
            ctx.options.intercept_active
            and self.filter is not None
            and not flow.is_replay
            and self.filter(flow)
        )

    def process_flow(self, flow: Any) -> None:
        if self.should_intercept(flow):
            flow.intercept()

    # The hooks at which mitmproxy intercepts.
    request = response = process_flow
    tcp_message = udp_message = websocket_message = process_flow
    dns_request = dns_response = process_flow
