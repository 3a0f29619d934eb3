"""UDP flows: the layer (Playbook), the flow format, and datagrams through a real proxydump."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from proxycore.connection import ConnectionState, Server, TransportProtocol
from proxycore.layers.udp import (
    UdpEndHook,
    UdpErrorHook,
    UDPLayer,
    UdpMessageHook,
    UdpMessageInjected,
    UdpStartHook,
)
from proxycore.proxy import commands, events
from proxycore.testing import Placeholder, Playbook, make_context, reply
from proxycore.udp import UDPFlow, UDPMessage
from tests.e2e_servers import free_port, udp_echo_server
from tests.processes import Proxy
from tests.real_mitmproxy import assert_mitmproxy_reads_back


def udp_context():
    tctx = make_context()
    tctx.client.transport_protocol = TransportProtocol.UDP
    tctx.server = Server(address=("example.com", 5000), transport_protocol=TransportProtocol.UDP)
    return tctx


def test_datagrams_relayed_as_messages_with_hooks() -> None:
    tctx = udp_context()
    flow = Placeholder(UDPFlow)

    def upper(f: UDPFlow) -> None:
        f.messages[-1].content = f.messages[-1].content.upper()

    assert (
        Playbook(UDPLayer(tctx))
        << UdpStartHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply(None)
        >> events.DataReceived(tctx.client, b"ping")
        << UdpMessageHook(flow)
        >> reply(side_effect=upper)
        << commands.SendData(tctx.server, b"PING")
        >> events.DataReceived(tctx.server, b"pong")
        << UdpMessageHook(flow)
        >> reply()
        << commands.SendData(tctx.client, b"pong")
        >> events.ConnectionClosed(tctx.client)
        << commands.CloseConnection(tctx.server)
        << UdpEndHook(flow)
        >> reply()
    )
    assert [(m.from_client, m.content) for m in flow().messages] == [(True, b"PING"), (False, b"pong")]
    assert not flow().live and flow().error is None


def test_refused_server_is_a_udp_error() -> None:
    tctx = udp_context()
    flow = Placeholder(UDPFlow)
    assert (
        Playbook(UDPLayer(tctx))
        << UdpStartHook(flow)
        >> reply()
        << commands.OpenConnection(tctx.server)
        >> reply("Connection refused")
        << UdpErrorHook(flow)
        >> reply()
        << commands.CloseConnection(tctx.client)
        >> events.DataReceived(tctx.client, b"late")  # nothing more happens
    )
    assert flow().error.msg == "Connection refused"


def test_server_gone_with_error_ends_in_udp_error_only() -> None:
    tctx = udp_context()
    tctx.server.timestamp_start = 1.0  # already connected (eager reverse proxy)
    flow = Placeholder(UDPFlow)
    playbook = Playbook(UDPLayer(tctx)) << UdpStartHook(flow) >> reply()
    assert playbook
    tctx.server.error = "Connection refused"
    assert (
        playbook
        >> events.ConnectionClosed(tctx.server)
        << commands.CloseConnection(tctx.client)
        << UdpErrorHook(flow)
        >> reply()
    )


def test_injected_datagram_goes_through_the_message_hook() -> None:
    tctx = udp_context()
    tctx.server.timestamp_start = 1.0
    layer = UDPLayer(tctx)
    playbook = Playbook(layer) << UdpStartHook(Placeholder(UDPFlow)) >> reply()
    assert playbook
    assert (
        playbook
        >> UdpMessageInjected(layer.flow, UDPMessage(False, b"to the client"))
        << UdpMessageHook(layer.flow)
        >> reply()
        << commands.SendData(tctx.client, b"to the client")
    )


def test_ignored_flow_relays_without_hooks() -> None:
    tctx = udp_context()
    tctx.server.timestamp_start = 1.0
    assert (
        Playbook(UDPLayer(tctx, ignore=True))
        >> events.DataReceived(tctx.client, b"x")
        << commands.SendData(tctx.server, b"x")
    )


def test_state_round_trip_as_mitmproxy_shapes_it() -> None:
    tctx = udp_context()
    flow = UDPFlow(tctx.client, tctx.server)
    flow.messages = [UDPMessage(True, b"a", 1.0), UDPMessage(False, b"b", 2.0)]
    state = flow.get_state()
    assert state["type"] == "udp" and state["messages"] == [[True, b"a", 1.0], [False, b"b", 2.0]]
    again = UDPFlow.from_state(state)
    assert again.get_state() == state


# end to end -----------------------------------------------------------------------------


@pytest.fixture
def udp_echo() -> Iterator[int]:
    with udp_echo_server() as port:
        yield port


@pytest.mark.e2e
def test_udp_echo_through_reverse_udp_mode(tmp_path, udp_echo, mitmproxy_pythons) -> None:
    udp_port = free_port()
    flows = tmp_path / "flows.mitm"
    proxy = Proxy(
        ["--mode", "regular", "--mode", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}",
         "-w", str(flows), "--set", "flow_detail=3"],
        tmp_path,
    )
    try:
        deadline = time.monotonic() + 10
        while f":{udp_port}." not in proxy.stderr():  # the UDP listener may start after the TCP one
            assert time.monotonic() < deadline, proxy.stderr()
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            replies = []
            for word in (b"one", b"two", b"\x00binary\xff"):
                client.sendto(word, ("127.0.0.1", udp_port))
                replies.append(client.recvfrom(65535)[0])
        assert replies == [b"echo: one", b"echo: two", b"echo: \x00binary\xff"]
        out = proxy.wait_output(f"<- udp <- 127.0.0.1:{udp_echo}")
        assert f"-> udp -> 127.0.0.1:{udp_echo}" in out
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()
    # Written at exit (the flow is still open: it would end 20 s after its last datagram),
    # and mitmproxy 11 and 12 read it to the same state.
    (flow,) = assert_mitmproxy_reads_back(mitmproxy_pythons, flows)
    assert isinstance(flow, UDPFlow)
    assert [(m.from_client, m.content) for m in flow.messages] == [
        (True, b"one"), (False, b"echo: one"), (True, b"two"), (False, b"echo: two"),
        (True, b"\x00binary\xff"), (False, b"echo: \x00binary\xff"),
    ]
    assert flow.client_conn.transport_protocol == "udp" and flow.server_conn.transport_protocol == "udp"
    assert flow.client_conn.proxy_mode.full_spec == f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}"


def _has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.e2e
@pytest.mark.skipif(not _has_ipv6_loopback(), reason="no IPv6 loopback")
def test_listening_everywhere_serves_ipv4_and_ipv6(udp_echo) -> None:
    import asyncio

    from proxycore.addons import default_addons
    from proxycore.layers.modes import ReverseProxy
    from proxycore.master import Master
    from proxycore.options import Options
    from proxycore.proxy.server_udp import DatagramListener

    async def main() -> list[bytes]:
        master = Master(Options())
        master.addons.add(*default_addons())
        master.options.update(server=False)
        listener = DatagramListener(master, ReverseProxy, f"reverse:udp://127.0.0.1:{udp_echo}")
        await listener.start("", 0)
        try:
            families = {len(a) for a in listener.addresses}
            assert len(listener.addresses) == 2, families
            port = listener.addresses[0][1]
            loop = asyncio.get_running_loop()
            replies = []
            for host, family in (("127.0.0.1", socket.AF_INET), ("::1", socket.AF_INET6)):
                with socket.socket(family, socket.SOCK_DGRAM) as client:
                    client.setblocking(False)
                    await loop.sock_sendto(client, b"hi " + host.encode(), (host, port))
                    replies.append(await asyncio.wait_for(loop.sock_recv(client, 100), 5))
            return replies
        finally:
            await listener.stop()

    assert asyncio.run(main()) == [b"echo: hi 127.0.0.1", b"echo: hi ::1"]


@pytest.mark.e2e
def test_udp_flows_in_the_web_api(tmp_path, udp_echo) -> None:
    """proxyweb lists a live UDP flow in GET /flows with mitmweb's fields, its messages
    counted as they pass."""
    from tests.processes import ProxyWeb
    from tests.webapi import request

    udp_port = free_port()
    proxy = ProxyWeb(tmp_path, "--mode", "regular", "--mode", f"reverse:udp://127.0.0.1:{udp_echo}@{udp_port}",
                     "--set", "web_password=udp-web")

    def flows() -> list[dict]:
        r = request(proxy.web_port, "GET", "/flows", headers={"Authorization": "Bearer udp-web"}, auth=False)
        assert r.status == 200, r
        return [f for f in r.json() if f["type"] == "udp"]

    try:
        deadline = time.monotonic() + 10
        while f":{udp_port}." not in proxy.stderr():
            assert time.monotonic() < deadline, proxy.stderr()
            time.sleep(0.05)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
            client.settimeout(5)
            for word in (b"web one", b"web two"):
                client.sendto(word, ("127.0.0.1", udp_port))
                assert client.recvfrom(65535)[0] == b"echo: " + word
        deadline = time.monotonic() + 10
        while not (found := flows()) or found[0]["messages_meta"]["count"] < 4:
            assert time.monotonic() < deadline, found
            time.sleep(0.05)
        (flow,) = found
        assert flow["messages_meta"]["contentLength"] == len(b"web oneecho: web oneweb twoecho: web two")
        assert flow["server_conn"]["peername"] == ["127.0.0.1", udp_echo]
        assert flow["client_conn"]["timestamp_end"] is None  # open until 20 s without datagrams
    finally:
        assert proxy.stop() == 0
    assert "Traceback" not in proxy.stderr(), proxy.stderr()


@pytest.mark.e2e
def test_a_udp_flow_is_written_when_it_goes_idle_as_mitmdump_writes_it(tmp_path, udp_echo, monkeypatch) -> None:
    """-w writes a UDP flow at udp_end, which comes after UDP_IDLE_TIMEOUT seconds without a
    datagram (20, mitmproxy's UDP_TIMEOUT; shortened here), not before; the proxy is still
    running then."""
    import asyncio

    from proxycore.addons import default_addons
    from proxycore.io import FlowReader
    from proxycore.layers.modes import ReverseProxy
    from proxycore.master import Master
    from proxycore.options import Options
    from proxycore.proxy import server_udp

    monkeypatch.setattr(server_udp, "UDP_IDLE_TIMEOUT", 1)
    saved = tmp_path / "idle.mitm"

    def written() -> list[object]:
        with saved.open("rb") as f:
            return list(FlowReader(f).stream())

    async def main() -> tuple[list[object], list[object]]:
        master = Master(Options())
        master.addons.add(*default_addons())
        master.options.update(server=False, save_stream_file=str(saved))
        listener = server_udp.DatagramListener(master, ReverseProxy, f"reverse:udp://127.0.0.1:{udp_echo}")
        await listener.start("127.0.0.1", 0)
        try:
            loop = asyncio.get_running_loop()
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as client:
                client.setblocking(False)
                await loop.sock_sendto(client, b"idle soon", listener.addresses[0])
                assert await asyncio.wait_for(loop.sock_recv(client, 100), 5) == b"echo: idle soon"
                before = written()
                deadline = loop.time() + 10
                while not (after := written()):
                    assert loop.time() < deadline
                    await asyncio.sleep(0.05)
            return before, after
        finally:
            await listener.stop()
            master.addons.get("save").done()

    before, after = asyncio.run(main())
    assert before == []
    (flow,) = after
    assert [m.content for m in flow.messages] == [b"idle soon", b"echo: idle soon"]
    assert flow.client_conn.state == ConnectionState.CLOSED  # ended by the idle timeout
