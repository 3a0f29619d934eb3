"""The SQLite backend: one file, WAL journal (see :mod:`proxycore.store.sql` for the rest).

WAL with ``synchronous=NORMAL``: a killed process loses nothing committed, and the
file is never left half-written.  Regex filters run in SQL through ``pc_regexp``,
which calls the filter's own compiled pattern.
"""

from __future__ import annotations

import os
import sqlite3

from proxycore.store import sqlfilter
from proxycore.store.base import StoreError
from proxycore.store.sql import SQLStore

# MIGRATIONS[n] takes a file from schema n to n + 1 (PRAGMA user_version says which it is at).
MIGRATIONS: list[list[str]] = [[
    """CREATE TABLE IF NOT EXISTS flows (
        seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL UNIQUE, instance TEXT NOT NULL,
        type TEXT NOT NULL, ts REAL NOT NULL, method TEXT, host TEXT, pretty_host TEXT,
        url TEXT, status INTEGER, response INTEGER NOT NULL, websocket INTEGER NOT NULL,
        error INTEGER NOT NULL, marked TEXT NOT NULL, comment TEXT NOT NULL, replay TEXT,
        src TEXT, dst TEXT, size INTEGER NOT NULL, nbytes INTEGER NOT NULL, state BLOB NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS flows_ts ON flows (ts, seq)",
    "CREATE INDEX IF NOT EXISTS flows_status ON flows (status)",
    """CREATE TABLE IF NOT EXISTS bodies (
        id TEXT NOT NULL, part TEXT NOT NULL, data BLOB NOT NULL, PRIMARY KEY (id, part))""",
], [
    # 2: nothing here (PostgreSQL's schema 2 keeps removals for other viewers); the same
    # numbers on both backends keep the history readable
], [
    # 3: each body's length and SHA-256, so that the flow list reads no bodies
    "ALTER TABLE flows ADD COLUMN request_size INTEGER",
    "ALTER TABLE flows ADD COLUMN request_hash TEXT",
    "ALTER TABLE flows ADD COLUMN response_size INTEGER",
    "ALTER TABLE flows ADD COLUMN response_hash TEXT",
]]
SCHEMA_VERSION = len(MIGRATIONS)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=30)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


def _migrate(conn: sqlite3.Connection, path: str) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > SCHEMA_VERSION:
        raise StoreError(
            f"{path} was written by a newer proxycore (store schema {version}, this one "
            f"reads up to {SCHEMA_VERSION})"
        )
    if version < SCHEMA_VERSION:
        conn.execute("BEGIN IMMEDIATE")
        version = conn.execute("PRAGMA user_version").fetchone()[0]  # another process may have migrated
        for migration in MIGRATIONS[version:]:
            for statement in migration:
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
        conn.execute("COMMIT")


class SQLiteStore(SQLStore):
    backend = "sqlite"
    begin = "BEGIN IMMEDIATE"

    def __init__(self, path: str, instance: str = "") -> None:
        try:
            reader = _connect(path)
            _migrate(reader, path)
            writer = _connect(path)
        except sqlite3.DatabaseError as e:
            raise StoreError(f"cannot open store {path}: {e}") from None
        super().__init__(path, instance, reader, writer, sqlfilter.Dialect())
        reader.create_function("pc_regexp", 2, self._regexp, deterministic=True)

    def vacuum(self) -> None:
        self.flush()
        with self._read_lock:
            self._reader.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._reader.execute("VACUUM")

    def remove_files(self) -> None:
        """Delete the database and its WAL files (a per-run store at exit)."""
        for suffix in ("", "-wal", "-shm"):
            try:
                os.remove(self.path + suffix)
            except FileNotFoundError:
                pass
