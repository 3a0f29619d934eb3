"""``--workers 2`` end to end: real proxydump/proxyweb processes, real clients and origin.

A script adds ``X-Worker-Pid`` to every response, which tells which process served it
(and proves that scripts run in the workers).
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from proxycore.io import FlowReader
from tests.e2e_servers import start_http, tcp_echo_server
from tests.processes import Proxy, ProxyWeb, connect_tunnel
from tests.webapi import TOKEN, put_json, request

pytestmark = [
    pytest.mark.e2e,
    pytest.mark.skipif(not hasattr(socket, "SO_REUSEPORT"), reason="needs SO_REUSEPORT"),
    pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/task/PID/children"),
]

PID_SCRIPT = """\
import json
import os


def response(flow):
    flow.response.headers["X-Worker-Pid"] = str(os.getpid())
"""


@pytest.fixture(scope="module")
def upstream() -> Iterator[int]:
    """As tests/conftest.py's; defined here too because tests/speed imports it from this module."""
    server, port = start_http()
    yield port
    server.shutdown()


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "pid.py"
    path.write_text(PID_SCRIPT)
    return str(path)


def get(proxy_port: int, upstream: int, path: str, timeout: float = 10) -> tuple[int, dict[str, str], bytes]:
    """One GET on a new connection: status, headers (lower-case names), body."""
    with socket.create_connection(("127.0.0.1", proxy_port), timeout=timeout) as s:
        s.sendall(f"GET http://127.0.0.1:{upstream}{path} HTTP/1.1\r\nHost: 127.0.0.1:{upstream}\r\n"
                  "Connection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    if b"\r\n\r\n" not in data:
        raise ConnectionError(f"no complete response: {data[:80]!r}")
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = dict((k.lower(), v.strip()) for k, _, v in (line.partition(":") for line in lines[1:]))
    length = int(headers.get("content-length", len(body)))
    if len(body) != length:
        raise ConnectionError(f"short body: {len(body)} of {length}")
    return status, headers, body


def get_in_background(proxy_port: int, upstream: int, path: str, timeout: float) -> tuple[threading.Thread, list[OSError]]:
    """A GET through the proxy on a thread of its own (for a flow the test holds or kills
    meanwhile); the started thread and the list that gets the client's error, if any."""
    errors: list[OSError] = []

    def fetch() -> None:
        try:
            get(proxy_port, upstream, path, timeout)
        except OSError as e:
            errors.append(e)

    client = threading.Thread(target=fetch)
    client.start()
    return client, errors


class Load:
    """GETs through the proxy from ``clients`` threads, each on its own numbered paths, until
    ``stop``: the paths answered 200, those whose connection failed (refused or cut), and
    the other statuses seen."""

    def __init__(self, proxy_port: int, upstream: int, clients: int, timeout: float = 10) -> None:
        self.answered: list[str] = []
        self.failed: list[str] = []
        self.other_statuses: list[int] = []
        self._stop = threading.Event()
        self._args = (proxy_port, upstream, timeout)
        self._threads = [threading.Thread(target=self._run, args=(str(i),)) for i in range(clients)]

    def start(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def _run(self, name: str) -> None:
        proxy_port, upstream, timeout = self._args
        n = 0
        while not self._stop.is_set():
            path = f"/get?c={name}&n={n}"
            n += 1
            try:
                status = get(proxy_port, upstream, path, timeout)[0]
            except OSError:
                self.failed.append(path)
                continue
            if status == 200:
                self.answered.append(path)
            else:
                self.other_statuses.append(status)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(30)


def saved_paths(path: Path) -> list[str]:
    with path.open("rb") as f:
        return [flow.request.path for flow in FlowReader(f).stream()]


def worker_pids(proxy: Proxy) -> set[int]:
    children = Path(f"/proc/{proxy.proc.pid}/task/{proxy.proc.pid}/children")
    return {int(pid) for pid in children.read_text().split()}


def wait_for(predicate, timeout: float = 15, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def test_two_workers_serve_and_every_flow_is_recorded_once(tmp_path, upstream, script):
    out = tmp_path / "flows.mitm"
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", script, "-w", str(out), "--set", f"web_password={TOKEN}")
    sent: list[str] = []
    try:
        pids = set()
        deadline = time.monotonic() + 20
        # The port answers once the first worker listens: go on until both have served.
        while len(sent) < 40 or len(pids) < 2:
            assert time.monotonic() < deadline, f"only {pids} served"
            sent.append(f"/get?n={len(sent)}")
            status, headers, _ = get(pw.port, upstream, sent[-1])
            assert status == 200
            pids.add(int(headers["x-worker-pid"]))
        assert pw.proc.pid not in pids and pids == worker_pids(pw)
        flows = wait_for(lambda: len(listed := request(pw.web_port, "GET", "/flows").json()) >= len(sent) and listed,
                         what="every flow in GET /flows")
        assert sorted(f["request"]["path"] for f in flows) == sorted(sent)
        assert len({f["id"] for f in flows}) == len(sent)
    finally:
        assert pw.stop() == 0
    assert sorted(saved_paths(out)) == sorted(sent)
    assert "Traceback" not in pw.stderr(), pw.stderr()


def test_killed_worker_is_replaced_and_no_finished_flow_lost(tmp_path, upstream, script):
    out = tmp_path / "flows.mitm"
    proxy = Proxy(["-q", "--workers", "2", "-s", script, "-w", str(out)], tmp_path)
    load = Load(proxy.port, upstream, clients=4)
    try:
        wait_for(lambda: len(worker_pids(proxy)) == 2, what="two workers")
        load.start()
        wait_for(lambda: len(load.answered) >= 40, what="load")
        victim = min(worker_pids(proxy))
        os.kill(victim, signal.SIGKILL)
        stderr = wait_for(lambda: re.search(rf"Worker \d \(pid {victim}\) was killed by signal 9", proxy.stderr()),
                          what="the replacement log line")
        assert stderr
        wait_for(lambda: len(worker_pids(proxy) - {victim}) == 2, what="a new worker")
        before = len(load.answered)
        wait_for(lambda: len(load.answered) >= before + 40, what="serving after the kill")
    finally:
        load.stop()
        status = proxy.stop()
        print(f"answered {len(load.answered)}, failed {len(load.failed)}; proxy stderr:\n{proxy.stderr()}")  # shown on failure
        assert status == 0
    assert not load.other_statuses
    saved = saved_paths(out)
    assert len(saved) == len(set(saved)), "a flow recorded twice"
    missing = set(load.answered) - set(saved)
    assert not missing, f"{len(missing)} answered flows not in -w output"
    assert len(load.failed) < 20, load.failed  # connections the dead worker had accepted


def test_option_change_reaches_every_worker(tmp_path, upstream, script):
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", script, "--set", f"web_password={TOKEN}")
    try:
        r = put_json(pw.web_port, "/options", {"modify_headers": ["/~q/X-Added/yes"]})
        assert r.status == 200, r.body
        pids = set()

        def all_have_it() -> bool:
            for i in range(12):
                status, headers, body = get(pw.port, upstream, f"/get?m={i}")
                pids.add(int(headers["x-worker-pid"]))
                if b'"x-added": "yes"' not in body:
                    return False
            return len(pids) == 2

        wait_for(all_have_it, timeout=10, what="the header added by every worker")
    finally:
        assert pw.stop() == 0


def test_intercept_edit_and_resume_through_a_worker(tmp_path, upstream, script):
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", script, "--set", f"web_password={TOKEN}",
                  "--set", "intercept=~q & ~u /get")
    try:
        result: dict[str, object] = {}
        client = threading.Thread(target=lambda: result.update(r=get(pw.port, upstream, "/get?held=1", 30)))
        client.start()
        flow = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json() if f["intercepted"]],
                        what="an intercepted flow")[0]
        assert flow["request"]["path"] == "/get?held=1"
        time.sleep(0.3)
        assert client.is_alive()  # held in its worker
        r = put_json(pw.web_port, f"/flows/{flow['id']}", {"request": {"path": "/get?edited=1"}})
        assert r.status == 200, r.body
        assert request(pw.web_port, "POST", f"/flows/{flow['id']}/resume").status == 200
        client.join(15)
        status, headers, body = result["r"]  # type: ignore[misc]
        assert status == 200 and b"/get?edited=1" in body
        shown = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json()
                                  if f["id"] == flow["id"] and f.get("response")], what="the response")[0]
        assert not shown["intercepted"] and shown["response"]["status_code"] == 200
    finally:
        assert pw.stop() == 0


