"""The hooks a flow goes through, in order (``mitmproxy.eventsequence``)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from proxycore.addons.readfile import _Append, hook_sequence


def iterate(f: Any) -> Iterator[Any]:
    """Yield the hooks ``f`` would see live; message hooks see their message as the last one."""
    for hook in hook_sequence(f):
        yield hook.prepare() if isinstance(hook, _Append) else hook
