"""The PostgreSQL backend: one database shared by several proxycore instances.

Every row carries the instance that wrote it (``store_instance``).  Each write
transaction ends with ``NOTIFY proxycore_flows``; a view on the same database
listens (``watch``) and fetches the rows other instances changed since it last
looked, by the ``changed`` counter every upsert takes from a sequence, so a
proxyweb shows the whole fleet live.  The schema is created and migrated here,
under an advisory lock so that instances starting together do not race.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from proxycore.flow import Flow
from proxycore.store import sqlfilter
from proxycore.store.base import SCHEMA_VERSION, StoreError, flow_of
from proxycore.store.sql import COLUMNS, SQLStore

logger = logging.getLogger("proxycore.store")

CHANNEL = "proxycore_flows"
_LOCK_KEY = 0x70726F78  # advisory lock id for schema changes ("prox")
SCHEMA = [
    "CREATE TABLE IF NOT EXISTS proxycore_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
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
]
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
        conn.execute(SCHEMA[0])
        row = conn.execute("SELECT value FROM proxycore_meta WHERE key = 'schema'").fetchone()
        version = int(row[0]) if row else 0
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"the database at {url} holds store schema {version}; this proxycore "
                f"reads up to {SCHEMA_VERSION}"
            )
        if version < SCHEMA_VERSION:
            for statement in SCHEMA[1:]:
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

    def _written(self, conn: Any, ops: list[Any]) -> None:
        if any(op[0] == "put" for op in ops):
            conn.execute("SELECT pg_notify(%s, %s)", (CHANNEL, self.instance))

    def vacuum(self) -> None:
        self.flush()
        with self._read_lock:
            self._reader.execute("VACUUM flows")
            self._reader.execute("VACUUM bodies")

    # other instances' changes ---------------------------------------------------------

    def high_water(self) -> int:
        return self._rows("SELECT COALESCE(MAX(changed), 0) FROM flows")[0][0]

    def max_seq(self) -> int:
        return self._rows("SELECT COALESCE(MAX(seq), 0) FROM flows")[0][0]

    def changes(self, since: int) -> tuple[int, list[tuple[int, Flow]]]:
        """Rows other instances changed after ``since``: (new high water, [(seq, flow)])."""
        rows = self._rows(
            "SELECT seq, id, state, changed FROM flows WHERE changed > ? AND instance <> ? "
            "ORDER BY changed",
            (since, self.instance),
        )
        result = [(seq, flow_of(bytes(state), self._bodies(flow_id))) for seq, flow_id, state, _ in rows]
        return (max((r[3] for r in rows), default=since), result)

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
        self._watching = False
        if self._watcher is not None:
            self._watcher.join(5)
        super().close()
