"""The driver answers a hook at once (``_instant_hook``) only when nothing has to wait for
it: no addon listens, or every handler returned, and no flow among the hook's arguments,
whichever field holds it, is intercepted (mitmproxy waits for the resume after every hook)."""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.connection import Client, ConnectionState
from proxycore.flow import Flow
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import commands
from proxycore.proxy.server import ConnectionHandler
from proxycore.test.tflow import tflow


@commands.hook_dataclass
class TwoArgsHook(commands.StartHook):
    """A hook whose flow is its second argument."""

    name = "two_args_for_test"
    data: Any
    flow: Flow


@commands.hook_dataclass
class OneArgHook(commands.StartHook):
    name = "one_arg_for_test"
    flow: Flow


class Listener:
    def __init__(self) -> None:
        self.seen: list[str] = []

    def two_args_for_test(self, data: Any, flow: Flow) -> None:
        self.seen.append("two")

    def one_arg_for_test(self, flow: Flow) -> None:
        self.seen.append("one")


def handler(*addons: Any) -> ConnectionHandler:
    master = Master(Options())
    master.addons.add(*addons)
    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
    return ConnectionHandler(master, client, lambda context: None)  # type: ignore[arg-type,return-value]


@pytest.mark.parametrize("make", [lambda f: OneArgHook(f), lambda f: TwoArgsHook("x", f)])
def test_an_intercepted_flow_makes_a_hook_nobody_listens_to_wait(make: Any) -> None:
    connection_handler = handler()
    flow = tflow()
    assert connection_handler._instant_hook(make(flow)) is True
    flow.intercept()
    assert connection_handler._instant_hook(make(flow)) is False
    assert connection_handler._hook_is_trivial(make(flow)) is False  # _execute gives it a task
    flow.resume()
    assert connection_handler._instant_hook(make(flow)) is True


@pytest.mark.parametrize("make", [lambda f: OneArgHook(f), lambda f: TwoArgsHook("x", f)])
def test_plain_handlers_run_at_once(make: Any) -> None:
    listener = Listener()
    assert handler(listener)._instant_hook(make(tflow())) is True
    assert listener.seen == ["one" if isinstance(make(tflow()), OneArgHook) else "two"]


def test_a_hook_without_a_flow_is_instant() -> None:
    assert handler()._instant_hook(TwoArgsHook("x", "not a flow")) is True  # type: ignore[arg-type]


def test_an_addon_added_later_hears_hooks_the_index_had_as_unheard() -> None:
    """The driver reads the addon manager's hook index directly: an addon added after a
    hook went unheard (an index entry of no handlers) must still get the next one."""
    connection_handler = handler()
    flow = tflow()
    assert connection_handler._instant_hook(OneArgHook(flow)) is True
    assert connection_handler.master.addons.hook_index["one_arg_for_test"] == []
    listener = Listener()
    connection_handler.master.addons.add(listener)
    assert connection_handler._instant_hook(OneArgHook(flow)) is True  # ran at once
    assert listener.seen == ["one"]


class Gated:
    """Listens to both test hooks behind gates that say yes for flows marked "mine"."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.asked = 0

        def one_arg_for_test(flow: Flow) -> None:
            self.seen.append("one")

        def two_args_for_test(data: Any, flow: Flow) -> None:
            self.seen.append("two")

        one_arg_for_test.gate = self._mine  # type: ignore[attr-defined]
        two_args_for_test.gate = lambda data, flow: self._mine(flow)  # type: ignore[attr-defined]
        self.one_arg_for_test = one_arg_for_test
        self.two_args_for_test = two_args_for_test

    def _mine(self, flow: Flow) -> bool:
        self.asked += 1
        return flow.comment == "mine"


@pytest.mark.parametrize("make", [lambda f: OneArgHook(f), lambda f: TwoArgsHook("x", f)])
def test_gated_handlers_run_only_when_their_gate_says_so(make: Any) -> None:
    """The driver's memo per hook class (AddonManager.hook_plan) keeps each handler's gate:
    a gate that says no answers the hook at once without the handler, unless the flow is
    intercepted; one that says yes runs the handler."""
    gated = Gated()
    connection_handler = handler(gated)
    flow = tflow()
    assert connection_handler._instant_hook(make(flow)) is True
    assert gated.seen == [] and gated.asked == 1
    flow.intercept()
    assert connection_handler._instant_hook(make(flow)) is False
    flow.resume()
    flow.comment = "mine"
    assert connection_handler._instant_hook(make(flow)) is True
    assert gated.seen == ["one" if isinstance(make(flow), OneArgHook) else "two"]


def test_an_ungated_handler_beside_a_gated_one_always_runs() -> None:
    """Then every handler runs (a gate is only a shortcut: its handler checks again, as
    onboarding's does)."""
    gated, listener = Gated(), Listener()
    connection_handler = handler(gated, listener)
    assert connection_handler._instant_hook(OneArgHook(tflow())) is True
    assert listener.seen == ["one"]
    assert connection_handler.master.addons.hook_plans[OneArgHook] == ("flow", None)


def test_the_hook_memo_follows_the_chain_and_the_options() -> None:
    """The memo is emptied in place whenever the index is (chain changed, configure ran), so
    the driver's reference to it stays the addon manager's."""
    connection_handler = handler()
    addons = connection_handler.master.addons
    flow = tflow()
    assert connection_handler._instant_hook(OneArgHook(flow)) is True
    assert addons.hook_plans[OneArgHook] == ("flow", ())
    assert addons.hook_plans[OneArgHook] is addons.hook_plan(OneArgHook)  # kept
    gated = Gated()
    addons.add(gated)
    assert connection_handler._hook_plans is addons.hook_plans
    flow.comment = "mine"
    assert connection_handler._instant_hook(OneArgHook(flow)) is True
    assert gated.seen == ["one"]
    addons.remove(gated)
    assert connection_handler._instant_hook(OneArgHook(flow)) is True
    assert gated.seen == ["one"]
    listener = Listener()
    addons.add(listener)
    connection_handler.master.options.update(anticache=True)  # any change: configure runs
    assert OneArgHook not in addons.hook_plans
    assert connection_handler._instant_hook(OneArgHook(flow)) is True
    assert listener.seen == ["one"]


def test_watched_hooks_of_a_subclass_are_never_instant() -> None:
    """A subclass's class value and one a subclass sets before ``__init__`` (as client
    replay does) both count; other hooks stay instant."""

    class ByClass(ConnectionHandler):
        watched_hooks = (OneArgHook,)

    class BeforeInit(ConnectionHandler):
        def __init__(self, *args: Any) -> None:
            self.watched_hooks = (OneArgHook,)
            super().__init__(*args)

    client = Client(peername=("127.0.0.1", 1), sockname=("127.0.0.1", 2), state=ConnectionState.OPEN)
    for cls in (ByClass, BeforeInit):
        watching = cls(Master(Options()), client, lambda context: None)  # type: ignore[arg-type,return-value]
        assert watching._instant_hook(OneArgHook(tflow())) is False
        assert watching._instant_hook(TwoArgsHook("x", tflow())) is True
    assert handler()._instant_hook(OneArgHook(tflow())) is True
