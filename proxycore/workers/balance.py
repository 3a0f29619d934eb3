"""Spreading client connections evenly over the workers (``--workers N``).

With SO_REUSEPORT the kernel picks a worker per connection by a hash of its addresses:
16 keep-alive connections came out 5/11, 6/10, 7/9 over two workers, and the worker with
11 then caps the whole proxy at 16/11 = 1.45 times one worker.  So the primary binds the
listening sockets once and hands them to every worker (one accept queue), and each
worker, when a connection is waiting, holds back for a moment if another worker has
fewer open client connections than it has: the less busy worker takes it.

The counts live in a small shared file (one 8-byte slot per worker, mapped by all); a
slot of a worker that is not running holds ``ABSENT`` so nobody waits for it.
"""

from __future__ import annotations

import mmap
import os

ABSENT = 1 << 62
SLOT = 8
# How long a busier worker leaves a waiting connection to the others (seconds).
HOLD_BACK = 0.002


class Counts:
    """Open client connections per worker, in a file every worker maps."""

    def __init__(self, path: str, workers: int, create: bool = False) -> None:
        self.path = path
        self.workers = workers
        if create:
            with open(path, "wb") as f:
                f.write(ABSENT.to_bytes(SLOT, "little") * workers)
        fd = os.open(path, os.O_RDWR)
        try:
            self._map = mmap.mmap(fd, workers * SLOT)
        finally:
            os.close(fd)
        self._slots = memoryview(self._map).cast("q")

    def set(self, index: int, count: int) -> None:
        if 0 <= index < self.workers:
            self._slots[index] = count

    def hold_back(self, index: int) -> float:
        """Seconds worker ``index`` should wait before accepting (0: accept now)."""
        slots = self._slots
        own = slots[index]
        for other in range(self.workers):
            if other != index and slots[other] < own:
                return HOLD_BACK
        return 0.0

    def close(self) -> None:
        self._slots.release()
        self._map.close()
