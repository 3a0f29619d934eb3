"""The store addon's options and the database-backed view's memory bound (no network)."""

from __future__ import annotations

import os

import pytest

from proxycore.addons.store import StoreAddon, parse_age
from proxycore.addons.view import View
from proxycore.exceptions import OptionsError
from proxycore.store.sqlite import SQLiteStore
from proxycore.test import taddons, tflow


def test_parse_age() -> None:
    assert parse_age("") == 0 and parse_age("0") == 0
    assert parse_age("90") == 90 and parse_age("90s") == 90
    assert parse_age("15m") == 900 and parse_age("2h") == 7200 and parse_age("7d") == 604800
    with pytest.raises(OptionsError):
        parse_age("1w")


def test_options_are_checked_and_reach_the_view() -> None:
    view, store = View(), StoreAddon()
    with taddons.context(view, store) as tctx:
        tctx.configure(store, store_max_flows=10, store_max_bytes="1m", store_max_age="1h", store_memory="2m")
        assert view.cache_limit == 2 * 1024 * 1024
        assert view.retention_limits == (10, 1024 * 1024, 3600)
        for bad in ({"store_max_flows": -1}, {"store_memory": "0"}, {"store_max_bytes": "lots"},
                    {"store_max_age": "soon"}):
            with pytest.raises(OptionsError):
                tctx.configure(store, **bad)


def test_a_store_that_cannot_open_is_an_option_error(tmp_path) -> None:
    view, store = View(), StoreAddon()
    with taddons.context(view, store) as tctx:
        store.started = True
        with pytest.raises(OptionsError, match="no directory"):
            tctx.configure(store, store=str(tmp_path / "missing" / "x.db"))
        assert view.db is None


def test_cache_stays_within_store_memory_and_evicted_changes_are_written(tmp_path) -> None:
    view = View()
    view.use_store(SQLiteStore(str(tmp_path / "v.db")))
    view.cache_limit = 64 * 1024
    flows = []
    for i in range(50):
        f = tflow.tflow(resp=True)
        f.live = False
        f.response.content = bytes([i]) * 8000
        flows.append(f)
    view.add(flows)
    assert view._cache_total <= view.cache_limit
    assert 0 < len(view._cache) < 50
    first = flows[0]
    assert view._known(first.id) is None  # evicted
    again = view.get_by_id(first.id)
    assert again is not first and again.response.content == bytes([0]) * 8000
    assert len(view) == 50 and view.store_count() == 50
    view.close_store()
    view.db.close()


def test_live_flows_stay_in_memory_whatever_the_limit(tmp_path) -> None:
    view = View()
    view.use_store(SQLiteStore(str(tmp_path / "v.db")))
    view.cache_limit = 1
    live = tflow.tflow(resp=True)
    live.live = True
    view.add([live])
    others = [tflow.tflow(resp=True) for _ in range(5)]
    for f in others:
        f.live = False
    view.add(others)
    assert view.get_by_id(live.id) is live  # the object the proxy holds: edits reach it
    live.live = False
    view.update([live])
    view.sync()
    assert view._pinned == {}
    view.close_store()
    view.db.close()


def test_a_store_path_in_a_missing_directory_is_refused_at_start(tmp_path) -> None:
    view, store = View(), StoreAddon()
    with taddons.context(view, store) as tctx:
        with pytest.raises(OptionsError, match="no directory"):
            tctx.configure(store, store=str(tmp_path / "nope" / "x.db"))
        tctx.configure(store, store=str(tmp_path / "x.db"))  # fine: created when it opens


@pytest.mark.parametrize("keep", [False, True])
def test_exit_rewrites_held_flows_only_into_a_store_that_stays(tmp_path, monkeypatch, keep: bool) -> None:
    """At exit the view writes every flow it holds again (connections end after a flow's last
    hook), unless the store is proxyweb's per-run file, deleted right after: then nothing."""
    view, store = View(), StoreAddon(per_run_default=True)
    with taddons.context(view, store) as tctx:
        tctx.configure(store, confdir=str(tmp_path), store_keep=keep)
        store.running()
        flow = tflow.tflow(resp=True)
        flow.live = False
        view.add([flow])
        view.sync()
        flow.client_conn.timestamp_end = 1234.5  # after the flow's last write
        written: list[str] = []
        put_records = store.backend.put_records
        monkeypatch.setattr(
            store.backend, "put_records", lambda records: (written.extend(r.id for r in records), put_records(records))
        )
        path = store.per_run_path
        store.done()
    assert written == ([flow.id] if keep else [])
    assert os.path.exists(path) == keep
    if keep:
        kept = SQLiteStore(path)
        assert kept.get(flow.id).client_conn.timestamp_end == 1234.5
        kept.close()
