"""A fleet on one real PostgreSQL: retention and view.clear per instance (store_scope=instance)
or over every instance's flows (fleet), and removals reaching every viewer live."""

from __future__ import annotations

import asyncio
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from proxycore.addons.view import View
from proxycore.test import tflow
from tests.store.test_store_index import Model

pytestmark = pytest.mark.e2e


def _view(url: str, name: str) -> View:
    from proxycore.store.postgres import PostgresStore

    view = View()
    view.instance = name
    view.use_store(PostgresStore(url, name))  # on the loop: it listens for the others
    return view


def _flows(n: int, first: float) -> list[Any]:
    flows = []
    for i in range(n):
        f = tflow.tflow(resp=True)
        f.live = False
        f.timestamp_created = first + 2 * i  # a's and b's flows interleave in time
        flows.append(f)
    return flows


async def _until(check: Callable[[], bool], what: str) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _close(*views: View) -> None:
    for view in views:
        view.close_store()
        view.db.close()


def test_retention_per_instance_or_fleet_and_removals_reach_every_viewer(postgres_url: str) -> None:
    async def main() -> None:
        a, b, viewer = (_view(postgres_url, n) for n in ("a", "b", "viewer"))
        try:
            from_a, from_b = _flows(5, 1000), _flows(5, 1001)
            a.add(from_a)
            await _until(lambda: len(viewer) == 5, "a's flows in the viewer")
            b.add(from_b)  # stored after a's: "oldest" is the order flows reached the store
            await _until(lambda: len(viewer) == 10, "both instances' flows in the viewer")
            model = Model(viewer)
            refreshed: list[bool] = []
            viewer.sig_view_refresh.connect(lambda: refreshed.append(True))

            a.retention_limits = (3, 0, 0)  # scope "instance": a's own flows only
            a.apply_retention()
            assert [f.id for f in a.db.query()] == [f.id for f in sorted(from_a[2:] + from_b, key=lambda f: f.timestamp_created)]
            await _until(lambda: len(viewer) == 8, "a's removals in the viewer")
            assert model.ids == model.ascending() == [f.id for f in a.db.query()]
            assert not refreshed  # flow by flow, each with its index (Model checks them)

            b.db.scope = "fleet"
            b.retention_limits = (6, 0, 0)  # the two oldest of the whole fleet: a's, stored first
            b.apply_retention()
            await _until(lambda: len(viewer) == 6, "b's fleet-wide removals in the viewer")
            await _until(lambda: len(a) == 6, "b's fleet-wide removals in a")
            assert {f.id for f in viewer} == {f.id for f in from_a[4:] + from_b}
            assert model.ids == model.ascending()
        finally:
            _close(a, b, viewer)

    asyncio.run(main())


def test_clear_hides_in_one_viewer_per_instance_and_empties_every_viewer_fleet_wide(postgres_url: str) -> None:
    async def main() -> None:
        a, b, viewer = (_view(postgres_url, n) for n in ("a", "b", "viewer"))
        try:
            a.add(_flows(3, 1000))
            b.add(_flows(3, 1001))
            await _until(lambda: len(viewer) == 6 and len(a) == 6 and len(b) == 6, "six flows everywhere")

            viewer.clear()  # scope "instance": the viewer's list empties, the fleet's flows stay
            assert len(viewer) == 0 and viewer.store_count() == 0
            await asyncio.sleep(0.3)
            assert len(a) == 6 and a.db.count() == 6
            later = _flows(1, 2000)
            b.add(later)  # new flows show up in the cleared viewer again
            await _until(lambda: [f.id for f in viewer] == [later[0].id], "b's new flow in the viewer")

            b.clear()  # scope "instance": b deletes its own flows; a and the viewer drop them
            await _until(lambda: len(a) == 3 and len(viewer) == 0, "b's clear elsewhere")
            assert len(b) == 0 and b.store_count() == 0

            a.db.scope = "fleet"
            b.add(_flows(2, 3000))
            await _until(lambda: len(a) == 5 and len(viewer) == 2, "b's new flows")
            a.clear()  # fleet: every instance's flows go, from every viewer
            await _until(lambda: len(viewer) == 0 and len(b) == 0, "a's fleet-wide clear elsewhere")
            assert a.db.count() == 0
        finally:
            _close(a, b, viewer)

    asyncio.run(main())


