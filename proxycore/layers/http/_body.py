"""BodyBuffer: the chunks of a message body until it is complete, held as one copy.

Keeping a list of chunks and joining them at the end holds the body twice at the
moment of the join (64 MiB of chunks plus the 64 MiB result).  A ``BytesIO`` grows a
single bytes object in place instead, and ``getvalue()`` hands that very object over
(CPython shares it rather than copying), so a buffered body costs its own size once.
A body that arrives in one chunk (the common small response) is kept as that chunk.

Growing costs, though: each time the buffer outgrows its room it is reallocated, which
copies what it holds and touches new pages (about half the proxy's CPU time for 1 MiB
responses). A body whose size is announced (``expect``, from Content-Length) gets all its
room at once: ``BytesIO(bytes(size))`` takes over that zeroed object as its buffer (the
only reference, so it is written in place rather than copied first) and each chunk is
copied into it exactly once.
"""

from __future__ import annotations

import io

# Room is made up front for announced sizes up to this; a larger body (buffered only when
# body_buffer_limit is off) grows as it comes, so that a declared size alone cannot make
# the proxy reserve memory.
PREALLOCATE_LIMIT = 256 * 1024 * 1024


class BodyBuffer:
    """Appends body chunks; ``take()`` returns them as one bytes object and empties the buffer."""

    __slots__ = ("_first", "_io", "expected", "size")

    def __init__(self) -> None:
        self._first: bytes | None = None
        self._io: io.BytesIO | None = None
        self.size = 0
        self.expected = 0  # the announced size, if any (see expect)

    def expect(self, size: int | None) -> None:
        """The body announces ``size`` bytes: a second chunk makes room for all of them."""
        self.expected = size if size is not None and size <= PREALLOCATE_LIMIT else 0

    def __bool__(self) -> bool:
        return self.size > 0

    def __len__(self) -> int:
        return self.size

    def append(self, data: bytes) -> None:
        if not data:
            return
        self.size += len(data)
        if self._io is not None:
            self._io.write(data)
        elif self._first is None:
            self._first = bytes(data)
        else:
            if self.expected > len(self._first):
                self._io = io.BytesIO(bytes(self.expected))  # written over from position 0
            else:
                self._io = io.BytesIO()
            self._io.write(self._first)
            self._io.write(data)
            self._first = None

    def take(self) -> bytes:
        if self._io is not None:
            self._io.truncate()  # room expected but not filled (a body that ended short)
            data = self._io.getvalue()
        else:
            data = self._first or b""
        self._first = self._io = None  # (what clear does, without its call: twice per request)
        self.size = self.expected = 0
        return data

    def clear(self) -> None:
        self._first = self._io = None
        self.size = self.expected = 0
