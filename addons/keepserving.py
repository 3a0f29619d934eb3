"""proxydump exits once a flow file is read and client/server replays are over (mitmdump's rule).

With ``-r``, ``-C`` or ``-S`` and without ``--keepserving``, it polls the addons that can
still have work (file being read, client replays queued or running, recorded responses
not yet served, open proxy connections) and shuts down when none has.
"""

from __future__ import annotations

import asyncio

from proxycore import ctx
from proxycore.exceptions import CommandError

# Each answers "is there still work?" (a bool or a count).
WORK_COMMANDS = (
    "readfile.reading",
    "replay.client.count",
    "replay.server.count",
    "proxyserver.active_connections",
)
POLL_SECONDS = 0.1


class KeepServing:
    def __init__(self) -> None:
        self.watcher: asyncio.Task[None] | None = None

    def keepgoing(self) -> bool:
        for name in WORK_COMMANDS:
            try:
                if ctx.master.commands.call(name):
                    return True
            except CommandError:
                continue  # that addon is not loaded
        return False

    async def watch(self) -> None:
        while True:
            await asyncio.sleep(POLL_SECONDS)
            if not self.keepgoing():
                ctx.master.shutdown()
                return

    def running(self) -> None:
        opts = ctx.options
        if any((opts.client_replay, opts.server_replay, opts.rfile)) and not opts.keepserving:
            self.watcher = asyncio.get_running_loop().create_task(self.watch())

    async def done(self) -> None:
        if self.watcher is not None:
            self.watcher.cancel()
            await asyncio.gather(self.watcher, return_exceptions=True)
            self.watcher = None
