"""What the SQL backends (SQLite, PostgreSQL) share: the tables, the writer thread, the queries.

The event loop never waits for the database on a write: ``put``/``delete`` hand rows
to the writer thread, which commits whatever has queued up in one transaction.  Reads
run on the caller's thread through a second connection, after waiting for the writes
queued before them (so a read sees every earlier write).  SQL is written with ``?``
placeholders; a backend whose driver wants ``%s`` says so in ``placeholder``.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from proxycore.flow import Flow
from proxycore.store import sqlfilter
from proxycore.store.base import (
    ORDER_COLUMNS,
    FlowStore,
    Record,
    Stats,
    flow_of,
    listed_flow,
    past_deadline,
    record_of,
)

logger = logging.getLogger("proxycore.store")

BODY_COLUMNS = ("request_size", "request_hash", "response_size", "response_hash")  # schema 3
COLUMNS = (
    "id", "instance", "type", "ts", "method", "host", "pretty_host", "url", "status",
    "response", "websocket", "error", "marked", "comment", "replay", "src", "dst", "size",
    "nbytes", "state", *BODY_COLUMNS,
)
_UPSERT = (
    f"INSERT INTO flows ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))}) "
    f"ON CONFLICT(id) DO UPDATE SET "
    + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS if c != "id")
)
_STOP = object()
MAX_QUEUED = 32  # write batches waiting for the disk before writers wait (bounded memory)
MAX_QUEUED_BYTES = 32 * 1024 * 1024  # ... or bytes of flows in them


def _row(record: Record) -> tuple[Any, ...]:
    return (
        record.id, record.instance, record.type, record.ts, record.method, record.host,
        record.pretty_host, record.url, record.status, int(record.response),
        int(record.websocket), int(record.error), record.marked, record.comment,
        record.replay, record.src, record.dst, record.size, record.nbytes, record.state,
        *record.body_meta.get("request", (None, None)), *record.body_meta.get("response", (None, None)),
    )


def _body_meta(columns: list[Any]) -> dict[str, tuple[int, str]]:
    """BODY_COLUMNS values -> {part: (length, hash)} for the parts that have them."""
    meta = {}
    for part, (size, digest) in zip(("request", "response"), (columns[:2], columns[2:]), strict=True):
        if digest is not None:
            meta[part] = (size, digest)
    return meta


class SQLStore(FlowStore):
    """A backend on a DB-API connection pair; subclasses connect and name the dialect."""

    placeholder = "?"
    begin = "BEGIN"
    unlimited = "LIMIT -1"  # what lets OFFSET stand alone
    upsert = _UPSERT

    def __init__(self, location: str, instance: str, reader: Any, writer: Any, dialect: sqlfilter.Dialect) -> None:
        self.location = self.path = location
        self.instance = instance
        self.dialect = dialect
        self._reader = reader
        self._read_lock = threading.RLock()
        self._queue: queue.Queue[Any] = queue.Queue()
        self._queued = 0  # operations handed to the writer and not yet committed
        self._queued_bytes = 0  # bytes of flows in them
        self._done = threading.Condition()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._write_loop, args=(writer,), name="proxycore-store", daemon=True)
        self._thread.start()

    # writing (writer thread) --------------------------------------------------------

    def _write_loop(self, conn: Any) -> None:
        while True:
            ops = [self._queue.get()]
            while True:
                try:
                    ops.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            taken = len(ops)
            stop = any(op is _STOP for op in ops)
            sizes = sum(op[1] for op in ops if op is not _STOP)
            ops = [op[0] for op in ops if op is not _STOP]
            try:
                conn.execute(self.begin)
                self._began(conn)
                for op in ops:
                    self._apply(conn, op)
                self._written(conn, ops)
                conn.execute("COMMIT")
            except BaseException as e:  # a broken disk: report on the next read, keep going
                logger.error(f"Flow store {self.path}: write failed: {e}")
                self._error = e
                try:
                    conn.execute("ROLLBACK")
                except Exception:  # noqa: BLE001 - the connection may be gone too
                    pass
            with self._done:
                self._queued -= taken
                self._queued_bytes -= sizes
                self._done.notify_all()
            if stop:
                conn.close()
                return

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _many(self, conn: Any, sql: str, rows: list[tuple[Any, ...]]) -> None:
        if rows:
            conn.cursor().executemany(self._sql(sql), rows)

    def _began(self, conn: Any) -> None:
        """Called first in each write transaction (PostgreSQL orders the fleet's writers)."""

    def _written(self, conn: Any, ops: list[Any]) -> None:
        """Called in the write transaction, after the operations (PostgreSQL notifies)."""

    def _apply(self, conn: Any, op: tuple[str, Any]) -> None:
        kind, arg = op
        if kind == "put":
            self._many(conn, self.upsert, [_row(r) for r in arg])
            self._many(conn, "DELETE FROM bodies WHERE id = ?", [(r.id,) for r in arg])
            self._many(
                conn,
                "INSERT INTO bodies (id, part, data) VALUES (?, ?, ?)",
                [(r.id, part, data) for r in arg for part, data in r.bodies.items()],
            )
        elif kind == "delete":
            self._many(conn, "DELETE FROM flows WHERE id = ?", [(i,) for i in arg])
            self._many(conn, "DELETE FROM bodies WHERE id = ?", [(i,) for i in arg])
        elif kind == "sql":
            conn.execute(arg)

    def _submit(self, op: Any, size: int = 0) -> None:
        with self._done:
            while self._queued and self._thread.is_alive() and (
                self._queued >= MAX_QUEUED or self._queued_bytes + size > MAX_QUEUED_BYTES
            ):
                self._done.wait()
            self._queued += 1
            self._queued_bytes += size
        self._queue.put((op, size) if op is not _STOP else op)

    def put(self, flows: Iterable[Flow]) -> None:
        self.put_records([record_of(f, self.instance) for f in flows])

    def put_records(self, records: list[Record]) -> None:
        if self.instance:  # rows carry the name of the store's instance, whoever made the record
            for record in records:
                record.instance = self.instance
        if records:
            self._submit(("put", records), sum(r.nbytes for r in records))

    def delete(self, flow_ids: Iterable[str]) -> None:
        ids = list(flow_ids)
        if ids:
            self._submit(("delete", ids))

    def flush(self) -> None:
        with self._done:
            while self._queued:
                self._done.wait()

    # reading (caller's thread) --------------------------------------------------------

    def _regexp(self, key: int, value: Any) -> int:
        if value is None:
            return 0
        pattern = self.dialect.patterns.get(key)
        if pattern is None:
            return 0
        if isinstance(pattern.pattern, bytes):
            value = value.encode("utf-8", "surrogateescape")
        return int(pattern.search(value) is not None)

    def _rows(self, sql: str, params: Iterable[Any] = ()) -> list[Any]:
        self.flush()
        with self._read_lock:
            return self._reader.execute(self._sql(sql), tuple(params)).fetchall()

    def _bodies(self, flow_id: str) -> dict[str, bytes]:
        with self._read_lock:
            rows = self._reader.execute(self._sql("SELECT part, data FROM bodies WHERE id = ?"), (flow_id,))
            return {part: bytes(data) for part, data in rows}

    def get(self, flow_id: str) -> Flow | None:
        rows = self._rows("SELECT state FROM flows WHERE id = ?", (flow_id,))
        if not rows:
            return None
        return flow_of(bytes(rows[0][0]), self._bodies(flow_id))

    def has(self, flow_id: str) -> bool:
        return bool(self._rows("SELECT 1 FROM flows WHERE id = ?", (flow_id,)))

    def _where(self, flt: Any) -> sqlfilter.Condition:
        return sqlfilter.translate(flt, self.dialect)

    def count(self, flt: Any = None) -> int:
        cond = self._where(flt)
        if cond.exact:
            return self._rows(f"SELECT COUNT(*) FROM flows WHERE {cond.sql}", cond.params)[0][0]
        return sum(1 for _ in self._checked(flt, f"SELECT id, state FROM flows WHERE {cond.sql}", cond.params))

    def _order(self, order: str, reverse: bool) -> str:
        column = ORDER_COLUMNS.get(order, "ts")
        direction = "DESC" if reverse else "ASC"
        return f"{column} {direction}, seq {direction}"

    def _stream(self, sql: str, params: list[Any]) -> Iterator[tuple[Any, ...]]:
        self.flush()
        with self._read_lock:
            cursor = self._reader.cursor()
            cursor.execute(self._sql(sql), params)
        while True:
            with self._read_lock:
                rows = cursor.fetchmany(256)
            if not rows:
                return
            yield from rows

    def _checked(
        self, flt: Any, sql: str, params: Iterable[Any], deadline: float | None = None
    ) -> Iterator[tuple[Any, ...]]:
        """The rows of ``sql`` (a SELECT of id, state, ...) that ``flt`` matches, run in Python
        over the streamed rows: memory stays bounded whatever the store holds.  Bodies are
        read only for a filter that looks at them (a body operator).  See ``past_deadline``."""
        wants_bodies = sqlfilter.needs_bodies(flt)
        for n, row in enumerate(self._stream(sql, list(params))):
            if n % 256 == 0:
                past_deadline(deadline)
            bodies = self._bodies(row[0]) if wants_bodies else {}
            if flt(flow_of(bytes(row[1]), bodies)):
                yield row

    def query(
        self, flt: Any = None, order: str = "time", reverse: bool = False,
        offset: int = 0, limit: int | None = None, bodies: bool = True,
    ) -> Iterator[Flow]:
        cond = self._where(flt)
        order_by = self._order(order, reverse)
        params = list(cond.params)
        if cond.exact:
            sql = f"SELECT id, state, {', '.join(BODY_COLUMNS)} FROM flows WHERE {cond.sql} ORDER BY {order_by}"
            if limit is not None:
                sql += " LIMIT ? OFFSET ?"
                params += [limit, offset]
            elif offset:
                sql += f" {self.unlimited} OFFSET ?"
                params.append(offset)
            for flow_id, state, *meta in self._stream(sql, params):
                flow = None if bodies else listed_flow(bytes(state), _body_meta(meta))
                yield flow or flow_of(bytes(state), self._bodies(flow_id))
            return
        if limit == 0:
            return
        sql = f"SELECT id, state, {', '.join(BODY_COLUMNS)} FROM flows WHERE {cond.sql} ORDER BY {order_by}"
        skipped = produced = 0
        for flow_id, state, *meta in self._checked(flt, sql, params):
            if skipped < offset:
                skipped += 1
                continue
            flow = None if bodies else listed_flow(bytes(state), _body_meta(meta))
            yield flow or flow_of(bytes(state), self._bodies(flow_id))
            produced += 1
            if limit is not None and produced >= limit:
                return

    def ids(
        self, flt: Any = None, order: str = "time", reverse: bool = False, deadline: float | None = None
    ) -> Iterator[str]:
        cond = self._where(flt)
        if not cond.exact:
            sql = f"SELECT id, state FROM flows WHERE {cond.sql} ORDER BY {self._order(order, reverse)}"
            for row in self._checked(flt, sql, cond.params, deadline):
                yield row[0]
            return
        sql = f"SELECT id FROM flows WHERE {cond.sql} ORDER BY {self._order(order, reverse)}"
        for n, (flow_id,) in enumerate(self._stream(sql, list(cond.params))):
            if n % 256 == 0:
                past_deadline(deadline)
            yield flow_id

    def position(self, flow_id: str, flt: Any, order: str, reverse: bool) -> int | None:
        """Where ``flow_id`` is among the flows ``flt`` selects in that order (None: not there)."""
        for i, other in enumerate(self.ids(flt, order, reverse)):
            if other == flow_id:
                return i
        return None

    def sort_key(self, flow_id: str, order: str, flt: Any = None) -> tuple[Any, int] | None:
        """``flow_id``'s place in ``order`` as (column value, seq), if ``flt`` selects it."""
        column = ORDER_COLUMNS.get(order, "ts")
        cond = self._where(flt)
        rows = self._rows(
            f"SELECT {column}, seq, state FROM flows WHERE id = ? AND ({cond.sql})",
            [flow_id, *cond.params],
        )
        if not rows:
            return None
        value, seq, state = rows[0]
        if not cond.exact and not flt(flow_of(bytes(state), self._bodies(flow_id))):
            return None
        return (value, seq)

    RANK_CAP = 5000  # rows a capped count walks before trying the other side

    def rank(
        self, key: tuple[Any, int], flt: Any, order: str, exclude: str = "", total: int | None = None
    ) -> int:
        """How many flows ``flt`` selects sort before ``key`` in ascending ``order``
        (the index the view's signals carry, as mitmproxy's view gives it).  With ``total``
        (how many it selects, the flow at ``key`` included) a flow near the end is counted
        from there: the flows that change are mostly the newest of millions."""
        column = ORDER_COLUMNS.get(order, "ts")
        cond = self._where(flt)
        before = f"({cond.sql}) AND ({column} < ? OR ({column} = ? AND seq < ?)) AND id <> ?"
        params = [*cond.params, key[0], key[0], key[1], exclude]
        if cond.exact:
            capped = "SELECT COUNT(*) FROM (SELECT 1 FROM flows WHERE {} LIMIT ?) AS capped"
            found = self._rows(capped.format(before), [*params, self.RANK_CAP])[0][0]
            if found < self.RANK_CAP:
                return found
            if total is not None:
                after = f"({cond.sql}) AND ({column} > ? OR ({column} = ? AND seq > ?)) AND id <> ?"
                later = self._rows(capped.format(after), [*params, self.RANK_CAP])[0][0]
                if later < self.RANK_CAP:
                    return max(0, total - 1 - later)
            return self._rows(f"SELECT COUNT(*) FROM flows WHERE {before}", params)[0][0]
        return sum(1 for _ in self._checked(flt, f"SELECT id, state FROM flows WHERE {before}", params))

    def ranks_of(self, flow_ids: Iterable[str], flt: Any, order: str) -> dict[str, int]:
        """:meth:`rank` of each of ``flow_ids`` that ``flt`` selects (the others left out).
        When Python checks the filter, one walk in order places them all: a walk per flow
        would read the store again for each of a thousand removals."""
        keys = {i: k for i in flow_ids if (k := self.sort_key(i, order, flt)) is not None}
        cond = self._where(flt)
        if cond.exact or len(keys) < 2:
            return {i: self.rank(k, flt, order) for i, k in keys.items()}
        found: dict[str, int] = {}
        sql = f"SELECT id, state FROM flows WHERE {cond.sql} ORDER BY {self._order(order, False)}"
        for index, row in enumerate(self._checked(flt, sql, cond.params)):
            if row[0] in keys:
                found[row[0]] = index
                if len(found) == len(keys):
                    break
        return found

    def clear(self, keep_marked: bool = False) -> list[str]:
        where = "marked = ''" if keep_marked else "1=1"
        ids = [r[0] for r in self._rows(f"SELECT id FROM flows WHERE {where}")]
        if keep_marked:
            self.delete(ids)
        else:
            self._submit(("sql", "DELETE FROM flows"))
            self._submit(("sql", "DELETE FROM bodies"))
        self.flush()
        return ids

    def _mine(self) -> tuple[str, list[Any]]:
        """The condition (`` AND ...``) limiting retention to this instance's rows ("" for all)."""
        return "", []

    def over_limits(
        self, max_flows: int = 0, max_bytes: int = 0, max_age: float = 0, now: float | None = None
    ) -> list[str]:
        doomed: list[str] = []
        mine, own = self._mine()
        if max_age:
            cutoff = (now or self.now()) - max_age
            doomed += [r[0] for r in self._rows(
                f"SELECT id FROM flows WHERE marked = '' AND ts < ?{mine} ORDER BY seq", (cutoff, *own))]
        if max_flows:
            total = self._rows(f"SELECT COUNT(*) FROM flows WHERE 1=1{mine}", own)[0][0] - len(doomed)
            if total > max_flows:
                rows = self._rows(
                    f"SELECT id FROM flows WHERE marked = ''{mine} ORDER BY seq LIMIT ?",
                    (*own, total - max_flows + len(doomed)),
                )
                seen = set(doomed)
                doomed += [r[0] for r in rows if r[0] not in seen]
        if max_bytes:
            seen = set(doomed)
            unseen = len(seen)
            total = self._rows(f"SELECT COALESCE(SUM(nbytes), 0) FROM flows WHERE 1=1{mine}", own)[0][0]
            # Oldest first: flows already chosen above come early in this walk too.
            for flow_id, nbytes in self._stream(
                f"SELECT id, nbytes FROM flows WHERE marked = ''{mine} ORDER BY seq", own
            ):
                if flow_id in seen:
                    total -= nbytes
                    unseen -= 1
                elif total > max_bytes:
                    doomed.append(flow_id)
                    total -= nbytes
                elif not unseen:
                    break
        return doomed

    def stats(self) -> Stats:
        flows, nbytes, marked = self._rows(
            "SELECT COUNT(*), COALESCE(SUM(nbytes), 0), "
            "COALESCE(SUM(CASE WHEN marked <> '' THEN 1 ELSE 0 END), 0) FROM flows"
        )[0]
        return Stats(flows, nbytes, marked, self.backend, self.path)

    def close(self) -> None:
        if self._thread.is_alive():
            self._submit(_STOP)
            self._thread.join()
        with self._read_lock:
            self._reader.close()
