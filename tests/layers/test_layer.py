"""The Layer base: blocking commands pause only the issuing layer, replies match by identity."""

from proxycore.connection import Client, ConnectionState
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import Layer, NextLayer, NextLayerHook
from proxycore.testing import Playbook, reply


@hook_dataclass
class ProbeHook(StartHook):
    name = "probe"
    data: object


def make_context() -> Context:
    return Context(Client(peername=("1.2.3.4", 1), state=ConnectionState.OPEN), options=None)


class AskingLayer(Layer):
    """For every chunk: ask a hook, then echo the chunk with the reply's marker."""

    def _handle_event(self, event):
        if isinstance(event, events.DataReceived):
            yield ProbeHook(event.data)
            yield commands.SendData(self.context.client, b"echo:" + event.data)


def test_blocking_command_queues_later_events():
    ctx = make_context()
    assert (
        Playbook(AskingLayer(ctx))
        >> events.DataReceived(ctx.client, b"a")
        << ProbeHook(b"a")
        >> events.DataReceived(ctx.client, b"b")  # queued: the layer is paused
        >> reply(to=-1)
        << commands.SendData(ctx.client, b"echo:a")
        << ProbeHook(b"b")
    )


def test_reply_to_other_command_is_queued_not_resuming():
    ctx = make_context()
    layer = AskingLayer(ctx)
    list(layer.handle_event(events.Start()))
    cmds = list(layer.handle_event(events.DataReceived(ctx.client, b"x")))
    assert len(cmds) == 1 and isinstance(cmds[0], ProbeHook)
    # A completion for a different (equal-looking) command must not resume the layer.
    stranger = ProbeHook(b"x")
    assert list(layer.handle_event(events.HookCompleted(stranger))) == []
    out = list(layer.handle_event(events.HookCompleted(cmds[0])))
    # The stranger was queued meanwhile and is replayed into the layer, which ignores it.
    assert [type(c) for c in out] == [commands.SendData]
    assert out[0].data == b"echo:x"


def test_blocking_is_rewritten_to_the_issuing_layer():
    ctx = make_context()
    layer = AskingLayer(ctx)
    list(layer.handle_event(events.Start()))
    (hook,) = layer.handle_event(events.DataReceived(ctx.client, b"x"))
    assert hook.blocking is layer


class Parent(Layer):
    """Passes everything to its child; must never pause itself."""

    def __init__(self, context):
        super().__init__(context)
        self.child = AskingLayer(context)

    def _handle_event(self, event):
        yield from self.child.handle_event(event)


def test_parent_does_not_pause_on_child_blocking():
    ctx = make_context()
    parent = Parent(ctx)
    list(parent.handle_event(events.Start()))
    (hook,) = parent.handle_event(events.DataReceived(ctx.client, b"1"))
    assert parent._paused is None and parent.child._paused is not None
    out = list(parent.handle_event(events.HookCompleted(hook)))
    assert out[0].data == b"echo:1"


def test_next_layer_buffers_until_decided():
    ctx = make_context()
    nl = NextLayer(ctx)
    decided = []

    def decide(data: NextLayer) -> None:
        data.layer = AskingLayer(data.context)
        decided.append(data.layer)

    assert (
        Playbook(nl)
        >> events.DataReceived(ctx.client, b"hello")
        << NextLayerHook(nl)
        >> events.DataReceived(ctx.client, b"more")  # arrives while the hook is pending
        >> reply(side_effect=decide)
        << ProbeHook(b"hello")
    )
    assert nl.data_client() == b""  # replayed into the chosen layer
    assert decided and nl.layer is decided[0]


def test_next_layer_undecided_waits_for_more_data():
    ctx = make_context()
    nl = NextLayer(ctx)
    assert (
        Playbook(nl)
        >> events.DataReceived(ctx.client, b"G")
        << NextLayerHook(nl)
        >> reply()
        >> events.DataReceived(ctx.client, b"ET")
        << NextLayerHook(nl)
    )
    assert nl.data_client() == b"GET"


def test_next_layer_client_closes_before_decision():
    ctx = make_context()
    nl = NextLayer(ctx)
    assert (
        Playbook(nl)
        >> events.ConnectionClosed(ctx.client)
        << commands.CloseConnection(ctx.client)
    )


def test_events_queued_while_paused_go_on_in_order_and_a_layer_that_never_paused_has_no_queue():
    """The queue is made by the first event that must wait (a layer per request that never
    waits makes none); every event queued after it is handled in order."""
    ctx = make_context()
    layer = AskingLayer(ctx)
    assert layer._paused_event_queue == ()
    (hook_a,) = layer.handle_event(events.DataReceived(ctx.client, b"a"))
    assert list(layer.handle_event(events.DataReceived(ctx.client, b"b"))) == []
    assert list(layer.handle_event(events.DataReceived(ctx.client, b"c"))) == []
    assert len(layer._paused_event_queue) == 2
    out = list(layer.handle_event(events.HookCompleted(hook_a)))
    assert [c.data for c in out] == [b"echo:a", b"b"]  # then b's hook pauses again, c still waits
    out = list(layer.handle_event(events.HookCompleted(out[1])))
    assert [c.data for c in out] == [b"echo:b", b"c"]
    out = list(layer.handle_event(events.HookCompleted(out[1])))
    assert [c.data for c in out] == [b"echo:c"] and not layer._paused_event_queue
