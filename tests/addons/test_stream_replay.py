"""Client replay of TCP and UDP flows (``replay.client`` / ``-C``) against real echo servers:
the recorded client messages are sent again and the replay is recorded as a new flow."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

from proxycore.connection import Client, Server, TransportProtocol
from proxycore.io import FlowReader
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.udp import UDPFlow, UDPMessage
from tests.addons.test_clientplayback import Harness, run
from tests.e2e_servers import udp_echo_server

pytestmark = pytest.mark.e2e


class Seen:
    """Collects the flows the stream hooks report."""

    def __init__(self) -> None:
        self.ended: list[object] = []
        self.started: list[object] = []

    def tcp_start(self, flow: object) -> None:
        self.started.append(flow)

    udp_start = tcp_start

    def tcp_end(self, flow: object) -> None:
        self.ended.append(flow)

    udp_end = tcp_error = udp_error = tcp_end


@pytest.fixture
def tcp_echo() -> Iterator[int]:
    """Answers every chunk with ``echo: <chunk>``; closes when the client half-closes."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.settimeout(0.2)
    done = threading.Event()

    def handle(conn: socket.socket) -> None:
        with conn:
            while True:
                data = conn.recv(65535)
                if not data:
                    return
                conn.sendall(b"echo: " + data)

    def serve() -> None:
        while not done.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            threading.Thread(target=handle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield listener.getsockname()[1]
    done.set()
    thread.join()
    listener.close()


@pytest.fixture
def udp_echo() -> Iterator[int]:
    with udp_echo_server() as port:
        yield port


def recorded_tcp(port: int) -> TCPFlow:
    flow = TCPFlow(Client(peername=("127.0.0.1", 40000), sockname=("127.0.0.1", 8080)),
                   Server(address=("127.0.0.1", port)))
    flow.messages = [
        TCPMessage(True, b"one", 100.0), TCPMessage(False, b"recorded answer", 100.1),
        TCPMessage(True, b"two", 100.4),
    ]
    return flow


def test_tcp_flow_replayed_as_a_new_flow(tmp_path, tcp_echo) -> None:
    seen = Seen()
    saved = tmp_path / "replays.mitm"
    recorded = recorded_tcp(tcp_echo)
    before = recorded.get_state()

    async def go() -> None:
        async with Harness(tmp_path, seen, save_stream_file=str(saved)) as h:
            h.call("replay.client", [recorded])
            await h.finished()

    run(go())
    (replayed,) = seen.ended
    assert seen.started == [replayed] and replayed is not recorded
    assert replayed.is_replay == "request" and not replayed.live and replayed.error is None
    assert [m.content for m in replayed.messages if m.from_client] == [b"one", b"two"]
    answers = b"".join(m.content for m in replayed.messages if not m.from_client)
    # the server may read both messages in one go (TCP keeps no message boundaries)
    assert answers in (b"echo: oneecho: two", b"echo: onetwo")
    assert recorded.get_state() == before  # the recorded flow is untouched
    with saved.open("rb") as f:
        (from_file,) = list(FlowReader(f).stream())
    assert from_file.id == replayed.id and from_file.is_replay == "request"


def test_udp_flow_replayed_datagram_by_datagram(tmp_path, udp_echo) -> None:
    seen = Seen()
    recorded = UDPFlow(
        Client(peername=("127.0.0.1", 40000), transport_protocol=TransportProtocol.UDP),
        Server(address=("127.0.0.1", udp_echo), transport_protocol=TransportProtocol.UDP),
    )
    recorded.messages = [UDPMessage(True, b"a", 1.0), UDPMessage(False, b"x", 1.1), UDPMessage(True, b"b", 1.2)]

    async def go() -> None:
        async with Harness(tmp_path, seen) as h:
            h.call("replay.client", [recorded])
            await h.finished()

    run(go())
    (replayed,) = seen.ended
    assert isinstance(replayed, UDPFlow) and replayed.is_replay == "request"
    assert sorted(m.content for m in replayed.messages) == [b"a", b"b", b"echo: a", b"echo: b"]


def test_recorded_pauses_are_kept_when_asked(tmp_path, tcp_echo) -> None:
    seen = Seen()
    recorded = recorded_tcp(tcp_echo)
    recorded.messages[2].timestamp = 100.6  # 0.6 s after the first message

    async def go() -> float:
        async with Harness(tmp_path, seen, client_replay_timing=True) as h:
            h.call("replay.client", [recorded])
            await h.finished()
        return 0.0

    run(go())
    (replayed,) = seen.ended
    sent = [m.timestamp for m in replayed.messages if m.from_client]
    assert sent[1] - sent[0] >= 0.55


def test_refused_server_ends_the_replay_with_an_error(tmp_path) -> None:
    seen = Seen()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    recorded = recorded_tcp(dead)
    started = time.monotonic()

    async def go() -> None:
        async with Harness(tmp_path, seen) as h:
            h.call("replay.client", [recorded])
            await h.finished()

    run(go())
    (replayed,) = seen.ended
    assert replayed.error is not None and "refused" in replayed.error.msg.lower()
    assert time.monotonic() - started < 10
