"""Which event loop runs the proxy: asyncio's, or uvloop's when asked for.

``PROXYCORE_EVENT_LOOP=uvloop`` runs the process (and its workers, which inherit the
environment) on uvloop if it is installed; otherwise, or unset, asyncio's default loop.
Opt-in, because the figures on a shared machine did not justify making it the default
(see docs/architecture.md).
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run(main)`` on the loop PROXYCORE_EVENT_LOOP names."""
    wanted = os.environ.get("PROXYCORE_EVENT_LOOP", "").strip().lower()
    if wanted == "uvloop":
        try:
            import uvloop
        except ImportError:
            print("PROXYCORE_EVENT_LOOP=uvloop, but uvloop is not installed: using asyncio's loop",
                  file=sys.stderr)
        else:
            return uvloop.run(main)
    elif wanted not in ("", "asyncio"):
        print(f"PROXYCORE_EVENT_LOOP={wanted!r} is not known (asyncio or uvloop): using asyncio's loop",
              file=sys.stderr)
    return asyncio.run(main)
