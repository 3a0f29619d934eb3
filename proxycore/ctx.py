"""The running master and its options, for addon scripts (``from proxycore import ctx``)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from proxycore.master import Master
    from proxycore.options import Options

master: Master | None = None
options: Options | None = None
log = logging.getLogger("proxycore.addons")
