"""The flow stores: round trips, queries, filter push-down and retention, per backend."""

from __future__ import annotations

import pathlib

import pytest

from proxycore import flowfilter
from proxycore.io import FlowReader
from proxycore.store import MemoryStore, StoreError, open_store, sqlfilter
from proxycore.store.sqlite import SQLiteStore
from proxycore.test import tflow

CORPUS = pathlib.Path(__file__).parents[1] / "data" / "corpus-all.mitm"


def corpus_flows() -> list:
    with open(CORPUS, "rb") as f:
        return list(FlowReader(f).stream())


def make_store(kind, request, tmp_path):
    if kind == "memory":
        return MemoryStore()
    if kind == "sqlite":
        return SQLiteStore(str(tmp_path / "s.db"))
    from proxycore.store.postgres import PostgresStore

    return PostgresStore(request.getfixturevalue("postgres_url"), "test:1")


# PostgreSQL is a real server process: those cases are e2e (tests/e2e_guard.py).
POSTGRES = pytest.param("postgres", marks=pytest.mark.e2e)


@pytest.fixture(params=["memory", "sqlite", POSTGRES])
def store(request, tmp_path):
    s = make_store(request.param, request, tmp_path)
    yield s
    s.close()


@pytest.fixture(params=["sqlite", POSTGRES])
def db_store(request, tmp_path):
    s = make_store(request.param, request, tmp_path)
    yield s
    s.close()


def test_corpus_round_trips_through_sqlite_with_equal_state(tmp_path):
    flows = corpus_flows()
    path = str(tmp_path / "c.db")
    s = SQLiteStore(path)
    s.put(flows)
    s.close()
    check_corpus(SQLiteStore(path), flows)


def test_corpus_round_trips_through_postgres_with_equal_state(postgres_url):
    from proxycore.store.postgres import PostgresStore

    flows = corpus_flows()
    s = PostgresStore(postgres_url, "a:1")
    s.put(flows)
    s.close()
    check_corpus(PostgresStore(postgres_url, "b:2"), flows)


def check_corpus(again, flows):
    assert again.count() == len(flows)
    for flow in flows:
        assert again.get(flow.id).get_state() == flow.get_state()
    # arrival order is kept, whatever the timestamps say
    assert list(again.ids(order="time")) == [f.id for f in sorted(flows, key=lambda f: f.timestamp_created)]
    again.close()


def test_replacing_a_flow_keeps_its_place_and_takes_the_new_state(store):
    a, b = tflow.tflow(resp=True), tflow.tflow(resp=True)
    b.timestamp_created = a.timestamp_created  # same key: arrival decides
    store.put([a, b])
    a.comment = "changed"
    a.response.content = b"new body"
    store.put([a])
    assert [f.id for f in store.query()] == [a.id, b.id]
    got = store.get(a.id)
    assert got.comment == "changed" and got.response.content == b"new body"


def test_delete_clear_and_stats(store):
    flows = [tflow.tflow(resp=True) for _ in range(5)]
    flows[1].marked = ":default:"
    store.put(flows)
    store.delete([flows[0].id])
    assert store.count() == 4 and store.get(flows[0].id) is None
    assert store.stats().marked == 1
    assert sorted(store.clear(keep_marked=True)) == sorted(f.id for f in flows[2:])
    assert [f.id for f in store.query()] == [flows[1].id]
    store.clear()
    assert store.count() == 0


def test_paging_and_order(store):
    flows = [tflow.tflow(resp=True) for _ in range(10)]
    for i, f in enumerate(flows):
        f.timestamp_created = 1000 + i
        f.request.path = f"/{9 - i}"
    store.put(flows)
    assert [f.id for f in store.query(offset=2, limit=3)] == [f.id for f in flows[2:5]]
    assert [f.id for f in store.query(reverse=True, limit=2)] == [flows[9].id, flows[8].id]
    assert [f.id for f in store.query(order="url", limit=1)] == [flows[9].id]


def test_retention_removes_oldest_unmarked_first(store):
    flows = [tflow.tflow(resp=True) for _ in range(6)]
    for i, f in enumerate(flows):
        f.timestamp_created = 1000 + i
    flows[0].marked = ":default:"
    store.put(flows)
    assert store.retention(max_flows=4) == [flows[1].id, flows[2].id]
    assert store.retention(max_age=10, now=1014) == [flows[3].id]  # ts < 1004
    assert store.count() == 3 and store.get(flows[0].id) is not None
    size = len(flows[5].response.content) + len(flows[5].request.content)
    removed = store.retention(max_bytes=size + 1)
    assert flows[0].id not in removed and store.count() <= 3


