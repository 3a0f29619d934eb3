"""Server and client replay, differential: the same scenario through mitmdump 12.3.1 and
proxydump, compared by what the client gets, the flows written with -w and the terminal.

Needs the reference mitmdump of bench/setup.sh --venvs (skipped without it, as in CI); the
proxycore-only checks of the same behaviour are in test_e2e_replay.py,
tests/addons/test_serverplayback.py and tests/addons/test_termlog.py.
"""

from __future__ import annotations

import http.client
import json
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.io import FlowReader
from tests.e2e_servers import free_port, start_http

MITMDUMP = Path("/tmp/proxybench/venv-mitm/bin/mitmdump")
PROGRAMS = {"mitmdump": [str(MITMDUMP)], "proxydump": [sys.executable, "-m", "proxycore"]}

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not MITMDUMP.exists(), reason="reference mitmdump not installed (bench/setup.sh --venvs)"),
]

#: /a and /b are recorded; /x never is.
RECORDED = ["/a", "/b"]
REPLAYED = ["/a", "/x", "/b", "/y"]


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()


def start(program: str, tmp: Path, *args: str) -> tuple[subprocess.Popen[bytes], int, Path]:
    port = free_port()
    log = tmp / f"{program}-{port}.log"
    cmd = [*PROGRAMS[program], "--listen-host", "127.0.0.1", "-p", str(port), "--set", f"confdir={tmp / program}", *args]
    proc = subprocess.Popen(cmd, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert proc.poll() is None, log.read_text()
        try:
            http.client.HTTPConnection("127.0.0.1", port, timeout=0.2).connect()
            return proc, port, log
        except OSError:
            time.sleep(0.05)
    raise AssertionError(f"{program} did not listen:\n{log.read_text()}")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def get_all(port: int, origin: int, paths: list[str], keep_alive: bool) -> list[tuple[str, object]]:
    """GET each path through the proxy: its status and body, or "closed" when the proxy hung up."""
    seen: list[tuple[str, object]] = []
    conn: http.client.HTTPConnection | None = None
    for path in paths:
        if conn is None or not keep_alive:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request("GET", f"http://127.0.0.1:{origin}{path}")
            response = conn.getresponse()
            seen.append((path, (response.status, echoed(response.read()))))
        except (http.client.HTTPException, ConnectionError):
            seen.append((path, "closed"))
            conn.close()
            conn = None
    if conn is not None:
        conn.close()
    return seen


def echoed(body: bytes) -> str:
    """The path the origin saw (its echo also names ports, which differ between runs)."""
    return json.loads(body)["path"] if body else ""


def written(path: Path) -> list[tuple[object, ...]]:
    with path.open("rb") as f:
        return [
            (
                flow.request.path, flow.response and flow.response.status_code, flow.is_replay,
                flow.error and flow.error.msg, flow.response and echoed(flow.response.content or b""),
            )
            for flow in FlowReader(f).stream()
        ]


def terminal(text: str) -> list[str]:
    """The output without times, ports and connect/disconnect lines (whose order is a race)."""
    lines = []
    for line in text.splitlines():
        line = re.sub(r"^\[\d\d:\d\d:\d\d\.\d{3}\]", "", line)
        line = re.sub(r"127\.0\.0\.1:\d+", "ADDR", line)
        if not re.search(r"client (dis)?connect|proxy listening", line):
            lines.append(line)
    return lines


def record(program: str, tmp: Path, origin: int) -> Path:
    saved = tmp / f"{program}-recorded.flows"
    proc, port, _log = start(program, tmp, "-w", str(saved))
    try:
        get_all(port, origin, RECORDED, keep_alive=True)
    finally:
        stop(proc)
    return saved


def replay(program: str, tmp: Path, origin: int, keep_alive: bool, *options: str) -> tuple[object, ...]:
    recording = record(program, tmp, origin)
    saved = tmp / f"{program}-replayed.flows"
    args = ["-S", str(recording), "--set", "keepserving=true", "-w", str(saved)]
    for option in options:
        args += ["--set", option]
    proc, port, log = start(program, tmp, *args)
    try:
        seen = get_all(port, origin, REPLAYED, keep_alive)
        time.sleep(0.3)  # the last flow's lines
    finally:
        stop(proc)
    return seen, written(saved), terminal(log.read_text())


@pytest.mark.parametrize("strategy", ["eager", "lazy"])
@pytest.mark.parametrize("keep_alive", [True, False], ids=["keep-alive", "new-connections"])
@pytest.mark.parametrize("extra", ["kill", "404", "forward"])
def test_server_replay_matches_mitmdump(tmp_path, origin, strategy, keep_alive, extra):
    options = (f"connection_strategy={strategy}", f"server_replay_extra={extra}")
    mitm = replay("mitmdump", tmp_path, origin, keep_alive, *options)
    ours = replay("proxydump", tmp_path, origin, keep_alive, *options)
    assert ours == mitm
    seen = dict(mitm[0])
    # Recorded answers first; once every one is used, replay stops and the rest is forwarded.
    assert seen["/a"][0] == seen["/b"][0] == seen["/y"][0] == 200  # type: ignore[index]
    assert seen["/x"] == {"kill": "closed", "404": (404, ""), "forward": seen["/x"]}[extra]


def test_server_replay_nopop_stops_both_at_startup(tmp_path, origin):
    for program in PROGRAMS:
        recording = record(program, tmp_path, origin)
        cmd = [*PROGRAMS[program], "-p", str(free_port()), "--set", f"confdir={tmp_path / program}",
               "-S", str(recording), "--set", "server_replay_nopop=true"]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 1, (program, r.stdout, r.stderr)
        assert "logged during startup, exiting" in r.stderr, (program, r.stderr)


def test_client_replay_terminal_matches_mitmdump(tmp_path, origin):
    outputs = []
    for program in PROGRAMS:
        recording = record(program, tmp_path, origin)
        cmd = [*PROGRAMS[program], "-p", str(free_port()), "--set", f"confdir={tmp_path / program}",
               "-C", str(recording)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (program, r.stdout, r.stderr)
        outputs.append(sorted(terminal(r.stdout + r.stderr)))
    assert outputs[0] == outputs[1]
    assert any(line.startswith(" [replay] server connect") for line in outputs[1]), outputs[1]

