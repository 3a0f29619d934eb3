#!/usr/bin/env python3
"""proxyweb with a million flows in its store: memory, first page, and a filter.

    .venv/bin/python bench/store_bench.py [--flows 1000000] [--body 0] [--store ''|memory|PATH.db]

Writes a flow file of N small HTTP flows (one host in ten is example.com, one
status in twenty is 500; ``--body`` gives each response a body of that many
bytes), starts ``proxyweb -r`` on it (every flow goes through the addon chain and
the view into the store, as a loaded file does), waits until all are stored, then
measures with real HTTP and WebSocket clients on 127.0.0.1:

* time to the first byte and to the end of ``GET /flows?limit=100``;
* ``GET /flows?filter=~d example.com & ~c 500&limit=100`` (first page of a filter);
* the search box: ``flows/updateFilter`` with that filter over the whole store, until
  its ``flows/filterUpdate`` (every matching id) arrives;
* the proxyweb process's peak RSS (VmHWM) and RSS at the end.

``--filter EXPR`` (repeatable) measures other filters instead, e.g. ones SQL cannot decide
and Python checks over the streamed rows (``~bq x``, ``~h x``, a regex): their first page,
and the search box, which gives up after ``web_filter_time_budget`` (2 s) and says so.

``--mitmweb PATH/TO/mitmweb`` instead loads the same file into mitmweb (12.3.1) and
reports only its peak RSS once every flow is in its view (mitmweb keeps them in memory).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-password"
FILTER = "~d example.com & ~c 500"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def generate_states(count: int, body: int) -> Any:
    """(flow state, matches FILTER) for N small HTTP flows, states made directly (a million
    Flow objects take minutes)."""
    import uuid

    from proxycore.test import tflow

    base = tflow.tflow(resp=True).get_state()
    payload = os.urandom(body) if body else b""
    start = time.time() - count * 0.001
    for i in range(count):
        state = dict(base)
        state["id"] = str(uuid.uuid4())
        state["timestamp_created"] = start + i * 0.001
        host = "example.com" if i % 10 == 0 else f"host{i % 97}.test"
        state["request"] = {**base["request"], "host": host, "path": f"/item/{i}".encode()}
        state["response"] = {
            **base["response"], "status_code": 500 if i % 20 == 0 else 200, "content": payload,
        }
        yield state, i % 20 == 0


def write_flows(path: Path, count: int, body: int) -> int:
    """The flow file; returns how many flows match FILTER."""
    from proxycore.io import tnetstring

    matching = 0
    with path.open("wb") as f:
        for state, matches in generate_states(count, body):
            matching += matches
            f.write(tnetstring.dumps(state))
    return matching


def build_store(path: str, count: int, body: int) -> int:
    """A SQLite store of N flows written through the store API (no proxy); matches of FILTER."""
    from proxycore.store.base import flow_from_state, record_of
    from proxycore.store.sqlite import SQLiteStore

    store = SQLiteStore(path, "bench:0")
    matching = 0
    batch = []
    for state, matches in generate_states(count, body):
        matching += matches
        batch.append(record_of(flow_from_state(state), "bench:0"))
        if len(batch) >= 2000:
            store.put_records(batch)
            batch = []
    store.put_records(batch)
    store.close()
    return matching


def get(port: int, target: str) -> tuple[float, float, bytes]:
    """(seconds to the first byte, seconds to the end, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        start = time.perf_counter()
        conn.request("GET", target, headers={"Authorization": f"Bearer {PASSWORD}"})
        response = conn.getresponse()
        first = response.read(1)
        ttfb = time.perf_counter() - start
        body = first + response.read()
        total = time.perf_counter() - start
        assert response.status == 200, (response.status, body[:200])
        return ttfb, total, body
    finally:
        conn.close()


def stored(port: int, count: int) -> bool:
    _, _, body = get(port, f"/flows?offset={count - 1}&limit=1")
    return len(json.loads(body)) == 1


def view_length(port: int) -> int:
    """``view.properties.length`` through the command API (both tools have it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(
            "POST", "/commands/view.properties.length", body=json.dumps({"arguments": []}),
            headers={
                "Authorization": f"Bearer {PASSWORD}", "Content-Type": "application/json",
                "Cookie": "_mitmproxy_xsrf=x", "X-XSRFToken": "x",
            },
        )
        response = conn.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return int(json.loads(body)["value"])
    finally:
        conn.close()


def run_mitmweb(mitmweb: str, flowfile: Path, count: int, tmp: str) -> None:
    web_port = free_port()
    cmd = [
        mitmweb, "--no-web-open-browser", "--listen-host", "127.0.0.1", "-p", str(free_port()),
        "--web-port", str(web_port), "--set", f"confdir={tmp}/mconf",
        "--set", f"web_password={PASSWORD}", "-r", str(flowfile),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "merr", "wb"))
    try:
        t0 = time.perf_counter()
        while True:
            time.sleep(2)
            assert proc.poll() is None, (Path(tmp) / "merr").read_text()
            try:
                if view_length(web_port) >= count:
                    break
            except (OSError, AssertionError):
                continue
        print(f"mitmweb loaded {count} flows in {time.perf_counter() - t0:.0f} s", flush=True)
        mem = proc_status(proc.pid)
        print(f"mitmweb peak RSS {mem['VmHWM']} MiB, RSS now {mem['VmRSS']} MiB", flush=True)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(120)


def proc_status(pid: int) -> dict[str, int]:
    values = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            values[key] = int(rest.split()[0]) // 1024  # MiB
    return values


def search(port: int, expr: str = FILTER) -> tuple[float, int]:
    from websockets.sync.client import connect

    uri = f"ws://127.0.0.1:{port}/updates?token={PASSWORD}"
    with connect(uri, origin=f"http://127.0.0.1:{port}", max_size=None, open_timeout=30) as ws:
        start = time.perf_counter()
        ws.send(json.dumps({"type": "flows/updateFilter", "payload": {"name": "search", "expr": expr}}))
        while True:
            message = json.loads(ws.recv(timeout=600))
            if message["type"] == "flows/filterUpdate":
                elapsed = time.perf_counter() - start
                payload = message["payload"]
                if "error" in payload:
                    print(f"search refused: {payload['error']}", flush=True)
                return elapsed, len(payload["matching_flow_ids"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=1_000_000)
    parser.add_argument("--body", type=int, default=0, help="response body bytes per flow")
    parser.add_argument("--store", default="", help="store option ('' = proxyweb's per-run SQLite)")
    parser.add_argument("--mitmweb", help="measure this mitmweb instead of proxyweb")
    parser.add_argument(
        "--prebuilt", metavar="PATH.db",
        help="fill this SQLite store through the store API (if it does not exist yet) and "
        "start proxyweb on it (store=PATH.db, a named session) instead of loading a flow file",
    )
    parser.add_argument(
        "--filter", action="append", metavar="EXPR",
        help=f"filter to measure (repeatable; default {FILTER!r}, whose matches are checked)",
    )
    args = parser.parse_args()
    filters = args.filter or [FILTER]

    with tempfile.TemporaryDirectory(prefix="store-bench-") as tmp:
        flowfile = Path(tmp) / "flows.mitm"
        t0 = time.perf_counter()
        load = ["-r", str(flowfile)]
        if args.prebuilt:
            matching = sum(i % 20 == 0 for i in range(args.flows))
            if not os.path.exists(args.prebuilt):
                matching = build_store(args.prebuilt, args.flows, args.body)
                print(f"built {args.prebuilt} with {args.flows} flows in "
                      f"{time.perf_counter() - t0:.0f} s", flush=True)
            args.store, load = args.prebuilt, []
        else:
            matching = write_flows(flowfile, args.flows, args.body)
            print(f"wrote {args.flows} flows ({flowfile.stat().st_size / 2**20:.0f} MiB) in "
                  f"{time.perf_counter() - t0:.0f} s; {matching} match {FILTER!r}", flush=True)
        if args.mitmweb:
            run_mitmweb(args.mitmweb, flowfile, args.flows, tmp)
            return 0
        web_port = free_port()
        cmd = [
            sys.executable, "-m", "proxycore.tools.web", "--no-web-open-browser",
            "--listen-host", "127.0.0.1", "-p", str(free_port()), "--web-port", str(web_port),
            "--set", f"confdir={tmp}/conf", "--set", f"web_password={PASSWORD}",
            "--set", "web_fetch_frontend=false", "--set", f"store={args.store}", *load,
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=open(Path(tmp) / "err", "wb"))
        try:
            t0 = time.perf_counter()
            while True:
                time.sleep(2)
                assert proc.poll() is None, (Path(tmp) / "err").read_text()
                try:
                    if stored(web_port, args.flows):
                        break
                except (OSError, AssertionError):
                    continue
            print(f"loaded into the store in {time.perf_counter() - t0:.0f} s", flush=True)
            for name, target in [
                ("GET /flows?limit=100", "/flows?limit=100"),
                ("GET /flows?limit=100&offset=500000", f"/flows?limit=100&offset={args.flows // 2}"),
                *((f"GET /flows?filter={expr}&limit=100", "/flows?limit=100&filter=" + urllib.parse.quote(expr))
                  for expr in filters),
            ]:
                times = [get(web_port, target)[:2] for _ in range(5)]
                ttfb = sorted(t[0] for t in times)
                total = sorted(t[1] for t in times)
                print(f"{name}: first byte median {ttfb[2] * 1000:.1f} ms (max {ttfb[-1] * 1000:.1f}), "
                      f"complete median {total[2] * 1000:.1f} ms", flush=True)
            for expr in filters:
                elapsed, found = search(web_port, expr)
                print(f"search {expr!r} over {args.flows} flows: {found} ids in {elapsed:.2f} s", flush=True)
                if expr == FILTER and found != matching:
                    print(f"!! search found {found}, expected {matching}", flush=True)
            mem = proc_status(proc.pid)
            print(f"proxyweb peak RSS {mem['VmHWM']} MiB, RSS now {mem['VmRSS']} MiB", flush=True)
        except Exception:
            # the temporary directory goes with the run: show why proxyweb failed, if it said
            print(f"proxyweb exit status {proc.poll()}; the end of its stderr:", flush=True)
            print((Path(tmp) / "err").read_text(errors="replace")[-4000:], flush=True)
            raise
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(120)
    return 0


if __name__ == "__main__":
    sys.exit(main())
