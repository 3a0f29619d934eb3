"""Playbook tests of TunnelLayer itself, through a toy tunnel protocol.

The toy: the tunnel sends b"HELLO" on the outer connection and is open once the
peer answers b"OK" (anything else refuses it); data for the inner connection
travels with a b"|" prefix.  TLS and the upstream-proxy tunnel have their own
tests; these pin down the open/wait/answer machine they share.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import ConnectionState, Server
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.tunnel import CLOSED, ESTABLISHING, INACTIVE, OPEN, TunnelLayer
from proxycore.testing import Playbook, make_context, reply
from tests.hypothesis_budget import budget


class Toy(TunnelLayer):
    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived) and event.connection is self.tunnel_conn:
            if self.state == ESTABLISHING:
                self.state = OPEN if event.data == b"OK" else CLOSED
                yield from self.finish(None if self.state == OPEN else f"refused: {event.data!r}")
            elif self.state == OPEN:
                yield from self.event_to_child(events.DataReceived(self.conn, event.data[1:]))
        else:
            yield from self.event_to_child(event)

    def establish(self) -> CommandGenerator:
        yield commands.SendData(self.tunnel_conn, b"HELLO")

    def send_data(self, command: commands.SendData) -> CommandGenerator:
        yield commands.SendData(self.tunnel_conn, b"|" + command.data)


class Opener(Layer):
    """Opens ``context.server`` on Start (and again on each b"again" from the client), sends
    b"hi" once it is open, and keeps the answers it got."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.answers: list[str | None] = []
        self.events: list[events.Event] = []

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        self.events.append(event)
        if isinstance(event, events.Start) or (
            isinstance(event, events.DataReceived) and event.data == b"again"
        ):
            err = yield commands.OpenConnection(self.context.server)
            self.answers.append(err)
            if err is None:
                yield commands.SendData(self.context.server, b"hi")


def toy(connected_outer: bool = False) -> tuple[Toy, Opener, Server]:
    tctx = make_context()
    tctx.server = Server(address=("origin.test", 80))
    outer = Server(address=("tunnel.test", 3128))
    if connected_outer:
        outer.state = ConnectionState.OPEN
    child = Opener(tctx)
    return Toy(tctx, outer, tctx.server, child), child, outer


def test_open_waits_for_the_handshake_then_data_goes_through_the_tunnel():
    layer, child, outer = toy()
    assert (
        Playbook(layer)
        << commands.OpenConnection(outer)
        >> reply(None)
        << commands.SendData(outer, b"HELLO")
        >> events.DataReceived(outer, b"OK")
        << commands.SendData(outer, b"|hi")
        >> events.DataReceived(outer, b"|back")
    )
    assert child.answers == [None]
    assert isinstance(child.events[-1], events.DataReceived) and child.events[-1].data == b"back"
    assert repr(layer) == "Toy(open)"


def test_a_second_open_on_an_open_tunnel_is_answered_at_once():
    layer, child, outer = toy()
    assert (
        Playbook(layer)
        << commands.OpenConnection(outer)
        >> reply(None)
        << commands.SendData(outer, b"HELLO")
        >> events.DataReceived(outer, b"OK")
        << commands.SendData(outer, b"|hi")
        >> events.DataReceived(layer.context.client, b"again")
        << commands.SendData(outer, b"|hi")
    )
    assert child.answers == [None, None]


def test_outer_connection_fails_then_every_open_fails_without_a_new_attempt():
    layer, child, outer = toy()
    assert (
        Playbook(layer)
        << commands.OpenConnection(outer)
        >> reply("connection refused")
        >> events.DataReceived(layer.context.client, b"again")
    )
    assert child.answers == ["connection refused", "Connection closed."]
    assert layer.state == CLOSED


def test_refused_handshake_answers_the_waiting_open_with_the_error():
    layer, child, outer = toy()
    assert (
        Playbook(layer)
        << commands.OpenConnection(outer)
        >> reply(None)
        << commands.SendData(outer, b"HELLO")
        >> events.DataReceived(outer, b"NO")
    )
    assert child.answers == ["refused: b'NO'"]


def test_an_outer_connection_already_open_is_not_opened_again():
    layer, child, outer = toy(connected_outer=True)
    assert Playbook(layer) << commands.SendData(outer, b"HELLO") >> events.DataReceived(outer, b"OK") << (
        commands.SendData(outer, b"|hi")
    )
    assert child.answers == [None]


