"""The view's shortcut for updates of a live flow that is held, shown and waiting to be
written (``DBView._unchanged_live``): with an event loop running (so writes wait for the
timer), every signal, the view's bookkeeping and what the store ends up holding are what
the full update path gives."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from proxycore.addons.view import View
from proxycore.http import Response
from proxycore.store.sqlite import SQLiteStore
from tests.flows import http_flow


def _run(tmp_path: Any, name: str, shortcut: bool, order: str, flt: str) -> tuple[Any, ...]:
    async def scenario() -> tuple[Any, ...]:
        view = View()
        if not shortcut:
            view._unchanged_live = lambda flow: False  # type: ignore[method-assign]  # the full path only
        view.use_store(SQLiteStore(str(tmp_path / f"{name}.db")))
        view.set_order(order)
        if flt:
            view.set_filter_cmd(flt)
        events: list[tuple[str, Any]] = []
        view.sig_view_add.connect(lambda f: events.append(("add", f.request.path)))
        view.sig_view_update.connect(lambda f: events.append(("update", f.request.path)))
        view.sig_view_remove.connect(lambda f, i: events.append(("remove", f.request.path, i)))
        view.sig_view_refresh.connect(lambda: events.append(("refresh",)))
        flows = []
        for i in range(4):
            flow = http_flow(url=f"http://example.com/{i}")
            flow.id = f"00000000-0000-0000-0000-00000000000{i}"
            flow.timestamp_created = 1000.0 + i
            flow.live = True
            flows.append(flow)
            view.requestheaders(flow)
            view.update([flow])
            view.update([flow])  # the request hook: nothing changed
            flow.response = Response.make(200, b"x" * (10 * i), {})
            if i == 1:
                flow.marked = ":default:"
            view.update([flow])  # responseheaders
            if i == 2:
                flow.live = False
            view.update([flow])  # response
        assert view._timer is not None  # the writes waited for the timer
        held = (dict(view._shown), dict(view._keys), sorted(view._pinned), sorted(view._dirty))
        view.sync()
        view.db.flush()
        stored = [
            (f.id, f.marked, f.response.status_code if f.response else None)
            for f in view.db.query()
        ]
        count = len(view)
        view.close_store()
        view.db.close()
        return events, held, stored, count

    return asyncio.run(scenario())


@pytest.mark.parametrize("order", ["time", "size"])
@pytest.mark.parametrize("flt", ["", "~s", "!~s", "~marked", "!~marked", "!~u /2"])
def test_live_updates_match_the_full_path(tmp_path: Any, order: str, flt: str) -> None:
    fast = _run(tmp_path, "fast", True, order, flt)
    full = _run(tmp_path, "full", False, order, flt)
    assert fast == full
    assert fast[0]  # the scenario announced something


def test_a_live_update_takes_the_shortcut(tmp_path: Any) -> None:
    async def scenario() -> list[bool]:
        view = View()
        view.use_store(SQLiteStore(str(tmp_path / "s.db")))
        flow = http_flow()
        flow.live = True
        view.requestheaders(flow)
        view.update([flow])
        taken = [view._unchanged_live(flow)]
        flow.live = False
        taken.append(view._unchanged_live(flow))
        view.close_store()
        view.db.close()
        return taken

    assert asyncio.run(scenario()) == [True, False]
