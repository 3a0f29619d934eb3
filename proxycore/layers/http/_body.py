"""BodyBuffer: the chunks of a message body until it is complete, held as one copy.

Keeping a list of chunks and joining them at the end holds the body twice at the
moment of the join (64 MiB of chunks plus the 64 MiB result).  A ``BytesIO`` grows a
single bytes object in place instead, and ``getvalue()`` hands that very object over
(CPython shares it rather than copying), so a buffered body costs its own size once.
A body that arrives in one chunk (the common small response) is kept as that chunk.
"""

from __future__ import annotations

import io


class BodyBuffer:
    """Appends body chunks; ``take()`` returns them as one bytes object and empties the buffer."""

    __slots__ = ("_first", "_io", "size")

    def __init__(self) -> None:
        self._first: bytes | None = None
        self._io: io.BytesIO | None = None
        self.size = 0

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
            self._io = io.BytesIO()
            self._io.write(self._first)
            self._io.write(data)
            self._first = None

    def take(self) -> bytes:
        if self._io is not None:
            data = self._io.getvalue()
        else:
            data = self._first or b""
        self.clear()
        return data

    def clear(self) -> None:
        self._first = self._io = None
        self.size = 0
