"""HTTP events are Events only, never Commands, as in mitmproxy.

mitmproxy's layer-test harness (and so every user's layer test through the ``mitmproxy``
alias) files an entry of a playbook as "expected from the layer" when it is a Command and
as "fed to the layer" otherwise. An HTTP event that were a Command too would never be fed:
``>> ResponseHeaders(...)`` would wait for the layer to yield it (test_http1 of mitmproxy
passed 0 of 12 so). Our streams still yield the bare events they send, but only to the
HttpLayer, which routes them (proxycore.layers.http._commands.HttpGenerator).
"""

from __future__ import annotations

import inspect

import pytest

import proxycore.layers.http as http_layers
from proxycore.connection import Server
from proxycore.http import Response
from proxycore.layers.http import _events
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._http1 import Http1Server
from proxycore.proxy import commands, events
from proxycore.proxy.commands import Command
from proxycore.testing import Placeholder, Playbook, make_context, reply


def _event_classes() -> list[type]:
    found = {
        obj
        for module in (http_layers, _events)
        for _, obj in inspect.getmembers(module, inspect.isclass)
        if issubclass(obj, events.Event)
    }
    return sorted(found, key=lambda cls: cls.__qualname__)


def test_the_event_classes_are_found():
    names = {cls.__name__ for cls in _event_classes()}
    assert {"HttpEvent", "RequestHeaders", "ResponseHeaders", "ResponseEndOfMessage", "BodyBackpressure"} <= names


@pytest.mark.parametrize("cls", _event_classes(), ids=lambda cls: cls.__name__)
def test_http_event_is_no_command(cls):
    assert not issubclass(cls, Command)


def _classified_as_mitmproxy_does(entry: object) -> str:
    """Which side of a playbook mitmproxy's harness puts ``entry`` on."""
    return "expected" if isinstance(entry, commands.Command) else "fed"


def test_response_headers_are_fed_to_http1_server():
    """mitmproxy's test_http1 TestServer.test_simple, in our words: the answer's head and end
    are fed to the client's HTTP/1 layer, which writes the head out."""
    tctx = make_context()
    head = _events.ResponseHeaders(1, Response.make(200))
    end = _events.ResponseEndOfMessage(1)
    assert _classified_as_mitmproxy_does(head) == "fed"
    assert _classified_as_mitmproxy_does(end) == "fed"
    request = Placeholder(_events.RequestHeaders)
    playbook = Playbook(Http1Server(tctx))
    assert (
        playbook
        >> events.DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\r\nHost: example.com\r\n\r\n")
        << ReceiveHttp(request)
        << ReceiveHttp(_events.RequestEndOfMessage(1))
        >> head
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        >> end
    )
    assert request().request.url == "http://example.com/"


def test_the_http_layer_yields_no_event():
    """The bare events the streams and HTTP/1 layers yield stay inside the HttpLayer: a whole
    request through it (its hooks waited for and answered, so the general path runs too) yields commands only."""
    tctx = make_context()
    server = Placeholder(Server)
    playbook = Playbook(http_layers.HttpLayer(tctx, http_layers.HTTPMode.regular), hooks=False)
    assert (
        playbook
        >> events.DataReceived(tctx.client, b"POST http://example.com/ HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi")
        << commands.OpenConnection(server)
        >> reply(None)
        << commands.SendData(server, b"POST / HTTP/1.1\r\nHost: example.com\r\nContent-Length: 2\r\n\r\nhi")
        >> events.DataReceived(server, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        << commands.SendData(tctx.client, b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    )
    assert any(isinstance(command, commands.StartHook) for command in playbook.issued)  # (answered by the Playbook)
    assert all(isinstance(command, Command) and not isinstance(command, events.Event) for command in playbook.issued)
