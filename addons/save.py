"""Writes flows to a file as they complete (``-w FILE``, ``+FILE`` appends), and the
``save.file`` command that writes chosen flows at once.

The stream file name may hold ``strftime`` codes (``flows-%Y-%m-%d.mitm``): the file is
rotated when the name changes, as in mitmproxy. A flow counts from its first hook
(request, tcp_start, ...) and is written when it ends; flows still open when the file is
closed are written as they are then, so nothing seen is lost.
"""

from __future__ import annotations

import datetime
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from proxycore import ctx, types
from proxycore.addons.termlog import ALERT
from proxycore.command import command
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.utils import filteroption

if TYPE_CHECKING:
    from proxycore import flowfilter
    from proxycore.io import FilteredFlowWriter

logger = logging.getLogger("proxycore.save")


def _open_target(spec: str) -> tuple[str, str]:
    """The path and mode for ``spec`` (``+path`` appends)."""
    mode = "ab" if spec.startswith("+") else "wb"
    return os.path.expanduser(spec.removeprefix("+")), mode


class Save:
    """mitmdump's stream-to-file: each flow is written once, when it is over."""

    def __init__(self) -> None:
        self.file: IO[bytes] | None = None
        self.writer: FilteredFlowWriter | None = None
        self.filter: flowfilter.Filter | None = None
        self.current_path: str | None = None
        self.active_flows: set[Any] = set()  # begun, not written yet
        # (flow, its bytes in the file) while the primary of --workers delivers a flow whose
        # worker made its record (proxycore/workers/pool.py): written as they are.
        self.prepared: tuple[Any, bytes] | None = None
        # Whether the file name has strftime codes: only then can it change between flows
        # (a name without any is the same every time; not asking saves ~10k instructions/flow).
        self.rotates = False
        self.opened_spec: str | None = None  # the save_stream_file option the open file is for

        def request(flow: Any) -> None:
            self._begin(flow)

        # The request hook only notes the flow: its gate does that and says there is nothing
        # else to do, so the driver answers the hook at once without calling handlers
        # (~20k instructions per flow with -w). Whoever calls the handler notes it as well.
        request.gate = self._noted  # type: ignore[attr-defined]  # read by the addon manager
        self.request = request

    @property
    def hooks_active(self) -> bool:
        """Only while streaming to a file."""
        return self.writer is not None

    @property
    def filt(self) -> flowfilter.Filter | None:
        """mitmproxy's name for ``filter``."""
        return self.filter

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "save_stream_filter" in updated:
            self.filter = filteroption.parse_option(opts.save_stream_filter)
            if self.writer is not None:
                self.writer.flt = self.filter
        if "save_stream_file" in updated:
            if opts.save_stream_file:
                try:
                    self.maybe_rotate_to_new_file()
                except OSError as e:
                    raise OptionsError(f"Cannot open {opts.save_stream_file} for writing: {e}") from e
            else:
                self.done()

    def _expanded_path(self) -> tuple[str, str]:
        spec = ctx.options.save_stream_file
        assert spec is not None  # only asked while a file is configured
        path, mode = _open_target(spec)
        self.rotates = "%" in path
        return datetime.datetime.now().strftime(path), mode

    def maybe_rotate_to_new_file(self) -> None:
        """Open the stream file, or a new one if its (strftime-expanded) name changed.
        Flows begun in the old file are written to the new one when they end."""
        spec = ctx.options.save_stream_file
        if self.writer is not None and not self.rotates and spec == self.opened_spec:
            return  # a name without strftime codes cannot change (~10k instructions per flow)
        path, mode = self._expanded_path()
        if path == self.current_path and self.writer is not None:
            return
        if self.file is not None:
            self.file.close()
        self.file = self.writer = None
        target = Path(path)
        if target.parent != Path("."):
            target.parent.mkdir(parents=True, exist_ok=True)
        # Imported with the first save_stream_file, not at start (issue 15: ~0.7 MB).
        from proxycore.io import FilteredFlowWriter

        self.file = target.open(mode)
        self.writer = FilteredFlowWriter(self.file, self.filter)
        self.current_path = path
        self.opened_spec = spec

    def _begin(self, flow: Any) -> None:
        if self.writer is not None:
            self.active_flows.add(flow)

    def _noted(self, flow: Any) -> bool:
        """The request hook's gate: note the flow; False, for the handler has nothing left."""
        self._begin(flow)
        return False

    def _write(self, flow: Any) -> None:
        """Write a finished flow. A failing disk ends the process, as mitmdump does: a
        capture that silently loses flows would be worse."""
        if self.writer is not None:
            try:
                self.maybe_rotate_to_new_file()
                assert self.writer is not None and self.file is not None
                prepared = self.prepared
                self.writer.add(flow, prepared[1] if prepared is not None and prepared[0] is flow else None)
                self.file.flush()
            except OSError as e:
                print(f"Error while writing to {self.current_path}: {e}", file=sys.stderr)
                sys.exit(1)
        if flow in self.active_flows:
            self.active_flows.discard(flow)
        elif self.active_flows:
            # The same flow as another object (with --workers, each hook's flow is a fresh
            # copy from the worker): the id says it is done.
            self.active_flows = {f for f in self.active_flows if f.id != flow.id}

    # A flow begins with its first hook (request: see __init__) and is written at its end.
    def response(self, flow: Any) -> None:
        if flow.websocket is None:
            self._write(flow)

    def error(self, flow: Any) -> None:
        self._write(flow)

    def websocket_end(self, flow: Any) -> None:
        self._write(flow)

    def tcp_start(self, flow: Any) -> None:
        self._begin(flow)

    def tcp_end(self, flow: Any) -> None:
        self._write(flow)

    def tcp_error(self, flow: Any) -> None:
        self._write(flow)

    def udp_start(self, flow: Any) -> None:
        self._begin(flow)

    def udp_end(self, flow: Any) -> None:
        self._write(flow)

    def udp_error(self, flow: Any) -> None:
        self._write(flow)

    def dns_request(self, flow: Any) -> None:
        self._begin(flow)

    def dns_response(self, flow: Any) -> None:
        self._write(flow)

    def dns_error(self, flow: Any) -> None:
        self._write(flow)

    @command("save.file")
    def save(self, flows: Sequence[Flow], path: types.Path) -> None:
        """Save flows to a flow file; a path starting with + appends instead of overwriting."""
        from proxycore.io import FlowWriter

        target, mode = _open_target(path)
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
        """Close the stream file; the flows still open are written as they are now."""
        if self.writer is not None:
            for flow in list(self.active_flows):
                self.writer.add(flow)
        self.active_flows.clear()
        if self.file is not None:
            self.file.close()
        self.file = None
        self.writer = None
        self.current_path = None

    def done(self) -> None:
        self.close()
