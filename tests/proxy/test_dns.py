"""DNS: the message model and wire format (hypothesis), the DNS layer (Playbook), the
resolver addon, and queries from dig and a Python socket client through ``--mode dns``."""

from __future__ import annotations

import ipaddress
import shutil
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Iterator

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import Server, TransportProtocol
from proxycore.dns import DNSFlow, DnsFormatError, DNSMessage, Question, ResourceRecord
from proxycore.layers.dns import (
    DnsErrorHook,
    DNSLayer,
    DnsRequestHook,
    DnsResponseHook,
    pack_message,
)
from proxycore.net.dns import domain_names, https_records, response_codes, types
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply
from tests.e2e_servers import free_port
from tests.hypothesis_budget import budget
from tests.processes import Proxy
from tests.real_mitmproxy import assert_mitmproxy_reads_back

# ---------------------------------------------------------------------------- strategies

labels = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20)
names = st.lists(labels, min_size=0, max_size=5).map(".".join)
u16 = st.integers(0, 0xFFFF)
questions = st.builds(Question, name=names, type=u16, class_=u16)
records = st.builds(
    ResourceRecord, name=names, type=u16, class_=u16, ttl=st.integers(0, 2**32 - 1), data=st.binary(max_size=40)
)
# Record types whose data the parser rewrites (compressed names) get well-formed data only.
records = records.filter(lambda r: not domain_names.record_data_can_have_compression(r.type))
messages = st.builds(
    DNSMessage,
    id=u16, query=st.booleans(), op_code=st.integers(0, 15), authoritative_answer=st.booleans(),
    truncation=st.booleans(), recursion_desired=st.booleans(), recursion_available=st.booleans(),
    reserved=st.integers(0, 7), response_code=st.integers(0, 15),
    questions=st.lists(questions, max_size=3), answers=st.lists(records, max_size=3),
    authorities=st.lists(records, max_size=2), additionals=st.lists(records, max_size=2),
)


@given(messages)
def test_wire_round_trip(message: DNSMessage) -> None:
    assert DNSMessage.unpack(message.packed) == message


@given(messages)
def test_state_and_json_round_trip(message: DNSMessage) -> None:
    assert DNSMessage.from_state(message.get_state()) == message
    again = DNSMessage.from_json(message.to_json())
    assert again.packed[:2] == message.packed[:2] and again.questions == message.questions


@budget(300)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_raise_only_value_error(data: bytes) -> None:
    try:
        DNSMessage.unpack(data)
    except ValueError:
        pass


@budget(300)
@given(messages, st.data())
def test_damaged_messages_raise_only_value_error(message: DNSMessage, data: st.DataObject) -> None:
    packed = bytearray(message.packed)
    for _ in range(data.draw(st.integers(1, 4))):
        if packed:
            packed[data.draw(st.integers(0, len(packed) - 1))] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(packed)))
    try:
        DNSMessage.unpack(bytes(packed[:cut]))
    except ValueError:
        pass


def test_parse_error_is_also_a_value_error_subclass() -> None:
    assert issubclass(DnsFormatError, ValueError)
    with pytest.raises(ValueError, match="shorter than its header"):
        DNSMessage.unpack(b"\x00\x01")


def _header(answers: int = 0) -> bytes:
    return struct.pack("!HHHHHH", 9, 0x8180, 1, answers, 0, 0)


def test_compressed_names_are_read_and_written_out() -> None:
    question = domain_names.pack("example.com") + struct.pack("!HH", types.CNAME, 1)
    # answer: name = pointer to the question's name (offset 12); CNAME data "www" + pointer
    cname = b"\x03www\xc0\x0c"
    answer = b"\xc0\x0c" + struct.pack("!HHIH", types.CNAME, 1, 30, len(cname)) + cname
    message = DNSMessage.unpack(_header(1) + question + answer)
    (record,) = message.answers
    assert record.name == "example.com" and record.domain_name == "www.example.com"
    assert record.data == domain_names.pack("www.example.com")
    assert str(record) == "www.example.com"


@pytest.mark.parametrize("pointer", [b"\xc0\x0c", b"\xc0\x20", b"\xc0\xff"])
def test_pointer_loops_and_forward_pointers_are_refused(pointer: bytes) -> None:
    with pytest.raises(DnsFormatError, match="question #0"):
        DNSMessage.unpack(_header() + pointer + struct.pack("!HH", 1, 1))


