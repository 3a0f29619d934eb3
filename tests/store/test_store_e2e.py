"""End to end: flow stores behind real proxy traffic (curl, urllib), proxyweb and proxydump."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sqlite3
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from proxycore.store.sqlite import SQLiteStore
from proxycore.test import tflow
from tests.processes import Proxy, ProxyWeb, curl
from tests.webapi import request, running, ws_connect, ws_until

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


def _listing(port: int, query: str = "") -> list[dict[str, Any]]:
    r = request(port, "GET", "/flows" + query)
    assert r.status == 200, r
    return r.json()


def _body(port: int, flow_id: str, part: str) -> bytes:
    r = request(port, "GET", f"/flows/{flow_id}/{part}/content.data")
    assert r.status == 200, r
    return r.body


def _wait_complete(server: Any, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        flows = _listing(server.port)
        if len(flows) >= count and all("response" in f for f in flows):
            return flows
        assert time.monotonic() < deadline, flows
        time.sleep(0.05)


def test_restart_with_the_same_store_path_brings_every_flow_back(tmp_path: Path, upstream: int) -> None:
    path = str(tmp_path / "session.db")
    sizes = [0, 10, 70_000, 300_000]
    with running(tmp_path, store=path) as server:
        for i, size in enumerate(sizes):
            body = bytes((i * 7 + n) % 251 for n in range(size))
            (tmp_path / f"b{i}").write_bytes(body)
            r = curl(server, "--data-binary", f"@{tmp_path / f'b{i}'}", f"http://127.0.0.1:{upstream}/post?i={i}")
            assert r.returncode == 0, r.stderr
        before = _wait_complete(server, len(sizes))
        bodies = {f["id"]: (_body(server.port, f["id"], "request"), _body(server.port, f["id"], "response"))
                  for f in before}
    assert os.path.exists(path)  # a named store stays
    with running(tmp_path, store=path) as server:
        after = _listing(server.port)
        assert [f["id"] for f in after] == [f["id"] for f in before]
        for a, b in zip(after, before, strict=True):
            assert a == b, [(k, a[k].get(j), b[k].get(j)) for k in a if a[k] != b[k] for j in a[k] if a[k][j] != b[k].get(j)]
        for flow in after:
            request_body, response_body = bodies[flow["id"]]
            assert _body(server.port, flow["id"], "request") == request_body
            assert _body(server.port, flow["id"], "response") == response_body
        assert sorted(len(b[0]) for b in bodies.values()) == sizes


def test_per_run_store_is_removed_at_exit_unless_kept(tmp_path: Path, upstream: int) -> None:
    conf = tmp_path / "conf"
    with running(tmp_path) as server:
        assert curl(server, f"http://127.0.0.1:{upstream}/get").returncode == 0
        _wait_complete(server, 1)
        assert len(list(conf.glob("flows-*.db"))) == 1
        stats = request(server.port, "POST", "/commands/store.stats", json.dumps({"arguments": []}),
                        {"Content-Type": "application/json"}).json()
        assert stats["value"].startswith("sqlite store ") and "1 flows" in stats["value"]
    assert list(conf.glob("flows-*")) == []
    with running(tmp_path, store_keep=True) as server:
        server.add(tflow.tflow(resp=True))
    (kept,) = conf.glob("flows-*.db")
    store = SQLiteStore(str(kept))
    assert store.count() == 1
    store.close()


def test_flows_paging_and_filter_extension(tmp_path: Path) -> None:
    with running(tmp_path) as server:
        flows = []
        for i in range(30):
            f = tflow.tflow(resp=True)
            f.timestamp_created = 1000 + i
            f.request.host = "example.com" if i % 3 == 0 else "other.org"
            f.response.status_code = 500 if i % 2 == 0 else 200
            flows.append(f)
        server.add(*flows)
        everything = _listing(server.port)
        assert [f["id"] for f in everything] == [f.id for f in flows]
        page = _listing(server.port, "?offset=5&limit=10")
        assert [f["id"] for f in page] == [f.id for f in flows[5:15]]
        assert page == everything[5:15]
        matched = _listing(server.port, "?filter=~d%20example.com%20%26%20~c%20500")
        assert [f["id"] for f in matched] == [f.id for i, f in enumerate(flows) if i % 6 == 0]
        assert _listing(server.port, "?limit=0") == []
        assert request(server.port, "GET", "/flows?limit=-1").status == 400
        assert request(server.port, "GET", "/flows?filter=~c%20(").status == 400


def test_retention_removes_oldest_unmarked_and_tells_the_ui(tmp_path: Path) -> None:
    with running(tmp_path, store_max_flows=5) as server:
        flows = [tflow.tflow(resp=True) for _ in range(8)]
        for i, f in enumerate(flows):
            f.timestamp_created = 1000 + i
        flows[0].marked = ":default:"
        with ws_connect(server.port) as ws:
            server.add(*flows)
            added = time.monotonic()
            removed = set()
            while len(removed) < 3:
                message, _ = ws_until(ws, "flows/remove")
                removed.add(message["payload"])
            took = time.monotonic() - added
        assert removed == {f.id for f in flows[1:4]}
        assert took < 2.0, took  # written within 0.2 s, retention checked within the second
        assert [f["id"] for f in _listing(server.port)] == [flows[0].id] + [f.id for f in flows[4:]]


def test_export_and_import_commands(tmp_path: Path, upstream: int) -> None:
    def call(port: int, name: str, *args: str) -> Any:
        r = request(port, "POST", f"/commands/{name}", json.dumps({"arguments": list(args)}),
                    {"Content-Type": "application/json"})
        return r.json()

    exported = tmp_path / "out.mitm"
    with running(tmp_path) as server:
        for path in ("/get?a", "/status/500", "/get?b"):
            assert curl(server, f"http://127.0.0.1:{upstream}{path}").returncode == 0
        _wait_complete(server, 3)
        assert call(server.port, "store.export", str(exported), "~c", "500") == {"value": None}
        assert call(server.port, "store.export", str(tmp_path / "all.har")) == {"value": None}
        assert call(server.port, "store.vacuum") == {"value": None}
    har = json.loads((tmp_path / "all.har").read_text())
    assert len(har["log"]["entries"]) == 3
    with running(tmp_path, store=str(tmp_path / "other.db")) as server:
        assert call(server.port, "store.import", str(exported)) == {"value": None}
        (flow,) = _listing(server.port)
        assert flow["response"]["status_code"] == 500


def test_proxydump_writes_flows_to_a_store_when_asked(tmp_path: Path, upstream: int) -> None:
    path = tmp_path / "dump.db"
    proxy = Proxy(["-q", "--set", f"store={path}"], tmp_path)
    try:
        for i in range(3):
            assert curl(proxy, f"http://127.0.0.1:{upstream}/get?d={i}").returncode == 0
    finally:
        assert proxy.stop() == 0
    store = SQLiteStore(str(path))
    assert sorted(f.request.path for f in store.query()) == [f"/get?d={i}" for i in range(3)]
    assert all(f.response.status_code == 200 for f in store.query())
    store.close()


def test_sigkill_under_load_loses_at_most_the_last_second(tmp_path: Path, upstream: int) -> None:
    path = tmp_path / "killed.db"
    pw = ProxyWeb(tmp_path, "--set", f"store={path}")
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": pw.url}))
    done: list[tuple[float, str]] = []
    stop = threading.Event()

    def load(worker: int) -> None:
        n = 0
        while not stop.is_set():
            target = f"/get?w={worker}&n={n}"
            try:
                opener.open(f"http://127.0.0.1:{upstream}{target}", timeout=5).read()
            except OSError:
                return
            done.append((time.monotonic(), target))
            n += 1

    threads = [threading.Thread(target=load, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    time.sleep(3)
    killed_at = time.monotonic()
    pw.proc.send_signal(signal.SIGKILL)
    pw.proc.wait(10)
    stop.set()
    for t in threads:
        t.join(10)
    assert len(done) > 50, "too little load to mean anything"
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    conn.close()
    store = SQLiteStore(str(path))
    stored = {f.request.path: f for f in store.query()}
    store.close()
    due = [target for at, target in done if at < killed_at - 1.0]
    missing = [t for t in due if t not in stored or stored[t].response is None]
    assert not missing, f"{len(missing)} of {len(due)} flows older than a second are missing"
