"""Scripts as users write them, under ``--workers 2`` and without: the same answers and output.

Each test runs twice, in one process and with two workers, and checks what a user sees:
a script's own option given with ``--set``, ``from mitmproxy import ...``, request and
response edits, ``ctx.options``, log lines (once each on the terminal) and per-process state.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest

from tests.e2e.test_e2e_workers import get, upstream, wait_for, worker_pids  # noqa: F401  (a fixture)
from tests.processes import Proxy

pytestmark = pytest.mark.e2e

SCRIPT = textwrap.dedent(
    """
    import logging
    import os

    from mitmproxy import ctx, http

    seen = 0  # per process: each worker counts its own flows


    def load(loader):
        loader.add_option("greeting", str, "default", "what the X-Greeting header says")


    def request(flow: http.HTTPFlow) -> None:
        flow.request.headers["X-Greeting"] = ctx.options.greeting
        flow.request.path = flow.request.path.replace("/old", "/new")


    def response(flow: http.HTTPFlow) -> None:
        global seen
        seen += 1
        flow.response.headers["X-Seen"] = str(seen)
        flow.response.headers["X-Pid"] = str(os.getpid())
        flow.response.headers["X-Listen"] = str(ctx.options.listen_port)
        logging.info("LOGGED %s", flow.request.path)
        ctx.log.warn("CTXLOG %s" % flow.request.path)
    """
)

MODES = [pytest.param([], id="one-process"), pytest.param(["--workers", "2"], id="workers-2")]


@pytest.fixture(params=MODES)
def proxy(request, tmp_path: Path):
    path = tmp_path / "greet.py"
    path.write_text(SCRIPT)
    p = Proxy([*request.param, "-s", str(path), "--set", "greeting=hello"], tmp_path)
    yield p
    assert p.stop() == 0
    assert "Traceback" not in p.stderr(), p.stderr()


def test_script_option_edits_and_ctx_options(proxy, upstream):  # noqa: F811
    for i in range(6):
        status, headers, body = get(proxy.port, upstream, f"/old?n={i}")
        assert status == 200
        seen = json.loads(body)
        assert seen["path"] == f"/new?n={i}"  # the request edit
        assert seen["headers"]["x-greeting"] == "hello"  # --set reached the script's option
        assert headers["x-listen"] == str(proxy.port)


def test_script_log_lines_reach_the_terminal_once(proxy, upstream):  # noqa: F811
    paths = [f"/log?n={i}" for i in range(6)]
    for path in paths:
        assert get(proxy.port, upstream, path)[0] == 200
    for path in paths:
        proxy.wait_output(path)  # the flow was shown: its log lines came before
    err = proxy.stderr()
    for path in paths:
        assert err.count(f"LOGGED {path}\n") == 1, err
        assert err.count(f"CTXLOG {path}\n") == 1, err


def test_module_state_is_per_process(proxy, upstream):  # noqa: F811
    """``seen`` counts 1, 2, 3 ... in each process that serves: never shared, never lost."""
    by_pid: dict[int, list[int]] = {}
    for i in range(10):
        _, headers, _ = get(proxy.port, upstream, f"/state?n={i}")
        by_pid.setdefault(int(headers["x-pid"]), []).append(int(headers["x-seen"]))
    assert proxy.proc.pid not in by_pid or len(by_pid) == 1
    for counts in by_pid.values():
        assert counts == list(range(1, len(counts) + 1)), by_pid
    lines = re.findall(r"LOGGED /state", proxy.stderr())
    assert len(lines) == 10


COLLECTOR = textwrap.dedent(
    """
    import json
    import os

    paths = []


    def response(flow):
        paths.append(flow.request.path)


    def done():
        with open(os.environ["COLLECT_TO"], "a") as f:
            f.write(json.dumps({"pid": os.getpid(), "paths": paths}) + "\\n")
    """
)


def test_done_runs_in_every_process_with_its_own_flows(tmp_path, upstream):  # noqa: F811
    """The pattern "collect in a hook, write at done" gets one write per process under
    --workers: the workers' (each with the flows it served) first, the primary's (no flow
    hooks run there) last. docs/architecture.md tells users to write per process or use -w."""
    script = tmp_path / "collect.py"
    script.write_text(COLLECTOR)
    out = tmp_path / "collected.jsonl"
    proxy = Proxy(
        ["-q", "--workers", "2", "-s", str(script)], tmp_path, env={"COLLECT_TO": str(out)}
    )
    sent = [f"/get?c={i}" for i in range(8)]
    try:
        wait_for(lambda: len(worker_pids(proxy)) == 2, what="two workers")
        for path in sent:
            assert get(proxy.port, upstream, path)[0] == 200
    finally:
        assert proxy.stop() == 0
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    # (a worker still starting when the proxy stops may write nothing: it served nothing)
    assert 2 <= len(lines) <= 3 and lines[-1] == {"pid": proxy.proc.pid, "paths": []}, lines
    assert sorted(p for line in lines for p in line["paths"]) == sorted(sent)
