"""The Master ties options, addons and commands together and runs the event loop's lifetime."""

from __future__ import annotations

import asyncio
import gc

from proxycore import ctx, hooks
from proxycore.addonmanager import AddonManager
from proxycore.command import CommandManager
from proxycore.options import Options

# Allocations (net of frees) of collector-tracked objects before a young collection, for the
# command-line tools (``freeze_heap``). At 64 keep-alive connections the objects of the
# in-flight requests pass CPython's default of 700 ~110 times per 10k requests and the
# collector found no garbage; 2000 leaves that to <5 (docs/architecture.md, issue 15).
YOUNG_COLLECTION_THRESHOLD = 2000


class Master:
    def __init__(self, options: Options | None = None) -> None:
        self.options = options if options is not None else Options()
        self.commands = CommandManager(self)
        self.addons = AddonManager(self)
        self.exit_code = 0
        self.should_exit: asyncio.Event | None = None
        self.event_loop: asyncio.AbstractEventLoop | None = None
        self._exit_requested = False
        ctx.master = self
        ctx.options = self.options

    async def run(self, freeze_heap: bool = False) -> None:
        """Tell addons we're running, wait for ``shutdown()``, then let them clean up.

        ``freeze_heap`` (the command-line tools, one Master per process): once every addon
        ran its ``running`` hook, what the start made (modules, addons, certificates) is
        moved out of the collector's sight with ``gc.freeze()``. A full collection then
        walks only what was made since; over the whole start-up heap it took ~20 ms, a
        pause every connection of the process waited through (docs/architecture.md).
        Young collections then wait for ``YOUNG_COLLECTION_THRESHOLD`` allocations instead
        of 700: many concurrent requests passed 700 with live objects, not garbage."""
        self.event_loop = asyncio.get_running_loop()
        self.should_exit = asyncio.Event()
        if self._exit_requested:
            self.should_exit.set()
        await self.addons.trigger_event(hooks.RunningHook())
        if freeze_heap:
            gc.freeze()
            gc.set_threshold(YOUNG_COLLECTION_THRESHOLD, *gc.get_threshold()[1:])
        await self.should_exit.wait()
        await self.addons.trigger_event(hooks.DoneHook())

    def shutdown(self) -> None:
        self._exit_requested = True
        if self.should_exit is None or self.event_loop is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.event_loop:
            self.should_exit.set()
        else:
            self.event_loop.call_soon_threadsafe(self.should_exit.set)
