"""The running master and its options, for addon scripts (``from proxycore import ctx``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from proxycore.log import Log

if TYPE_CHECKING:
    from proxycore.master import Master
    from proxycore.options import Options

# The master sets both before any addon runs, so addons read them as present; only code
# that may run without a master (a script imported by a test) finds None here.
if TYPE_CHECKING:
    master: Master
    options: Options
else:
    master = None
    options = None
log = Log()  # ctx.log.info(...) / .alert(...) as in mitmproxy scripts
