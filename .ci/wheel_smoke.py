"""Smoke test of an installed (non-editable) proxycore wheel, run by .ci/wheel-check.

Run with the Python of the venv the wheel went into, from a directory outside the checkout:

    python wheel_smoke.py WHEEL

Checks: every module the tree has is in the wheel and imports; ``proxydump --version``; a
request through proxydump to an origin on loopback (with curl); ``proxyweb`` serving
mitmproxy's front end at ``/`` (fetched on first use from the package index pip uses).
Standard library only, so it needs nothing besides the wheel and its dependencies.
"""

from __future__ import annotations

import importlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import zipfile
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CHECKOUT = Path(__file__).resolve().parent.parent
PACKAGE_DIRS = {"proxycore": "proxycore", "api": "proxycore/api", "addons": "proxycore/addons"}
BIN = Path(sys.executable).parent


def say(message: str) -> None:
    print(f"wheel_smoke: {message}", flush=True)


def modules_in(names: list[str]) -> set[str]:
    return {n.removesuffix(".py").removesuffix("/__init__").replace("/", ".") for n in names if n.endswith(".py")}


def check_modules(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as z:
        in_wheel = modules_in(z.namelist())
    in_tree = set()
    for directory, installed in PACKAGE_DIRS.items():
        for path in (CHECKOUT / directory).rglob("*.py"):
            in_tree.add(f"{installed}/{path.relative_to(CHECKOUT / directory).as_posix()}")
    missing = modules_in(sorted(in_tree)) - in_wheel
    assert not missing, f"modules missing from the wheel: {sorted(missing)}"
    for name in sorted(in_wheel):
        module = importlib.import_module(name)
        assert CHECKOUT not in Path(module.__file__ or "").parents, f"{name} came from the checkout"
    say(f"{len(in_wheel)} modules in the wheel, all import from the installed package")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, what: str, proc: subprocess.Popen, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None or time.monotonic() > deadline:
            raise AssertionError(f"{what}: not ready (exit status {proc.poll()})")
        time.sleep(0.1)


def port_open(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
        return True
    except OSError:
        return False


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


class Origin(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        body = b"hello from the origin\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


def check_proxied_request(tmp: Path) -> None:
    origin = ThreadingHTTPServer(("127.0.0.1", 0), Origin)
    threading.Thread(target=origin.serve_forever, daemon=True).start()
    port = free_port()
    proc = subprocess.Popen(
        [str(BIN / "proxydump"), "--listen-host", "127.0.0.1", "-p", str(port), "--set", f"confdir={tmp / 'conf'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        wait_for(lambda: port_open(port), "proxydump", proc)
        url = f"http://127.0.0.1:{origin.server_address[1]}/smoke"
        r = subprocess.run(["curl", "-sS", "--max-time", "20", "-x", f"http://127.0.0.1:{port}", url],
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and r.stdout == "hello from the origin\n", (r.returncode, r.stdout, r.stderr)
    finally:
        stop(proc)
        origin.shutdown()
    output = proc.stdout.read() if proc.stdout else ""
    assert "GET http://127.0.0.1" in output and "/smoke" in output and "Traceback" not in output, output
    say("a request through proxydump reached the origin and was logged")


def check_proxyweb(tmp: Path) -> None:
    web_port = free_port()
    log = tmp / "proxyweb.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [str(BIN / "proxyweb"), "--no-web-open-browser", "--listen-host", "127.0.0.1", "-p", str(free_port()),
             "--web-port", str(web_port), "--set", f"confdir={tmp / 'conf'}"],
            stdout=out, stderr=subprocess.STDOUT,
        )
    try:
        wait_for(lambda: "Web server listening at" in log.read_text(), "proxyweb", proc, timeout=180)
        url = re.search(r"Web server listening at (\S+)", log.read_text()).group(1)
        with urllib.request.urlopen(url, timeout=20) as response:
            page = response.read().decode()
    finally:
        stop(proc)
    text = log.read_text()
    assert '<div id="mitmproxy">' in page, f"/ is not mitmproxy's front end:\n{page[:500]}\n{text}"
    assert "Fetching the web front end once" in text and "Traceback" not in text, text
    say("proxyweb fetched mitmproxy's front end on first use and serves it at /")


def main() -> None:
    wheel = Path(sys.argv[1]).resolve()
    assert Path.cwd() != CHECKOUT and CHECKOUT not in Path.cwd().parents, "run me from outside the checkout"
    check_modules(wheel)
    version = subprocess.run([str(BIN / "proxydump"), "--version"], capture_output=True, text=True, timeout=30)
    assert version.returncode == 0 and version.stdout.startswith("proxycore: "), version
    say(version.stdout.splitlines()[0])
    tmp = Path(tempfile.mkdtemp(prefix="wheel-smoke-"))
    try:
        check_proxied_request(tmp)
        check_proxyweb(tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say("all passed")


if __name__ == "__main__":
    os.environ.pop("PYTHONPATH", None)
    main()
