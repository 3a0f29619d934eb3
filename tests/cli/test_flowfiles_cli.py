"""proxydump -r / -w / filter expressions, checked against what mitmdump 12.3.1 prints."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from proxycore.io import FlowReader
from tests.data.dumptext import fold_long_bodies
from tests.e2e_servers import start_http
from tests.processes import Proxy, proxydump

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

DATA = Path(__file__).parents[1] / "data"
CORPUS = DATA / "corpus-all.mitm"


def without_log_times(text: str) -> str:
    return re.sub(r"^\[\d\d:\d\d:\d\d\.\d+\] ", "", text, flags=re.M)


@pytest.mark.parametrize("detail", [1, 2])
def test_read_prints_what_mitmdump_prints(detail):
    r = proxydump("-n", "-r", str(CORPUS), "--flow-detail", str(detail))
    assert r.returncode == 0, r.stderr
    expected = (DATA / f"mitmdump-12.3.1-all-detail{detail}.txt").read_text()
    assert r.stdout == expected


@pytest.mark.parametrize("detail", [3, 4])
def test_bodies_print_what_mitmdump_prints(detail):
    """Bodies through the content views: JSON, forms, XML, a 1 MiB hex dump (compared by
    hash), WebSocket and TCP messages.  Level 3 cuts bodies after 512 lines."""
    r = proxydump("-n", "-r", str(CORPUS), "--flow-detail", str(detail))
    assert r.returncode == 0, r.stderr
    expected = (DATA / f"mitmdump-12.3.1-all-detail{detail}.txt").read_text()
    assert fold_long_bodies(r.stdout) == expected


def test_flow_detail_3_honours_content_view_lines_cutoff_and_default_view():
    r = proxydump("-n", "-r", str(CORPUS), "--flow-detail", "3", "--set", "content_view_lines_cutoff=2",
                  "--set", "dumper_default_contentview=hex stream", "~u /binary")
    assert r.returncode == 0, r.stderr
    body = r.stdout.split("\n\n")[2]
    assert body.startswith("    02bd94bd00974bf10256f8c6") and "\n" not in body.strip()
    assert r.stdout.count("    (cut off)") == 0  # one long line is not cut
    r = proxydump("-n", "-r", str(CORPUS), "--flow-detail", "3", "--set", "content_view_lines_cutoff=2", "~u /binary")
    assert "    000010:   " in r.stdout and "    000020:   " not in r.stdout and "    (cut off)" in r.stdout


def test_filter_expression_limits_output_like_mitmdump():
    r = proxydump("-n", "-r", str(CORPUS), "~m POST")
    assert r.returncode == 0, r.stderr
    expected = (DATA / "mitmdump-12.3.1-all-post-filter.txt").read_text()
    # mitmdump logs to stdout; proxydump keeps the log on stderr.
    assert without_log_times(r.stderr) + r.stdout == expected


def test_read_from_stdin():
    r = proxydump("-n", "-r", "-", stdin=CORPUS.read_bytes())
    assert r.returncode == 0, r.stderr
    assert r.stdout == (DATA / "mitmdump-12.3.1-all-detail1.txt").read_text()


def test_read_and_write_with_a_filter_selects_flows(tmp_path):
    out = tmp_path / "tcp.mitm"
    r = proxydump("-n", "-q", "-r", str(CORPUS), "-w", str(out), "~tcp")
    assert r.returncode == 0, r.stderr
    with out.open("rb") as f:
        flows = list(FlowReader(f).stream())
    assert flows and all(f.type == "tcp" for f in flows)


def test_append_with_plus(tmp_path):
    out = tmp_path / "twice.mitm"
    for _ in range(2):
        assert proxydump("-n", "-q", "-r", str(CORPUS), "-w", f"+{out}", "~websocket").returncode == 0
    with out.open("rb") as f:
        flows = list(FlowReader(f).stream())
    with CORPUS.open("rb") as f:
        websockets = [fl for fl in FlowReader(f).stream() if getattr(fl, "websocket", None) is not None]
    assert len(flows) == 2 * len(websockets) > 0


def test_bad_inputs_exit_non_zero_with_one_line(tmp_path):
    missing = proxydump("-n", "-r", str(tmp_path / "nope.mitm"))
    assert missing.returncode == 1 and "Cannot read flow file" in missing.stderr
    bad_filter = proxydump("-n", "-r", str(CORPUS), "~nope")
    assert bad_filter.returncode == 1 and "unknown operator" in bad_filter.stderr
    truncated = tmp_path / "cut.mitm"
    truncated.write_bytes(CORPUS.read_bytes()[:5000])
    cut = proxydump("-n", "-r", str(truncated))
    assert cut.returncode == 1
    assert "byte offset" in cut.stderr and cut.stdout.count("<<") == 2  # the flows before the cut
    for r in (missing, bad_filter, cut):
        assert "Traceback" not in r.stderr


@pytest.mark.e2e
def test_live_flows_written_with_w_read_back(tmp_path):
    server, port = start_http()
    out = tmp_path / "live.mitm"
    p = Proxy(["-w", str(out)], tmp_path)
    try:
        for path in ("/get?one=1", "/status/404"):
            subprocess.run(
                ["curl", "-sS", "--max-time", "10", "-x", p.url, f"http://127.0.0.1:{port}{path}"],
                capture_output=True, timeout=20, check=True,
            )
        p.wait_output("404")
    finally:
        assert p.stop() == 0
        server.shutdown()
    with out.open("rb") as f:
        flows = list(FlowReader(f).stream())
    assert [f.request.path for f in flows] == ["/get?one=1", "/status/404"]
    assert json.loads(flows[0].response.content)["path"] == "/get?one=1"
    assert flows[1].response.status_code == 404
    r = proxydump("-n", "-r", str(out))
    assert r.stdout.count("<<") == 2


def test_output_to_a_closed_pipe_ends_quietly():
    """`proxydump -r file | head -1`: no traceback per remaining flow, exit status 0."""
    proc = subprocess.Popen(
        # Level 4 prints megabytes (a 1 MiB hex dump): far more than a pipe buffer holds.
        [sys.executable, "-m", "proxycore", "-n", "--flow-detail", "4", "-r", str(CORPUS)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()  # the reader goes away after one line
    err = proc.stderr.read()
    assert proc.wait(timeout=30) == 0
    assert b"GET http://127.0.0.1:28001/get" in first
    assert err == b"", err.decode()
