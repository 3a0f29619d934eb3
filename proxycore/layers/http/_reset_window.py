"""Counting a client's stream resets over a sliding window, for HTTP/2 rapid-reset detection.

The window is cut into ``SLICES`` slices of time; each reset is counted in the slice
of the moment it came, and slices older than the window are forgotten when the next
reset is counted. The count is therefore exact to within one slice (a tenth of the
window). The clock is read only when a reset comes, so the layer needs no timer for
this (a timer would be a command of its own in every playbook, and a wakeup per
connection that once saw a reset).
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable

SLICES = 10


class ResetWindow:
    """How many resets fell into the last ``window`` seconds; over ``limit`` is an attack."""

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.slices: collections.deque[int] = collections.deque([0] * SLICES, maxlen=SLICES)
        self.total = 0
        self.current = self._slice_now()

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window > 0

    @property
    def tick_interval(self) -> float:
        return self.window / SLICES

    def _slice_now(self) -> int:
        return int(self.clock() / self.tick_interval) if self.enabled else 0

    def add(self) -> bool:
        """Count one reset; True once more than ``limit`` are in the window."""
        now = self._slice_now()
        for _ in range(min(now - self.current, SLICES)):
            self.tick()
        self.current = max(now, self.current)
        self.slices[-1] += 1
        self.total += 1
        return self.enabled and self.total > self.limit

    def tick(self) -> None:
        """One slice of time has passed: the oldest slice leaves the window."""
        self.total -= self.slices[0]
        self.slices.append(0)  # maxlen drops the oldest

    @property
    def counting(self) -> bool:
        """Whether any reset is still in the window."""
        return self.total > 0
