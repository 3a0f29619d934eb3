"""PostgreSQL reads stream: iteration and filters go through a server-side cursor, a batch
at a time, instead of pulling the whole result into the proxy (a real server)."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore import flowfilter
from proxycore.test import tflow

pytestmark = pytest.mark.e2e


@pytest.fixture
def store(postgres_url: str) -> Any:
    from proxycore.store.postgres import PostgresStore

    s = PostgresStore(postgres_url, "s:1")
    flows = []
    for i in range(1200):
        f = tflow.tflow(resp=True)
        f.timestamp_created = 1000 + i
        f.response.status_code = 500 if i % 2 else 200
        flows.append(f)
    s.put(flows)
    s.flush()
    s.fetch_size = 100
    yield s
    s.close()


@pytest.fixture
def fetches(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The number of rows each server-side cursor fetch brought back."""
    import psycopg

    seen: list[int] = []
    real = psycopg.ServerCursor.fetchmany

    def counting(self: Any, size: int = 0) -> Any:
        rows = real(self, size)
        seen.append(len(rows))
        return rows

    monkeypatch.setattr(psycopg.ServerCursor, "fetchmany", counting)
    return seen


def _open_cursors(url: str) -> list[str]:
    import psycopg

    with psycopg.connect(url) as conn:
        return [r[0] for r in conn.execute(
            "SELECT query FROM pg_stat_activity WHERE state = 'idle in transaction' "
            "AND query LIKE '%%proxycore_%%' AND pid <> pg_backend_pid()"  # FETCH ... FROM "proxycore_N"
        ).fetchall()]


def test_iteration_fetches_one_batch_at_a_time(store: Any, fetches: list[int], postgres_url: str) -> None:
    rows = store.ids()
    first = next(rows)
    assert fetches == [100]  # one batch, not 1,200 rows
    assert len(_open_cursors(postgres_url)) == 1  # the rest waits on the server
    rest = list(rows)
    assert len(rest) + 1 == 1200 and first not in rest
    assert fetches == [100] * 12 + [0]
    assert _open_cursors(postgres_url) == []  # finished: transaction closed, connection reused


def test_a_python_checked_filter_streams_too(store: Any, fetches: list[int]) -> None:
    flt = flowfilter.parse("~c 500 & ~bs message")  # the body part is checked in Python
    flows = store.query(flt)
    next(flows)
    assert fetches == [100]
    assert store.count(flt) == 600
    assert sum(fetches) <= 100 + 600 + 1  # the SQL part (status) was pushed down


def test_abandoned_iteration_gives_its_connection_back(store: Any, postgres_url: str) -> None:
    rows = store.ids()
    next(rows)
    rows.close()
    assert _open_cursors(postgres_url) == []
    assert len(list(store.ids())) == 1200
