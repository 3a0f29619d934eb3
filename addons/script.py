"""Loads user scripts (``-s file.py``): each module becomes an addon, as in mitmproxy."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import os
import sys
import traceback
import types
from collections.abc import Sequence
from typing import Any

from proxycore import ctx, hooks
from proxycore import types as command_types
from proxycore.command import command
from proxycore.compat import install_mitmproxy_alias
from proxycore.exceptions import OptionsError
from proxycore.flow import Flow

logger = logging.getLogger("proxycore.script")

#: Seconds between checks whether a loaded script file changed (mitmproxy checks every second).
RELOAD_INTERVAL = 1.0


def _mtime(path: str) -> float | None:
    try:
        return os.stat(os.path.expanduser(path)).st_mtime
    except OSError:
        return None


def load_script(path: str) -> types.ModuleType | None:
    """Import ``path`` as a fresh module; log one clear error and return None if it fails.

    Scripts written for mitmproxy import ``mitmproxy``: the alias is installed first."""
    install_mitmproxy_alias()
    fullpath = os.path.abspath(os.path.expanduser(path))
    name = "__proxycore_script__" + os.path.splitext(os.path.basename(fullpath))[0]
    directory = os.path.dirname(fullpath)
    sys.path.insert(0, directory)
    try:
        spec = importlib.util.spec_from_file_location(name, fullpath)
        if spec is None or spec.loader is None:
            logger.error(f"Script error in {path}: cannot be imported")
            return None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
        return module
    except Exception as e:
        where = ""
        tb = traceback.extract_tb(e.__traceback__)
        frames = [f for f in tb if os.path.abspath(f.filename) == fullpath]
        if isinstance(e, SyntaxError) and e.lineno:
            where = f" (line {e.lineno})"
        elif frames:
            where = f" (line {frames[-1].lineno})"
        logger.error(f"Script error in {path}{where}: {type(e).__name__}: {e}")
        sys.modules.pop(name, None)
        return None
    finally:
        if sys.path and sys.path[0] == directory:
            sys.path.pop(0)


class Script:
    """One loaded script; the module (or its ``addons`` list) hangs below it in the chain."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.name = f"scriptmanager:{path}"
        self.addons: list[Any] = []
        self.mtime = _mtime(path)  # read before loading: an edit during the load still counts
        module = load_script(path)
        if module is not None:
            self.addons = [module]


class ScriptLoader:
    """Owns the ``scripts`` option and keeps one Script addon per path."""

    def __init__(self) -> None:
        self.addons: list[Script] = []
        self._running = False
        self._watcher: asyncio.Task[None] | None = None

    def configure(self, updated: set[str]) -> None:
        if "scripts" not in updated:
            return
        paths = ctx.options.scripts
        for path in paths:
            if not os.path.isfile(os.path.expanduser(path)):
                raise OptionsError(f"No such script: {path}")
        current = {s.path: s for s in self.addons}
        for path, script in current.items():
            if path not in paths:
                self.addons.remove(script)
                ctx.master.addons.unregister_nested(script)
        for path in paths:
            if path not in current:
                script = Script(path)
                self.addons.append(script)
                self._start(script)

    def _start(self, script: Script) -> None:
        ctx.master.addons.register_nested(self, script)
        if self._running:
            for module in script.addons:
                running = getattr(module, "running", None)
                if callable(running):
                    running()

    def running(self) -> None:
        self._running = True
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # driven synchronously (tests): nothing to watch with
            return
        if self._watcher is None:
            self._watcher = loop.create_task(self._watch_files())

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch_files(self) -> None:
        """Reload a script when its file changes, as mitmproxy does while it runs."""
        while True:
            await asyncio.sleep(RELOAD_INTERVAL)
            for script in list(self.addons):
                mtime = _mtime(script.path)
                if mtime is not None and mtime != script.mtime:
                    self.reload(script)

    def reload(self, script: Script) -> None:
        """Replace ``script`` by a freshly loaded copy (its old module gets ``done``)."""
        logger.info(f"Reloading script {script.path}")
        index = self.addons.index(script)
        ctx.master.addons.unregister_nested(script)
        fresh = Script(script.path)
        self.addons[index] = fresh
        self._start(fresh)

    @command("script.run")
    def script_run(self, flows: Sequence[Flow], path: command_types.Path) -> None:
        """Run a script on flows: it is configured with the current options, then sees
        every hook each flow went through (load is not called). The script is not kept.
        """
        from proxycore.addons.readfile import _Append, hook_sequence

        if not os.path.isfile(path):
            logger.error(f"No such script: {path}")
            return
        module = load_script(path)
        if module is None:
            return
        manager = ctx.master.addons
        try:
            manager.invoke_addon_sync(module, hooks.ConfigureHook(set(ctx.options.keys())))
        except OptionsError as e:
            logger.error(f"Script error in {path}: {e}")
            return
        manager.invoke_addon_sync(module, hooks.RunningHook())
        for flow in flows:
            for hook in hook_sequence(flow):
                if isinstance(hook, _Append):
                    hook = hook.prepare()
                manager.invoke_addon_sync(module, hook)