def test_kill_through_a_worker(tmp_path, upstream, script):
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", script, "--set", f"web_password={TOKEN}",
                  "--set", "intercept=~q")
    try:
        client, errors = get_in_background(pw.port, upstream, "/get?doomed=1", 30)
        flow = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json() if f["intercepted"]],
                        what="an intercepted flow")[0]
        assert request(pw.web_port, "POST", f"/flows/{flow['id']}/kill").status == 200
        client.join(15)
        assert not client.is_alive() and errors, "the client should have lost its connection"
    finally:
        assert pw.stop() == 0



def test_replay_from_the_web_api(tmp_path, upstream, script):
    """A replay started in the primary (web API) runs there and is shown like any flow."""
    pw = ProxyWeb(tmp_path, "--workers", "2", "-s", script, "--set", f"web_password={TOKEN}")
    try:
        assert get(pw.port, upstream, "/get?replay=me")[0] == 200
        flow = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json() if f.get("response")],
                        what="the flow")[0]
        assert request(pw.web_port, "POST", f"/flows/{flow['id']}/replay").status == 200
        replayed = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json()
                                     if f["id"] == flow["id"] and f.get("is_replay") == "request"
                                     and f.get("response")], what="the replayed response")[0]
        assert replayed["response"]["status_code"] == 200
    finally:
        assert pw.stop() == 0
    assert "Traceback" not in pw.stderr(), pw.stderr()


