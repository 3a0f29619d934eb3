"""A head that came in goes on as the same event while it still says what a new one would
(issue 15): the same Request/Response object and the same end_stream. An addon that
replaces the message, or gives a bodiless one a body, gets a new head, as before.
Either way the driver sees the same commands as when every head is made anew.
"""

from __future__ import annotations

import collections
from collections.abc import Callable
from typing import Any

import pytest

from proxycore.http import Response
from proxycore.layers.http import HttpStream
from proxycore.layers.http._events import RequestHeaders, ResponseHeaders
from proxycore.proxy import commands, events
from tests.speed.test_layer_fast_paths import CONVERSATION, Driver


def _never_forwarded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every head a stream sends is a new event (what the stream did before)."""
    for name in ("request_head", "response_head"):
        monkeypatch.setattr(HttpStream, name, property(lambda self: None, lambda self, value: None))


def _replace_response(flow: Any) -> None:
    flow.response = Response.make(201, b"made by an addon", {"X-Addon": "1"})


def _give_get_a_body(flow: Any) -> None:
    if flow.request.method == "GET":
        flow.request.content = b"added"


def _drop_response_body(flow: Any) -> None:
    flow.response.content = b""


CHANGES: dict[str, tuple[str, Callable[[Any], None]] | None] = {
    "none": None,
    "response replaced": ("response", _replace_response),
    "body for a GET": ("request", _give_get_a_body),
    "response body dropped": ("response", _drop_response_body),
}


def _converse(change: tuple[str, Callable[[Any], None]] | None, instant_hooks: bool) -> list[Any]:
    class Changing(Driver):
        def record_hook(self, hook: commands.StartHook) -> None:
            if change is not None and hook.name == change[0]:
                change[1](hook.args()[0])
            super().record_hook(hook)

    driver = Changing(instant_hooks)
    for request, response in CONVERSATION:
        driver.feed(events.DataReceived(driver.context.client, request))
        assert driver.server is not None
        driver.feed(events.DataReceived(driver.server, response))
    return driver.trace


@pytest.mark.parametrize("instant_hooks", [True, False])
@pytest.mark.parametrize("change", list(CHANGES))
def test_forwarded_heads_give_the_commands_of_new_ones(monkeypatch: pytest.MonkeyPatch, change: str, instant_hooks: bool) -> None:
    forwarded = _converse(CHANGES[change], instant_hooks)
    with monkeypatch.context() as m:
        _never_forwarded(m)
        assert _converse(CHANGES[change], instant_hooks) == forwarded
    if change == "response replaced":
        assert any(t[0] == "send" and t[1] == "client" and b"made by an addon" in t[2] for t in forwarded)
    if change == "body for a GET":
        assert ("send", "server", b"added") in forwarded


def test_a_plain_exchange_makes_one_head_each_way(monkeypatch: pytest.MonkeyPatch) -> None:
    made: collections.Counter[str] = collections.Counter()
    for kind in (RequestHeaders, ResponseHeaders):
        init = kind.__init__

        def counted(self: Any, *args: Any, init: Any = init, name: str = kind.__name__) -> None:
            made[name] += 1
            init(self, *args)

        monkeypatch.setattr(kind, "__init__", counted)
    _converse(None, instant_hooks=True)
    # (per exchange the two heads the connection layers parsed, and no other)
    assert made == {"RequestHeaders": len(CONVERSATION), "ResponseHeaders": len(CONVERSATION)}
