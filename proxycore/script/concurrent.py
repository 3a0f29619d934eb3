"""``@concurrent``: run a slow hook handler in a worker thread so other flows keep moving."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

# Importing these registers every hook in hooks.all_hooks (mitmproxy's check needs them all).
import proxycore.layers.http
import proxycore.layers.quic
import proxycore.layers.tcp
import proxycore.layers.tls
import proxycore.layers.websocket
import proxycore.proxy.server_hooks  # noqa: F401
from proxycore import hooks

# Lifecycle hooks run outside the event loop's flow handling; threading them gains nothing.
_NOT_CONCURRENT = {"load", "configure"}


def concurrent(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate a hook handler (``request``, ``response``...): the flow waits for it, the
    proxy does not.  An async handler gets its own event loop in the thread."""
    if fn.__name__ not in set(hooks.all_hooks) - _NOT_CONCURRENT:
        raise NotImplementedError(f"Concurrent decorator not supported for '{fn.__name__}' method.")

    def run(*args: Any) -> None:
        if inspect.iscoroutinefunction(fn):
            asyncio.run(fn(*args))
        else:
            fn(*args)

    async def in_thread(*args: Any) -> None:
        await asyncio.get_running_loop().run_in_executor(None, run, *args)

    in_thread.__name__ = fn.__name__
    in_thread.__doc__ = fn.__doc__
    return in_thread
