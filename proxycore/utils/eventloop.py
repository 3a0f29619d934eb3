"""Which event loop runs the proxy: uvloop's where it is installed, else asyncio's.

uvloop is a dependency wherever it exists (not on Windows): a new connection per request
costs about 30 % less CPU on it, keep-alive the same (docs/architecture.md, "Event loop").
``PROXYCORE_EVENT_LOOP=asyncio`` opts out; ``uvloop`` insists (and says so when it is
missing). Worker processes inherit the variable, so they run on the primary's loop.

Nothing here imports asyncio or uvloop until ``run``: ``--version`` names the loop without
starting the engine.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

ENV = "PROXYCORE_EVENT_LOOP"
LOOPS = ("uvloop", "asyncio")


def choose() -> tuple[str, str | None]:
    """The loop ``run`` uses ("uvloop" or "asyncio") and, if it is not the one asked for, why."""
    wanted = os.environ.get(ENV, "").strip().lower()
    if wanted == "asyncio":
        return "asyncio", None
    installed = importlib.util.find_spec("uvloop") is not None
    default = "uvloop" if installed else "asyncio"
    if wanted == "uvloop" and not installed:
        return "asyncio", f"{ENV}=uvloop, but uvloop is not installed: using asyncio's loop"
    if wanted not in ("", "uvloop"):
        return default, f"{ENV}={wanted!r} is not known ({' or '.join(LOOPS)}): using {default}"
    return default, None


def describe() -> str:
    """The loop ``run`` would use, with uvloop's version (for ``--version``)."""
    name, _ = choose()
    if name != "uvloop":
        return name
    from importlib.metadata import PackageNotFoundError, version

    try:
        return f"uvloop {version('uvloop')}"
    except PackageNotFoundError:  # importable but not installed as a distribution
        return "uvloop"


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop ``choose`` picks."""
    name, warning = choose()
    if warning:
        print(warning, file=sys.stderr)
    if name == "uvloop":
        import uvloop

        return uvloop.run(main)
    import asyncio

    return asyncio.run(main)
