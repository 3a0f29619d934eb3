"""End-to-end: a proxydump script runs save.file, export.file and cut.save on live flows.

curl sends requests through the real proxydump process to a real local server; the
script's commands write files; then the exported curl and HTTPie-free raw request are
checked by replaying the curl command against the server and by reading the flow file.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.io import FlowReader
from tests.processes import Proxy, curl

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed (.ci/run installs it)"),
]

SCRIPT = '''
import os
from proxycore import ctx

OUT = {out!r}


def response(flow):
    n = len(os.listdir(OUT))
    commands = ctx.master.commands
    commands.call("save.file", [flow], "+" + os.path.join(OUT, "all.mitm"))
    commands.call("export.file", "curl", flow, os.path.join(OUT, f"{{flow.request.method}}.curl.sh"))
    commands.call("export.file", "raw_request", flow, os.path.join(OUT, f"{{flow.request.method}}.raw"))
    commands.call("cut.save", [flow], ["request.method", "response.status_code", "request.header[X-Test]"],
                  "+" + os.path.join(OUT, "cuts.csv"))
    flow.response.headers["x-commands-ran"] = str(n)
'''


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Proxy, Path]]:
    tmp = tmp_path_factory.mktemp("commands")
    out = tmp / "out"
    out.mkdir()
    script = tmp / "run_commands.py"
    script.write_text(SCRIPT.format(out=str(out)))
    proxy = Proxy(["-s", str(script)], tmp)
    yield proxy, out
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


def test_commands_on_live_flows(setup: tuple[Proxy, Path], upstream: int) -> None:
    proxy, out = setup
    url = f"http://127.0.0.1:{upstream}/post?x=1"
    r = curl(proxy, "-i", url, "-H", "X-Test: e2e", "--data-binary", "line one\nline\ttwo")
    assert r.returncode == 0, r.stderr
    assert b"x-commands-ran: " in r.stdout.lower()
    r = curl(proxy, f"http://127.0.0.1:{upstream}/get", "-H", "X-Test: second")
    assert r.returncode == 0, r.stderr

    # The exported curl command, run by bash, sends the same request again. (Its printf
    # \xNN escapes are bash's and zsh's; dash's printf keeps them, as with mitmproxy.)
    command = (out / "POST.curl.sh").read_text()
    assert command.startswith("curl -H 'Host: 127.0.0.1:") and "-H 'X-Test: e2e'" in command and "$(printf " in command
    replay = subprocess.run(["bash", "-c", command + " -sS"], capture_output=True, timeout=20)
    assert replay.returncode == 0, replay.stderr
    info = json.loads(replay.stdout)
    assert info["method"] == "POST" and info["path"] == "/post?x=1"
    assert info["body"] == "line one\nline\ttwo" and info["headers"]["x-test"] == "e2e"

    raw = (out / "POST.raw").read_bytes()
    assert raw.startswith(b"POST /post?x=1 HTTP/1.1\r\nHost: 127.0.0.1:") and raw.endswith(b"\r\n\r\nline one\nline\ttwo")

    with open(out / "all.mitm", "rb") as fp:
        saved = list(FlowReader(fp).stream())
    assert [f.request.method for f in saved] == ["POST", "GET"]
    assert saved[0].response.status_code == 200 and saved[1].request.headers["X-Test"] == "second"

    with open(out / "cuts.csv", newline="") as fp:
        assert fp.read() == "POST,200,e2e\r\nGET,200,second\r\n"


def test_proxydump_lists_commands(tmp_path: Path) -> None:
    r = subprocess.run(
        [sys.executable, "-m", "proxycore", "--commands", "--set", f"confdir={tmp_path}"],
        capture_output=True,
        timeout=30,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    assert r.returncode == 0, r.stderr
    text = r.stdout.decode()
    for line in ("export format f -> str", "save.file flows path", "cut flows cuts -> data[][]", "set option *value"):
        assert f"\n{line}\n" in text
    assert r.stderr == b""
