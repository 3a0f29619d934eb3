"""Random UUID4 text for flow and connection ids, from a pooled block of urandom bytes."""

from __future__ import annotations

import os

# A random hex digit -> the RFC 4122 variant digit (binary 10xx) that keeps its two low bits.
_VARIANT_DIGIT = {digit: "89ab"[int(digit, 16) & 3] for digit in "0123456789abcdef"}


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
    h = _RANDOM.take(16).hex()  # (the version and variant digits replaced as text: no 128-bit int)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{_VARIANT_DIGIT[h[16]]}{h[17:20]}-{h[20:]}"
