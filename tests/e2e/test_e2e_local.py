"""Local capture mode on Linux (``--mode local:NAME``) end to end: mitmproxy-rs's eBPF
redirector sends a program's connections to the proxy, which passes them on to the origin.

Linux local capture needs mitmproxy-rs 0.12, whose Linux wheels are for Python >= 3.12, so
the proxy runs from the venv tests/py312_venv.py makes (this checkout, editable).  The
redirector is started through sudo, needs root, and attaches its eBPF program to the cgroup
v2 root at /sys/fs/cgroup; where a host has cgroup v1 there (a hybrid layout), the proxy is
started in a mount namespace of its own with cgroup2 mounted there (``unshare``), which is
what docs/modes.md tells users to do.  The captured client is a copy of curl under a name
no other process has, so nothing else on the machine is redirected while the test runs.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.proxy.server_rs import _mount_type
from tests.e2e_servers import start_http
from tests.processes import Proxy, ProxyWeb
from tests.py312_venv import proxycore_py312
from tests.real_mitmproxy import assert_mitmproxy_reads_back
from tests.webapi import request

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the Linux redirector"),
]

PASSWORD = "local-e2e"


def _why_not() -> str | None:
    if os.geteuid() != 0:
        return "the eBPF redirector needs root"
    for tool in ("sudo", "curl", "unshare"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (.ci/run installs sudo)"
    return None


def _wrapper() -> tuple[str, ...]:
    """Nothing where cgroup v2 is at /sys/fs/cgroup; else a mount namespace where it is."""
    if _mount_type("/sys/fs/cgroup") == "cgroup2":
        return ()
    return ("unshare", "--mount", "--propagation", "private", "sh", "-c",
            'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "sh")


@pytest.fixture(scope="module")
def py312_python(request: pytest.FixtureRequest) -> str:
    reason = _why_not()
    if reason:
        pytest.skip(reason)
    return str(proxycore_py312(request.config))


@pytest.fixture(scope="module")
def origin() -> Iterator[int]:
    server, port = start_http()
    yield port
    server.shutdown()
    server.server_close()


@pytest.fixture
def client(tmp_path: Path) -> Path:
    """curl under a name of its own (the redirector matches the process name)."""
    path = tmp_path / f"pclocal{os.getpid() % 100_000_000}"
    curl = shutil.which("curl")
    assert curl is not None
    shutil.copy(curl, path)
    return path


def _captured(proxy: Proxy, client: Path, url: str, seen: object) -> bytes:
    """Fetch ``url`` with the client until the proxy has seen it: the redirector's eBPF
    program is attached a moment after the mode reports it started, and until then the
    client reaches the origin directly."""
    deadline = time.monotonic() + 20
    attempt = 0
    while True:
        attempt += 1
        target = f"{url}&try={attempt}"
        r = subprocess.run([str(client), "-sS", "--max-time", "10", target], capture_output=True, timeout=30)
        assert r.returncode == 0, r.stderr
        if seen(target.split("/", 3)[3]):  # type: ignore[operator]
            return r.stdout
        assert time.monotonic() < deadline, proxy.stdout() + proxy.stderr()
        time.sleep(0.2)


def _stop(proxy: Proxy) -> None:
    assert proxy.stop() == 0, proxy.stderr()
    assert "Traceback" not in proxy.stdout() + proxy.stderr()


def test_proxydump_captures_a_local_program(tmp_path: Path, py312_python: str, origin: int, client: Path,
                                            mitmproxy_pythons: dict[str, Path]) -> None:
    saved = tmp_path / "local.mitm"
    proxy = Proxy(["--mode", "regular", "--mode", f"local:{client.name}", "-w", str(saved)], tmp_path,
                  python=py312_python, wrapper=_wrapper())
    try:
        body = _captured(proxy, client, f"http://127.0.0.1:{origin}/get?via=local",
                         lambda path: f"GET http://127.0.0.1:{origin}/{path}" in proxy.stdout())
        assert json.loads(body)["path"].startswith("/get?via=local")
        out = proxy.wait_output("<< 200 OK")
        assert "Local redirector started." in out + proxy.stderr()
    finally:
        _stop(proxy)
    flows = assert_mitmproxy_reads_back(mitmproxy_pythons, saved)
    (flow,) = flows  # the attempts the redirector missed went straight to the origin
    assert flow.request.path.startswith("/get?via=local") and flow.response.status_code == 200
    assert flow.client_conn.proxy_mode.type_name == "local"


def test_proxyweb_shows_the_captured_flow_the_mode_and_the_processes(tmp_path: Path, py312_python: str, origin: int,
                                                                      client: Path) -> None:
    proxy = ProxyWeb(tmp_path, "--mode", "regular", "--mode", f"local:{client.name}",
                     "--set", f"web_password={PASSWORD}", python=py312_python, wrapper=_wrapper())

    def api(path: str) -> object:
        r = request(proxy.web_port, "GET", path, headers={"Authorization": f"Bearer {PASSWORD}"}, auth=False)
        assert r.status == 200, r
        return r.json()

    def seen(path: str) -> bool:
        return any(f.get("request", {}).get("path") == f"/{path}" for f in api("/flows"))  # type: ignore[union-attr]

    try:
        state = api("/state")
        assert isinstance(state, dict)
        assert state["localModeUnavailable"] is None
        entry = state["servers"][f"local:{client.name}"]
        assert (entry["type"], entry["is_running"], entry["last_exception"]) == ("local", True, None)
        _captured(proxy, client, f"http://127.0.0.1:{origin}/get?via=web", seen)
        flows = api("/flows")
        assert isinstance(flows, list)
        (flow,) = [f for f in flows if f["type"] == "http"]
        assert flow["response"]["status_code"] == 200
        assert flow["client_conn"]["peername"][0] != "127.0.0.1"  # the redirector's address, not curl's own
        # The Capture tab's program list: mitmproxy-rs 0.12 lists this machine's programs.
        processes = api("/processes")
        assert isinstance(processes, list)
        executables = {p["executable"] for p in processes}
        assert os.path.realpath(py312_python) in executables, sorted(executables)
        assert set(processes[0]) == {"is_visible", "executable", "is_system", "display_name"}
    finally:
        _stop(proxy)


def test_without_cgroup_v2_at_its_place_the_mode_fails_saying_why(tmp_path: Path, py312_python: str) -> None:
    python = py312_python
    if _mount_type("/sys/fs/cgroup") == "cgroup2":
        pytest.skip("this host has cgroup v2 at /sys/fs/cgroup: local capture works without help")
    r = subprocess.run([python, "-m", "proxycore", "--listen-host", "127.0.0.1", "-p", "0",
                        "--set", f"confdir={tmp_path / 'conf'}", "--mode", "local:nothing"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 1
    assert "Local capture on Linux needs the cgroup v2 hierarchy mounted at /sys/fs/cgroup" in r.stdout + r.stderr
    assert "Traceback" not in r.stdout + r.stderr
