"""Option ``anticomp``: ask servers for uncompressed bodies (``Accept-Encoding: identity``)."""

from __future__ import annotations

from proxycore import ctx
from proxycore.http import HTTPFlow


class AntiComp:
    @property
    def hooks_active(self) -> bool:
        """Only with ``anticomp`` set (see AddonManager.handlers)."""
        return bool(ctx.options.anticomp)

    def request(self, flow: HTTPFlow) -> None:
        if ctx.options.anticomp:
            flow.request.anticomp()