FILTERS = [
    "~d example.com", "~d EXAMPLE", "!~d example.com", "~c 200", "~c 404 | ~c 500", "!~c 200",
    "~m POST", "~m get", "~u /path", "~u .", "~marked", "!~marked", "~comment x", "~http",
    "~tcp", "~websocket", "~e", "~q", "~s", "~replay", "~b foo", "~h content-type",
    "~d example.com & ~c 500", "~d example.com & !~b foo", "~src 127", "~dst :22",
    "~t json", "~a", "~u ^http", "(~tcp | ~c 200) & !~e", "~marker r", "~all",
]


def test_sql_filters_select_what_the_filter_matches(db_store):
    flows = corpus_flows() + [tflow.tflow(resp=True), tflow.tflow(err=True), tflow.ttcpflow()]
    flows[0].marked = "r"
    flows[1].comment = "xyz"
    flows[2].is_replay = "request"
    db_store.put(flows)
    for expr in FILTERS:
        flt = flowfilter.parse(expr)
        expected = sorted(f.id for f in flows if flt(f))
        assert sorted(f.id for f in db_store.query(flt)) == expected, expr
        assert db_store.count(flt) == len(expected), expr


def test_translation_pushes_down_what_sql_decides():
    d = sqlfilter.Dialect()
    cond = sqlfilter.translate(flowfilter.parse("~d example.com & ~c 500"), d)
    assert cond.exact and "LIKE" in cond.sql and "status" in cond.sql
    assert not sqlfilter.translate(flowfilter.parse("~b foo"), d).exact
    partial = sqlfilter.translate(flowfilter.parse("~c 500 & ~b foo"), d)
    assert not partial.exact and "status" in partial.sql  # narrowed, then checked in Python
    pg = sqlfilter.PostgresDialect()
    assert not sqlfilter.translate(flowfilter.parse("~u ^http"), pg).exact


def test_newer_schema_is_refused(tmp_path):
    import sqlite3

    path = tmp_path / "new.db"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(StoreError, match="newer proxycore"):
        open_store(str(path))


def test_not_a_database_is_refused(tmp_path):
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        open_store(str(path))


# Property: for any expression over the operators SQL decides (and some it does not),
# the rows the SQLite store selects are exactly the flows the filter matches.
ATOMS = [
    "~d example", "~d example.com", "~d '^example\\.com$'", "~u /path", "~u .", "~m GET",
    "~m '^P'", "~c 200", "~c 404", "~marked", "~marker r", "~comment xy", "~http", "~tcp",
    "~websocket", "~e", "~q", "~s", "~replay", "~replayq", "~src 127", "~dst :22",
    "~b foo", "~h host", "~t json", "~all", "example",
]


def _expressions():
    from hypothesis import strategies as st

    atom = st.sampled_from(ATOMS)

    def extend(inner):
        return st.one_of(
            inner.map(lambda e: f"!{e}"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} & {p[1]})"),
            st.tuples(inner, inner).map(lambda p: f"({p[0]} | {p[1]})"),
        )

    return st.recursive(atom, extend, max_leaves=6)


_PROPERTY_STORE: dict[str, object] = {}


def _property_store(tmp_dir: pathlib.Path):
    if "store" not in _PROPERTY_STORE:
        flows = corpus_flows() + [tflow.tflow(resp=True), tflow.tflow(err=True), tflow.ttcpflow()]
        flows[0].marked = "r"
        flows[1].comment = "xyz"
        flows[2].is_replay = "request"
        store = SQLiteStore(str(tmp_dir / "property.db"))
        store.put(flows)
        _PROPERTY_STORE.update(store=store, flows=flows)
    return _PROPERTY_STORE["store"], _PROPERTY_STORE["flows"]


def test_property_sql_selection_equals_the_filter(tmp_path_factory):
    from hypothesis import given

    store, flows = _property_store(tmp_path_factory.mktemp("property"))

    @given(_expressions())
    def check(expr):
        flt = flowfilter.parse(expr)
        expected = [f.id for f in sorted(flows, key=lambda f: f.timestamp_created) if flt(f)]
        assert list(store.ids(flt)) == expected
        assert store.count(flt) == len(expected)

    try:
        check()
    finally:
        store.close()
        _PROPERTY_STORE.clear()


def test_enum_values_in_state_are_stored_as_plain_values() -> None:
    """Metadata or connection state holding enums (IntEnum, str enums) must not stop the
    writer: marshal refuses subclasses of int and str (it once stopped every later write)."""
    import enum
    import marshal

    from proxycore.store.base import pack_state

    class Level(enum.IntEnum):
        HIGH = 3

    class Kind(enum.StrEnum):
        TEXT = "text"

    data, _ = pack_state({"type": "http", "metadata": {"level": Level.HIGH, "kinds": (Kind.TEXT,)}})
    assert marshal.loads(data)["metadata"] == {"level": 3, "kinds": ("text",)}