def test_a_schema_1_database_is_migrated_and_keeps_its_flows(postgres_url: str) -> None:
    import psycopg

    from proxycore.store.base import record_of
    from proxycore.store.postgres import MIGRATIONS, SCHEMA_VERSION, PostgresStore
    from proxycore.store.sql import BODY_COLUMNS, COLUMNS, _row

    kept, removed = tflow.tflow(resp=True), tflow.tflow(resp=True)
    with psycopg.connect(postgres_url, autocommit=True) as conn:  # a database proxycore wrote at schema 1
        conn.execute("CREATE TABLE proxycore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)")
        for statement in MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO proxycore_meta VALUES ('schema', '1')")
        v1 = [c for c in COLUMNS if c not in BODY_COLUMNS]  # the body columns came with schema 3
        for flow in (kept, removed):
            conn.execute(
                f"INSERT INTO flows ({', '.join(v1)}) VALUES ({', '.join(['%s'] * len(v1))})",
                _row(record_of(flow, "old"))[: len(v1)],
            )
            for part, body in record_of(flow).bodies.items():
                conn.execute("INSERT INTO bodies VALUES (%s, %s, %s)", (flow.id, part, body))
    store = PostgresStore(postgres_url, "a")
    store.delete([removed.id])
    assert [f.id for f in store.query()] == [kept.id]
    listed = next(store.query(bodies=False))  # no stored hash yet: read with its bodies
    assert listed.response.raw_content == kept.response.raw_content
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT value FROM proxycore_meta").fetchone()[0] == str(SCHEMA_VERSION)
        assert conn.execute("SELECT id, instance, removed_by FROM flow_removals").fetchall() == [
            (removed.id, "old", "a")
        ]
    store.close()


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)")
def test_a_proxys_retention_reaches_a_proxyweb_live(tmp_path: Path, postgres_url: str) -> None:
    """Two proxydump processes and a proxyweb on one database: a keeps its last two flows
    (store_scope=instance), b keeps all; the proxyweb drops a's old flows as they go."""
    from tests.e2e.test_e2e import Proxy, curl
    from tests.e2e_servers import start_http
    from tests.webapi import request, running, ws_connect, ws_recv

    server, upstream = start_http()
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    store = ["--set", f"store={postgres_url}"]
    a = Proxy(["-q", *store, "--set", "store_instance=a", "--set", "store_max_flows=2"], tmp_path / "a")
    b = Proxy(["-q", *store, "--set", "store_instance=b"], tmp_path / "b")
    try:
        with running(tmp_path, store=postgres_url, store_instance="viewer") as web, ws_connect(web.port) as ws:
            paths = {"a": [f"/get?a={i}" for i in range(5)], "b": ["/get?b=0", "/get?b=1"]}
            for name, proxy in (("b", b), ("a", a)):
                for path in paths[name]:
                    assert curl(proxy, f"http://127.0.0.1:{upstream}{path}").returncode == 0
            added: dict[str, str] = {}
            removed: set[str] = set()
            deadline = time.monotonic() + 30
            kept = sorted(paths["b"] + paths["a"][3:])
            # until what the UI shows is what a and b keep (a flow the viewer never saw
            # before a removed it sends neither add nor remove)
            while sorted(p for i, p in added.items() if i not in removed) != kept:
                assert time.monotonic() < deadline, (added, removed)
                message = ws_recv(ws, timeout=30)
                if message["type"] == "flows/add":
                    added[message["payload"]["flow"]["id"]] = message["payload"]["flow"]["request"]["path"]
                elif message["type"] == "flows/remove":
                    removed.add(message["payload"])
            assert removed and {added[i] for i in removed} <= set(paths["a"][:3])
            listed = [f["request"]["path"] for f in request(web.port, "GET", "/flows").json()]
            assert listed == paths["b"] + paths["a"][3:]
    finally:
        assert a.stop() == 0 and b.stop() == 0
        server.shutdown()


def test_clear_unmarked_per_instance_keeps_every_marked_flow(postgres_url: str) -> None:
    from proxycore.store.postgres import PostgresStore

    a, viewer = PostgresStore(postgres_url, "a"), PostgresStore(postgres_url, "viewer")
    try:
        theirs, mine = _flows(3, 1000), _flows(2, 1001)
        theirs[1].marked = ":default:"
        mine[0].marked = ":default:"
        a.put(theirs)
        viewer.put(mine)
        a.flush()
        viewer.clear(keep_marked=True)
        assert {f.id for f in viewer.query()} == {theirs[1].id, mine[0].id}
        assert viewer.count() == 2 and viewer.has(mine[0].id) and not viewer.has(mine[1].id)
        assert a.count() == 4  # a's flows all stay for everyone else
        later = _flows(1, 2000)
        a.put(later)
        a.flush()
        assert [f.id for f in viewer.query(order="time")][-1] == later[0].id
        viewer.clear()
        assert viewer.count() == 0 and a.count() == 5 - 1  # the viewer's own marked one went too
    finally:
        a.close()
        viewer.close()


def test_a_viewer_starting_later_ignores_earlier_removals(postgres_url: str) -> None:
    async def main() -> None:
        a = _view(postgres_url, "a")
        try:
            flows = _flows(4, 1000)
            a.add(flows)
            a.sync()
            a.remove(flows[:2])  # removals on record, newer than any row, before the viewer starts
            a.db.flush()
            viewer = _view(postgres_url, "viewer")
            events: list[str] = []
            viewer.sig_view_remove.connect(lambda flow, index: events.append("remove"))
            viewer.sig_view_refresh.connect(lambda: events.append("refresh"))
            assert len(viewer) == 2
            later = _flows(1, 4000)
            a.add(later)  # a change after the viewer started: it looks, and sees only that
            await _until(lambda: len(viewer) == 3, "a's new flow")
            assert events == [] and len(viewer) == 3
            _close(viewer)
        finally:
            _close(a)

    asyncio.run(main())
