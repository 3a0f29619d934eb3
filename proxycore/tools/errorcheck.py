"""Startup error check for the command-line tools."""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any


class _Collector(logging.Handler):
    def __init__(self, records: list[logging.LogRecord]) -> None:
        super().__init__(logging.ERROR)
        self.records = records

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class StartupErrorCheck:
    """Turns an error logged while starting up (a script that fails to load, a port that is
    taken) into exit status 1, as mitmdump's errorcheck addon does.  Errors logged once the
    proxy runs are only shown, never fatal: the handler is removed after ``running``."""

    name = "errorcheck"

    def __init__(self) -> None:
        self.records: list[logging.LogRecord] = []
        self.exit_code = 0
        self.master: Any = None
        self._handler = _Collector(self.records)
        logging.getLogger().addHandler(self._handler)

    def failed(self) -> bool:
        return bool(self.records)

    def exit_now(self) -> int:
        """The errors themselves were already printed by the terminal log."""
        print("Error logged during startup, exiting...", file=sys.stderr, flush=True)
        self.exit_code = 1
        self.uninstall()
        return 1

    async def running(self) -> None:
        await asyncio.sleep(0)  # records from tasks that earlier addons started land first
        if self.records:
            self.exit_now()
            if self.master is not None:
                self.master.shutdown()
        self.uninstall()

    def uninstall(self) -> None:
        logging.getLogger().removeHandler(self._handler)
