"""Option ``anticache``: strip the request headers that let a server answer 304 Not Modified,
so every response carries its full body."""

from __future__ import annotations

from proxycore import ctx
from proxycore.http import HTTPFlow


class AntiCache:
    @property
    def hooks_active(self) -> bool:
        """Only with ``anticache`` set (see AddonManager.handlers)."""
        return bool(ctx.options.anticache)

    def request(self, flow: HTTPFlow) -> None:
        if ctx.options.anticache:
            flow.request.anticache()
