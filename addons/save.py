"""Writes finished flows to a file as they complete (``-w FILE``, ``+FILE`` appends),
and the ``save.file`` command that writes chosen flows at once."""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from typing import IO, Any

from proxycore import ctx, flowfilter, types
from proxycore.addons.termlog import ALERT
from proxycore.command import command
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.io import FilteredFlowWriter, FlowWriter

logger = logging.getLogger("proxycore.save")


class Save:
    """mitmdump's stream-to-file: each flow is written once, when it is over."""
    @property
    def hooks_active(self) -> bool:
        """Only while streaming to a file."""
        return self.writer is not None


    def __init__(self) -> None:
        self.file: IO[bytes] | None = None
        self.writer: FilteredFlowWriter | None = None
        self.filter: flowfilter.Filter | None = None

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "save_stream_filter" in updated:
            self.filter = flowfilter.parse_option(opts.save_stream_filter)
            if self.writer is not None:
                self.writer.flt = self.filter
        if "save_stream_file" in updated:
            self.close()
            path = opts.save_stream_file
            if path:
                mode = "ab" if path.startswith("+") else "wb"
                path = os.path.expanduser(path.removeprefix("+"))
                try:
                    self.file = open(path, mode)  # noqa: SIM115 - open until done or reconfigured
                except OSError as e:
                    raise OptionsError(f"Cannot open {path} for writing: {e.strerror}") from e
                self.writer = FilteredFlowWriter(self.file, self.filter)

    @property
    def filt(self) -> flowfilter.Filter | None:
        """mitmproxy's name for ``filter``."""
        return self.filter

    def save(self, flow: Any) -> None:
        if self.writer is not None:
            self.writer.add(flow)
            assert self.file is not None
            self.file.flush()

    # An HTTP flow is saved at its end: response, error, or the end of its WebSocket.
    def response(self, flow: Any) -> None:
        if flow.websocket is None:
            self.save(flow)

    def error(self, flow: Any) -> None:
        self.save(flow)

    def websocket_end(self, flow: Any) -> None:
        self.save(flow)

    def tcp_end(self, flow: Any) -> None:
        self.save(flow)

    def tcp_error(self, flow: Any) -> None:
        self.save(flow)

    def udp_end(self, flow: Any) -> None:
        self.save(flow)

    def udp_error(self, flow: Any) -> None:
        self.save(flow)

    def dns_response(self, flow: Any) -> None:
        self.save(flow)

    def dns_error(self, flow: Any) -> None:
        self.save(flow)

    @command("save.file")
    def save_file(self, flows: Sequence[Flow], path: types.Path) -> None:
        """Save flows to a flow file; a path starting with + appends instead of overwriting."""
        mode = "ab" if path.startswith("+") else "wb"
        target = os.path.expanduser(path.removeprefix("+"))
        try:
            with open(target, mode) as fp:
                writer = FlowWriter(fp)
                for flow in flows:
                    writer.add(flow)
        except OSError as e:
            raise CommandError(str(e)) from e
        if target.endswith((".har", ".zhar")):
            logger.log(ALERT, "Saved as mitmproxy dump file. To save HAR files, use the `save.har` command.")
        else:
            logger.log(ALERT, f"Saved {len(flows)} flows.")

    def close(self) -> None:
        if self.file is not None:
            self.file.close()
        self.file = None
        self.writer = None

    def done(self) -> None:
        self.close()
