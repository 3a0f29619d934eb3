"""The running master and its options, for addon scripts (``from proxycore import ctx``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore.log import Log

if TYPE_CHECKING:
    from proxycore.master import Master
    from proxycore.options import Options

master: Master | None = None
options: Options | None = None
log = Log()  # ctx.log.info(...) / .alert(...) as in mitmproxy scripts
