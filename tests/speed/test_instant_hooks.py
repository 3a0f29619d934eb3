"""Hooks nobody listens to: the layer goes on at once instead of pausing (issue 15)."""

from __future__ import annotations

from proxycore.layers.http._hooks import HttpRequestHook
from proxycore.proxy import commands, events
from proxycore.proxy.layer import Layer
from proxycore.test import tflow
from proxycore.testing import make_context


class TwoHooks(Layer):
    """Runs a hook, logs, runs another hook, logs."""

    def _handle_event(self, event: events.Event):
        flow = tflow.tflow()
        yield HttpRequestHook(flow)
        yield commands.Log("after first")
        yield HttpRequestHook(flow)
        yield commands.Log("after second")


def test_without_listeners_the_layer_does_not_pause() -> None:
    context = make_context()
    asked: list[str] = []
    context.instant_hook = lambda hook: asked.append(hook.name) or True
    layer = TwoHooks(context)
    out = list(layer.handle_event(events.Start()))
    assert [type(c) for c in out] == [commands.Log, commands.Log]
    assert asked == ["request", "request"]
    assert layer._paused is None


def test_a_listened_hook_still_pauses_and_its_reply_resumes() -> None:
    context = make_context()
    context.instant_hook = lambda hook: False
    layer = TwoHooks(context)
    out = list(layer.handle_event(events.Start()))
    assert [type(c) for c in out] == [HttpRequestHook]
    assert layer._paused is not None
    out = list(layer.handle_event(events.HookCompleted(out[0])))
    assert [type(c) for c in out] == [commands.Log, HttpRequestHook]


def test_playbooks_see_every_hook() -> None:
    """Without a driver (Playbook tests, mitmproxy's included) nothing is answered early."""
    assert make_context().instant_hook is None
    assert make_context().instant_hook is make_context().fork().instant_hook
