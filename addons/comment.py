"""The ``flow.comment`` command: a note kept with flows (shown and saved with them)."""

from __future__ import annotations

from collections.abc import Sequence

from proxycore import ctx
from proxycore.command import command
from proxycore.flow import Flow
from proxycore.hooks import UpdateHook


class Comment:
    @command("flow.comment")
    def comment(self, flow: Sequence[Flow], comment: str) -> None:
        """Set the comment of flows (an empty comment removes it)."""
        for f in flow:
            f.comment = comment
        ctx.master.addons.trigger(UpdateHook(list(flow)))
