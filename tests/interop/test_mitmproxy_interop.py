"""Interop with real mitmproxy 11.0.2 and 12.3.1 (installed into .cache/ on first run, see docs/testing.md):
files we write are read back by mitmproxy with equal state, and the filter language
selects the same flows as mitmproxy's."""

from __future__ import annotations

from pathlib import Path

import pytest

from proxycore import flowfilter
from proxycore.io import FlowReader, FlowWriter
from tests.real_mitmproxy import mitmproxy_python, mitmproxy_reads, plain

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

CORPUS = Path(__file__).parents[1] / "data" / "corpus-all.mitm"

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


@pytest.fixture(scope="module")
def mitm_python(request: pytest.FixtureRequest) -> Path:
    """mitmproxy 11.0.2 in its own venv (tests/real_mitmproxy.py)."""
    return mitmproxy_python("11.0.2", request.config)


def corpus_flows() -> list:
    with CORPUS.open("rb") as f:
        return list(FlowReader(f).stream())


@pytest.mark.parametrize("version", ["11.0.2", "12.3.1"])
def test_mitmproxy_reads_our_files_with_equal_state(mitmproxy_pythons, version, tmp_path):
    flows = corpus_flows()
    for flow in flows:  # touch things we write ourselves, not just copy
        flow.comment = "written by proxycore"
        flow.marked = ":star:"
    out = tmp_path / "ours.mitm"
    with out.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    theirs = mitmproxy_reads(mitmproxy_pythons[version], out)["states"]
    ours = [plain(f.get_state()) for f in flows]
    assert len(theirs) == len(ours)
    for mine, read in zip(ours, theirs, strict=True):
        assert read == mine


@pytest.mark.parametrize("version", ["11.0.2", "12.3.1"])
def test_filters_select_the_same_flows_as_mitmproxy(mitmproxy_pythons, version):
    flows = corpus_flows()
    theirs = mitmproxy_reads(mitmproxy_pythons[version], CORPUS, FILTERS)["matches"]
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


@pytest.mark.parametrize("version", ["11.0.2", "12.3.1"])
def test_mitmproxy_reads_our_udp_and_dns_flows(mitmproxy_pythons, version, tmp_path):
    filters = ["~dns", "~udp", "~q", "~s", "~u example", "~b pong", "~bs 192"]
    flows = _udp_and_dns_flows()
    out = tmp_path / "udp-dns.mitm"
    with out.open("wb") as f:
        writer = FlowWriter(f)
        for flow in flows:
            writer.add(flow)
    result = mitmproxy_reads(mitmproxy_pythons[version], out, filters)
    assert result["states"] == [plain(f.get_state()) for f in flows]
    for expression in filters:
        flt = flowfilter.parse(expression)
        assert [i for i, f in enumerate(flows) if flt(f)] == result["matches"][expression], expression
