"""``taddons.context``: a master with options and addons for testing one addon's hooks.

Inside ``with taddons.context(addon) as tctx:`` the module-level ``ctx`` points at this
master, so the addon reads ``ctx.options`` as it would in the proxy.
"""

from __future__ import annotations

import asyncio
from typing import Any

from proxycore import hooks
from proxycore.addons import core, script
from proxycore.command import Command
from proxycore.eventsequence import iterate
from proxycore.master import Master
from proxycore.options import Options


class context:  # noqa: N801 - mitmproxy's name
    """A master for tests: ``options``, ``master``, ``cycle``, ``configure``, ``script``, ``command``."""

    def __init__(self, *addons: Any, options: Options | None = None, loadcore: bool = True) -> None:
        try:
            loop = asyncio.get_running_loop()
            self.owns_loop = False
        except RuntimeError:
            loop = asyncio.new_event_loop()
            self.owns_loop = True
        self.master = Master(options or Options())
        self.master.event_loop = loop
        self.options = self.master.options
        if loadcore:
            self.master.addons.add(core.Core())
        for addon in addons:
            self.master.addons.add(addon)

    def __enter__(self) -> context:
        return self

    def __exit__(self, *exc: object) -> None:
        loop = self.master.event_loop
        if self.owns_loop and loop is not None and not loop.is_closed():
            loop.close()

    async def cycle(self, addon: Any, f: Any) -> None:
        """Run ``f`` through every hook its kind of flow goes through; stop if it gets intercepted."""
        for hook in iterate(f):
            await self.master.addons.invoke_addon(addon, hook)
            if f.intercepted:
                return

    def configure(self, addon: Any, **kwargs: Any) -> None:
        """Set options (which calls ``configure`` on every addon), or just call ``configure``
        on ``addon`` with nothing changed when no option is given."""
        if addon not in self.master.addons:
            self.master.addons.register(addon)
        if kwargs:
            self.options.update(**kwargs)  # rolls back by itself when an addon refuses
        else:
            self.master.addons.invoke_addon_sync(addon, hooks.ConfigureHook(set()))

    def script(self, path: str) -> Any:
        """Load the script at ``path``; its module (the addon), or None if it failed to load."""
        loaded = script.Script(path)
        return loaded.addons[0] if loaded.addons else None

    def command(self, func: Any, *args: str) -> Any:
        """Call ``func`` as a command with string arguments, converted as the command line does."""
        return Command(self.master.commands, "test.command", func).call(args)