def test_long_names_and_labels() -> None:
    with pytest.raises(ValueError, match="longer than 63"):
        domain_names.pack("a" * 64 + ".com")
    with pytest.raises(ValueError, match="longer than 255"):
        domain_names.pack(".".join(["a" * 60] * 5))
    assert domain_names.pack("") == b"\x00" and domain_names.pack("example.com.") == domain_names.pack("example.com")
    assert domain_names.unpack(domain_names.pack("bücher.example")) == "bücher.example"


def test_record_helpers_and_json() -> None:
    a = ResourceRecord.A("x.example", ipaddress.IPv4Address("192.0.2.1"))
    assert a.to_json() == {"name": "x.example", "type": "A", "class": "IN", "ttl": 60, "data": "192.0.2.1"}
    assert ResourceRecord.from_json(a.to_json()) == a
    bad = ResourceRecord("x", types.A, 1, 5, b"\x01")
    assert bad.to_json()["data"] == "0x01 (invalid A data)"
    mx = ResourceRecord("x", types.MX, 1, 5, b"\x00\x0a")
    assert mx.to_json()["data"] == "0x000a" and ResourceRecord.from_json(mx.to_json()) == mx
    record = https_records.HTTPSRecord(1, "svc.example", {1: b"\x02h2"})
    https = ResourceRecord.HTTPS("x", record)
    assert https.https_alpn == (b"h2",)
    https.https_alpn = [b"h3", b"h2"]
    https.https_ech = "AAEC"
    assert https.https_alpn == (b"h3", b"h2") and https.https_ech == "AAEC"
    assert https.to_json()["data"]["target_name"] == "svc.example"
    assert ResourceRecord.from_json(https.to_json()) == https


def test_query_helpers_match_mitmproxy() -> None:
    query = DNSMessage(5, True, 0, False, False, True, False, 0, 0, [Question("x.example", 1, 1)], [], [], [])
    failed = query.fail(response_codes.NXDOMAIN)
    assert (failed.query, failed.id, failed.response_code, failed.recursion_available) == (False, 5, 3, False)
    assert failed.to_json()["status_code"] == 404 and failed.to_json()["response_code"] == "NXDOMAIN"
    with pytest.raises(ValueError):
        query.fail(response_codes.NOERROR)
    ok = query.succeed([ResourceRecord.A("x.example", ipaddress.IPv4Address("192.0.2.7"))])
    assert ok.recursion_available and ok.size == 4 and str(ok) == "x.example\r\n192.0.2.7"
    assert query.question == query.questions[0] and query.copy().questions == query.questions
    with pytest.raises(ValueError, match="id"):
        _ = DNSMessage(70000, True, 0, False, False, False, False, 0, 0, [], [], [], []).packed


# ---------------------------------------------------------------------------- the layer


def query_message(name: str = "example.com", ident: int = 42, qtype: int = types.A) -> DNSMessage:
    return DNSMessage(ident, True, 0, False, False, True, False, 0, 0, [Question(name, qtype, 1)], [], [], [])


def udp_context():
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.server = Server(address=None)
    return tctx


def test_hook_answers_the_query() -> None:
    tctx = udp_context()
    flow = Placeholder(DNSFlow)
    query = query_message()
    answer = query.succeed([ResourceRecord.A("example.com", ipaddress.IPv4Address("192.0.2.9"))])

    def respond(f: DNSFlow) -> None:
        f.response = answer

    assert (
        Playbook(DNSLayer(tctx))
        >> events.DataReceived(tctx.client, query.packed)
        << DnsRequestHook(flow)
        >> reply(side_effect=respond)
        << DnsResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, answer.packed)
    )
    assert flow().request.packed == query.packed and flow().request.timestamp is not None


def test_query_forwarded_and_answer_matched_by_id() -> None:
    tctx = udp_context()
    tctx.server.address = ("192.0.2.53", 53)
    flow = Placeholder(DNSFlow)
    query = query_message(ident=7)
    answer = query.fail(response_codes.NXDOMAIN)
    layer = DNSLayer(tctx)
    assert tctx.server.transport_protocol == TransportProtocol.UDP
    assert (
        Playbook(layer)
        >> events.DataReceived(tctx.client, query.packed)
        << DnsRequestHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None, side_effect=lambda *_: setattr(tctx.server, "state", 3))
        << commands.SendData(tctx.server, query.packed)
        >> events.DataReceived(tctx.server, answer.packed)
        << DnsResponseHook(flow)
        >> reply()
        << commands.SendData(tctx.client, answer.packed)
    )
    assert flow().response.packed == answer.packed


