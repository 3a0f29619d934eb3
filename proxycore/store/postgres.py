"""The PostgreSQL backend: one database shared by several proxycore instances.

Every row carries the instance that wrote it (``store_instance``).  Each write
transaction ends with ``NOTIFY proxycore_flows``; a view on the same database
listens (``watch``) and fetches the rows other instances changed since it last
looked, by the ``changed`` counter every upsert takes from a sequence, so a
proxyweb shows the whole fleet live.  The schema is created and migrated here,
under an advisory lock so that instances starting together do not race.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from proxycore.flow import Flow
from proxycore.store import sqlfilter
from proxycore.store.base import ORDER_COLUMNS, StoreError, flow_of
from proxycore.store.sql import BODY_COLUMNS, COLUMNS, SQLStore

logger = logging.getLogger("proxycore.store")

CHANNEL = "proxycore_flows"
_LOCK_KEY = 0x70726F78  # advisory lock id for schema changes ("prox")
_WRITE_KEY = 0x70726F79  # ... held by each write transaction (see _began)
META = "CREATE TABLE IF NOT EXISTS proxycore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
# The columns a removal keeps of the row it removed (what filters and the view's order read).
REMOVAL_COLUMNS = ("seq", *(c for c in COLUMNS if c not in BODY_COLUMNS), "changed")
# MIGRATIONS[n] takes a database from schema n to n + 1.
MIGRATIONS: list[list[str]] = [[
    "CREATE SEQUENCE IF NOT EXISTS flow_changes",
    """CREATE TABLE IF NOT EXISTS flows (
        seq BIGSERIAL PRIMARY KEY, id TEXT NOT NULL UNIQUE, instance TEXT NOT NULL,
        type TEXT NOT NULL, ts DOUBLE PRECISION NOT NULL, method TEXT, host TEXT,
        pretty_host TEXT, url TEXT, status INTEGER, response INTEGER NOT NULL,
        websocket INTEGER NOT NULL, error INTEGER NOT NULL, marked TEXT NOT NULL,
        comment TEXT NOT NULL, replay TEXT, src TEXT, dst TEXT, size BIGINT NOT NULL,
        nbytes BIGINT NOT NULL, state BYTEA NOT NULL,
        changed BIGINT NOT NULL DEFAULT nextval('flow_changes'))""",
    "CREATE INDEX IF NOT EXISTS flows_ts ON flows (ts, seq)",
    "CREATE INDEX IF NOT EXISTS flows_status ON flows (status)",
    "CREATE INDEX IF NOT EXISTS flows_changed ON flows (changed)",
    """CREATE TABLE IF NOT EXISTS bodies (
        id TEXT NOT NULL, part TEXT NOT NULL, data BYTEA NOT NULL, PRIMARY KEY (id, part))""",
], [
    # 2: removals travel to the other viewers: each removed row (bodies left out), and clears
    # as one row each (a clear of millions of flows writes one line, not millions).
    "CREATE TABLE IF NOT EXISTS flow_removals (LIKE flows)",
    "ALTER TABLE flow_removals ADD COLUMN removed BIGINT NOT NULL DEFAULT nextval('flow_changes'), "
    "ADD COLUMN removed_by TEXT NOT NULL, ADD COLUMN removed_at DOUBLE PRECISION NOT NULL",
    "CREATE INDEX IF NOT EXISTS flow_removals_removed ON flow_removals (removed)",
    """CREATE TABLE IF NOT EXISTS flow_clears (
        removed BIGINT NOT NULL DEFAULT nextval('flow_changes'), removed_by TEXT NOT NULL,
        of_instance TEXT, upto BIGINT NOT NULL, keep_marked BOOLEAN NOT NULL,
        removed_at DOUBLE PRECISION NOT NULL)""",
], [
    # 3: each body's length and SHA-256, so that the flow list reads no bodies
    "ALTER TABLE flows ADD COLUMN request_size BIGINT, ADD COLUMN request_hash TEXT, "
    "ADD COLUMN response_size BIGINT, ADD COLUMN response_hash TEXT",
]]
SCHEMA_VERSION = len(MIGRATIONS)
REMOVALS_KEPT = 120.0  # seconds a removal stays readable (viewers look within a second of the NOTIFY)
_UPSERT = (
    f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
    + ", changed = nextval('flow_changes')"
)


def _psycopg() -> Any:
    try:
        import psycopg
    except ImportError:
        raise StoreError(
            "store=postgresql://... needs psycopg 3: pip install 'proxycore[postgres]' "
            "(or psycopg[binary])"
        ) from None
    return psycopg


def _migrate(conn: Any, url: str) -> None:
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_LOCK_KEY,))
        conn.execute(META)
        row = conn.execute("SELECT value FROM proxycore_meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database at {url} holds store schema {version}; this proxycore "
                f"reads up to {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            for migration in MIGRATIONS[version:]:
                for statement in migration:
                    conn.execute(statement)
            conn.execute(
                "INSERT INTO proxycore_meta (key, value) VALUES ('schema', %s) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (str(SCHEMA_VERSION),),
            )


def _redacted(url: str) -> str:
    """The URL without its password, for messages."""
    head, at, tail = url.rpartition("@")
    if not at or ":" not in head.split("//", 1)[-1]:
        return url
    scheme, _, user = head.partition("//")
    return f"{scheme}//{user.split(':', 1)[0]}:***@{tail}"


class PostgresStore(SQLStore):
    backend = "postgresql"
    scope = "instance"  # store_scope: "fleet" makes retention and view.clear act on every row
    placeholder = "%s"
    unlimited = ""
    upsert = _UPSERT

    def __init__(self, url: str, instance: str = "") -> None:
        psycopg = _psycopg()
        self.url = url
        try:
            reader = psycopg.connect(url, autocommit=True)
            _migrate(reader, _redacted(url))
            writer = psycopg.connect(url, autocommit=True)
        except psycopg.Error as e:
            raise StoreError(f"cannot open store {_redacted(url)}: {e}") from None
        super().__init__(_redacted(url), instance, reader, writer, sqlfilter.PostgresDialect())
        self._watcher: threading.Thread | None = None
        self._watching = False
        self._hidden: list[tuple[int, bool]] = []  # (up to seq, marked ones stay) per view.clear
        self._pruned = 0.0
        self._idle: list[Any] = []  # connections for server-side cursors, not in use
        self._pool_lock = threading.Lock()
        self._cursor_names = itertools.count()
        self._closed = False

    # reading: long results stream through a server-side cursor ------------------------

    fetch_size = 500  # rows a streaming read asks the server for at a time
    IDLE_STREAMS = 4  # connections kept open for the next streaming read

    def _stream(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        """Rows of ``sql`` ``fetch_size`` at a time from a named cursor on a connection of
        its own (a filter over millions of rows never holds more than one batch here)."""
        self.flush()
        conn = self._take()
        try:
            with conn.transaction(), conn.cursor(name=f"proxycore_{next(self._cursor_names)}") as cursor:
                cursor.execute(self._sql(sql), params)
                while rows := cursor.fetchmany(self.fetch_size):
                    yield from rows
        finally:
            self._give_back(conn)

    def _take(self) -> Any:
        with self._pool_lock:
            if self._idle:
                return self._idle.pop()
        return _psycopg().connect(self.url, autocommit=True)

    def _give_back(self, conn: Any) -> None:
        with self._pool_lock:
            if not self._closed and not conn.closed and len(self._idle) < self.IDLE_STREAMS:
                self._idle.append(conn)
                return
        conn.close()

    # writing: removals leave a trace other viewers read -------------------------------

    def _apply(self, conn: Any, op: tuple[str, Any]) -> None:
        kind, arg = op
        if kind == "delete":
            columns = ", ".join(REMOVAL_COLUMNS)
            conn.execute(
                f"INSERT INTO flow_removals ({columns}, removed_by, removed_at) "
                f"SELECT {columns}, %s, %s FROM flows WHERE id = ANY(%s)",
                (self.instance, time.time(), arg),
            )
            conn.execute("DELETE FROM flows WHERE id = ANY(%s)", (arg,))
            conn.execute("DELETE FROM bodies WHERE id = ANY(%s)", (arg,))
        elif kind == "clear":
            of_instance, keep_marked = arg
            upto = conn.execute("SELECT COALESCE(MAX(seq), 0) FROM flows").fetchone()[0]
            where, params = "seq <= %s", [upto]
            if of_instance is not None:
                where += " AND instance = %s"
                params.append(of_instance)
            if keep_marked:
                where += " AND marked = ''"
            conn.execute(f"DELETE FROM bodies WHERE id IN (SELECT id FROM flows WHERE {where})", params)
            conn.execute(f"DELETE FROM flows WHERE {where}", params)
            conn.execute(
                "INSERT INTO flow_clears (removed_by, of_instance, upto, keep_marked, removed_at) "
                "VALUES (%s, %s, %s, %s, %s)",
                (self.instance, of_instance, upto, keep_marked, time.time()),
            )
        else:
            super()._apply(conn, op)

    def _began(self, conn: Any) -> None:
        # The fleet's write transactions take their change numbers one transaction at a time,
        # so they commit in number order: a viewer that saw number N has seen every lower one.
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_WRITE_KEY,))

    def _written(self, conn: Any, ops: list[Any]) -> None:
        if any(op[0] in ("put", "delete", "clear") for op in ops):
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.instance))
        now = time.time()
        if now - self._pruned > 60:
            self._pruned = now
            for table in ("flow_removals", "flow_clears"):
                conn.execute(f"DELETE FROM {table} WHERE removed_at < %s", (now - REMOVALS_KEPT,))

    # scope: what this instance's retention and view.clear act on ----------------------

    def _mine(self) -> tuple[str, list[Any]]:
        if self.scope == "fleet":
            return "", []
        return " AND instance = ?", [self.instance]

    def clear(self, keep_marked: bool = False) -> list[str]:
        """Scope "instance": delete this instance's flows and hide the others' from this
        store object (they stay for other viewers); "fleet": delete every instance's."""
        mine, params = self._mine()
        where = "marked = ''" if keep_marked else "1=1"
        ids = [r[0] for r in self._rows(f"SELECT id FROM flows WHERE {where}{mine}", params)]
        self._submit(("clear", (self.instance if mine else None, keep_marked)))
        self.flush()
        if mine:
            upto = self.max_seq()
            if not keep_marked:
                self._hidden.clear()  # this one hides everything the earlier ones did
            self._hidden.append((upto, keep_marked))
        return ids

    def _where(self, flt: Any) -> sqlfilter.Condition:
        cond = super()._where(flt)
        if not self._hidden:
            return cond
        parts, params = [], []
        for upto, keep_marked in self._hidden:
            unmarked = " AND marked = ''" if keep_marked else ""
            parts.append(f"NOT (seq <= %s AND instance <> %s{unmarked})")
            params += [upto, self.instance]
        return sqlfilter.Condition(
            f"({cond.sql}) AND " + " AND ".join(parts), [*cond.params, *params], cond.exact
        )

    def vacuum(self) -> None:
        self.flush()
        with self._read_lock:
            self._reader.execute("VACUUM flows")
            self._reader.execute("VACUUM bodies")

    # other instances' changes ---------------------------------------------------------

    def high_water(self) -> int:
        """The newest change number (rows, removals, clears): where a new viewer starts."""
        return self._rows(
            "SELECT GREATEST((SELECT COALESCE(MAX(changed), 0) FROM flows), "
            "(SELECT COALESCE(MAX(removed), 0) FROM flow_removals), "
            "(SELECT COALESCE(MAX(removed), 0) FROM flow_clears))"
        )[0][0]

    def max_seq(self) -> int:
        return self._rows("SELECT COALESCE(MAX(seq), 0) FROM flows")[0][0]

    def changes(self, since: int) -> tuple[int, list[tuple[int, Flow]]]:
        """Rows other instances changed after ``since``: (new high water, [(seq, flow)]);
        rows this view's clear hid stay hidden."""
        hidden = self._where(None)
        rows = self._rows(
            f"SELECT seq, id, state, changed FROM flows WHERE changed > ? AND instance <> ? "
            f"AND {hidden.sql} ORDER BY changed",
            (since, self.instance, *hidden.params),
        )
        result = [(seq, flow_of(bytes(state), self._bodies(flow_id))) for seq, flow_id, state, _ in rows]
        return (max((r[3] for r in rows), default=since), result)

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[None]:
        """Reads in the block see one state of the database (``changes`` and ``removals``
        of the same look agree on what has been committed)."""
        self.flush()
        with self._read_lock:
            self._reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            try:
                yield
            finally:
                self._reader.execute("COMMIT")

    def removals(
        self, since: int, flt: Any, order: str
    ) -> tuple[int, list[tuple[str, str, tuple[Any, int], bool]], bool]:
        """What other instances removed after ``since``: (new high water, [(id, instance,
        sort key in ``order``, whether ``flt`` selected it)] in removal order, whether
        they cleared flows wholesale)."""
        column = ORDER_COLUMNS.get(order, "ts")
        cond = self._where(flt)
        rows = self._rows(
            f"SELECT id, instance, {column}, seq, removed, state, CASE WHEN {cond.sql} THEN 1 ELSE 0 END "
            "FROM flow_removals WHERE removed > ? AND removed_by <> ? ORDER BY removed",
            (*cond.params, since, self.instance),
        )
        removed = []
        for flow_id, instance, value, seq, _, state, selected in rows:
            if selected and not cond.exact:
                selected = flt(flow_of(bytes(state), {}))
            removed.append((flow_id, instance, (value, seq), bool(selected)))
        high = max((r[4] for r in rows), default=since)
        clears = self._rows(
            "SELECT COALESCE(MAX(removed), 0) FROM flow_clears WHERE removed > ? AND removed_by <> ?",
            (since, self.instance),
        )[0][0]
        return max(high, clears), removed, bool(clears)

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` (from another thread) whenever another instance wrote flows."""
        psycopg = _psycopg()
        conn = psycopg.connect(self.url, autocommit=True)
        conn.execute(f"LISTEN {CHANNEL}")
        self._watching = True

        def listen() -> None:
            try:
                while self._watching:
                    for note in conn.notifies(timeout=0.5):
                        if note.payload != self.instance:
                            callback()
            except psycopg.Error as e:
                if self._watching:
                    logger.warning(f"Flow store {self.location}: stopped listening: {e}")
            finally:
                conn.close()

        self._watcher = threading.Thread(target=listen, name="proxycore-store-listen", daemon=True)
        self._watcher.start()

    def close(self) -> None:
        with self._pool_lock:
            self._closed = True
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
        self._watching = False
        if self._watcher is not None:
            self._watcher.join(5)
        super().close()
