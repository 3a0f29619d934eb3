"""Retention (store_max_flows/bytes/age) for every store, store=memory included."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from proxycore.addons.store import StoreAddon
from proxycore.addons.view import View
from proxycore.test import taddons, tflow
from tests.webapi import request, running, ws_connect, ws_until


def _flows(n: int, start: float = 1000) -> list[Any]:
    flows = [tflow.tflow(resp=True) for _ in range(n)]
    for i, f in enumerate(flows):
        f.timestamp_created = start + i
        f.live = False
    return flows


def _removals(view: View) -> list[tuple[str, int]]:
    seen: list[tuple[str, int]] = []
    view.sig_view_remove.connect(lambda flow, index: seen.append((flow.id, index)))
    return seen


def test_memory_view_keeps_at_most_max_flows_oldest_unmarked_first() -> None:
    view = View()
    removed = _removals(view)
    view.retention_limits = (4, 0, 0)
    flows = _flows(7)
    flows[0].marked = ":default:"
    view.add(flows)
    assert [f.id for f in view] == [flows[0].id] + [f.id for f in flows[4:]]
    # each removal names the position the flow had just before it left (the marked one stays first)
    assert removed == [(f.id, 1) for f in flows[1:4]]
    assert view.store_count() == 4


def test_memory_view_max_bytes_and_max_age() -> None:
    view = View()
    flows = _flows(5, start=time.time() - 100)
    for f in flows:
        f.request.content = b""
        f.response.content = b"x" * 1000
    view.add(flows)
    view.retention_limits = (0, 2500, 0)
    view.apply_retention()
    assert [f.id for f in view] == [f.id for f in flows[3:]]
    flows[4].timestamp_created = time.time()
    view.retention_limits = (0, 0, 50)
    view.apply_retention()
    assert [f.id for f in view] == [flows[4].id]


def test_memory_view_retention_does_not_kill_live_flows() -> None:
    view = View()
    flows = _flows(3)
    flows[0].live = True
    view.retention_limits = (2, 0, 0)
    view.add(flows)
    assert view.get_by_id(flows[0].id) is None
    assert flows[0].error is None  # forgotten, not killed


def test_store_memory_option_applies_the_limits() -> None:
    view, store = View(), StoreAddon()
    with taddons.context(view, store) as tctx:
        view.add(_flows(6))
        tctx.configure(store, store="memory", store_max_flows=3)
        assert view.db is None and len(view) == 3


@pytest.mark.e2e
def test_store_memory_retention_tells_the_ui(tmp_path: Path) -> None:
    with running(tmp_path, store="memory", store_max_flows=5) as server:
        flows = _flows(8)
        flows[0].marked = ":default:"
        with ws_connect(server.port) as ws:
            server.add(*flows)
            removed = set()
            while len(removed) < 3:
                message, _ = ws_until(ws, "flows/remove")
                removed.add(message["payload"])
        assert removed == {f.id for f in flows[1:4]}
        listed = request(server.port, "GET", "/flows").json()
        assert [f["id"] for f in listed] == [flows[0].id] + [f.id for f in flows[4:]]
        assert server.call(lambda: server.view.db) is None  # mitmweb's way: flows in memory


def test_database_retention_of_many_flows_at_once_resets_the_list(tmp_path: Path, monkeypatch: Any) -> None:
    from proxycore.addons import viewdb
    from proxycore.store.sqlite import SQLiteStore

    monkeypatch.setattr(viewdb, "RANKED_REMOVALS", 2)
    view = View()
    view.use_store(SQLiteStore(str(tmp_path / "r.db")))
    flows = _flows(6)
    view.add(flows)
    removed = _removals(view)
    refreshed: list[bool] = []
    gone: list[str] = []
    view.sig_view_refresh.connect(lambda: refreshed.append(True))
    view.sig_store_remove.connect(lambda flow: gone.append(flow.id))
    view.retention_limits = (3, 0, 0)
    view.apply_retention()
    assert removed == [] and refreshed == [True]  # three at once: more than 2 to place
    assert gone == [f.id for f in flows[:3]]
    assert len(view) == 3 and [f.id for f in view] == [f.id for f in flows[3:]]
    view.retention_limits = (2, 0, 0)
    view.apply_retention()
    assert removed == [(flows[3].id, 0)]  # one: placed
    view.close_store()
    view.db.close()


def test_store_scope_option_reaches_the_open_store(tmp_path: Path) -> None:
    from proxycore.exceptions import OptionsError

    view, store = View(), StoreAddon()
    with taddons.context(view, store) as tctx:
        tctx.configure(store, store=str(tmp_path / "s.db"))
        store.running()
        assert store.backend is not None and store.backend.scope == "instance"
        tctx.configure(store, store_scope="fleet")
        assert store.backend.scope == "fleet"
        with pytest.raises(OptionsError):
            tctx.configure(store, store_scope="everything")
        store.done()


def test_flows_past_max_age_go_within_a_second_with_no_traffic(tmp_path: Path) -> None:
    """Nothing arrives after the flows: the once-a-second age check still removes them."""
    import asyncio

    from proxycore.store.sqlite import SQLiteStore

    async def main(view: View) -> list[tuple[str, float]]:
        gone: list[tuple[str, float]] = []
        view.sig_store_remove.connect(lambda flow: gone.append((flow.id, time.time())))
        view.retention_limits = (0, 0, 1.0)
        view.add(flows)
        for _ in range(40):
            await asyncio.sleep(0.1)
            if len(gone) == len(flows):
                break
        view.close_store()
        return gone

    for store in (None, SQLiteStore(str(tmp_path / "age.db"))):
        view = View()
        view.use_store(store)
        flows = _flows(3, start=time.time())
        gone = asyncio.run(main(view))
        assert {i for i, _ in gone} == {f.id for f in flows}
        # each goes at most one check (a second) after it passed the age, plus scheduling slack
        assert all(at - f.timestamp_created - 1.0 < 1.8 for f, (_, at) in zip(flows, gone, strict=True))
        if store is not None:
            store.close()


@pytest.mark.e2e
@pytest.mark.parametrize("store", ["", "memory"])
def test_aged_flows_reach_the_ui_over_updates_promptly(tmp_path: Path, store: str) -> None:
    """store_max_age over the real /updates WebSocket: every client gets flows/remove for a
    flow about a second after it passes the age, with no other traffic to trigger a look."""
    with running(tmp_path, store=store, store_max_age="2") as server, ws_connect(server.port) as ws:
        flows = _flows(4, start=time.time())
        flows[3].marked = ":default:"  # marked flows stay
        server.add(*flows)
        due = max(f.timestamp_created for f in flows[:3]) + 2
        removed: set[str] = set()
        while len(removed) < 3:
            message, _ = ws_until(ws, "flows/remove", timeout=10)
            removed.add(message["payload"])
        late = time.time() - due
        assert removed == {f.id for f in flows[:3]}
        assert late < 2.0, late
        listed = request(server.port, "GET", "/flows").json()
        assert [f["id"] for f in listed] == [flows[3].id]
