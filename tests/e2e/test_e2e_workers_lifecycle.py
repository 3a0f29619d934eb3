"""``--workers`` over a proxy's life: the count users may give, start-up, a worker killed while
it holds an intercepted flow, and SIGINT/SIGTERM to the primary under load (the exit status as
without workers, no worker left behind, every answered flow in the ``-w`` file once)."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest

from proxycore.workers.pool import WORKER_GONE
from tests.e2e.test_e2e_workers import (  # noqa: F401
    Load,
    get,
    get_in_background,
    saved_paths,
    upstream,
    wait_for,
    worker_pids,
)
from tests.processes import Proxy, ProxyWeb, assert_clean_failure, proxydump, seed_ca
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
        client, errors = get_in_background(pw.port, upstream, "/get?held=1", 20)
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


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "workers-2"])
def test_signal_to_the_primary_under_load(tmp_path, upstream, sig, workers):  # noqa: F811
    out = tmp_path / "flows.mitm"
    proxy = Proxy(["-q", *workers, "-w", str(out)], tmp_path)
    if workers:
        wait_for(lambda: len(worker_pids(proxy)) == 2, what="two workers")
    children = worker_pids(proxy)
    load = Load(proxy.port, upstream, clients=3, timeout=5).start()
    try:
        wait_for(lambda: len(load.answered) >= 30, what="load")
        proxy.proc.send_signal(sig)
        status = proxy.proc.wait(15)
    finally:
        load.stop()
        proxy.stop()
    assert status == 0, proxy.stderr()
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    assert not left, f"workers left running: {left}"
    saved = saved_paths(out)
    assert len(saved) == len(set(saved)), "a flow saved twice"
    assert set(load.answered) <= set(saved), (
        f"{len(set(load.answered) - set(saved))} answered flows not saved"
    )
    with socket.socket() as s:  # the port is free again (as a restarted proxy binds it)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", proxy.port))


STOPPER = """\
from mitmproxy import ctx


def response(flow):
    if flow.request.path.endswith("/stop"):
        ctx.master.shutdown()
"""


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "workers-2"])
def test_a_script_shutdown_stops_the_whole_proxy(tmp_path, upstream, workers):  # noqa: F811
    """In a worker too: the worker is not replaced, the primary and the others stop as well."""
    script = tmp_path / "stopper.py"
    script.write_text(STOPPER)
    proxy = Proxy(["-q", *workers, "-s", str(script)], tmp_path)
    try:
        if workers:
            wait_for(lambda: len(worker_pids(proxy)) == 2, what="two workers")
        children = worker_pids(proxy)
        assert get(proxy.port, upstream, "/get/stop")[0] == 200
        assert proxy.proc.wait(10) == 0
    finally:
        proxy.stop()
    assert "Traceback" not in proxy.stderr() and "starting a new one" not in proxy.stderr(), (
        proxy.stderr()
    )
    wait_for(
        lambda: not [pid for pid in children if Path(f"/proc/{pid}").exists()],
        what="the workers gone",
    )


@pytest.mark.parametrize("workers", [[], ["--workers", "2"]], ids=["one-process", "workers-2"])
def test_port_in_use_is_one_clear_error(tmp_path, workers):
    seed_ca(tmp_path / "conf")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        r = proxydump(*workers, "--listen-host", "127.0.0.1", "-p", str(port), "--set", f"confdir={tmp_path / 'conf'}",
                      timeout=30)  # fmt: skip
    assert_clean_failure(r, "failed to listen", str(port))
    assert "Error logged during startup, exiting..." in r.stderr
