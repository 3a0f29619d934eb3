"""The view's flows kept in a database store instead of memory (``store`` option).

Memory holds only what changes or was just looked at: flows still live (the proxy
is changing them, and a UI edit must reach the object the proxy holds), flows
changed since the last write, and a least-recently-used cache of full flows bounded
by ``store_memory`` bytes.  Everything else -- the order, the filter, the count,
paging -- is a store query.  Changes are written in batches, at most
``SYNC_INTERVAL`` seconds after they happen, by one timer on the event loop; the
store's writer thread does the disk work.

:class:`proxycore.addons.view.View` calls these methods when ``self.db`` is set.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from proxycore import flowfilter
from proxycore.flow import Flow
from proxycore.store.base import FlowStore, past_deadline, record_of

if TYPE_CHECKING:
    from proxycore.store.postgres import PostgresStore

logger = logging.getLogger("proxycore.view")

SYNC_INTERVAL = 0.2
SYNC_BATCH = 2000  # changed flows that are written at once, without waiting for the timer
RETENTION_INTERVAL = 1.0  # seconds between retention checks while flows change
RANKED_REMOVALS = 1000  # retention removing more flows at once resets the UI's list instead
SYNC_BYTES = 8 * 1024 * 1024  # ... or changed body bytes (a burst of big flows stays small)
_FLOW_OVERHEAD = 6144  # bytes a cached flow's objects take besides its bodies (3.5k measured for a
# small flow read back from a store; real flows carry more headers)


class Removed:
    """Stands for a flow that left the store without being loaded (retention): signals
    carry a flow, and their receivers only read its id."""

    def __init__(self, flow_id: str) -> None:
        self.id = flow_id
        self.marked = ""

    def __repr__(self) -> str:
        return f"<Removed {self.id[:8]}>"


class DBView:
    """Mixin of View: the database-backed half.  See the module docstring."""

    db: FlowStore | None
    filter: Any
    show_marked: bool
    order: str
    order_reversed: bool
    sig_view_add: Any
    sig_view_update: Any
    sig_view_remove: Any
    sig_view_refresh: Any
    sig_store_remove: Any
    sig_store_refresh: Any
    # View's in-memory half, which use_store empties when flows move to a store
    _store: dict[str, Flow]
    _arrival: dict[str, int]
    _entries: list[tuple[Any, int]]
    _flows: list[Flow]
    _entry_of: dict[str, tuple[Any, int]]

    if TYPE_CHECKING:  # View's, for the database half to call

        def _passes(self, flow: Flow) -> bool: ...

        def _add_memory(self, flows: Sequence[Flow]) -> None: ...

        def _order_key(self, flow: Flow) -> Any: ...

        def __iter__(self) -> Iterator[Flow]: ...

    def _db_init(self) -> None:
        self.db = None
        self.cache_limit = 128 * 1024 * 1024
        self.retention_limits: tuple[int, int, float] = (0, 0, 0.0)
        self.instance = ""
        self._cache: collections.OrderedDict[str, Flow] = collections.OrderedDict()
        self._cache_size: dict[str, int] = {}
        self._cache_total = 0
        self._pinned: dict[str, Flow] = {}
        self._shown: dict[str, bool] = {}  # of every flow in _cache or _pinned
        self._keys: dict[str, Any] = {}  # their sort keys when last seen
        self._dirty: dict[str, Flow] = {}
        self._dirty_bytes = 0
        self._last_retention = 0.0
        self._db_len = 0
        self._timer: asyncio.TimerHandle | None = None
        self._age_timer: asyncio.TimerHandle | None = None
        self._high_water = 0  # shared stores: last change seen, highest row seen
        self._foreign_seq = 0

    # switching stores ----------------------------------------------------------------

    def use_store(self, store: FlowStore | None) -> None:
        """Keep flows in ``store`` from now on (None: in memory); flows so far move along."""
        old = self.db
        if old is not None:
            self.sync()
            moving = list(old.query())
            self._db_reset()
        else:
            moving = list(self._store.values())
            self._store.clear()
            self._arrival.clear()
            self._entries, self._flows, self._entry_of = [], [], {}
        self.db = store
        if moving:
            if store is None:
                self._add_memory(moving)
            else:
                store.put_records([record_of(f, self.instance) for f in moving]) if hasattr(
                    store, "put_records"
                ) else store.put(moving)
        self._db_recount()
        self._watch(store)
        self._age_soon()  # a named session may hold flows already past store_max_age
        self.sig_view_refresh.send()
        self.sig_store_refresh.send()

    # flows other instances write to a shared store ------------------------------------

    def _watch(self, store: Any) -> None:
        if store is None or not hasattr(store, "watch"):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop, nothing to deliver changes to (tests of the view alone)
        self._high_water = store.high_water()
        self._foreign_seq = store.max_seq()
        store.watch(lambda: loop.call_soon_threadsafe(self.foreign_changed, store))

    def foreign_changed(self, store: PostgresStore) -> None:
        """Another instance wrote flows: show the new ones, update the others."""
        if store is not self.db:
            return  # a notice for a store we left
        self.sync()
        since = self._high_water
        with store.snapshot():
            high, rows = store.changes(since)
            removed_high, removed, cleared = store.removals(since, self.query_filter(), self.order)
        self._high_water = max(high, removed_high)
        if cleared:  # another instance cleared flows wholesale: start over from the store
            self._db_reset()
            self._db_recount()
            self.sig_view_refresh.send()
            self.sig_store_refresh.send()
            return
        seen = self._foreign_seq
        for seq, flow in rows:
            self._foreign_seq = max(self._foreign_seq, seq)
            known = self._known(flow.id)
            was_shown = self._shown.get(flow.id, seq <= seen) if known is not None else seq <= seen
            if known is not None:
                self._forget(flow.id)  # the other instance's copy is the current one
            shown = self._passes(flow)
            if shown and not was_shown:
                self._db_len += 1
                self.sig_view_add.send(flow)
            elif was_shown and not shown:
                index = self._index_of(flow.id)
                self._db_len = max(0, self._db_len - 1)
                self.sig_view_remove.send(flow, index)
            elif shown:
                self.sig_view_update.send(flow)
        self._foreign_removed(removed)

    def _foreign_removed(self, removed: list[tuple[str, str, tuple[Any, int], bool]]) -> None:
        """Flows another instance removed (retention, delete, clear): gone from this view too."""
        assert self.db is not None
        shown_ones = []
        for flow_id, instance, key, selected in removed:
            known = self._known(flow_id)
            if known is not None:
                shown = self._shown.get(flow_id, False)
            else:  # announced if this instance wrote it, or it was there when we last looked
                shown = selected and (instance == self.instance or key[1] <= self._foreign_seq)
            flow = known or Removed(flow_id)
            self._forget(flow_id)
            if shown:
                shown_ones.append((key, flow))
            else:
                self.sig_store_remove.send(flow)
        # Front to back: the rank among the flows left is where each stood as the ones before it left.
        shown_ones.sort(key=lambda pair: pair[0])
        query = self.query_filter()
        for key, flow in shown_ones:
            self._db_len = max(0, self._db_len - 1)
            self.sig_view_remove.send(flow, self.db.rank(key, query, self.order))  # type: ignore[attr-defined]  # SQL stores only: rank/sort_key
            self.sig_store_remove.send(flow)

    def _index_of(self, flow_id: str) -> int:
        """Where ``flow_id`` stands in the view as stored: the index ``sig_view_remove``
        carries (ascending order, as mitmproxy's view gives it; -1 if it is not stored)."""
        assert self.db is not None
        key = self.db.sort_key(flow_id, self.order)  # type: ignore[attr-defined]  # before this change
        self.sync()
        if key is None:
            key = self.db.sort_key(flow_id, self.order)  # type: ignore[attr-defined]  # SQL stores only: rank/sort_key
        if key is None:
            return -1
        return self.db.rank(key, self.query_filter(), self.order, flow_id, self._db_len)  # type: ignore[attr-defined]  # SQL stores only: rank/sort_key

    def _db_reset(self) -> None:
        self._cache.clear()
        self._cache_size.clear()
        self._cache_total = 0
        self._pinned.clear()
        self._shown.clear()
        self._keys.clear()
        self._dirty.clear()

    # the query every read uses -------------------------------------------------------

    def query_filter(self) -> Any:
        """The view's filter and the marked-only toggle as one filter (None: everything)."""
        flt = None if self.filter is flowfilter.match_all else self.filter
        if self.show_marked:
            marked = flowfilter.parse("~marked")
            return marked if flt is None else _both(flt, marked)
        return flt

    def _db_recount(self) -> None:
        self._db_len = self.db.count(self.query_filter()) if self.db is not None else 0

    # memory: pinned live flows, cached full flows ---------------------------------------

    def _known(self, flow_id: str) -> Flow | None:
        return self._pinned.get(flow_id) or self._cache.get(flow_id)

    def _hold(self, flow: Flow, shown: bool) -> Flow:
        """Keep ``flow`` in memory (pinned while live, else in the cache); the object to use."""
        flow_id = flow.id  # (a property: read once)
        self._shown[flow_id] = shown
        self._keys[flow_id] = self._order_key(flow)
        if flow.live:
            self._uncache(flow_id)
            self._pinned[flow_id] = flow
            return flow
        self._pinned.pop(flow_id, None)
        if flow_id in self._cache:
            self._cache.move_to_end(flow_id)
            self._cache_total -= self._cache_size[flow_id]
        size = _FLOW_OVERHEAD + _body_bytes(flow)
        self._cache[flow_id] = flow
        self._cache_size[flow_id] = size
        self._cache_total += size
        while self._cache_total > self.cache_limit and len(self._cache) > 1:
            old_id, old = next(iter(self._cache.items()))
            if old_id in self._dirty:  # write it before letting it go
                self.sync()
            self._uncache(old_id)
            self._shown.pop(old_id, None)
            self._keys.pop(old_id, None)
        return flow

    def _uncache(self, flow_id: str) -> None:
        if flow_id in self._cache:
            del self._cache[flow_id]
            self._cache_total -= self._cache_size.pop(flow_id)

    def _forget(self, flow_id: str) -> None:
        self._uncache(flow_id)
        self._pinned.pop(flow_id, None)
        self._shown.pop(flow_id, None)
        self._keys.pop(flow_id, None)
        self._dirty.pop(flow_id, None)

    def loaded(self, flow: Flow) -> Flow:
        """A flow read from the store: the object in memory if there is one.  Others are
        not cached (a walk over a million flows must not churn the cache)."""
        return self._known(flow.id) or flow

    # writing ------------------------------------------------------------------------

    def _mark_dirty(self, flow: Flow) -> None:
        flow_id = flow.id
        if flow_id not in self._dirty:
            self._dirty_bytes += _body_bytes(flow)
        self._dirty[flow_id] = flow
        if len(self._dirty) >= SYNC_BATCH or self._dirty_bytes >= SYNC_BYTES:
            self.sync()  # a burst (a flow file loading) that never yields to the timer
        if self._timer is None:
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:
                self.sync()
                return
            self._timer = loop.call_later(SYNC_INTERVAL, self._tick)

    def _tick(self) -> None:
        self._timer = None
        self.sync()
        now = time.monotonic()
        wait = self._last_retention + RETENTION_INTERVAL - now
        if wait <= 0:  # it counts rows: not every tick
            self._last_retention = now
            self.apply_retention()
        elif any(self.retention_limits) and self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(wait, self._tick)  # check later
        self._age_soon()

    def retention_soon(self) -> None:
        """Check the store_max_* limits shortly (now, without an event loop)."""
        if self._timer is not None or not any(self.retention_limits):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.apply_retention()
            return
        self._timer = loop.call_later(SYNC_INTERVAL, self._tick)

    def _age_soon(self) -> None:
        """With store_max_age, look again in a second: flows age while no traffic comes to
        trigger a check, and the UI should see them go when they do."""
        if self._age_timer is not None or not self.retention_limits[2]:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # no loop: the next change or configure looks
        self._age_timer = loop.call_later(RETENTION_INTERVAL, self._age_tick)

    def _age_tick(self) -> None:
        self._age_timer = None
        self.apply_retention(age_only=True)
        self._age_soon()

    def sync(self) -> None:
        """Hand every changed flow to the store, and let finished flows be evicted."""
        if self.db is None or not self._dirty:
            return
        dirty, self._dirty = self._dirty, {}
        self._dirty_bytes = 0
        records = [record_of(f, self.instance) for f in dirty.values()]
        put_records = getattr(self.db, "put_records", None)
        if put_records is not None:
            put_records(records)
        else:
            self.db.put(dirty.values())
        for flow in dirty.values():
            if not flow.live and flow.id in self._pinned:
                self._hold(flow, self._shown.get(flow.id, False))

    def apply_retention(self, age_only: bool = False) -> None:
        """Drop the oldest unmarked flows over the store_max_* limits; tell the UI.
        ``age_only``: store_max_age alone (the once-a-second check that counts no rows)."""
        max_flows, max_bytes, max_age = self.retention_limits
        if age_only:
            max_flows = max_bytes = 0
        if not (max_flows or max_bytes or max_age):
            return
        if self.db is None:
            self._memory_retention((max_flows, max_bytes, max_age))  # type: ignore[attr-defined]  # the in-memory view's method (mixin)
            return
        self.sync()
        doomed = self.db.over_limits(max_flows, max_bytes, max_age)
        if not doomed:
            return
        ranked: list[tuple[int, str]] = []
        if len(doomed) <= RANKED_REMOVALS:
            ranks = self.db.ranks_of(doomed, self.query_filter(), self.order)  # type: ignore[attr-defined]  # SQL stores only
            ranked = sorted((rank, flow_id) for flow_id, rank in ranks.items())
        self.db.delete(doomed)
        self.db.flush()
        # Sent front to back, each index is where the flow stood once the ones before it left.
        for i, (rank, flow_id) in enumerate(ranked):
            self._db_len = max(0, self._db_len - 1)
            self.sig_view_remove.send(self._known(flow_id) or Removed(flow_id), rank - i)
        for flow_id in doomed:
            flow = self._known(flow_id) or Removed(flow_id)
            self._forget(flow_id)
            self.sig_store_remove.send(flow)
        if len(doomed) > RANKED_REMOVALS:  # too many to place one by one: the UI refetches
            self._db_recount()
            self.sig_view_refresh.send()

    # the View operations ---------------------------------------------------------------

    def _db_add(self, flows: Sequence[Flow]) -> None:
        for flow in flows:
            flow_id = flow.id
            if self._known(flow_id) is not None or flow_id in self._dirty:
                continue
            shown = self._passes(flow)
            self._hold(flow, shown)
            self._mark_dirty(flow)
            if shown:
                self._db_len += 1
                self.sig_view_add.send(flow)

    def _db_update(self, flows: Sequence[Flow]) -> None:
        for flow in flows:
            if self._unchanged_live(flow):
                self.sig_view_update.send(flow)
                continue
            flow_id = flow.id
            known = self._known(flow_id)
            if known is None:
                if flow_id in self._dirty:
                    known = flow
                elif self.db is not None and self.db.has(flow_id):
                    known = flow
                    stored = self.db.get(flow_id)  # None if another instance just deleted it
                    self._shown[flow_id] = stored is not None and self._passes(stored)
                else:
                    continue  # removed from the store: stays removed
            was_shown = self._shown.get(flow_id, False)
            old_key = self._keys.get(flow_id)
            shown = self._passes(flow)
            index = self._index_of(flow_id) if was_shown and not shown else -1
            self._hold(flow, shown)
            self._mark_dirty(flow)
            if shown and not was_shown:
                self._db_len += 1
                self.sig_view_add.send(flow)
            elif was_shown and not shown:
                self._db_len = max(0, self._db_len - 1)
                self.sig_view_remove.send(flow, index)
            elif shown and old_key is not None and old_key != self._keys[flow_id]:
                self.sig_view_refresh.send()  # it moved, as the memory view says
            elif shown:
                self.sig_view_update.send(flow)

    def _unchanged_live(self, flow: Flow) -> bool:
        """Whether an update of ``flow`` changes nothing but its contents: it is live, held
        and shown, still passes with the same sort key, and waits for the next write. Each
        flow hook ends in an update, so this is the common case; the full path would only
        set what is already set."""
        flow_id = flow.id
        return (
            flow.live
            and self._timer is not None
            and self._pinned.get(flow_id) is flow
            and self._dirty.get(flow_id) is flow
            and self._shown.get(flow_id) is True
            and self._passes(flow)
            and self._keys.get(flow_id) == self._order_key(flow)
        )

    def _db_remove(self, flows: Sequence[Flow]) -> None:
        assert self.db is not None
        self.sync()
        for flow in flows:
            known = self._known(flow.id) is not None
            if not known and not self.db.has(flow.id):
                continue
            if flow.killable:
                flow.kill()
            shown = self._shown.get(flow.id) if known else self._passes(flow)
            index = self._index_of(flow.id) if shown else -1
            self._forget(flow.id)
            self.db.delete([flow.id])
            if shown:
                self._db_len = max(0, self._db_len - 1)
                self.sig_view_remove.send(flow, index)
            self.sig_store_remove.send(flow)

    def _db_clear(self, keep_marked: bool) -> None:
        assert self.db is not None
        self.sync()
        self.db.clear(keep_marked=keep_marked)
        for flow_id in list(self._shown):
            flow = self._known(flow_id)
            if not keep_marked or flow is None or not flow.marked:
                self._forget(flow_id)
        self._db_recount()

    def _db_iter(
        self, flt: Any = None, offset: int = 0, limit: int | None = None, bodies: bool = True
    ) -> Iterator[Flow]:
        rows = self.stored_page(offset, limit, flt, bodies)
        assert rows is not None
        for flow in rows:
            yield self.loaded(flow)

    def stored_page(
        self, offset: int = 0, limit: int | None = None, flt: Any = None, bodies: bool = True
    ) -> Iterator[Flow] | None:
        """:meth:`page` as the database store reads it, for a reader on another thread (a
        filter checked in Python may walk millions of rows; the event loop must not wait for
        that): changes are written first, and each flow goes through :meth:`loaded` on the
        event loop.  None without a database store."""
        if self.db is None:
            return None
        self.sync()
        query = self.query_filter()
        if flt is not None:
            query = flt if query is None else _both(query, flt)
        return self.db.query(query, self.order, self.order_reversed, offset, limit, bodies)

    def _db_get(self, flow_id: str) -> Flow | None:
        known = self._known(flow_id) or self._dirty.get(flow_id)
        if known is not None:
            return known
        assert self.db is not None
        self.sync()
        flow = self.db.get(flow_id)
        if flow is None:
            return None
        return self._hold(flow, self._passes(flow))

    def _db_contains(self, flow: Flow) -> bool:
        if flow.id in self._shown:
            return self._shown[flow.id]
        return self._db_get(flow.id) is not None and self._passes(flow)

    def _db_index(self, flow: Flow) -> int:
        assert self.db is not None
        self.sync()
        query = self.query_filter()
        for i, flow_id in enumerate(self.db.ids(query, self.order, self.order_reversed)):
            if flow_id == flow.id:
                return i
        raise ValueError(f"{flow!r} is not in the view")

    def matching_ids(self, flt: Any, deadline: float | None = None) -> Iterator[str]:
        """Ids of the shown flows ``flt`` also matches, in view order; TimeoutError once
        ``deadline`` (time.monotonic()) has passed, matches or not."""
        if self.db is None:
            for flow in self:
                past_deadline(deadline)
                if flt(flow):
                    yield flow.id
            return
        self.sync()
        yield from self.db.ids(_both(self.query_filter(), flt), self.order, self.order_reversed, deadline)

    def page(
        self, offset: int = 0, limit: int | None = None, flt: Any = None, bodies: bool = True
    ) -> Iterator[Flow]:
        """Shown flows (that ``flt`` also matches) from ``offset``, at most ``limit`` of them.
        ``bodies=False``: for a list only (a database store may leave bodies unread, see
        :data:`proxycore.store.base.STORED_BODIES`)."""
        if self.db is not None:
            yield from self._db_iter(flt, offset, limit, bodies)
            return
        skipped = produced = 0
        for flow in self:
            if limit is not None and produced >= limit:
                return
            if flt is not None and not flt(flow):
                continue
            if skipped < offset:
                skipped += 1
                continue
            produced += 1
            yield flow

    def close_store(self, keep: bool = True) -> None:
        """Stop the timers and write what is left.  ``keep=False``: the store is deleted right
        after (proxyweb's per-run file), so nothing more is written to it -- rewriting every
        flow memory holds cost as much as the flows' first writes together."""
        for timer in (self._timer, self._age_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._age_timer = None
        if self.db is not None and not keep:
            self._dirty.clear()
            self._dirty_bytes = 0
            self.db.flush()
        elif self.db is not None:
            # Connections close after their flow's last hook (timestamp_end): write what
            # memory holds once more, so a restart shows the flows as they ended.
            for flow in [*self._pinned.values(), *self._cache.values()]:
                self._dirty[flow.id] = flow
            self.sync()
            self.db.flush()


def _both(a: Any, b: Any) -> Any:
    if a is None:
        return b
    if isinstance(a, flowfilter.Filter) and isinstance(b, flowfilter.Filter):
        return flowfilter.And([a, b])
    return lambda flow: a(flow) and b(flow)


def _body_bytes(flow: Flow) -> int:
    size = 0
    for part in ("request", "response"):
        message = getattr(flow, part, None)
        raw = getattr(message, "raw_content", None)
        if raw:
            size += len(raw)
    return size
