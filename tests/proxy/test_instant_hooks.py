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