def test_no_answer_and_no_server_is_servfail_with_dns_error() -> None:
    tctx = udp_context()
    flow = Placeholder(DNSFlow)
    query = query_message()
    servfail = query.fail(response_codes.SERVFAIL)
    playbook = (
        Playbook(DNSLayer(tctx))
        >> events.DataReceived(tctx.client, query.packed)
        << DnsRequestHook(flow)
        >> reply()
        << DnsErrorHook(flow)
        >> reply()
        << commands.SendData(tctx.client, Placeholder(bytes))
    )
    assert playbook
    sent = DNSMessage.unpack(playbook.actual[-1].data)
    assert (sent.id, sent.response_code, sent.questions) == (query.id, servfail.response_code, query.questions)
    assert "no upstream server" in flow().error.msg


def test_tcp_framing_across_reads_and_invalid_message_closes() -> None:
    tctx = make_context()
    tctx.server = Server(address=None)
    first, second = query_message("a.example", 1), query_message("b.example", 2)
    data = pack_message(first, "tcp") + pack_message(second, "tcp")
    flow1, flow2 = Placeholder(DNSFlow), Placeholder(DNSFlow)

    def answer(f: DNSFlow) -> None:
        f.response = f.request.fail(response_codes.REFUSED)

    assert (
        Playbook(DNSLayer(tctx))
        >> events.DataReceived(tctx.client, data[:5])
        >> events.DataReceived(tctx.client, data[5:])
        << DnsRequestHook(flow1)
        >> reply(side_effect=answer)
        << DnsResponseHook(flow1)
        >> reply()
        << commands.SendData(tctx.client, pack_message(first.fail(response_codes.REFUSED), "tcp"))
        << DnsRequestHook(flow2)
        >> reply(side_effect=answer)
        << DnsResponseHook(flow2)
        >> reply()
        << commands.SendData(tctx.client, pack_message(second.fail(response_codes.REFUSED), "tcp"))
        >> events.DataReceived(tctx.client, b"\x00\x03abc")
        << commands.CloseConnection(tctx.client)
    )
    assert flow1().request.questions[0].name == "a.example"


def test_flow_state_round_trip() -> None:
    tctx = udp_context()
    flow = DNSFlow(tctx.client, tctx.server)
    flow.request = query_message()
    flow.response = flow.request.succeed([ResourceRecord.TXT("example.com", "hello")])
    state = flow.get_state()
    assert state["type"] == "dns" and state["request"]["questions"] == [{"name": "example.com", "type": 1, "class_": 1}]
    assert DNSFlow.from_state(state).get_state() == state


# ---------------------------------------------------------------------------- end to end


def _upstream_answer(data: bytes, asked: list[str]) -> bytes:
    query = DNSMessage.unpack(data)
    question = query.questions[0]
    asked.append(question.name)
    if question.type == types.TXT:
        return query.succeed([ResourceRecord.TXT(question.name, "upstream")]).packed
    return query.succeed([ResourceRecord.A(question.name, ipaddress.IPv4Address("192.0.2.77"))]).packed


@pytest.fixture
def upstream_dns() -> Iterator[tuple[int, list[str]]]:
    """A name server on 127.0.0.1 (UDP and TCP, one port) answering every A query with
    192.0.2.77 and a TXT query with "upstream"; returns its port and the names asked for."""
    for _ in range(50):  # a free UDP port may be taken for TCP: try another
        udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        udp.bind(("127.0.0.1", 0))
        tcp = socket.socket()
        try:
            tcp.bind(("127.0.0.1", udp.getsockname()[1]))
            break
        except OSError:
            udp.close()
            tcp.close()
    udp.settimeout(0.2)
    tcp.listen(8)
    tcp.settimeout(0.2)
    asked: list[str] = []
    done = threading.Event()

    def serve_udp() -> None:
        while not done.is_set():
            try:
                data, peer = udp.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                return
            udp.sendto(_upstream_answer(data, asked), peer)

    def serve_tcp() -> None:
        while not done.is_set():
            try:
                conn, _ = tcp.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                data = b""
                while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                    chunk = conn.recv(65535)
                    if not chunk:
                        break
                    data += chunk
                answer = _upstream_answer(data[2:], asked)
                conn.sendall(struct.pack("!H", len(answer)) + answer)

    threads = [threading.Thread(target=serve_udp, daemon=True), threading.Thread(target=serve_tcp, daemon=True)]
    for thread in threads:
        thread.start()
    yield udp.getsockname()[1], asked
    done.set()
    for thread in threads:
        thread.join()
    udp.close()
    tcp.close()


