"""Keeps the recent log lines (the web UI's event log), formatted as the terminal shows them."""

from __future__ import annotations

import asyncio
import collections
import itertools
import logging
from dataclasses import dataclass, field

from proxycore.addons.termlog import ALERT, TermLogHandler
from proxycore.command import command
from proxycore.utils.signals import Signal

# logging level -> the level names mitmproxy's log entries and the web UI use
_LEVEL_NAMES = {
    logging.CRITICAL: "error",
    logging.ERROR: "error",
    logging.WARNING: "warn",
    ALERT: "alert",
    logging.INFO: "info",
    logging.DEBUG: "debug",
}
_ids = itertools.count(1)


@dataclass
class LogEntry:
    msg: str
    level: str
    id: int = field(default_factory=lambda: next(_ids))


class _Handler(TermLogHandler):
    """Formats like the terminal log (without colour) and hands entries to the store."""

    def __init__(self, store: EventStore) -> None:
        super().__init__(level=logging.DEBUG)
        self.colour = False
        self.full_tracebacks = True
        self.store = store

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)
        except Exception:
            self.handleError(record)
            return
        self.store.deliver_line(record.levelno, text)


class EventStore:
    """Addon: the last ``size`` log entries, with ``sig_add`` / ``sig_refresh`` for watchers.

    Entries are delivered through the event loop (``call_soon_threadsafe``), so a
    watcher that logs while handling an entry never re-enters itself, and log
    calls from other threads are safe.
    """

    def __init__(self, size: int = 10000) -> None:
        self.data: collections.deque[LogEntry] = collections.deque(maxlen=size)
        self.sig_add = Signal()
        self.sig_refresh = Signal()
        self.handler = _Handler(self)
        self.handler.install()
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def size(self) -> int | None:
        return self.data.maxlen

    def running(self) -> None:
        self._loop = asyncio.get_running_loop()

    def done(self) -> None:
        self.handler.uninstall()

    def deliver(self, entry: LogEntry) -> None:
        loop = self._loop
        if loop is None:
            try:
                loop = self._loop = asyncio.get_running_loop()
            except RuntimeError:
                self._add(entry)
                return
        if loop.is_closed():
            return
        loop.call_soon_threadsafe(self._add, entry)

    def deliver_line(self, levelno: int, text: str) -> None:
        """A formatted log line at logging level ``levelno`` (ours, or a worker's: see
        proxycore/workers/child.py's LogForwarder)."""
        level = _LEVEL_NAMES.get(levelno) or ("error" if levelno > logging.ERROR else "debug")
        self.deliver(LogEntry(text, level))

    def _add(self, entry: LogEntry) -> None:
        self.data.append(entry)
        self.sig_add.send(entry)

    @command("eventstore.clear")
    def clear(self) -> None:
        """Clear the event log."""
        self.data.clear()
        self.sig_refresh.send()
