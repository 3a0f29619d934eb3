"""Random UUID4 text for flow and connection ids, from a pooled block of urandom bytes."""

from __future__ import annotations

import os

# The version (4) and variant (RFC 4122) bits of a random UUID, as a 128-bit number.
_UUID4_CLEAR = ~(0xF000 << 64 | 0xC000 << 48)
_UUID4_SET = 0x4000 << 64 | 0x8000 << 48


class _RandomBlock:
    """``os.urandom`` read 4 KiB at a time: one system call per 256 ids, not per id.
    A forked child drops what it inherited, so that it never repeats its parent's ids."""

    def __init__(self) -> None:
        self.data = b""
        self.pos = 0
        os.register_at_fork(after_in_child=self.drop)

    def drop(self) -> None:
        self.data, self.pos = b"", 0

    def take(self, size: int) -> bytes:
        if self.pos + size > len(self.data):
            self.data, self.pos = os.urandom(4096), 0
        start = self.pos
        self.pos = start + size
        return self.data[start : self.pos]


_RANDOM = _RandomBlock()


def new_id() -> str:
    """A random UUID as text, what ``str(uuid.uuid4())`` gives, without building a UUID
    object: a flow is made for every request (and three connection ids per connection),
    and that object cost more than the flow."""
    number = int.from_bytes(_RANDOM.take(16), "big") & _UUID4_CLEAR | _UUID4_SET
    h = f"{number:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