def ask(port: int, message: DNSMessage, tcp: bool = False) -> DNSMessage:
    """A Python socket resolver: one query over UDP or TCP, its answer parsed."""
    if tcp:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
            s.sendall(pack_message(message, "tcp"))
            data = b""
            while len(data) < 2 or len(data) < 2 + struct.unpack("!H", data[:2])[0]:
                chunk = s.recv(65535)
                assert chunk, "connection closed early"
                data += chunk
            return DNSMessage.unpack(data[2:])
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(5)
        s.sendto(message.packed, ("127.0.0.1", port))
        return DNSMessage.unpack(s.recvfrom(65535)[0])


def started(proxy: Proxy, port: int) -> Proxy:
    """Wait for the DNS listener too (the helper only waits for the TCP proxy port)."""
    deadline = time.monotonic() + 10
    while f":{port}." not in proxy.stderr():
        assert time.monotonic() < deadline, proxy.stderr()
        time.sleep(0.05)
    return proxy


def stop(proxy: Proxy) -> None:
    assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@pytest.mark.e2e
def test_dns_mode_with_name_servers_and_hosts_file(tmp_path, upstream_dns, mitmproxy_pythons) -> None:
    upstream_port, asked = upstream_dns
    dns_port = free_port()
    flows = tmp_path / "dns.mitm"
    proxy = started(Proxy(
        ["--mode", "regular", "--mode", f"dns@{dns_port}", "-w", str(flows),
         "--set", f"dns_name_servers=127.0.0.1:{upstream_port}"],
        tmp_path,
    ), dns_port)
    try:
        local = ask(dns_port, query_message("localhost", 1))  # in /etc/hosts: answered here
        assert [r.ipv4_address for r in local.answers] == [ipaddress.IPv4Address("127.0.0.1")]
        remote = ask(dns_port, query_message("far.example", 2))
        assert [str(r) for r in remote.answers] == ["192.0.2.77"] and remote.id == 2
        text = ask(dns_port, query_message("txt.example", 3, types.TXT), tcp=True)
        assert [r.text for r in text.answers] == ["upstream"]
        assert asked == ["far.example", "txt.example"]
        out = proxy.wait_output("DNS QUERY (TXT) txt.example")
        assert "DNS QUERY (A) localhost\n << 127.0.0.1" in out
        assert "DNS QUERY (A) far.example\n << 192.0.2.77" in out
        assert "DNS QUERY (TXT) txt.example\n << upstream" in out
    finally:
        stop(proxy)
    read = assert_mitmproxy_reads_back(mitmproxy_pythons, flows)  # and mitmproxy 11 and 12 read the same
    assert sorted(f.request.questions[0].name for f in read) == ["far.example", "localhost", "txt.example"]
    assert all(isinstance(f, DNSFlow) and f.response is not None for f in read)


@pytest.mark.e2e
def test_reverse_dns_forwards_to_the_target(tmp_path, upstream_dns) -> None:
    upstream_port, asked = upstream_dns
    dns_port = free_port()
    spec = f"reverse:dns://127.0.0.1:{upstream_port}@{dns_port}"
    proxy = started(Proxy(["--mode", "regular", "--mode", spec], tmp_path), dns_port)
    try:
        answer = ask(dns_port, query_message("rev.example", 11))
        assert [str(r) for r in answer.answers] == ["192.0.2.77"] and asked == ["rev.example"]
        proxy.wait_output("DNS QUERY (A) rev.example")
    finally:
        stop(proxy)


