"""Interop with real mitmproxy 11.0.2 (installed into .cache/ on first run, see docs/testing.md):
files we write are read back by mitmproxy with equal state, and the filter language
selects the same flows as mitmproxy's."""

from __future__ import annotations

import base64
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from proxycore import flowfilter
from proxycore.io import FlowReader, FlowWriter
from tests.downloads import announce, pinned_wheel

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
MITM_VENV = ROOT / ".cache" / "mitmproxy-11.0.2"
MITM_WHEEL = "mitmproxy-11.0.2-py3-none-any.whl"
CORPUS = Path(__file__).parents[1] / "data" / "corpus-all.mitm"

# Runs inside mitmproxy's venv: read flows and print their state (and filter matches) as JSON.
READER = r"""
import base64, json, sys
from mitmproxy import flowfilter, io

def plain(value):
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value

with open(sys.argv[1], "rb") as f:
    flows = list(io.FlowReader(f).stream())
expressions = json.loads(sys.argv[2])
print(json.dumps({
    "states": [plain(f.get_state()) for f in flows],
    "matches": {e: [i for i, f in enumerate(flows) if flowfilter.parse(e)(f)] for e in expressions},
}))
"""

# Case-neutral expressions: mitmproxy 11 matches headers and bodies case-sensitively, 12.x (which
# proxycore follows) ignores case unless MITMPROXY_CASE_SENSITIVE_FILTERS=1.
FILTERS = [
    "~http", "~tcp", "~websocket", "~q", "~s", "~e", "~a", "~all", "~marked",
    "~m POST", "~m get", "~c 200", "~c 404", "~d 127.0.0.1", "~u /post", "~u get",
    "~h content-type", "~hq curl", "~hs json", "~t json", "~tq form", "~ts text",
    "~b corpus", "~bq a=1", "~bs hello", "~src 127.0.0.1", "~dst 28002",
    "!~s", "~m POST | ~c 404", "~m POST & ~u upload", "~http & !~s", "~q | ~tcp",
    "post", "\"/get\"", "~u 'trailers'", "~comment x", "~meta foo",
]


def plain(value: object) -> object:
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


@pytest.fixture(scope="module")
def mitm_python(request: pytest.FixtureRequest) -> Path:
    """mitmproxy 11.0.2 in its own venv: the sha256-pinned wheel, its dependencies from the index."""
    python = MITM_VENV / "bin" / "python"
    MITM_VENV.parent.mkdir(parents=True, exist_ok=True)
    with open(MITM_VENV.with_name(MITM_VENV.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another pytest-xdist worker may be building it now
        if not python.exists():
            wheel = pinned_wheel(MITM_WHEEL, request.config)
            announce(request.config, f"tests: installing {wheel.name} and its dependencies into {MITM_VENV} (once)")
            subprocess.run([sys.executable, "-m", "venv", str(MITM_VENV)], check=True, timeout=300)
            subprocess.run(
                [str(MITM_VENV / "bin" / "pip"), "install", "-q", "--disable-pip-version-check", str(wheel)],
                check=True,
                timeout=900,
            )
    return python


def mitmproxy_reads(python: Path, path: Path, expressions: list[str] = ()) -> dict:
    r = subprocess.run(
        [str(python), "-c", READER, str(path), json.dumps(list(expressions))],
        capture_output=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"},
    )
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout)


def corpus_flows() -> list:
    with CORPUS.open("rb") as f:
        return list(FlowReader(f).stream())


def test_mitmproxy_reads_our_files_with_equal_state(mitm_python, tmp_path):
    flows = corpus_flows()
    for flow in flows:  # touch things we write ourselves, not just copy
        flow.comment = "written by proxycore"
        flow.marked = ":star:"
    out = tmp_path / "ours.mitm"
    with out.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    theirs = mitmproxy_reads(mitm_python, out)["states"]
    ours = [plain(f.get_state()) for f in flows]
    assert len(theirs) == len(ours)
    for mine, read in zip(ours, theirs, strict=True):
        assert read == mine


def test_filters_select_the_same_flows_as_mitmproxy(mitm_python):
    flows = corpus_flows()
    theirs = mitmproxy_reads(mitm_python, CORPUS, FILTERS)["matches"]
    for expression in FILTERS:
        flt = flowfilter.parse(expression)
        ours = [i for i, f in enumerate(flows) if flt(f)]
        assert ours == theirs[expression], expression


def _udp_and_dns_flows() -> list:
    """A UDP flow and a DNS flow (with a compressed-name answer) as proxycore records them."""
    import ipaddress

    from proxycore.connection import Client, Server, TransportProtocol
    from proxycore.dns import DNSFlow, DNSMessage, Question, ResourceRecord
    from proxycore.udp import UDPFlow, UDPMessage

    client = Client(peername=("127.0.0.1", 50000), sockname=("127.0.0.1", 5353),
                    transport_protocol=TransportProtocol.UDP, proxy_mode="dns@5353")
    server = Server(address=("127.0.0.1", 53), transport_protocol=TransportProtocol.UDP)
    dns_flow = DNSFlow(client, server)
    dns_flow.request = DNSMessage(
        77, True, 0, False, False, True, False, 0, 0, [Question("example.com", 1, 1)], [], [], [], 1700000000.0
    )
    dns_flow.response = dns_flow.request.succeed([
        ResourceRecord.CNAME("example.com", "www.example.com"),
        ResourceRecord.A("www.example.com", ipaddress.IPv4Address("192.0.2.1")),
    ])
    udp_flow = UDPFlow(client, server)
    udp_flow.messages = [UDPMessage(True, b"ping", 1700000001.0), UDPMessage(False, b"\x00pong", 1700000002.0)]
    return [dns_flow, udp_flow]


@pytest.mark.parametrize("filters", [["~dns", "~udp", "~q", "~s", "~u example", "~b pong", "~bs 192"]])
def test_mitmproxy_reads_our_udp_and_dns_flows(mitm_python, tmp_path, filters):
    flows = _udp_and_dns_flows()
    out = tmp_path / "udp-dns.mitm"
    with out.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    result = mitmproxy_reads(mitm_python, out, filters)
    assert result["states"] == [plain(f.get_state()) for f in flows]
    for expression in filters:
        flt = flowfilter.parse(expression)
        assert [i for i, f in enumerate(flows) if flt(f)] == result["matches"][expression], expression
