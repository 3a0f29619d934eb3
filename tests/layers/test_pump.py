"""proxycore.testing.Pump: a layer run against in-memory peers, every request answered."""

from __future__ import annotations

from proxycore.connection import ConnectionState, Server
from proxycore.layers.tcp import TCPLayer
from proxycore.proxy import commands, events
from proxycore.testing import Pump, make_context


def tcp_pump(pump_class: type[Pump] = Pump) -> Pump:
    context = make_context()
    context.server = Server(address=("example.com", 22))
    return pump_class(TCPLayer(context))


def test_hooks_complete_connections_open_and_bytes_arrive_per_side():
    pump = tcp_pump()
    assert pump.context.server.state is ConnectionState.OPEN
    pump.feed(events.DataReceived(pump.context.client, b"hello"))
    pump.feed(events.DataReceived(pump.context.server, b"world"))
    assert pump.sent == {"client": bytearray(b"world"), "server": bytearray(b"hello")}
    assert pump.hooks == ["tcp_start", "tcp_message", "tcp_message"]
    pump.feed(events.ConnectionClosed(pump.context.client))
    pump.feed(events.ConnectionClosed(pump.context.server))
    assert pump.closed == {"client", "server"} and pump.hooks[-1] == "tcp_end"


class Holding(Pump):
    """Holds every hook, as an addon that takes its time."""

    def __init__(self, layer) -> None:
        self.held: list[commands.StartHook] = []
        self.after: list[int] = []
        super().__init__(layer)

    def on_hook(self, command: commands.StartHook) -> events.Event | None:
        self.held.append(command)
        return None

    def after_event(self) -> None:
        self.after.append(len(self.held))


def test_a_held_hook_waits_until_the_test_answers_it():
    pump = tcp_pump(Holding)
    (start,) = pump.held
    assert pump.context.server.state is not ConnectionState.OPEN  # nothing opens before tcp_start
    pump.feed(events.HookCompleted(start))
    assert pump.context.server.state is ConnectionState.OPEN
    assert pump.after == [1, 1, 1]  # Start, HookCompleted, then OpenConnectionCompleted
