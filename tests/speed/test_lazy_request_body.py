"""A stream makes the buffer of a request's body only for a request that has one (issue 15).

A GET (end_stream on its head) leaves ``HttpStream.request_body`` None and its flow gets
the empty content a buffer would have given; a body, announced or not, is buffered as before.
"""

from __future__ import annotations

from typing import Any

import pytest

from proxycore.layers.http import HttpStream
from proxycore.layers.http._body import BodyBuffer
from proxycore.proxy import events
from tests.speed.test_layer_fast_paths import GET, OK, POST, Driver


@pytest.mark.parametrize("instant_hooks", [True, False])
def test_a_get_makes_no_request_buffer_and_a_post_one(monkeypatch: pytest.MonkeyPatch, instant_hooks: bool) -> None:
    seen: list[tuple[str, bytes | None, bool]] = []
    finish = HttpStream.finish

    def finished(self: HttpStream, finish: Any = finish) -> None:
        seen.append((self.flow.request.method, self.flow.request.raw_content, self.request_body is None))
        finish(self)

    monkeypatch.setattr(HttpStream, "finish", finished)
    driver = Driver(instant_hooks)
    for request in (GET, POST, GET):
        driver.feed(events.DataReceived(driver.context.client, request))
        assert driver.server is not None
        driver.feed(events.DataReceived(driver.server, OK))
    assert seen == [("GET", b"", True), ("POST", b"hello", False), ("GET", b"", True)]
    assert ("send", "server", b"hello") in driver.trace


def test_a_body_its_head_did_not_announce_is_buffered() -> None:
    """Data for a request whose head said it ended (not HTTP/1, which cannot) is still
    buffered: the stream makes the buffer on the first chunk."""
    from proxycore.http import Request
    from proxycore.layers.http import HTTPMode
    from proxycore.layers.http._events import RequestData, RequestEndOfMessage, RequestHeaders
    from proxycore.testing import make_context

    context = make_context()
    context.instant_hook = lambda hook: True
    stream = HttpStream(context, 1, HTTPMode.regular)
    request = Request.make("GET", "http://example.com/")
    list(stream.handle_event(RequestHeaders(1, request, True)))
    assert stream.request_body is None
    list(stream.handle_event(RequestData(1, b"ab")))
    assert isinstance(stream.request_body, BodyBuffer)
    list(stream.handle_event(RequestEndOfMessage(1)))  # (then it asks for a connection)
    assert stream.flow.request.raw_content == b"ab"
