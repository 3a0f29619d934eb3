"""The flow view: every flow the proxy has seen, and the filtered, ordered list a user looks at.

Two layers, as in mitmproxy:

* the **store** holds every flow by id, in arrival order;
* the **view** is the part of the store that passes ``view_filter`` (and the
  marked-only toggle), kept sorted by ``view_order`` (time, method, url or
  size; ties keep arrival order), optionally reversed.

Front ends (the web API, tests) watch it through signals, all sent after the
view changed: ``sig_view_add(flow)``, ``sig_view_update(flow)``,
``sig_view_remove(flow, index)``, ``sig_view_refresh()`` (rebuilt: refetch
everything), and for the store ``sig_store_remove(flow)`` and
``sig_store_refresh()``.  A flow that changes in the store but is not shown
sends nothing, unless the change makes it pass the filter (then it is added)
or stop passing it (then it is removed).

Sort keys are cached per flow: when a flow's key changes (its size grows under
``view_order=size``) it is moved and the view is refreshed, the same signal
mitmproxy sends.
"""

from __future__ import annotations

import bisect
import itertools
import logging
import pathlib
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from proxycore import ctx, flowfilter
from proxycore.addons.viewdb import DBView
from proxycore.command import command
from proxycore.exceptions import CommandError
from proxycore.flow import Flow
from proxycore.hooks import UpdateHook
from proxycore.store.base import flow_size as _size_key
from proxycore.store.base import oldest_over_limits
from proxycore.store.sqlfilter import IdSet
from proxycore.utils.signals import Signal

from .view_focus import Focus, Settings, _Order

logger = logging.getLogger("proxycore.view")

ORDERS = ("time", "method", "url", "size")
_ID_LIST = re.compile(r"@[0-9a-f\-,]{36,}")
_HOST = re.compile(r"^(\[[0-9a-fA-F:.]+\]|[^\x00-\x20/\\?#@\[\]]+)$")


def _method_key(flow: Flow) -> str:
    request = getattr(flow, "request", None)
    if request is not None and hasattr(request, "method"):
        return request.method
    if request is not None and hasattr(request, "op_code"):  # DNS: the operation, as mitmproxy
        from proxycore.net.dns import op_codes

        return op_codes.to_str(request.op_code)
    return flow.type.upper()


def _url_key(flow: Flow) -> str:
    request = getattr(flow, "request", None)
    if request is not None and hasattr(request, "url"):
        return request.url
    questions = getattr(request, "questions", None)
    if questions:  # DNS: the name asked for, as mitmproxy
        return questions[0].name
    from proxycore.utils.human import format_address

    address = flow.server_conn.address if flow.server_conn else None
    return format_address(address) if address else ""


_KEYS: dict[str, Callable[[Flow], Any]] = {
    "time": lambda f: f.timestamp_created,
    "method": _method_key,
    "url": _url_key,
    "size": _size_key,
}


class OrderRequestStart(_Order):
    key = _KEYS["time"]


class OrderRequestMethod(_Order):
    key = _method_key


class OrderRequestURL(_Order):
    key = _url_key


class OrderKeySize(_Order):
    key = _size_key


