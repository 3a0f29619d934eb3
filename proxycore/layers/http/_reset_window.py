"""Counting a client's stream resets over a sliding window, for HTTP/2 rapid-reset detection.

A layer has no clock: time only passes for it when a Wakeup it asked for comes
back. So the window is cut into ``SLICES`` slices; the owner asks for a Wakeup
every ``window / SLICES`` seconds while any reset is still being counted and
calls ``tick`` on each, which forgets the oldest slice. The count is therefore
exact to within one slice (a tenth of the window).
"""

from __future__ import annotations

import collections

SLICES = 10


class ResetWindow:
    """How many resets fell into the last ``window`` seconds; over ``limit`` is an attack."""

    def __init__(self, limit: int, window: float) -> None:
        self.limit = limit
        self.window = window
        self.slices: collections.deque[int] = collections.deque([0] * SLICES, maxlen=SLICES)
        self.total = 0

    @property
    def enabled(self) -> bool:
        return self.limit > 0 and self.window > 0

    @property
    def tick_interval(self) -> float:
        return self.window / SLICES

    def add(self) -> bool:
        """Count one reset; True once more than ``limit`` are in the window."""
        self.slices[-1] += 1
        self.total += 1
        return self.enabled and self.total > self.limit

    def tick(self) -> None:
        """One slice of time has passed: the oldest slice leaves the window."""
        self.total -= self.slices[0]
        self.slices.append(0)  # maxlen drops the oldest

    @property
    def counting(self) -> bool:
        """Whether any reset is still in the window (and so ticks are still needed)."""
        return self.total > 0
