"""Context.fork: a child's context shares the client, options, server and instant_hook of
its parent and has a list of layers of its own (made with a slice and object.__new__ since
issue 15's round 4: once per HTTP request)."""

from __future__ import annotations

from proxycore.connection import Server
from proxycore.proxy.context import Context
from proxycore.testing import make_context


def test_a_fork_shares_all_but_its_layers() -> None:
    context = make_context()
    context.instant_hook = lambda hook: True
    context.layers.append("outer")  # type: ignore[arg-type]  # (any object will do here)
    forked = context.fork()
    assert type(forked) is Context
    assert forked.client is context.client and forked.options is context.options
    assert forked.server is context.server and forked.instant_hook is context.instant_hook
    assert forked.layers == ["outer"] and forked.layers is not context.layers
    forked.layers.append("inner")  # type: ignore[arg-type]
    forked.server = Server(address=("example.com", 80))
    assert context.layers == ["outer"] and context.server is not forked.server
