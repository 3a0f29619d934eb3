"""A finished HTTP stream is freed by refcounting, with its flow, not by the cyclic garbage
collector (issue 15: a reference cycle per request made ~30 objects wait for the collector,
which then ran every few dozen requests and took about 6 % of the proxy's CPU)."""

from __future__ import annotations

import gc

from proxycore.layers.http import HttpStream
from tests.speed.test_layer_fast_paths import converse


def test_a_conversation_leaves_no_cyclic_garbage_per_stream() -> None:
    converse(instant_hooks=True)  # imports and first-use caches
    gc.collect()
    flags = gc.get_debug()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        converse(instant_hooks=True)
        converse(instant_hooks=False)
        gc.collect()
        streams = [o for o in gc.garbage if isinstance(o, HttpStream)]
    finally:
        gc.set_debug(flags)
        gc.garbage.clear()
    assert streams == []
