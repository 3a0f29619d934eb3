"""Text transformations shared by the proxydump goldens' generator and their tests."""

from __future__ import annotations

import hashlib
from typing import Any

FOLD_OVER = 600  # bodies longer than this many lines are kept as a line count and hash


def fold_long_bodies(text: str) -> str:
    """Replace each run of more than FOLD_OVER indented lines with one summary line,
    so a 1 MiB hex dump is compared by its SHA-256 instead of being stored."""
    out: list[str] = []
    run: list[str] = []

    def flush() -> None:
        if len(run) > FOLD_OVER:
            digest = hashlib.sha256("\n".join(run).encode()).hexdigest()
            out.append(f"<{len(run)} indented lines, sha256 {digest}>")
        else:
            out.extend(run)
        run.clear()

    for line in text.split("\n"):
        if line.startswith("    "):
            run.append(line)
            continue
        flush()
        out.append(line)
    flush()
    return "\n".join(out)


def cut_bodies(text: str, cutoff: int = 512) -> str:
    """mitmdump 12.3.1's level-3 output as its help describes it: every body followed by
    "(cut off)" keeps only its first ``cutoff`` lines.  (mitmdump prints the marker but
    then the whole body.)"""
    out: list[str] = []
    for line in text.split("\n"):
        if line == "    (cut off)":
            start = len(out) - 1
            while out[start] != "":
                start -= 1
            del out[start + 1 + cutoff :]
        out.append(line)
    return "\n".join(out)


def fold_long_strings(value: Any, limit: int = 100_000) -> Any:
    """A JSON value with every string longer than ``limit`` replaced by its length and SHA-256."""
    if isinstance(value, dict):
        return {k: fold_long_strings(v, limit) for k, v in value.items()}
    if isinstance(value, list):
        return [fold_long_strings(v, limit) for v in value]
    if isinstance(value, str) and len(value) > limit:
        return f"<{len(value)} characters, sha256 {hashlib.sha256(value.encode()).hexdigest()}>"
    return value
