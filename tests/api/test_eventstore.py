"""The event store: log records as the web UI's event log shows them."""

from __future__ import annotations

import asyncio
import logging

from proxycore.addons.eventstore import EventStore
from proxycore.addons.termlog import ALERT


def collect(levels: list[int], exc: bool = False, size: int = 10000) -> tuple[EventStore, list[str]]:
    store = EventStore(size)
    seen: list[str] = []
    store.sig_add.connect(lambda entry: seen.append(entry.level))
    logger = logging.getLogger("proxycore.test.eventstore")
    old = logger.level
    logger.setLevel(logging.DEBUG)

    async def run() -> None:
        for level in levels:
            logger.log(level, "message %d", level)
        if exc:
            try:
                raise KeyError("boom")
            except KeyError:
                logger.exception("it failed")
        await asyncio.sleep(0)  # entries are delivered through the loop

    try:
        asyncio.run(run())
    finally:
        logger.setLevel(old)
        store.done()
    return store, seen


def test_levels_and_format() -> None:
    levels = [logging.DEBUG, logging.INFO, ALERT, logging.WARNING, logging.ERROR, logging.CRITICAL]
    store, seen = collect(levels)
    assert seen == ["debug", "info", "alert", "warn", "error", "error"]
    first = store.data[0]
    assert first.msg.endswith("] message 10") and first.msg.startswith("[")
    assert len({e.id for e in store.data}) == len(levels)


def test_exceptions_carry_their_traceback() -> None:
    store, _ = collect([], exc=True)
    (entry,) = store.data
    assert entry.level == "error"
    assert entry.msg.splitlines()[0].endswith("] it failed")
    assert "Traceback (most recent call last)" in entry.msg and "KeyError: 'boom'" in entry.msg


def test_size_limit_and_clear() -> None:
    store, _ = collect([logging.INFO] * 5, size=3)
    assert len(store.data) == 3 and store.size == 3
    refreshed = []
    store.sig_refresh.connect(lambda: refreshed.append(True))
    store.clear()
    assert not store.data and refreshed == [True]


def test_stops_listening_when_done() -> None:
    store, _ = collect([])
    logging.getLogger("proxycore.test.eventstore").warning("after done")
    assert not store.data
