"""The view's focus, per-flow settings and order key objects: mitmproxy's console keeps
a cursor on the flow list and small per-flow notes; scripts and tests written for it use
``view.focus``, ``view.settings`` and ``view.Order*``. proxycore's web UI has its own
selection, so nothing here changes what the view shows."""

from __future__ import annotations

from collections.abc import Callable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any, ClassVar

from proxycore.flow import Flow
from proxycore.utils.signals import Signal

if TYPE_CHECKING:
    from proxycore.addons.view import View


class Focus:
    """The focused flow of a view, kept on a shown flow as the view changes."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._flow: Flow | None = None
        self.sig_change = Signal()
        if len(view):
            self.flow = view[0]
        view.sig_view_add.connect(self._added)
        view.sig_view_remove.connect(self._removed)
        view.sig_view_refresh.connect(self._refreshed)

    @property
    def flow(self) -> Flow | None:
        return self._flow

    @flow.setter
    def flow(self, flow: Flow | None) -> None:
        if flow is not None and flow not in self.view:
            raise ValueError("The focused flow must be shown in the view.")
        self._flow = flow
        self.sig_change.send()

    @property
    def index(self) -> int | None:
        return None if self._flow is None else self.view.index(self._flow)

    @index.setter
    def index(self, index: int) -> None:
        if not 0 <= index < len(self.view):
            raise ValueError(f"No flow at position {index} of the view.")
        self.flow = self.view[index]

    def _added(self, flow: Flow) -> None:
        if self._flow is None or self.view.focus_follow:
            self.flow = flow

    def _removed(self, flow: Flow, index: int) -> None:
        if not len(self.view):
            self.flow = None
        elif flow is self._flow:
            self.index = min(index, len(self.view) - 1)

    def _refreshed(self) -> None:
        if not len(self.view):
            self.flow = None
        elif self._flow is None:
            self.flow = self.view[0]
        elif self._flow not in self.view:
            # hidden by a new filter: the flow that now stands where it would be
            try:
                where = self.view._bisect(self._flow)
            except KeyError:  # a database-backed view keeps no order in memory to bisect
                where = 0
            self.index = min(where, len(self.view) - 1)


class Settings(MutableMapping[Flow, dict[str, Any]]):
    """Free-form values per stored flow (``view.settings[flow]["key"]``), dropped with the flow."""

    def __init__(self, view: View) -> None:
        self.view = view
        self._values: dict[str, dict[str, Any]] = {}
        view.sig_store_remove.connect(lambda flow: self._values.pop(flow.id, None))
        view.sig_store_refresh.connect(self._forget_gone)

    def _forget_gone(self) -> None:
        for flow_id in [i for i in self._values if self.view.get_by_id(i) is None]:
            del self._values[flow_id]

    def __getitem__(self, flow: Flow) -> dict[str, Any]:
        if self.view.get_by_id(flow.id) is None:
            raise KeyError(flow.id)
        return self._values.setdefault(flow.id, {})

    def __setitem__(self, flow: Flow, value: dict[str, Any]) -> None:
        if self.view.get_by_id(flow.id) is None:
            raise KeyError(flow.id)
        self._values[flow.id] = value

    def __delitem__(self, flow: Flow) -> None:
        del self._values[flow.id]

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]  # ids, as mitmproxy
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)


class _Order:
    """The sort key of one ``view_order`` value, as an object (mitmproxy's OrderKey)."""

    key: ClassVar[Callable[[Flow], Any]]

    def __init__(self, view: View) -> None:
        self.view = view

    def generate(self, flow: Flow) -> Any:
        return type(self).key(flow)
