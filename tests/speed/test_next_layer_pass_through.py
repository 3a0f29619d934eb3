"""Once its layer is chosen, a NextLayer hands events to it without a call of its own
(issue 15): the chosen layer's ``handle_event`` stands in for the NextLayer's on the
instance. These check that events go where ``NextLayer.handle_event`` sent them before:
queued while the next_layer hook is pending, to the chosen layer after its reply, and to a
layer set later (``layer`` assigned again) from then on."""

from __future__ import annotations

from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer, NextLayer, NextLayerHook
from proxycore.testing import make_context


class Recorder(Layer):
    """Sends back, as one SendData, the name it was given and what it read."""

    def __init__(self, context: Context, name: bytes) -> None:
        super().__init__(context)
        self.name = name

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            yield commands.SendData(event.connection, self.name + event.data)


def sent(commands_: list[commands.Command]) -> list[bytes]:
    return [c.data for c in commands_ if isinstance(c, commands.SendData)]


def test_events_reach_the_chosen_layer_then_a_layer_set_later() -> None:
    context = make_context()
    next_layer = NextLayer(context)
    client = context.client
    assert list(next_layer.handle_event(events.Start())) == []
    issued = list(next_layer.handle_event(events.DataReceived(client, b"1")))
    assert len(issued) == 1 and isinstance(issued[0], NextLayerHook)
    hook = issued[0]
    # While the hook is pending, events wait (the decision may still change).
    assert list(next_layer.handle_event(events.DataReceived(client, b"2"))) == []
    hook.data.layer = Recorder(context, b"a:")
    replayed = list(next_layer.handle_event(events.HookCompleted(hook)))
    assert sent(replayed) == [b"a:1", b"a:2"]
    assert sent(list(next_layer.handle_event(events.DataReceived(client, b"3")))) == [b"a:3"]
    assert sent(list(next_layer.handle_event(events.DataReceived(client, b"4")))) == [b"a:4"]
    # A layer set afterwards (as tests and addons may) takes the events from then on.
    next_layer.layer = Recorder(context, b"b:")
    assert sent(list(next_layer.handle_event(events.DataReceived(client, b"5")))) == [b"b:5"]
    assert sent(list(next_layer.handle_event(events.DataReceived(client, b"6")))) == [b"b:6"]
    assert repr(next_layer) == "NextLayer:Recorder"


def test_no_decision_keeps_asking() -> None:
    """An addon that leaves ``layer`` None: each new chunk asks the hook again, as before."""
    context = make_context()
    next_layer = NextLayer(context)
    client = context.client
    for data in (b"1", b"2"):
        issued = list(next_layer.handle_event(events.DataReceived(client, data)))
        assert len(issued) == 1 and isinstance(issued[0], NextLayerHook)
        assert list(next_layer.handle_event(events.HookCompleted(issued[0]))) == []
    assert next_layer.layer is None
    assert next_layer.data_client() == b"12"
