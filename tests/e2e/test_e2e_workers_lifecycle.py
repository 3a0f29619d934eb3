"""``--workers`` over a proxy's life: the count users may give, start-up, a worker killed while
it holds an intercepted flow, and SIGINT/SIGTERM to the primary under load (the exit status as
without workers, no worker left behind, every answered flow in the ``-w`` file once)."""

from __future__ import annotations

import os
import signal
import threading
import time

import pytest

from proxycore.workers.pool import WORKER_GONE
from tests.e2e.test_e2e_workers import get, saved_paths, upstream, wait_for, worker_pids  # noqa: F401
from tests.processes import Proxy, ProxyWeb, assert_clean_failure, proxydump
from tests.webapi import TOKEN, request

pytestmark = pytest.mark.e2e

PID_SCRIPT = """\
import os


def requestheaders(flow):
    flow.request.headers["X-Worker-Pid"] = str(os.getpid())
"""


@pytest.mark.parametrize("value", ["0", "-2", "abc", "1.5", ""])
def test_bad_worker_counts_are_one_clear_error(value):
    r = proxydump("-n", "--workers", value, timeout=30)
    assert_clean_failure(r, "workers", "1 or more")


def test_auto_starts_one_worker_per_core_and_serves_soon(tmp_path, upstream):  # noqa: F811
    started = time.monotonic()
    proxy = Proxy(["-q", "--workers", "auto"], tmp_path)
    try:
        assert get(proxy.port, upstream, "/get?first")[0] == 200
        took = time.monotonic() - started
        cores = len(os.sched_getaffinity(0))
        wait_for(lambda: len(worker_pids(proxy)) == (cores if cores > 1 else 0), what="the workers")
        assert took < 10, f"first answer after {took:.1f} s"  # ~0.4 s here; one process ~0.2 s
    finally:
        assert proxy.stop() == 0


def test_worker_killed_while_holding_an_intercepted_flow(tmp_path, upstream):  # noqa: F811
    script = tmp_path / "pid.py"
    script.write_text(PID_SCRIPT)
    out = tmp_path / "flows.mitm"
    pw = ProxyWeb(
        tmp_path,
        "--workers",
        "2",
        "-s",
        str(script),
        "--set",
        f"web_password={TOKEN}",
        "--set",
        "intercept=~u held",
        "-w",
        str(out),
    )
    try:
        errors: list[BaseException] = []

        def fetch() -> None:
            try:
                get(pw.port, upstream, "/get?held=1", 20)
            except OSError as e:
                errors.append(e)

        client = threading.Thread(target=fetch)
        client.start()
        held = wait_for(
            lambda: [f for f in request(pw.web_port, "GET", "/flows").json() if f["intercepted"]],
            what="the intercepted flow",
        )[0]
        owner = int(dict(held["request"]["headers"])["X-Worker-Pid"])
        os.kill(owner, signal.SIGKILL)
        client.join(15)
        assert errors, "the client's connection went with its worker"
        ended = wait_for(
            lambda: [
                f
                for f in request(pw.web_port, "GET", "/flows").json()
                if f["id"] == held["id"] and not f["intercepted"]
            ],
            what="the flow ended",
        )[0]
        assert ended["error"]["msg"] == WORKER_GONE
        wait_for(lambda: len(worker_pids(pw) - {owner}) == 2, what="a new worker")
        assert get(pw.port, upstream, "/get?after=1")[0] == 200
    finally:
        assert pw.stop() == 0
    assert sorted(saved_paths(out)) == ["/get?after=1", "/get?held=1"]