class View(DBView, Sequence[Flow]):
    """Addon holding the flows; see the module docstring.  With a database store
    (``use_store``) the flows live there and the ``_db_*`` methods of DBView run."""

    def __init__(self) -> None:
        self._db_init()
        self._store: dict[str, Flow] = {}
        self._arrival: dict[str, int] = {}  # flow id -> store insertion number (tie breaker)
        self._counter = itertools.count()
        self.filter: Callable[[Flow], bool] = flowfilter.match_all
        self.show_marked = False
        self.order = "time"
        self.order_reversed = False
        # The sorted view: parallel lists of (key, arrival) and flows, plus each shown
        # flow's current entry so that it can be found again after its key changed.
        self._entries: list[tuple[Any, int]] = []
        self._flows: list[Flow] = []
        self._entry_of: dict[str, tuple[Any, int]] = {}

        self.sig_view_add = Signal()
        self.sig_view_update = Signal()
        self.sig_view_remove = Signal()
        self.sig_view_refresh = Signal()
        self.sig_store_remove = Signal()
        self.sig_store_refresh = Signal()
        # mitmproxy console's cursor and per-flow notes (see view_focus)
        self.focus_follow = False
        self.focus = Focus(self)
        self.settings = Settings(self)

    # options -----------------------------------------------------------------

    def load(self, loader: Any) -> None:
        loader.add_option("view_filter", str | None, None, "Limit the view to matching flows.")
        loader.add_option("view_order", str, "time", "Flow sort order.", choices=list(ORDERS))
        loader.add_option("view_order_reversed", bool, False, "Reverse the sorting order.")
        loader.add_option("console_focus_follow", bool, False, "Focus follows new flows.")

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "view_filter" in updated:
            self.set_filter(flowfilter.parse_option(opts.view_filter))
        if "view_order" in updated:
            self.set_order(opts.view_order)
        if "view_order_reversed" in updated:
            self.set_reversed(opts.view_order_reversed)
        if "console_focus_follow" in updated:
            self.focus_follow = opts.console_focus_follow

    # sequence protocol: the view in display order ---------------------------------

    def __len__(self) -> int:
        if self.db is not None:
            return self._db_len
        return len(self._flows)

    def _index(self, position: int) -> int:
        """Display position -> position in the ascending list."""
        size = len(self._flows)
        if position < 0:
            position += size
        if not 0 <= position < size:
            raise IndexError("view index out of range")
        return size - 1 - position if self.order_reversed else position

    def __getitem__(self, position: int) -> Flow:  # type: ignore[override]  # positions, no slices
        if self.db is not None:
            size = len(self)
            if position < 0:
                position += size
            if not 0 <= position < size:
                raise IndexError("view index out of range")
            for flow in self._db_iter(offset=position, limit=1):
                return flow
            raise IndexError("view index out of range")
        return self._flows[self._index(position)]

    def __iter__(self) -> Iterator[Flow]:
        if self.db is not None:
            return self._db_iter()
        return iter(self._flows[::-1] if self.order_reversed else list(self._flows))

    def __contains__(self, flow: object) -> bool:
        if self.db is not None:
            return isinstance(flow, Flow) and self._db_contains(flow)
        return isinstance(flow, Flow) and flow.id in self._entry_of

    def index(self, flow: Flow, start: int = 0, stop: int | None = None) -> int:
        if self.db is not None:
            return self._db_index(flow)
        position = self._position(flow)
        if position is None:
            raise ValueError(f"{flow!r} is not in the view")
        return len(self._flows) - 1 - position if self.order_reversed else position

    def store_count(self) -> int:
        if self.db is not None:
            self.sync()
            return self.db.count()
        return len(self._store)

    def get_by_id(self, flow_id: str) -> Flow | None:
        """A flow of the store (shown or not), or None."""
        if self.db is not None:
            return self._db_get(flow_id)
        return self._store.get(flow_id)

    def _all_flows(self) -> list[Flow]:
        if self.db is not None:
            self.sync()
            return [self.loaded(f) for f in self.db.query()]
        return list(self._store.values())

    @property
    def store(self) -> list[Flow]:
        """Every flow, in arrival order."""
        return self._all_flows()

    # the sorted list -------------------------------------------------------------

    def _order_key(self, flow: Flow) -> Any:
        return _KEYS[self.order](flow)

    def _entry(self, flow: Flow) -> tuple[Any, int]:
        return (_KEYS[self.order](flow), self._arrival[flow.id])

    def _position(self, flow: Flow) -> int | None:
        entry = self._entry_of.get(flow.id)
        if entry is None:
            return None
        i = bisect.bisect_left(self._entries, entry)
        if i < len(self._entries) and self._flows[i] is flow:
            return i
        return None  # pragma: no cover - the cached entry is always where we left it

    def _bisect(self, flow: Flow) -> int:
        """The display position just after where ``flow`` sorts (shown or not)."""
        entry = self._entry(flow)
        if self.order_reversed:
            return len(self._entries) - bisect.bisect_left(self._entries, entry)
        return bisect.bisect_right(self._entries, entry)

    def _insert(self, flow: Flow) -> None:
        entry = self._entry(flow)
        i = bisect.bisect_right(self._entries, entry)
        self._entries.insert(i, entry)
        self._flows.insert(i, flow)
        self._entry_of[flow.id] = entry

    def _delete(self, flow: Flow) -> int | None:
        i = self._position(flow)
        if i is not None:
            del self._entries[i]
            del self._flows[i]
            del self._entry_of[flow.id]
        return i

    def _passes(self, flow: Flow) -> bool:
        if self.show_marked and not flow.marked:
            return False
        return bool(self.filter(flow))

    def _rebuild(self) -> None:
        self._entries, self._flows, self._entry_of = [], [], {}
        shown = [f for f in self._store.values() if self._passes(f)]
        pairs = sorted(((self._entry(f), f) for f in shown), key=lambda p: p[0])
        for entry, flow in pairs:
            self._entries.append(entry)
            self._flows.append(flow)
            self._entry_of[flow.id] = entry

    def _refilter(self) -> None:
        if self.db is not None:
            self._shown.clear()
            for flow in [*self._pinned.values(), *self._cache.values()]:
                self._shown[flow.id] = self._passes(flow)
            self._db_recount()
        else:
            self._rebuild()
        self.sig_view_refresh.send()

    # changing the store ----------------------------------------------------------

    def add(self, flows: Sequence[Flow]) -> None:
        """Add new flows to the store; ones whose id is already there are ignored."""
        if self.db is not None:
            self._db_add(flows)
            return
        self._add_memory(flows)

    def _add_memory(self, flows: Sequence[Flow]) -> None:
        for flow in flows:
            if flow.id in self._store:
                continue
            self._store[flow.id] = flow
            self._arrival[flow.id] = next(self._counter)
            if self._passes(flow):
                self._insert(flow)
                self.sig_view_add.send(flow)
        self.retention_soon()

    def update(self, flows: Sequence[Flow]) -> None:
        """A flow changed: show, move or hide it as the filter and order now say.

        This is also the ``update`` hook, which runs after every flow hook.
        """
        if self.db is not None:
            self._db_update(flows)
            return
        for flow in flows:
            if flow.id not in self._store:
                continue
            if not self._passes(flow):
                index = self._delete(flow)
                if index is not None:
                    self.sig_view_remove.send(flow, index)
                continue
            entry = self._entry_of.get(flow.id)
            if entry is None:
                self._insert(flow)
                self.sig_view_add.send(flow)
            elif entry != self._entry(flow):
                self._delete(flow)
                self._insert(flow)
                self.sig_view_refresh.send()
            else:
                self.sig_view_update.send(flow)
        self.retention_soon()

    def remove(self, flows: Sequence[Flow]) -> None:
        """Drop flows from store and view, killing live ones first."""
        if self.db is not None:
            self._db_remove(flows)
        else:
            self._remove_memory(flows)
        if len(flows) > 1:
            logger.info(f"Removed {len(flows)} flows")

    def _memory_retention(self, limits: tuple[int, int, float]) -> None:
        """store=memory: drop the oldest unmarked flows over ``limits`` (store_max_*; not
        killed: a live flow that old is only forgotten, as a database store forgets it)."""
        doomed = oldest_over_limits(self._store.values(), *limits)
        self._remove_memory([self._store[i] for i in doomed], kill=False)

    def _remove_memory(self, flows: Sequence[Flow], kill: bool = True) -> None:
        for flow in flows:
            if flow.id not in self._store:
                continue
            if kill and flow.killable:
                flow.kill()
            index = self._delete(flow)
            if index is not None:
                self.sig_view_remove.send(flow, index)
            del self._store[flow.id]
            del self._arrival[flow.id]
            self.sig_store_remove.send(flow)

    def set_filter(self, flt: Callable[[Flow], bool] | None) -> None:
        self.filter = flt or flowfilter.match_all
        self._refilter()

    def set_order(self, name: str) -> None:
        """Re-sort; like mitmproxy, a new order does not announce a refresh by itself."""
        if name not in _KEYS:
            raise CommandError(f"Unknown flow order: {name}")
        self.order = name
        if self.db is None:
            self._rebuild()

    def set_reversed(self, value: bool) -> None:
        self.order_reversed = value
        self.sig_view_refresh.send()

    # hooks ---------------------------------------------------------------------
    # A flow enters the store at its first hook.  Every flow hook is followed by the
    # ``update`` hook (AddonManager.handle_lifecycle), and that is where the view
    # reacts to changes; the driver skips hooks no addon implements, so the view
    # implements the others as no-ops to be told about every step of a flow.

    def requestheaders(self, flow: Flow) -> None:
        self.add([flow])

    def tcp_start(self, flow: Flow) -> None:
        self.add([flow])

    def udp_start(self, flow: Flow) -> None:
        self.add([flow])

    def dns_request(self, flow: Flow) -> None:
        self.add([flow])

    def _changed(self, flow: Flow) -> None:
        """Nothing to do here: the ``update`` hook that follows refreshes the flow."""

    request = responseheaders = response = error = _changed
    websocket_start = websocket_message = websocket_end = _changed
    tcp_message = tcp_end = tcp_error = _changed
    udp_message = udp_end = udp_error = _changed
    dns_response = dns_error = _changed

    # Hooks mitmproxy's intercept addon triggers outside the flow's own hooks.
    def intercept(self, flow: Flow) -> None:
        self.update([flow])

    def resume(self, flow: Flow) -> None:
        self.update([flow])

    def kill(self, flow: Flow) -> None:
        self.update([flow])

    # commands ----------------------------------------------------------------

    @command("view.clear")
    def clear(self) -> None:
        """Clear both the store and the view."""
        if self.db is not None:
            self._db_clear(keep_marked=False)
        self._store.clear()
        self._arrival.clear()
        self._entries, self._flows, self._entry_of = [], [], {}
        self.sig_view_refresh.send()
        self.sig_store_refresh.send()

    @command("view.clear_unmarked")
    def clear_not_marked(self) -> None:
        """Clear the flows that are not marked."""
        if self.db is not None:
            self._db_clear(keep_marked=True)
        for flow in list(self._store.values()):
            if not flow.marked:
                del self._store[flow.id]
                del self._arrival[flow.id]
        self._refilter()
        self.sig_store_refresh.send()

    @command("view.filter.set")
    def set_filter_cmd(self, filter_expr: str) -> None:
        """Set the view filter (an empty expression shows everything)."""
        try:
            flt = flowfilter.parse(filter_expr) if filter_expr else None
        except flowfilter.FilterError as e:
            raise CommandError(str(e)) from e
        self.set_filter(flt)

    @command("view.order.options")
    def order_options(self) -> Sequence[str]:
        """The values the view_order option takes."""
        return sorted(_KEYS)

    @command("view.order.reverse")
    def order_reverse(self, boolean: bool) -> None:
        """Reverse (or un-reverse) the view order."""
        self.set_reversed(boolean)

    @command("view.order.set")
    def order_set(self, order_key: str) -> None:
        """Set the view order."""
        self.set_order(order_key)

    @command("view.order")
    def get_order(self) -> str:
        """The current view order."""
        return self.order

    @command("view.flows.duplicate")
    def duplicate(self, flows: Sequence[Flow]) -> None:
        """Add copies of the flows (new ids, not live)."""
        copies = [f.copy() for f in flows]
        if copies:
            self.add(copies)
            if copies[0] in self:
                self.focus.flow = copies[0]
            logger.info(f"Duplicated {len(copies)} flows")

    @command("view.flows.remove")
    def remove_cmd(self, flows: Sequence[Flow]) -> None:
        """Remove flows from the store and the view."""
        self.remove(flows)

    @command("view.flows.resolve")
    def resolve(self, flow_spec: str) -> Sequence[Flow]:
        """Turn a flow specification into flows.

        ``@all``, ``@shown``, ``@hidden``, ``@marked``, ``@unmarked``, ``@ID[,ID…]``
        or a filter expression matched against every stored flow.
        """
        if flow_spec == "@all":
            return self._all_flows()
        if flow_spec == "@focus":
            return [self.focus.flow] if self.focus.flow is not None else []
        if flow_spec == "@shown":
            return list(self)
        if flow_spec == "@hidden":
            return [f for f in self._all_flows() if f not in self]
        if flow_spec == "@marked":
            return self._select(flowfilter.parse("~marked"))
        if flow_spec == "@unmarked":
            return self._select(flowfilter.parse("!~marked"))
        if _ID_LIST.match(flow_spec):
            if self.db is not None:
                return self._select(IdSet(flow_spec[1:].split(",")))
            ids = set(flow_spec[1:].split(","))
            return [f for f in self._store.values() if f.id in ids]
        try:
            flt = flowfilter.parse(flow_spec)
        except flowfilter.FilterError as e:
            raise CommandError(str(e)) from e
        return self._select(flt)

    def _select(self, flt: Callable[[Flow], bool]) -> list[Flow]:
        """Every stored flow ``flt`` matches, in arrival order."""
        if self.db is not None:
            self.sync()
            return [self.loaded(f) for f in self.db.query(flt)]
        return [f for f in self._store.values() if flt(f)]

    @command("view.flows.create")
    def create(self, method: str, url: str) -> None:
        """Add a new, unsent HTTP request flow (e.g. to edit and replay it)."""
        from proxycore.connection import Client, Server
        from proxycore.http import HTTPFlow, Request

        try:
            request = Request.make(method.upper(), url)
        except ValueError as e:
            raise CommandError(f"Invalid URL: {e}") from e
        if not _HOST.match(request.host):
            raise CommandError(f"Invalid URL: {url!r} has no valid host")
        client = Client(
            peername=("", 0), sockname=("", 0), timestamp_start=request.timestamp_start - 0.0001
        )
        flow = HTTPFlow(client, Server(address=(request.host, request.port)))
        flow.request = request
        flow.request.headers["Host"] = request.host
        self.add([flow])

    @command("view.flows.load")
    def load_file(self, path: pathlib.Path) -> None:
        """Add the flows of a flow file to the view, without running them through addons."""
        from proxycore.io import FlowReader, FlowReadException

        try:
            with open(path, "rb") as f:
                # Copies get new ids, so loading one file twice gives two sets of flows.
                self.add([flow.copy() for flow in FlowReader(f).stream()])
        except OSError as e:
            logger.error(f"Cannot read {path}: {e.strerror or e}")
        except FlowReadException as e:
            logger.error(str(e))

    @command("view.properties.length")
    def get_length(self) -> int:
        """Number of flows in the view."""
        return len(self)

    @command("view.properties.marked")
    def get_marked(self) -> bool:
        """Whether only marked flows are shown."""
        return self.show_marked

    @command("view.properties.marked.toggle")
    def toggle_marked(self) -> None:
        """Toggle showing only marked flows."""
        self.show_marked = not self.show_marked
        self._refilter()

    # the focus and per-flow settings (mitmproxy console's commands) ----------------------

    @command("view.focus.go")
    def go(self, offset: int) -> None:
        """Focus the flow at this position (negative: from the end), clamped to the view."""
        if not len(self):
            return
        if offset < 0:
            offset += len(self)
        self.focus.index = max(0, min(offset, len(self) - 1))

    @command("view.focus.next")
    def focus_next(self) -> None:
        """Focus the next flow of the view."""
        if self.focus.index is not None and self.focus.index + 1 < len(self):
            self.focus.index += 1

    @command("view.focus.prev")
    def focus_prev(self) -> None:
        """Focus the previous flow of the view."""
        if self.focus.index is not None and self.focus.index > 0:
            self.focus.index -= 1

    @command("view.settings.getval")
    def getvalue(self, flow: Flow, key: str, default: str) -> str:
        """A per-flow setting, or ``default``."""
        return self.settings[flow].get(key, default)

    @command("view.settings.setval")
    def setvalue(self, flows: Sequence[Flow], key: str, value: str) -> None:
        """Set a per-flow setting on each flow."""
        for flow in flows:
            self.settings[flow][key] = value
        ctx.master.addons.trigger(UpdateHook(list(flows)))

    @command("view.settings.setval.toggle")
    def setvalue_toggle(self, flows: Sequence[Flow], key: str) -> None:
        """Flip a per-flow setting between "true" and "false" (unset or other: "true")."""
        for flow in flows:
            values = self.settings[flow]
            values[key] = "false" if values.get(key) == "true" else "true"
        ctx.master.addons.trigger(UpdateHook(list(flows)))

    @command("view.properties.inbounds")
    def inbounds(self, index: int) -> bool:
        """Whether 0 <= index < length of the view."""
        return 0 <= index < len(self)
