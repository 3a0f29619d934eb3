"""Two proxydump instances and one proxyweb on one PostgreSQL database (a real server)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.processes import Proxy, curl
from tests.webapi import request, running, ws_connect, ws_recv

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]


def test_two_instances_and_a_proxyweb_share_one_database(
    tmp_path: Path, postgres_url: str, upstream: int
) -> None:
    import psycopg

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = Proxy(["-q", "--set", f"store={postgres_url}", "--set", "store_instance=edge-a"], tmp_path / "a")
    b = Proxy(["-q", "--set", f"store={postgres_url}", "--set", "store_instance=edge-b"], tmp_path / "b")
    try:
        with running(tmp_path, store=postgres_url, store_instance="viewer") as web:
            with ws_connect(web.port) as ws:
                sent = []
                for i in range(3):
                    for name, proxy in (("a", a), ("b", b)):
                        path = f"/get?{name}={i}"
                        assert curl(proxy, f"http://127.0.0.1:{upstream}{path}").returncode == 0
                        sent.append(path)
                complete: dict[str, dict[str, Any]] = {}
                deadline = time.monotonic() + 30
                while len(complete) < len(sent):
                    assert time.monotonic() < deadline, f"only {sorted(complete)} arrived"
                    message = ws_recv(ws, timeout=30)
                    if message["type"] in ("flows/add", "flows/update"):
                        flow = message["payload"]["flow"]
                        if "response" in flow:
                            complete[flow["request"]["path"]] = flow
            assert sorted(complete) == sorted(sent)
            listed = request(web.port, "GET", "/flows").json()
            assert [f["request"]["path"] for f in listed] == sent  # in order, both instances
            times = [f["timestamp_created"] for f in listed]
            assert times == sorted(times)
            page = request(web.port, "GET", "/flows?filter=~u%20a%3D&limit=2").json()
            assert [f["request"]["path"] for f in page] == ["/get?a=0", "/get?a=1"]
    finally:
        assert a.stop() == 0 and b.stop() == 0
    with psycopg.connect(postgres_url) as conn:
        rows = conn.execute("SELECT instance, url FROM flows ORDER BY seq").fetchall()
    tags = {url.split("/get?")[1][0]: instance for instance, url in rows}
    assert tags == {"a": "edge-a", "b": "edge-b"}
    assert len(rows) == len(sent)