@pytest.mark.e2e
@pytest.mark.skipif(shutil.which("dig") is None, reason="dig is not installed (.ci/run installs bind9-dnsutils)")
def test_dig_through_dns_mode(tmp_path, upstream_dns) -> None:
    upstream_port, _ = upstream_dns
    dns_port = free_port()
    proxy = started(Proxy(
        ["--mode", "regular", "--mode", f"dns@{dns_port}", "--set", f"dns_name_servers=127.0.0.1:{upstream_port}",
         "--set", "dns_use_hosts_file=false"],
        tmp_path,
    ), dns_port)
    try:
        for extra in ([], ["+tcp"]):
            r = subprocess.run(
                ["dig", "@127.0.0.1", "-p", str(dns_port), "+tries=1", "+time=5", *extra, "dig.example", "A"],
                capture_output=True, text=True, timeout=30,
            )
            assert "status: NOERROR" in r.stdout, r.stdout + r.stderr
            assert "192.0.2.77" in r.stdout
    finally:
        stop(proxy)


@pytest.mark.e2e
def test_dns_mode_system_resolver(tmp_path) -> None:
    """Without dns_name_servers, address lookups go through getaddrinfo (hosts file included)."""
    dns_port = free_port()
    proxy = started(Proxy(["--mode", "regular", "--mode", f"dns@{dns_port}"], tmp_path), dns_port)
    try:
        answer = ask(dns_port, query_message("localhost", 4))
        assert ipaddress.IPv4Address("127.0.0.1") in [r.ipv4_address for r in answer.answers]
        missing = ask(dns_port, query_message("no-such-name.invalid", 5))
        assert missing.response_code in (response_codes.NXDOMAIN, response_codes.SERVFAIL)
    finally:
        stop(proxy)


def test_web_json_of_dns_and_udp_flows() -> None:
    from proxycore.api.serialize import flow_to_json
    from proxycore.udp import UDPFlow, UDPMessage

    tctx = udp_context()
    flow = DNSFlow(tctx.client, tctx.server)
    flow.request = query_message("example.com", 9)
    data = flow_to_json(flow)
    assert data["type"] == "dns" and "response" not in data
    assert data["request"]["questions"] == [{"name": "example.com", "type": "A", "class": "IN"}]
    flow.response = flow.request.fail(response_codes.NXDOMAIN)
    response = flow_to_json(flow)["response"]
    assert (response["response_code"], response["status_code"], response["op_code"]) == ("NXDOMAIN", 404, "QUERY")
    udp = UDPFlow(tctx.client, tctx.server)
    udp.messages = [UDPMessage(True, b"abc", 5.0)]
    assert flow_to_json(udp)["messages_meta"] == {"contentLength": 3, "count": 1, "timestamp_last": 5.0}


@pytest.mark.e2e
def test_web_state_lists_the_dns_server_and_dns_flows(tmp_path) -> None:
    from tests.api.test_web_api import get
    from tests.webapi import running

    with running(tmp_path, mode=["regular", "dns@0"]) as server:
        deadline = time.monotonic() + 10
        while True:
            servers = get(server, "/state").json()["servers"]
            if servers.get("dns@0", {}).get("is_running"):
                break
            assert time.monotonic() < deadline, servers
            time.sleep(0.05)
        dns_server = servers["dns@0"]
        assert dns_server["type"] == "dns" and dns_server["description"] == "DNS server"
        (address,) = {tuple(a) for a in dns_server["listen_addrs"]}
        answer = ask(address[1], query_message("localhost", 21))  # UDP, the port TCP got too
        assert answer.answers
        server.wait_for_flows(1)
        (flow,) = [f for f in get(server, "/flows").json() if f["type"] == "dns"]
        assert flow["request"]["questions"][0]["name"] == "localhost"
        assert flow["response"]["response_code"] == "NOERROR"


def test_malformed_record_data_gets_its_pointers_written_out() -> None:
    question = domain_names.pack("example.com") + struct.pack("!HH", types.CNAME, 1)
    cname = b"\x99bad\xc0\x0c"  # 0x99 is no label length: the data does not fit the CNAME layout
    answer = b"\xc0\x0c" + struct.pack("!HHIH", types.CNAME, 1, 30, len(cname)) + cname
    (record,) = DNSMessage.unpack(_header(1) + question + answer).answers
    assert record.data == b"\x99bad" + domain_names.pack("example.com")  # as mitmproxy reads it
    assert record.to_json()["data"].endswith("(invalid CNAME data)")
