"""UDP and DNS flows as real mitmproxy 12.3.1 shows them, on the same traffic (two datagrams
through reverse:udp, an A query through dns mode):

- GET /flows of mitmweb and of proxyweb, field by field (every key and the type of every
  value; the DNS questions and answers and the UDP message counts by value);
- the flow lines mitmdump and proxydump print.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e_servers import free_port, udp_echo_server
from tests.processes import ProxyWeb, seed_ca
from tests.webapi import request

pytestmark = pytest.mark.e2e

PASSWORD = "udp-dns-json"


@pytest.fixture(scope="module")
def udp_echo() -> Iterator[int]:
    with udp_echo_server() as port:
        yield port


def _traffic(udp_port: int, dns_port: int) -> None:
    """Two datagrams to the UDP echo, and an A query for localhost (the hosts file answers)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        for word in (b"one", b"two"):
            s.sendto(word, ("127.0.0.1", udp_port))
            assert s.recvfrom(100)[0] == b"echo: " + word
    query = struct.pack("!HHHHHH", 7, 0x0100, 1, 0, 0, 0) + b"\x09localhost\x00" + struct.pack("!HH", 1, 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(query, ("127.0.0.1", dns_port))
        assert s.recvfrom(512)[0][:2] == b"\x00\x07"


def _flows(web_port: int) -> list[dict[str, Any]]:
    """GET /flows once it holds the DNS flow and the UDP flow with all four messages."""
    deadline = time.monotonic() + 10
    while True:
        r = request(web_port, "GET", "/flows", headers={"Authorization": f"Bearer {PASSWORD}"}, auth=False)
        assert r.status == 200, r
        flows: list[dict[str, Any]] = r.json()
        udp = [f for f in flows if f["type"] == "udp"]
        if any(f["type"] == "dns" for f in flows) and udp and udp[0]["messages_meta"]["count"] == 4:
            return sorted(flows, key=lambda f: f["type"])
        assert time.monotonic() < deadline, flows
        time.sleep(0.05)


def _wait_listening(log: Path, ports: tuple[int, ...], proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 30
    while not all(f":{p}" in log.read_text(errors="replace") for p in ports):
        assert proc.poll() is None and time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)


def shape(value: object) -> object:
    """Keys and value types, not values."""
    if isinstance(value, dict):
        return {k: shape(v) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


def test_udp_and_dns_flows_look_as_in_mitmweb(tmp_path: Path, udp_echo: int,
                                               mitmproxy_pythons: dict[str, Path]) -> None:
    # real mitmweb 12.3.1
    web_port, udp_port, dns_port = free_port(), free_port(), free_port()
    confdir = tmp_path / "mitmweb-conf"
    seed_ca(confdir)
    log = tmp_path / "mitmweb.log"
    mitmweb = mitmproxy_pythons["12.3.1"].parent / "mitmweb"
    proc = subprocess.Popen(
        [str(mitmweb), "--no-web-open-browser", "--web-port", str(web_port), "--set", f"web_password={PASSWORD}",
         "--set", f"confdir={confdir}", "--listen-host", "127.0.0.1",
         "-m", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}", "-m", f"dns@{dns_port}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    try:
        _wait_listening(log, (udp_port, dns_port, web_port), proc)
        _traffic(udp_port, dns_port)
        theirs = _flows(web_port)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(20)
    # proxyweb, the same traffic
    udp_port, dns_port = free_port(), free_port()
    proxy = ProxyWeb(tmp_path, "--mode", "regular", "--mode", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}", "--mode",
                     f"dns@{dns_port}", "--set", f"web_password={PASSWORD}")
    try:
        _wait_listening(proxy.stderr_path, (udp_port, dns_port), proxy.proc)
        _traffic(udp_port, dns_port)
        ours = _flows(proxy.web_port)
    finally:
        assert proxy.stop() == 0
    assert [f["type"] for f in ours] == [f["type"] for f in theirs] == ["dns", "udp"]
    for mine, real in zip(ours, theirs, strict=True):
        assert json.dumps(shape(mine), sort_keys=True) == json.dumps(shape(real), sort_keys=True), mine["type"]
    (our_dns, our_udp), (their_dns, their_udp) = ours, theirs
    for part in ("request", "response"):
        for key in ("questions", "answers", "response_code", "op_code", "query", "size"):
            assert our_dns[part][key] == their_dns[part][key], (part, key)
    assert our_udp["messages_meta"]["count"] == their_udp["messages_meta"]["count"] == 4
    assert our_udp["messages_meta"]["contentLength"] == their_udp["messages_meta"]["contentLength"]


def _flow_lines(text: str) -> list[str]:
    """The flow lines of a dump's output (not its log lines), addresses without ports."""
    lines = [line for line in text.splitlines() if line and not line.startswith("[")]
    return [re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:N", line) for line in lines]


def test_proxydump_prints_udp_and_dns_flows_as_mitmdump(tmp_path: Path, udp_echo: int,
                                                         mitmproxy_pythons: dict[str, Path]) -> None:
    outputs = []
    mitmdump = str(mitmproxy_pythons["12.3.1"].parent / "mitmdump")
    for command in ([mitmdump], [sys.executable, "-m", "proxycore"]):
        udp_port, dns_port = free_port(), free_port()
        confdir = tmp_path / f"conf-{len(outputs)}"
        seed_ca(confdir)
        out = tmp_path / f"out-{len(outputs)}.txt"
        proc = subprocess.Popen(
            [*command, "--set", f"confdir={confdir}", "--listen-host", "127.0.0.1",
             "-m", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}", "-m", f"dns@{dns_port}"],
            stdout=out.open("wb"), stderr=subprocess.STDOUT,
            env={**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONUNBUFFERED": "1"},
        )
        try:
            _wait_listening(out, (udp_port, dns_port), proc)
            _traffic(udp_port, dns_port)
            deadline = time.monotonic() + 10
            while "DNS QUERY" not in out.read_text() or out.read_text().count("udp <-") < 2:
                assert time.monotonic() < deadline, out.read_text()
                time.sleep(0.05)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        outputs.append(_flow_lines(out.read_text()))
    theirs, ours = outputs
    assert ours == theirs
    assert "127.0.0.1:N: DNS QUERY (A) localhost" in ours and "127.0.0.1:N -> udp -> 127.0.0.1:N" in ours
