#!/usr/bin/env python3
"""PostgreSQL store: a read over many rows, streamed (server-side cursor) or pulled whole.

    .venv/bin/python bench/store_pg_stream.py [--flows 200000]

Starts a throwaway PostgreSQL (tests/pg_server.py: initdb/pg_ctl), stores N small flows
through the store API, then in a fresh process per mode walks every id of the store
(``store.ids()``) and reads the first flow of a filter checked in Python
(``~c 500 & ~hs .``), reporting the time to the first row, the whole walk, and the
process's peak RSS growth. ``client`` is the previous way (the whole result sent to the
client on execute), ``server`` the named cursor.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def _rss() -> int:
    """This process's resident memory now, KiB."""
    return _status("VmRSS")


def _peak() -> int:
    return _status("VmHWM")


def _status(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def fill(url: str, count: int) -> None:
    sys.path.insert(0, str(ROOT / "bench"))
    from store_bench import generate_states

    from proxycore.store.base import flow_from_state, record_of
    from proxycore.store.postgres import PostgresStore

    store = PostgresStore(url, "bench:0")
    batch = []
    for state, _ in generate_states(count, 0):
        batch.append(record_of(flow_from_state(state), "bench:0"))
        if len(batch) >= 5000:
            store.put_records(batch)
            batch = []
    store.put_records(batch)
    store.close()


def measure(url: str, mode: str) -> None:
    from proxycore import flowfilter
    from proxycore.store.postgres import PostgresStore
    from proxycore.store.sql import SQLStore

    if mode == "client":
        PostgresStore._stream = SQLStore._stream  # type: ignore[method-assign]
    store = PostgresStore(url, "bench:1")
    base = _rss()
    t0 = time.perf_counter()
    ids = store.ids()
    next(ids)
    first = time.perf_counter() - t0
    walked = 1 + sum(1 for _ in ids)
    total = time.perf_counter() - t0
    t0 = time.perf_counter()
    next(store.query(flowfilter.parse("~c 500 & ~hs .")))
    filtered = time.perf_counter() - t0
    grown = (_peak() - base) / 1024
    print(f"{mode}: ids() first row {first * 1000:.0f} ms, all {walked} in {total:.2f} s; "
          f"first flow of a Python-checked filter {filtered * 1000:.0f} ms; peak RSS +{grown:.0f} MiB",
          flush=True)
    store.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=200_000)
    parser.add_argument("--measure", nargs=2, metavar=("URL", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        measure(*args.measure)
        return 0
    from tests.pg_server import new_database, server

    with server() as root:
        url = new_database(root)
        t0 = time.perf_counter()
        fill(url, args.flows)
        print(f"stored {args.flows} flows in {time.perf_counter() - t0:.0f} s", flush=True)
        for mode in ("client", "server"):
            subprocess.run([sys.executable, __file__, "--measure", url, mode], check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