class TwoOpeners(Layer):
    """Two streams in one child (like HTTP/2): each asks for the server, neither blocks the other."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.answers: list[OpenAnswer] = []

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.Start):
            for _ in range(2):
                command = commands.OpenConnection(self.context.server)
                command.blocking = False  # the stream waits, the layer does not
                yield command
        elif isinstance(event, events.OpenConnectionCompleted):
            self.answers.append(OpenAnswer(event.command, event.reply))


class OpenAnswer:
    def __init__(self, command: commands.Command, err: str | None) -> None:
        self.command, self.err = command, err


def test_opens_that_arrive_while_establishing_are_all_answered_once():
    tctx = make_context()
    tctx.server = Server(address=("origin.test", 80))
    outer = Server(address=("tunnel.test", 3128))
    child = TwoOpeners(tctx)
    layer = Toy(tctx, outer, tctx.server, child)
    assert (
        Playbook(layer)
        << commands.OpenConnection(outer)
        >> reply(None)
        << commands.SendData(outer, b"HELLO")
        >> events.DataReceived(outer, b"OK")
    )
    assert [a.err for a in child.answers] == [None, None]
    assert child.answers[0].command is not child.answers[1].command
    assert layer.waiting == []


def test_establish_now_holds_the_childs_events_until_the_tunnel_is_up():
    class EagerToy(Toy):
        def _handle_event(self, event: events.Event) -> CommandGenerator:
            if isinstance(event, events.Start):
                yield from self.establish_now(event)
            elif self.held_events is not None and not (
                isinstance(event, events.ConnectionEvent) and event.connection is self.tunnel_conn
            ):
                self.held_events.append(event)
            else:
                yield from super()._handle_event(event)

    tctx = make_context()
    tctx.server = Server(address=("origin.test", 80))
    outer = tctx.server
    outer.state = ConnectionState.OPEN
    child = Opener(tctx)
    layer = EagerToy(tctx, outer, tctx.server, child)
    assert layer.state == INACTIVE
    assert (
        Playbook(layer)
        << commands.SendData(outer, b"HELLO")
        >> events.DataReceived(tctx.client, b"early")
        >> events.DataReceived(outer, b"OK")
        << commands.SendData(outer, b"|hi")
    )
    # The child started only after the handshake, and then saw the held client data.
    assert [type(e).__name__ for e in child.events] == ["Start", "DataReceived"]
    assert child.answers == [None]


def test_the_base_is_sans_io_like_the_layers_it_serves():
    import ast
    from pathlib import Path

    import proxycore.proxy.tunnel as tunnel

    tree = ast.parse(Path(tunnel.__file__).read_text())
    imported = {alias.name for n in ast.walk(tree) if isinstance(n, ast.Import) for alias in n.names}
    imported |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
    forbidden = ("asyncio", "socket", "selectors", "ssl", "threading", "proxycore.addons", "proxycore.api",
                 "proxycore.proxy.server", "proxycore.ctx")
    assert not [m for m in imported if m.startswith(forbidden)]


# Any order of opens, handshake answers, data and closes ----------------------------------


class ClosingToy(Toy):
    """The toy, plus: the outer connection closing while establishing fails the tunnel."""

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if (
            isinstance(event, events.ConnectionClosed)
            and event.connection is self.tunnel_conn
            and self.state == ESTABLISHING
        ):
            self.state = CLOSED
            yield from self.finish("closed while establishing")
        else:
            yield from super()._handle_event(event)


class ManyOpeners(Layer):
    """Opens ``context.server`` without blocking on every b"open" from the client."""

    def __init__(self, context) -> None:
        super().__init__(context)
        self.issued: list[commands.OpenConnection] = []
        self.answers: list[tuple[commands.Command, str | None]] = []

    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.DataReceived) and event.data == b"open":
            command = commands.OpenConnection(self.context.server)
            command.blocking = False
            self.issued.append(command)
            yield command
        elif isinstance(event, events.OpenConnectionCompleted):
            self.answers.append((event.command, event.reply))


STEPS = st.lists(
    st.sampled_from(["open", "OK", "NO", "|data", "outer-closed"]), max_size=12
)


@budget(200, deadline=None)
@given(steps=STEPS, outer_fails=st.booleans())
def test_every_open_is_answered_at_most_once_and_none_is_forgotten(steps: list[str], outer_fails: bool) -> None:
    tctx = make_context()
    tctx.server = Server(address=("origin.test", 80))
    outer = Server(address=("tunnel.test", 3128))
    child = ManyOpeners(tctx)
    layer = ClosingToy(tctx, outer, tctx.server, child)
    queue: list[events.Event] = [events.Start()]
    for step in steps:
        if step == "open":
            queue.append(events.DataReceived(tctx.client, b"open"))
        elif step == "outer-closed":
            queue.append(events.ConnectionClosed(outer))
        else:
            queue.append(events.DataReceived(outer, step.encode()))
    while queue:
        event = queue.pop(0)
        if isinstance(event, events.ConnectionClosed):
            event.connection.state &= ~ConnectionState.CAN_READ
        for command in layer.handle_event(event):
            if isinstance(command, commands.OpenConnection) and command.connection is outer:
                if outer_fails:
                    queue.insert(0, events.OpenConnectionCompleted(command, "refused"))
                else:
                    outer.state = ConnectionState.OPEN
                    queue.insert(0, events.OpenConnectionCompleted(command, None))
    answered = [command for command, _ in child.answers]
    assert len(answered) == len({id(c) for c in answered})  # nobody is answered twice
    assert {id(c) for c in answered} <= {id(c) for c in child.issued}
    if layer.state in (OPEN, CLOSED):
        # The tunnel's fate is known: every open the child issued has its answer.
        assert len(answered) == len(child.issued)
        assert layer.waiting == []
    else:
        assert len(answered) + len(layer.waiting) == len(child.issued)
    if layer.state == OPEN:
        assert all(err is None for _, err in child.answers)
