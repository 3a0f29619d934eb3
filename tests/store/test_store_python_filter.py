"""Filters SQL cannot decide run in Python over streamed rows: bodies are read only for a
body operator, a page stops at its limit, and the removal indexes of many flows come
from one walk in order, not a walk per flow."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore import flowfilter
from proxycore.store import sql
from proxycore.store.sqlfilter import needs_bodies
from proxycore.test import tflow

POSTGRES = pytest.param("postgres", marks=pytest.mark.e2e)  # starts a server


def _flows(n: int) -> list[Any]:
    flows = []
    for i in range(n):
        f = tflow.tflow(resp=True)
        f.live = False
        f.timestamp_created = 1000 + i
        f.request.path = f"/{n - i:04d}"  # by url, the oldest sort last
        f.request.headers["X-Tag"] = f"t{i % 3}"
        f.request.content = b"a needle here" if i % 4 == 0 else b"hay"
        flows.append(f)
    return flows


@pytest.fixture(params=["sqlite", POSTGRES])
def store(request: Any, tmp_path: Any) -> Any:
    if request.param == "sqlite":
        from proxycore.store.sqlite import SQLiteStore

        s: Any = SQLiteStore(str(tmp_path / "p.db"), "p:1")
    else:
        from proxycore.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_url"), "p:1")  # a fresh database
    yield s
    s.close()


@pytest.fixture
def body_reads(store: Any, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    seen: list[str] = []
    real = store._bodies

    def counting(flow_id: str) -> dict[str, bytes]:
        seen.append(flow_id)
        return real(flow_id)

    monkeypatch.setattr(store, "_bodies", counting)
    return seen


def test_which_filters_need_bodies() -> None:
    for expr in ("~b x", "~bq x", "~bs x", "~h a | ~b x", "!~bq x", "~c 200 & (~q | ~bs y)"):
        assert needs_bodies(flowfilter.parse(expr)), expr
    for expr in ("~h x", "~c 200 & ~hq y", "!~t json", "~d example.com"):
        assert not needs_bodies(flowfilter.parse(expr)), expr
    assert needs_bodies(lambda flow: True)  # a callable might look at anything
    assert not needs_bodies(None)


def test_bodies_are_read_only_for_a_filter_that_looks_at_them(store: Any, body_reads: list[str]) -> None:
    flows = _flows(24)
    store.put(flows)
    store.flush()
    tagged = [f.id for f in flows if f.request.headers["X-Tag"] == "t1"]
    assert list(store.ids(flowfilter.parse("~hq t1"))) == tagged
    assert store.count(flowfilter.parse("~hq t1")) == len(tagged)
    assert body_reads == []
    needles = [f.id for f in flows if b"needle" in f.request.content]
    assert list(store.ids(flowfilter.parse("~bq ne+dle"))) == needles  # a regex on the body
    assert len(body_reads) == len(flows)  # each row once, in the walk
    body_reads.clear()
    found = list(store.query(flowfilter.parse("~b needle & ~hq t0")))
    assert [f.id for f in found] == [f.id for f in flows if f.id in needles and f.request.headers["X-Tag"] == "t0"]
    assert all(f.request.content == b"a needle here" for f in found)  # full flows, bodies back


def test_a_python_checked_page_stops_at_its_limit(store: Any, body_reads: list[str]) -> None:
    flows = _flows(30)
    store.put(flows)
    store.flush()
    page = list(store.query(flowfilter.parse("~bq a"), limit=3, bodies=False))
    assert [f.id for f in page] == [f.id for f in flows[:3]]
    assert len(body_reads) == 3  # the rows checked: not one past the third match
    assert list(store.query(flowfilter.parse("~bq a"), limit=0)) == []
    page = list(store.query(flowfilter.parse("~bq needle"), offset=2, limit=2))
    assert [f.id for f in page] == [flows[8].id, flows[12].id]


def test_removal_indexes_of_many_flows_come_from_one_walk(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    flows = _flows(120)
    store.put(flows)
    store.flush()
    flt = flowfilter.parse("~hq t[01]")  # checked in Python
    doomed = [f.id for f in flows[:30]]  # the oldest: last in url order
    expected = {}
    for flow_id in doomed:
        key = store.sort_key(flow_id, "url", flt)
        if key is not None:
            expected[flow_id] = store.rank(key, flt, "url")
    assert len(expected) == 20
    checked: list[int] = []
    real = sql.flow_of
    monkeypatch.setattr(sql, "flow_of", lambda *a: (checked.append(1), real(*a))[1])
    assert store.ranks_of(doomed, flt, "url") == expected
    assert len(checked) <= len(flows) + len(doomed)  # one walk (and each flow's own row once)


def test_a_walk_without_matches_stops_at_its_deadline(store: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """The search box's time budget holds while nothing matches: the walk itself gives up
    (before, only a match looked at the clock, so a rare filter held the event loop)."""
    import time

    flows = _flows(1500)
    store.put(flows)
    store.flush()
    checked: list[int] = []
    real = sql.flow_of

    def slow(*args: Any) -> Any:
        checked.append(1)
        time.sleep(0.001)
        return real(*args)

    monkeypatch.setattr(sql, "flow_of", slow)
    with pytest.raises(TimeoutError):
        list(store.ids(flowfilter.parse("~bq nowhere"), deadline=time.monotonic() + 0.1))
    assert 0 < len(checked) < len(flows)
    checked.clear()
    assert list(store.ids(flowfilter.parse("~hq t1 & ~bq nowhere"), deadline=time.monotonic() + 60)) == []
    assert len(checked) == len(flows)


def test_the_memory_view_search_stops_at_its_deadline() -> None:
    import time

    from proxycore.addons.view import View

    view = View()
    view.add(_flows(10))
    with pytest.raises(TimeoutError):
        list(view.matching_ids(flowfilter.parse("~bq nowhere"), deadline=time.monotonic()))
    assert len(list(view.matching_ids(flowfilter.parse("~bq needle"), deadline=time.monotonic() + 60))) == 3


@pytest.mark.e2e
def test_a_long_python_checked_listing_does_not_stall_the_web_server(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    """GET /flows?filter=... walks the store on a thread: other requests answer meanwhile."""
    import threading

    from tests.webapi import request, running

    with running(tmp_path) as server:  # proxyweb's default: a per-run SQLite store
        flows = _flows(600)
        server.add(*flows)
        real = sql.flow_of
        # The walk holds at its first row until the other request has been answered: a
        # walk on the event loop would hold the loop too, and the hold would time out.
        # (It was a 3 s walk and "answered within 1 s", which a loaded machine missed.)
        walking, answered = threading.Event(), threading.Event()
        held: list[bool] = []

        def slow(*args: Any) -> Any:
            if not walking.is_set():
                walking.set()
                held.append(answered.wait(15))
            return real(*args)

        monkeypatch.setattr(sql, "flow_of", slow)
        listing: list[Any] = []
        walker = threading.Thread(
            target=lambda: listing.append(request(server.port, "GET", "/flows?filter=~bq%20needle&limit=1000"))
        )
        walker.start()
        assert walking.wait(30), "the filtered listing never started its walk"
        assert request(server.port, "GET", "/flows?limit=1").status == 200
        answered.set()
        walker.join(30)
        assert held == [True], "the other request was answered only after the walk"
        assert [f["id"] for f in listing[0].json()] == [f.id for f in flows if b"needle" in f.request.content]
