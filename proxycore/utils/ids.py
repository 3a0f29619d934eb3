"""Random UUID4 text for flow and connection ids, made in batches from one block of urandom bytes."""

from __future__ import annotations

import os

_BATCH = 256  # ids per os.urandom call (4 KiB)
# Byte -> the same byte with the UUID version (high nibble 4) or RFC 4122 variant (top bits 10) set.
_VERSION = bytes((b & 0x0F) | 0x40 for b in range(256))
_VARIANT = bytes((b & 0x3F) | 0x80 for b in range(256))
# Where the 32 hex digits of an id go in its 36-character text (the others are hyphens).
_DIGIT_POSITIONS = [p for p in range(36) if p not in (8, 13, 18, 23)]


def _random_bytes(size: int) -> bytes:
    return os.urandom(size)


class _IdPool:
    """Ready-made id strings. A batch is laid out as text with a few slice assignments over
    the whole block (version and variant bits by ``translate``, each digit column into
    place), so a Python-level step per id is only the ``pop``: formatting each id with
    slices and an f-string cost ~8k instructions per id (cachegrind), now ~2.3k.
    A forked child drops what it inherited, so that it never repeats its parent's ids."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        os.register_at_fork(after_in_child=self.drop)

    def drop(self) -> None:
        self.ids = []

    def refill(self) -> None:
        block = bytearray(_random_bytes(16 * _BATCH))
        block[6::16] = block[6::16].translate(_VERSION)
        block[8::16] = block[8::16].translate(_VARIANT)
        digits = block.hex().encode("ascii")  # 32 per id
        text = bytearray(b"-" * 36 + b" ") * _BATCH  # 36 characters and a space per id
        for digit, position in enumerate(_DIGIT_POSITIONS):
            text[position::37] = digits[digit::32]
        self.ids = text.decode("ascii").split()


_POOL = _IdPool()


def new_id() -> str:
    """A random UUID as text, what ``str(uuid.uuid4())`` gives, without building a UUID
    object: a flow is made for every request (and three connection ids per connection),
    and that object cost more than the flow."""
    ids = _POOL.ids
    if not ids:
        _POOL.refill()
        ids = _POOL.ids
    return ids.pop()