def test_inject_into_a_tcp_flow_of_a_worker(tmp_path):
    """inject.tcp called in the primary (web API) reaches the worker carrying the flow."""
    server = socket.create_server(("127.0.0.1", 0))

    def echo() -> None:
        conn, _ = server.accept()
        with conn:
            while data := conn.recv(65536):
                conn.sendall(data)

    threading.Thread(target=echo, daemon=True).start()
    port = server.getsockname()[1]
    pw = ProxyWeb(tmp_path, "--workers", "2", "--tcp-hosts", "^127\\.0\\.0\\.1:", "--set", f"web_password={TOKEN}")
    try:
        with socket.create_connection(("127.0.0.1", pw.port), timeout=10) as client:
            client.sendall(b"CONNECT 127.0.0.1:%d HTTP/1.1\r\n\r\n" % port)
            head = b""
            while b"\r\n\r\n" not in head:
                head += client.recv(4096)
            assert head.startswith(b"HTTP/1.1 200"), head
            client.sendall(b"ping;")
            assert client.recv(100) == b"ping;"
            flow = wait_for(lambda: [f for f in request(pw.web_port, "GET", "/flows").json() if f["type"] == "tcp"],
                            what="the TCP flow")[0]
            body = json.dumps({"arguments": [f"@{flow['id']}", "true", "welcome;"]})
            r = request(pw.web_port, "POST", "/commands/inject.tcp", body, {"Content-Type": "application/json"})
            assert r.status == 200, r.body
            assert client.recv(100) == b"welcome;"
    finally:
        server.close()
        assert pw.stop() == 0


def test_closed_tcp_flows_are_not_ended_again_when_their_worker_dies(tmp_path):
    """proxydump's output wants tcp_message but not tcp_end: the primary kept every closed TCP
    flow until its worker exited, and then printed each one as ended by "Worker process
    exited." (it now asks for the end hooks too)."""
    with tcp_echo_server() as port:
        proxy = Proxy(["--workers", "2", "--tcp-hosts", "^127\\.0\\.0\\.1:"], tmp_path)
        try:
            for i in range(6):
                with connect_tunnel(proxy, "127.0.0.1", port) as client:
                    client.sendall(b"ping %d;" % i)
                    assert client.recv(100) == b"ping %d;" % i
            wait_for(lambda: proxy.stdout().count("-> tcp ->") >= 6, what="the six sessions printed")
            time.sleep(0.5)  # (their ends reach the primary)
            victims = wait_for(lambda: len(pids := worker_pids(proxy)) == 2 and pids, what="two workers")
            for pid in victims:
                os.kill(pid, signal.SIGKILL)
            wait_for(lambda: proxy.stderr().count("was killed by signal 9") == 2, what="both deaths logged")
            time.sleep(0.5)
        finally:
            proxy.stop()
    assert "Worker process exited." not in proxy.stdout(), proxy.stdout()
