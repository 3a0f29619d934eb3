"""The memory backend: flows kept as objects in a dict, as mitmweb keeps them.

Nothing is copied: ``get`` returns the object that was put.  Used by ``store=memory``
for the store commands, and as the reference the database backends are tested against.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from proxycore.flow import Flow
from proxycore.store.base import FlowStore, Stats, flow_size, oldest_over_limits


def _order_key(order: str) -> Any:
    from proxycore.addons.view import _KEYS

    return _KEYS.get(order, _KEYS["time"])


class MemoryStore(FlowStore):
    backend = "memory"
    location = "(memory)"
    persistent = False

    def __init__(self) -> None:
        self._flows: dict[str, Flow] = {}
        self._arrival: dict[str, int] = {}
        self._next = 0

    def put(self, flows: Iterable[Flow]) -> None:
        for flow in flows:
            if flow.id not in self._flows:
                self._arrival[flow.id] = self._next
                self._next += 1
            self._flows[flow.id] = flow

    def get(self, flow_id: str) -> Flow | None:
        return self._flows.get(flow_id)

    def delete(self, flow_ids: Iterable[str]) -> None:
        for flow_id in flow_ids:
            self._flows.pop(flow_id, None)
            self._arrival.pop(flow_id, None)

    def clear(self, keep_marked: bool = False) -> list[str]:
        ids = [i for i, f in self._flows.items() if not (keep_marked and f.marked)]
        self.delete(ids)
        return ids

    def count(self, flt: Any = None) -> int:
        if flt is None:
            return len(self._flows)
        return sum(1 for f in self._flows.values() if flt(f))

    def query(
        self, flt: Any = None, order: str = "time", reverse: bool = False,
        offset: int = 0, limit: int | None = None, bodies: bool = True,
    ) -> Iterator[Flow]:
        key = _order_key(order)
        flows = [f for f in self._flows.values() if flt is None or flt(f)]
        flows.sort(key=lambda f: (key(f), self._arrival[f.id]), reverse=reverse)
        end = None if limit is None else offset + limit
        yield from flows[offset:end]

    def over_limits(
        self, max_flows: int = 0, max_bytes: int = 0, max_age: float = 0, now: float | None = None
    ) -> list[str]:
        return oldest_over_limits(self._flows.values(), max_flows, max_bytes, max_age, now)

    def stats(self) -> Stats:
        flows = list(self._flows.values())
        return Stats(
            len(flows), sum(flow_size(f) for f in flows), sum(1 for f in flows if f.marked),
            self.backend, self.location,
        )
