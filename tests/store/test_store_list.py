"""The flow list reads no bodies: each body's length and SHA-256 are stored with the row
(schema 3), and the web API's contentLength/contentHash come from there."""

from __future__ import annotations

import hashlib
import sqlite3
from typing import Any

import pytest

from api.serialize import flow_to_json
from proxycore.addons.view import View
from proxycore.store.sqlite import MIGRATIONS, SQLiteStore
from proxycore.test import tflow


def _flows() -> list[Any]:
    flows = []
    for i in range(6):
        f = tflow.tflow(resp=True)
        f.timestamp_created = 1000 + i
        f.request.content = b"q" * i  # the first has an empty request body
        f.response.content = bytes([i]) * (1000 + i)
        flows.append(f)
    flows[5].response = None
    flows[4].request.raw_content = None  # no body read (streamed)
    edited = flows[3]
    edited.backup()
    edited.response.content = b"edited"  # modified(): compared with the backup's body
    return flows


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.e2e)])  # postgres: a server process
def store(request: Any, tmp_path: Any) -> Any:
    if request.param == "sqlite":
        s = SQLiteStore(str(tmp_path / "l.db"))
    else:
        from proxycore.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_url"), "l:1")
    yield s
    s.close()


def test_listed_flows_serialise_as_the_full_flows_without_reading_bodies(store: Any, monkeypatch: Any) -> None:
    flows = _flows()
    store.put(flows)
    store.flush()
    expected = [flow_to_json(f) for f in flows]
    read: list[str] = []
    real = store._bodies
    monkeypatch.setattr(store, "_bodies", lambda flow_id: read.append(flow_id) or real(flow_id))
    listed = list(store.query(bodies=False))
    assert [flow_to_json(f) for f in listed] == expected
    assert read == [flows[3].id]  # only the edited flow (its backup holds bodies) was read whole
    assert listed[0].response.raw_content is None  # left in the store
    assert expected[0]["response"]["contentHash"] == hashlib.sha256(flows[0].response.content).hexdigest()
    full = list(store.query())  # everything else still reads bodies
    assert [f.response.raw_content for f in full[:5]] == [f.response.raw_content for f in flows[:5]]


def test_a_schema_1_file_is_migrated_and_its_old_rows_listed_from_their_bodies(tmp_path: Any) -> None:
    from proxycore.store.base import record_of
    from proxycore.store.sql import BODY_COLUMNS, COLUMNS, _row

    path = str(tmp_path / "old.db")
    flows = _flows()
    conn = sqlite3.connect(path)
    for statement in MIGRATIONS[0]:
        conn.execute(statement)
    v1 = [c for c in COLUMNS if c not in BODY_COLUMNS]
    for flow in flows:
        record = record_of(flow)
        conn.execute(f"INSERT INTO flows ({', '.join(v1)}) VALUES ({', '.join('?' * len(v1))})",
                     _row(record)[: len(v1)])
        conn.executemany("INSERT INTO bodies VALUES (?, ?, ?)", [(flow.id, p, b) for p, b in record.bodies.items()])
    conn.execute("PRAGMA user_version = 1")
    conn.commit()
    conn.close()
    store = SQLiteStore(path)
    assert [flow_to_json(f) for f in store.query(bodies=False)] == [flow_to_json(f) for f in flows]
    store.put([flows[0]])  # written again: now with its hash
    store.flush()
    assert next(store.query(bodies=False)).response.raw_content is None
    store.close()
    assert sqlite3.connect(path).execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)


def test_the_view_page_for_the_list_and_for_everything_else(tmp_path: Any) -> None:
    view = View()
    view.use_store(SQLiteStore(str(tmp_path / "v.db")))
    view.cache_limit = 1  # nothing stays in memory: every read goes to the store
    flows = _flows()
    for f in flows:
        f.live = False
    view.add(flows)
    view.sync()
    listed = list(view.page(bodies=False))
    assert [flow_to_json(f) for f in listed] == [flow_to_json(f) for f in flows]
    assert all(f.response.raw_content is not None for f in list(view.page())[:5])  # exports, replays
    view.close_store()
    view.db.close()
