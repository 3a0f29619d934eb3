"""Saving flows as a HAR file: the ``save.har`` command and the ``hardump`` option.

``hardump=PATH`` keeps every finished HTTP flow (filtered by ``save_stream_filter``) in
memory and writes them at shutdown; ``-`` prints the HAR to stdout.  A path ending in
``.zhar`` is zlib-compressed.  The mapping is mitmproxy's (see :mod:`proxycore.io.har`).
"""

from __future__ import annotations

import logging
import os
import sys
import zlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from proxycore import ctx, types
from proxycore.addons.termlog import ALERT
from proxycore.command import command
from proxycore.exceptions import CommandError
from proxycore.flow import Flow
from proxycore.utils import filteroption
from proxycore.utils.human import pretty_size

if TYPE_CHECKING:
    from proxycore import flowfilter

logger = logging.getLogger("proxycore.savehar")

HARDUMP_HELP = """
Save a HAR file with all flows on exit.
You may select particular flows by setting save_stream_filter.
For proxydump, enabling this option will mean that flows are kept in memory.
"""


class SaveHar:
    @property
    def hooks_active(self) -> bool:
        """Only flows for ``hardump`` are collected by hooks; ``save.har`` needs none."""
        return bool(ctx.options.hardump)

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self.filter: flowfilter.Filter | None = None

    def load(self, loader: Any) -> None:
        loader.add_option("hardump", str, "", HARDUMP_HELP)

    def configure(self, updated: set[str]) -> None:
        if "save_stream_filter" in updated:
            self.filter = filteroption.parse_option(ctx.options.save_stream_filter)
        if "hardump" in updated and not ctx.options.hardump:
            self.flows = []

    @command("save.har")
    def export_har(self, flows: Sequence[Flow], path: types.Path) -> None:
        """Export flows to an HAR (HTTP Archive) file."""
        data = self._har_bytes(flows)
        if path.endswith(".zhar"):
            data = zlib.compress(data, 9)
        try:
            with open(os.path.expanduser(path), "wb") as f:
                f.write(data)
        except OSError as e:
            raise CommandError(f"Cannot write HAR file {path}: {e.strerror or e}") from e
        logger.log(ALERT, f"HAR file saved ({pretty_size(len(data))} bytes).")

    @staticmethod
    def _har_bytes(flows: Sequence[Flow]) -> bytes:
        from proxycore.io import har  # only when saving one (issue 15: ~0.7 MB at start otherwise)

        text, skipped = har.dumps(flows)
        if skipped:
            logger.info(f"Skipped {skipped} flows that weren't HTTP flows.")
        return text.encode()

    # Flows are kept when they are over: WebSocket flows at their end, not at the response.
    def response(self, flow: Any) -> None:
        if flow.websocket is None:
            self._keep(flow)

    def error(self, flow: Any) -> None:
        self.response(flow)

    def websocket_end(self, flow: Any) -> None:
        self._keep(flow)

    def _keep(self, flow: Flow) -> None:
        if ctx.options.hardump and (self.filter is None or self.filter(flow)):
            self.flows.append(flow)

    def done(self) -> None:
        path = ctx.options.hardump
        if not path:
            return
        if path == "-":
            sys.stdout.write(self._har_bytes(self.flows).decode() + "\n")
            sys.stdout.flush()
        else:
            try:
                self.export_har(self.flows, path)
            except CommandError as e:
                logger.error(str(e))
