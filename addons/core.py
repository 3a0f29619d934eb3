"""Built-in commands every proxycore master has."""

from __future__ import annotations

from collections.abc import Sequence

from proxycore import ctx
from proxycore.command import command
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.hooks import UpdateHook


class Core:
    @command("set")
    def set(self, option: str, *value: str) -> None:
        """Set an option: ``set name value`` (several values for sequences, none to reset)."""
        spec = f"{option}={value[0]}" if len(value) == 1 else option
        try:
            if len(value) > 1:
                ctx.options.update(**{option: list(value)})
            else:
                ctx.options.set(spec)
        except OptionsError as e:
            raise CommandError(str(e)) from e

    @command("options.reset")
    def options_reset(self) -> None:
        """Reset all options to their defaults."""
        ctx.options.reset()

    @command("flow.resume")
    def resume(self, flows: Sequence[Flow]) -> None:
        """Resume intercepted flows."""
        for flow in flows:
            flow.resume()
        _updated(flows)

    @command("flow.kill")
    def kill(self, flows: Sequence[Flow]) -> None:
        """Kill live flows."""
        killed = [flow for flow in flows if flow.killable]
        for flow in killed:
            flow.kill()
        _updated(killed)

    @command("flow.mark")
    def mark(self, flows: Sequence[Flow], marker: str = ":default:") -> None:
        """Mark flows (an empty marker unmarks)."""
        for flow in flows:
            flow.marked = marker
        _updated(flows)


def _updated(flows: Sequence[Flow]) -> None:
    """Tell views (the web UI) that these flows changed, as mitmproxy's commands do."""
    if flows:
        ctx.master.addons.trigger(UpdateHook(list(flows)))
