"""The HTTP/1 fast paths of the layer stack issue the same commands as the general path (issue 15).

HttpLayer, HttpClient (once open) and the HTTP/1 connection layers hand their generators up
without Layer's ``_run`` wrapper, because they never pause themselves; a stream that can reuse
an open connection takes it without the GetHttpConnection round trip.  Here one scripted
conversation runs twice, once as shipped and once with every such shortcut replaced by
``Layer.handle_event``; the commands that reach the driver, and the flows the hooks saw,
must be the same.  The HttpLayer also runs a stream's handlers itself, without ``_run``
(``HttpStream.unwrapped``), pausing the stream for a blocking command as ``_run`` would.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.connection import ConnectionState, Server
from proxycore.layers.http import HttpClient, HttpLayer, HTTPMode, HttpStream
from proxycore.layers.http._http1 import Http1Connection
from proxycore.layers.modes import HttpProxy
from proxycore.proxy import commands, events
from proxycore.proxy.layer import Layer, NextLayerHook
from proxycore.testing import make_context
from tests.hypothesis_budget import budget

GET = b"GET http://example.com/a HTTP/1.1\r\nHost: example.com\r\n\r\n"
POST = b"POST http://example.com/b HTTP/1.1\r\nHost: example.com\r\nContent-Length: 5\r\n\r\nhello"
CHUNKED_POST = (
    b"POST http://example.com/c HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"3\r\nabc\r\n0\r\n\r\n"
)
CLOSE_GET = b"GET http://example.com/d HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n"
OK = b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc"
CHUNKED_OK = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nwxyz\r\n0\r\n\r\n"
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"

# (what the client sends, what the server answers), one exchange after the other.
CONVERSATION = [(GET, OK), (POST, CHUNKED_OK), (CHUNKED_POST, NOT_FOUND), (GET, OK), (CLOSE_GET, OK)]

SHORTCUTS = [(HttpLayer, "handle_event"), (HttpClient, "handle_event"), (Http1Connection, "handle_event")]


class Driver:
    """Feeds the stack as the real driver does (one event queue, replies queued after the
    commands that caused them) and records what reaches it, with connections by role."""

    def __init__(self, instant_hooks: bool) -> None:
        self.context = make_context()
        self.context.client.state = ConnectionState.OPEN
        if instant_hooks:
            self.context.instant_hook = self.instant_hook
        self.layer = HttpProxy(self.context)
        self.queue: collections.deque[events.Event] = collections.deque()
        self.trace: list[Any] = []
        self.server: Server | None = None
        self.feed(events.Start())

    def instant_hook(self, hook: commands.StartHook) -> bool:
        """As the driver when no addon listens: every hook but next_layer is done at once."""
        if isinstance(hook, NextLayerHook):
            return False
        self.record_hook(hook)
        return True

    def record_hook(self, hook: commands.StartHook) -> None:
        flow = hook.args()[0]
        request, response = flow.request, flow.response
        self.trace.append((
            hook.name,
            request.method,
            request.url,
            request.raw_content,
            None if response is None else (response.status_code, response.raw_content),
            flow.error and flow.error.msg,
        ))

    def role(self, connection: object) -> str:
        return "client" if connection is self.context.client else "server"

    def feed(self, event: events.Event) -> None:
        self.queue.append(event)
        while self.queue:
            for command in self.layer.handle_event(self.queue.popleft()):
                self.execute(command)

    def execute(self, command: commands.Command) -> None:
        if isinstance(command, commands.SendData):
            self.trace.append(("send", self.role(command.connection), command.data))
        elif isinstance(command, NextLayerHook):
            command.data.layer = HttpLayer(command.data.context, HTTPMode.regular)
            self.queue.append(events.HookCompleted(command))
        elif isinstance(command, commands.StartHook):
            self.record_hook(command)
            self.queue.append(events.HookCompleted(command))
        elif isinstance(command, commands.OpenConnection):
            self.trace.append(("open", command.connection.address))
            command.connection.state = ConnectionState.OPEN
            self.server = command.connection
            self.queue.append(events.OpenConnectionCompleted(command, None))
        elif isinstance(command, commands.CloseConnection):
            self.trace.append(("close", self.role(command.connection), command.half_close))
        elif isinstance(command, commands.Log):
            self.trace.append(("log", command.message))
        else:
            self.trace.append((type(command).__name__,))


def _pieces(data: bytes, cuts: list[int]) -> Iterator[bytes]:
    """``data`` split at the given offsets (taken modulo its length)."""
    points = sorted({c % len(data) for c in cuts} - {0})
    start = 0
    for point in [*points, len(data)]:
        yield data[start:point]
        start = point


def converse(instant_hooks: bool, cuts: list[int] = ()) -> list[Any]:  # type: ignore[assignment]
    driver = Driver(instant_hooks)
    for request, response in CONVERSATION:
        for piece in _pieces(request, list(cuts)):
            driver.feed(events.DataReceived(driver.context.client, piece))
        assert driver.server is not None
        for piece in _pieces(response, list(cuts)):
            driver.feed(events.DataReceived(driver.server, piece))
    return driver.trace


def general_path(monkeypatch: pytest.MonkeyPatch) -> None:
    for cls, name in SHORTCUTS:
        monkeypatch.setattr(cls, name, Layer.handle_event)
    # A stream asks for its connection with GetHttpConnection and waits for the reply.
    monkeypatch.setattr(HttpLayer, "reusable_connection", lambda self, *spec: None)
    # Every stream handler runs inside Layer._run.
    monkeypatch.setattr(HttpStream, "unwrapped", False)


@pytest.mark.parametrize("instant_hooks", [True, False])
def test_fast_and_general_path_issue_the_same_commands(monkeypatch: pytest.MonkeyPatch, instant_hooks: bool) -> None:
    fast = converse(instant_hooks)
    assert ("send", "client", b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n") in fast
    assert [t[0] for t in fast].count("response") == len(CONVERSATION)
    assert [t for t in fast if t[0] == "open"] == [("open", ("example.com", 80))]  # kept alive
    assert fast[-1] == ("close", "client", False)
    with monkeypatch.context() as m:
        general_path(m)
        general = converse(instant_hooks)
    assert fast == general


@budget(30, deadline=None)
@given(instant_hooks=st.booleans(), cuts=st.lists(st.integers(min_value=1, max_value=200), max_size=4))
def test_fast_and_general_path_agree_however_the_bytes_arrive(instant_hooks: bool, cuts: list[int]) -> None:
    fast = converse(instant_hooks, cuts)
    with pytest.MonkeyPatch.context() as m:
        general_path(m)
        general = converse(instant_hooks, cuts)
    assert fast == general


def test_stream_handlers_run_without_layer_run(monkeypatch: pytest.MonkeyPatch) -> None:
    """With instant hooks a keep-alive conversation wraps a stream's handler in _run only to
    resume the first request after its connection opened; on the general path every
    stream event goes through it."""
    wrapped: list[str] = []
    run = Layer._run

    def counting_run(self: Layer, generator: Any, send: Any) -> Any:
        wrapped.append(type(self).__name__)
        return run(self, generator, send)

    monkeypatch.setattr(Layer, "_run", counting_run)
    converse(instant_hooks=True)
    assert wrapped.count("HttpStream") == 1  # the reply to the first GetHttpConnection
    wrapped.clear()
    with monkeypatch.context() as m:
        general_path(m)
        converse(instant_hooks=True)
    assert wrapped.count("HttpStream") > 3 * len(CONVERSATION)


def _held_hooks_conversation() -> tuple[list[Any], list[tuple[str, bool, int]]]:
    """A POST whose hooks are answered only after more bytes came: the body arrives while
    the stream waits for its requestheaders hook, the response while it waits for its
    responseheaders hook. Returns the trace and, at each held hook, (hook, whether the
    stream is paused on it, how many events it has queued)."""
    driver = Driver(instant_hooks=False)
    held: list[commands.StartHook] = []
    execute = driver.execute

    def holding_execute(command: commands.Command) -> None:
        if isinstance(command, commands.StartHook) and not isinstance(command, NextLayerHook):
            driver.record_hook(command)
            held.append(command)
        else:
            execute(command)

    driver.execute = holding_execute  # type: ignore[method-assign]
    states: list[tuple[str, bool, int]] = []

    def note() -> None:
        http_layer = driver.layer.child_layer.layer
        assert isinstance(http_layer, HttpLayer)
        stream = http_layer.streams[1]
        paused = stream._paused is not None and stream._paused.command is held[0]
        states.append((held[0].name, paused, len(stream._paused_event_queue)))

    def release() -> None:
        while held:
            hook = held.pop(0)
            driver.feed(events.HookCompleted(hook))

    head, body = POST.split(b"\r\n\r\n")
    client = driver.context.client
    driver.feed(events.DataReceived(client, head + b"\r\n\r\n"))
    assert [h.name for h in held] == ["requestheaders"]
    driver.feed(events.DataReceived(client, body))  # queued: the stream waits for its hook
    note()
    release()  # requestheaders, then the request hook, then the request goes out
    assert driver.server is not None
    head, body = OK.split(b"\r\n\r\n")
    driver.feed(events.DataReceived(driver.server, head + b"\r\n\r\n"))
    assert [h.name for h in held] == ["responseheaders"]
    driver.feed(events.DataReceived(driver.server, body))
    note()
    release()
    return driver.trace, states


def test_an_unwrapped_stream_pauses_for_a_hook_as_run_does(monkeypatch: pytest.MonkeyPatch) -> None:
    fast, fast_states = _held_hooks_conversation()
    assert fast_states == [("requestheaders", True, 2), ("responseheaders", True, 2)]  # data + end
    assert ("send", "client", b"abc") in fast
    assert [t[0] for t in fast if t[0] != "send"] == [
        "requestheaders", "request", "open", "responseheaders", "response"
    ]
    with monkeypatch.context() as m:
        general_path(m)
        general, general_states = _held_hooks_conversation()
    assert (fast, fast_states) == (general, general_states)


@pytest.mark.parametrize("state", ["idle", "busy", "waiting"])
@pytest.mark.parametrize(
    "spec",
    [
        (("example.com", 80), False, None, "tcp"),
        (("example.com", 81), False, None, "tcp"),
        (("example.org", 80), False, None, "tcp"),
        (("example.com", 80), True, None, "tcp"),
        (("example.com", 80), False, ("http", ("proxy", 3128)), "tcp"),
        (("example.com", 80), False, None, "udp"),
    ],
)
def test_reusable_connection_agrees_with_get_connection(state: str, spec: tuple[Any, ...]) -> None:
    """HttpLayer.reusable_connection (the stream's shortcut) names a connection exactly when
    get_connection would reply with it at once: same address, TLS, via and transport, free."""
    from proxycore.layers.http._commands import GetHttpConnection

    driver = Driver(instant_hooks=True)
    driver.feed(events.DataReceived(driver.context.client, GET))
    assert driver.server is not None
    driver.feed(events.DataReceived(driver.server, OK))
    http_layer = driver.layer.child_layer.layer
    assert isinstance(http_layer, HttpLayer)
    if state == "busy":
        driver.feed(events.DataReceived(driver.context.client, GET))  # waits for its response
    elif state == "waiting":
        http_layer.waiting_for_connection[driver.server] = []
    existing = http_layer._existing_connection(GetHttpConnection(*spec))
    reusable = http_layer.reusable_connection(*spec)
    assert reusable == (existing[0] if existing is not None and existing[1] else None)
    assert (reusable is not None) == (state == "idle" and spec == (("example.com", 80), False, None, "tcp"))


@pytest.mark.parametrize("general", [False, True])
@pytest.mark.parametrize("waits_for", [(), ("requestheaders", "responseheaders"), ("request", "response"), "all"])
def test_each_hook_is_asked_once_whether_instant_or_not(
    monkeypatch: pytest.MonkeyPatch, waits_for: Any, general: bool
) -> None:
    """The streams ask context.instant_hook themselves for the requestheaders and
    responseheaders hooks (and the HttpLayer or Layer._run for the others): a hook that is
    not done at once was started by the driver then, so it must never be asked again; the
    stream waits for its reply instead (through Layer._run too, on the general path).
    Every hook is asked exactly once, and the conversation is the same whichever hooks wait."""
    asked: list[commands.StartHook] = []
    expected = converse(instant_hooks=True)
    if general:
        general_path(monkeypatch)

    def conversation() -> list[Any]:
        driver = Driver(instant_hooks=True)

        def instant_hook(hook: commands.StartHook) -> bool:
            if isinstance(hook, NextLayerHook):
                return False
            asked.append(hook)
            if waits_for == "all" or hook.name in waits_for:
                return False  # the driver's reply (HookCompleted) answers it
            driver.record_hook(hook)
            return True

        driver.context.instant_hook = instant_hook
        for request, response in CONVERSATION:
            driver.feed(events.DataReceived(driver.context.client, request))
            assert driver.server is not None
            driver.feed(events.DataReceived(driver.server, response))
        return driver.trace

    trace = conversation()
    assert len(asked) == len({id(h) for h in asked}) == 4 * len(CONVERSATION)
    assert trace == expected


def test_stream_events_known_by_type_are_no_request_heads_or_backpressure() -> None:
    """_routed hands an event of these exact types to its stream without the isinstance
    check that keeps RequestHeaders and BodyBackpressure (and their subclasses) away."""
    from proxycore.layers.http import _STREAM_EVENTS
    from proxycore.layers.http._events import BodyBackpressure, RequestHeaders

    assert _STREAM_EVENTS
    assert not any(issubclass(kind, (RequestHeaders, BodyBackpressure)) for kind in _STREAM_EVENTS)


def test_run_pauses_on_a_hook_the_layer_asked_about_itself() -> None:
    """A hook carrying the layer that yields it (HttpStream._asked: it asked
    context.instant_hook itself) pauses that layer in Layer._run without being asked again;
    events that come meanwhile wait for the reply."""
    asked: list[commands.StartHook] = []

    class Asking(Layer):
        def _handle_event(self, event: events.Event) -> Any:
            if isinstance(event, events.Start):
                hook = NextLayerHook(self)  # type: ignore[arg-type]
                hook.blocking = self  # type: ignore[assignment]
                yield hook
            yield commands.Log(f"after {type(event).__name__}")

    context = make_context()
    context.instant_hook = lambda hook: asked.append(hook) or True  # type: ignore[func-returns-value]
    layer = Asking(context)
    (hook,) = list(layer.handle_event(events.Start()))
    assert isinstance(hook, NextLayerHook) and hook.blocking is layer
    assert layer._paused is not None and layer._paused.command is hook
    assert list(layer.handle_event(events.DataReceived(context.client, b"x"))) == []  # queued
    after = [c.message for c in layer.handle_event(events.HookCompleted(hook))]  # type: ignore[attr-defined]
    assert after == ["after Start", "after DataReceived"]
    assert asked == []  # never asked: the layer did


def test_events_a_stream_sends_go_where_the_general_path_sends_them() -> None:
    """_routed sends a stream's HTTP event (no SendHttp around it) by its exact type: a
    response's events and DiscardRequestBody to the client, a request's to the stream's
    server; the general path's isinstance check (for subclasses) must agree."""
    from proxycore.layers.http import _SENT_TO_CLIENT, _SENT_TO_CLIENT_TYPES
    from proxycore.layers.http._events import BodyBackpressure, DiscardRequestBody, HttpEvent

    assert _SENT_TO_CLIENT[DiscardRequestBody] is True
    for kind, to_client in _SENT_TO_CLIENT.items():
        assert issubclass(kind, HttpEvent) and not issubclass(kind, BodyBackpressure)
        assert to_client == issubclass(kind, _SENT_TO_CLIENT_TYPES)
        assert to_client == (kind.__name__.startswith("Response") or kind is DiscardRequestBody)


def test_a_finished_stream_leaves_the_http_layer(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a DropStream command: HttpStream.finish takes the stream out of the
    HttpLayer's streams itself, after every exchange, on both paths."""
    for general in (False, True):
        with monkeypatch.context() as m:
            if general:
                general_path(m)
            made: list[HttpLayer] = []
            init = HttpLayer.__init__

            def remember(self: HttpLayer, *args: Any, init: Any = init, made: list[HttpLayer] = made) -> None:
                init(self, *args)
                made.append(self)

            m.setattr(HttpLayer, "__init__", remember)
            driver = Driver(instant_hooks=not general)
            for request, response in CONVERSATION:
                driver.feed(events.DataReceived(driver.context.client, request))
                (http_layer,) = made
                assert list(http_layer.streams) == [next(iter(http_layer.streams))]  # the request's
                assert driver.server is not None
                driver.feed(events.DataReceived(driver.server, response))
                assert http_layer.streams == {}


def test_an_open_servers_events_skip_its_http_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once its HttpClient is open (a pass-through for good), the HttpLayer hands a server's
    bytes and the events a stream sends it to the connection layer directly (the memo's
    third item); ``_layer_of`` still answers with the HttpClient."""
    from proxycore.layers.http._events import BodyBackpressure

    calls: list[type] = []
    original = HttpClient.handle_event

    def counted(self: HttpClient, event: events.Event) -> Any:
        calls.append(type(event))
        return original(self, event)

    monkeypatch.setattr(HttpClient, "handle_event", counted)
    driver = Driver(instant_hooks=True)
    (request, response), *rest = CONVERSATION
    driver.feed(events.DataReceived(driver.context.client, request))
    assert driver.server is not None
    driver.feed(events.DataReceived(driver.server, response))
    assert calls  # opening it, the first request
    calls.clear()
    for request, response in rest[:-1]:
        driver.feed(events.DataReceived(driver.context.client, request))
        driver.feed(events.DataReceived(driver.server, response))
    # (BodyBackpressure, around the POSTs' hooks, takes the general path: connections.get.)
    assert [kind for kind in calls if kind is not BodyBackpressure] == []


def test_a_keep_alive_exchange_passes_its_ends_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """The end of a request and of a buffered response that came in goes out as the same
    event, and so does a body that came whole in one ResponseData, unchanged: per exchange
    one of each is made (by the connection layers that parse them), and the commands stay
    those of the general path (test_fast_and_general_path_issue_the_same_commands)."""
    from proxycore.layers.http import _events

    made: collections.Counter[str] = collections.Counter()
    for kind in (_events.RequestEndOfMessage, _events.ResponseEndOfMessage, _events.ResponseData):
        init = kind.__init__

        def counted(self: Any, *args: Any, init: Any = init, name: str = kind.__name__) -> None:
            made[name] += 1
            init(self, *args)

        monkeypatch.setattr(kind, "__init__", counted)
    driver = Driver(instant_hooks=True)
    for _ in range(3):
        driver.feed(events.DataReceived(driver.context.client, GET))
        assert driver.server is not None
        driver.feed(events.DataReceived(driver.server, OK))
    assert made == {"RequestEndOfMessage": 3, "ResponseEndOfMessage": 3, "ResponseData": 3}
    assert [t[0] for t in driver.trace].count("response") == 3
    assert ("send", "client", OK) in driver.trace or any(
        t[:2] == ("send", "client") and t[2].endswith(b"abc") for t in driver.trace
    )
