"""HttpProxy hands an event to the layer its NextLayer chose without the NextLayer's
handle_event call (issue 15: one call less per DataReceived), by the NextLayer's own rule
read inline: only once a layer is chosen and the NextLayer waits for nothing; a layer
chosen anew later gets the events from then on."""

from __future__ import annotations

import pytest

from proxycore.layers.modes import HttpProxy
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer, NextLayer
from proxycore.testing import make_context


class Recorder(Layer):
    def __init__(self, context, name: str) -> None:  # type: ignore[no-untyped-def]  # (a test stub)
        super().__init__(context)
        self.name = name

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        yield commands.Log(f"{self.name} {type(event).__name__}")


def _logged(layer: Layer, event: events.Event) -> list[str]:
    return [c.message for c in layer.handle_event(event) if isinstance(c, commands.Log)]


def _asked_of_next_layer(monkeypatch: pytest.MonkeyPatch) -> list[events.Event]:
    """The events NextLayer.handle_event is called with from now on."""
    asked: list[events.Event] = []
    original = NextLayer.handle_event

    def handle_event(self: NextLayer, event: events.Event) -> CommandGenerator[None]:
        asked.append(event)
        return original(self, event)

    monkeypatch.setattr(NextLayer, "handle_event", handle_event)
    return asked


def test_a_chosen_layer_gets_the_events_without_the_next_layer(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = HttpProxy(make_context())
    client = proxy.context.client
    first, second = Recorder(proxy.context, "first"), Recorder(proxy.context, "second")
    proxy.child_layer.layer = first
    asked = _asked_of_next_layer(monkeypatch)
    assert _logged(proxy, events.DataReceived(client, b"a")) == ["first DataReceived"]
    proxy.child_layer.layer = second
    assert _logged(proxy, events.DataReceived(client, b"b")) == ["second DataReceived"]
    assert asked == []  # (passed by, while nothing was paused)


def test_undecided_or_paused_next_layers_still_handle_the_event(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    proxy = HttpProxy(make_context())
    client = proxy.context.client
    asked = _asked_of_next_layer(monkeypatch)
    undecided = events.DataReceived(client, b"a")
    hooks = list(proxy.handle_event(undecided))
    assert asked == [undecided] and hooks and isinstance(hooks[0], commands.StartHook)
    proxy.child_layer.layer = Recorder(proxy.context, "chosen")
    assert proxy.child_layer._paused is not None  # (waits for its next_layer hook)
    waiting = events.DataReceived(client, b"b")
    list(proxy.handle_event(waiting))
    assert asked == [undecided, waiting]
