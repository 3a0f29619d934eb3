"""Scripted event/command testing of layers: the public, supported harness.

A ``Playbook`` wraps one layer.  ``>>`` queues an event to feed in, ``<<``
states a command the layer must emit at that point, and ``assert playbook``
runs everything queued so far and compares what happened with what was
expected, field by field::

    flow = Placeholder(HTTPFlow)
    assert (
        Playbook(HttpLayer(tctx, HTTPMode.regular))
        >> DataReceived(tctx.client, b"GET http://example.com/ HTTP/1.1\\r\\n\\r\\n")
        << HttpRequestHeadersHook(flow)
        >> reply()
        ...
    )

``reply()`` answers the most recent command (or the one named with ``to=``)
with the right ``CommandCompleted``; its ``side_effect`` gets the hook's
argument, so a test can act as an addon.  ``Placeholder`` captures objects the
layer creates (flows, connections, bytes) the first time they are compared.
Nothing here uses sockets, threads or an event loop, so it is cheap enough to
drive from hypothesis.
"""

from __future__ import annotations

import dataclasses
import difflib
import itertools
import re
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from proxycore.connection import Client, Connection, ConnectionState, Server
from proxycore.proxy import commands, events
from proxycore.proxy.commands import Command, StartHook
from proxycore.proxy.context import Context
from proxycore.proxy.layer import Layer

T = TypeVar("T")

__all__ = [
    "Playbook",
    "reply",
    "Placeholder",
    "BytesMatching",
    "make_context",
    "run_events",
    "Pump",
    "header_names",
    "header_values",
    "headers",
    "requests",
    "responses",
    "chunkings",
]


class Placeholder(Generic[T]):
    """Matches any object of type ``cls`` the first time, then only that same object."""

    def __init__(self, cls: type[T] = object) -> None:  # type: ignore[assignment]  # object: any
        self._cls = cls
        self._found: list[T] = []  # the captured object, once there is one (it may be None)

    def __call__(self) -> T:
        """The captured object (raises if nothing was captured yet)."""
        if not self._found:
            raise AssertionError(f"Placeholder({self._cls.__name__}) was never matched")
        return self._found[0]

    def setdefault(self, value: T) -> T:
        if not self._found:
            self._found.append(value)
        return self._found[0]

    def matches(self, value: Any) -> bool:
        if not self._found:
            if not isinstance(value, self._cls):
                return False
            self._found.append(value)
            return True
        return _same(self._found[0], value)

    def __repr__(self) -> str:
        return f"Placeholder:{self._found[0]!r}" if self._found else f"Placeholder({self._cls.__name__})"

    def __getattr__(self, item: str) -> Any:
        # Lets tests write flow().request, but also flow.request once captured.
        if item.startswith("_"):
            raise AttributeError(item)
        return getattr(self(), item)


class BytesMatching:
    """Matches bytes against a regular expression (for pages with variable content)."""

    def __init__(self, pattern: bytes) -> None:
        self.pattern = re.compile(pattern, re.DOTALL)

    def matches(self, value: Any) -> bool:
        return isinstance(value, bytes) and self.pattern.search(value) is not None

    def __repr__(self) -> str:
        return f"BytesMatching({self.pattern.pattern!r})"


def _same(expected: Any, actual: Any) -> bool:
    if isinstance(expected, (Placeholder, BytesMatching)):
        return expected.matches(actual)
    if isinstance(expected, Connection) or isinstance(actual, Connection):
        return expected is actual or expected == actual
    if isinstance(expected, (list, tuple)) and isinstance(actual, (list, tuple)):
        return len(expected) == len(actual) and all(map(_same, expected, actual))
    try:
        return bool(expected is actual or expected == actual)
    except Exception:
        return False


def _fields(command: Command) -> dict[str, Any]:
    if isinstance(command, StartHook):
        return {"args": command.args()}
    return {k: v for k, v in vars(command).items() if k != "blocking"}


def _command_matches(expected: Command, actual: Any) -> bool:
    if type(expected) is not type(actual):
        return False
    exp, act = _fields(expected), _fields(actual)
    return exp.keys() == act.keys() and all(_same(exp[k], act[k]) for k in exp)


class reply:  # noqa: N801 - reads as a verb inside playbooks, like mitmproxy's
    """An event answering a command emitted earlier in the playbook.

    ``to`` is a negative index among the commands so far (-1: the latest), a
    command (or a Placeholder of one) or a command class (its latest instance).
    """

    def __init__(
        self,
        *args: Any,
        to: int | Command | Placeholder[Any] | type[Command] = -1,
        side_effect: Callable[[Any], Any] | None = None,
    ) -> None:
        self.args = args
        self.to = to
        self.side_effect = side_effect

    def to_event(self, issued: list[Command]) -> events.CommandCompleted:
        command = self._find(issued)
        if self.side_effect is not None:
            arg = command.args()[0] if isinstance(command, StartHook) and command.args() else command
            self.side_effect(arg)
        if isinstance(command, commands.OpenConnection):
            return events.OpenConnectionCompleted(command, self.args[0] if self.args else None)
        if isinstance(command, StartHook):
            return events.HookCompleted(command)
        if isinstance(command, commands.RequestWakeup):
            return events.Wakeup(command)
        return events.CommandCompleted(command, self.args[0] if self.args else None)

    def _find(self, issued: list[Command]) -> Command:
        to = self.to
        if isinstance(to, Placeholder):
            to = to()
        if isinstance(to, int):
            try:
                return issued[to]
            except IndexError:
                raise AssertionError(f"reply(to={to}): only {len(issued)} commands so far") from None
        if isinstance(to, type):
            for command in reversed(issued):
                if isinstance(command, to):
                    return command
            raise AssertionError(f"reply(to={to.__name__}): no such command so far")
        return to

    def __repr__(self) -> str:
        return f"reply({', '.join(map(repr, self.args))}, to={self.to!r})"


def _emulate_state(command: Command) -> None:
    """What the driver would do to connection states for a command (for realistic layer tests)."""
    if isinstance(command, commands.CloseConnection):
        conn = command.connection
        if command.half_close:
            conn.state &= ~ConnectionState.CAN_WRITE
        else:
            conn.state = ConnectionState.CLOSED


class Playbook:
    """Feeds queued events into a layer and checks the commands it emits (see module doc)."""

    def __init__(self, layer: Layer, hooks: bool = True, logs: bool = False, timeouts: bool = False) -> None:
        self.layer = layer
        self.hooks = hooks
        self.logs = logs
        self.timeouts = timeouts
        self.expected: list[Any] = [events.Start()]
        self.actual: list[Any] = []
        self.issued: list[Command] = []
        self._step = 0

    def __rshift__(self, event: events.Event | reply) -> Playbook:
        self.expected.append(event)
        return self

    def __lshift__(self, command: Command) -> Playbook:
        self.expected.append(command)
        return self

    def _feed(self, event: events.Event, record: bool = True) -> None:
        _resolve_placeholders(event)
        if isinstance(event, events.ConnectionClosed):
            event.connection.state &= ~ConnectionState.CAN_READ
        if isinstance(event, events.OpenConnectionCompleted):
            conn = event.command.connection
            if event.reply is None:
                conn.state = ConnectionState.OPEN
                conn.timestamp_start = conn.timestamp_start or 1.0
            else:
                conn.error = event.reply
        if record:
            self.actual.append(event)
        auto: list[events.Event] = []
        for command in self.layer.handle_event(event):
            _emulate_state(command)
            self.issued.append(command)
            if isinstance(command, StartHook) and not self.hooks:
                auto.append(events.HookCompleted(command))
                continue
            if isinstance(command, commands.Log) and not self.logs:
                continue
            if isinstance(command, commands.RequestTimeout) and not self.timeouts:
                continue
            previous = self.actual[-1] if self.actual else None
            if (
                isinstance(command, commands.SendData)
                and isinstance(previous, commands.SendData)
                and previous.connection is command.connection
            ):
                self.actual[-1] = commands.SendData(command.connection, previous.data + command.data)
            else:
                self.actual.append(command)
        if self.timeouts:
            self._show_head_timer()
        for completion in auto:
            self._feed(completion, record=False)

    def _show_head_timer(self) -> None:
        """List the request-head timer the HTTP/1 layer published on the client (the driver
        arms it; the layer does not yield it) as if it were a command, when it is new."""
        timer = getattr(self.layer.context.client, "head_timer", None)
        if isinstance(timer, commands.RequestTimeout) and not any(c is timer for c in self.issued):
            self.issued.append(timer)
            self.actual.append(timer)

    def __bool__(self) -> bool:
        """Run the queued steps, comparing as we go so placeholders bind before later events."""
        while self._step < len(self.expected):
            step = self._step
            item = self.expected[step]
            if isinstance(item, reply):
                item = self.expected[step] = item.to_event(self.issued)
            # As mitmproxy's Playbook decides: a Command is expected from the layer, never fed
            # to it (an event that were a Command too would never reach the layer there).
            if isinstance(item, events.Event) and not isinstance(item, Command):
                if len(self.actual) != step:
                    return self._fail()
                self._feed(item)
            elif step >= len(self.actual) or not self._matches(item, self.actual[step]):
                return self._fail()
            self._step += 1
        if len(self.actual) != len(self.expected):
            return self._fail()
        return True

    def _fail(self) -> bool:
        self._explain(self.expected)
        self._step = len(self.expected)
        return False

    def _matches(self, expected: Any, actual: Any) -> bool:
        if isinstance(expected, events.Event):
            return expected is actual
        return _command_matches(expected, actual)

    def _explain(self, expected: list[Any]) -> None:
        diff = difflib.ndiff(
            [_describe(x, "expected") for x in expected],
            [_describe(x, "expected") for x in self.actual],
        )
        print("Playbook mismatch (- expected, + actual):")
        print("\n".join(diff))

    def __del__(self) -> None:  # pragma: no cover - a reminder for test authors
        if self._step < len(self.expected) and not getattr(self, "_silenced", False):
            print(f"Unfinished playbook: {len(self.expected) - self._step} steps never ran")


def _resolve_placeholders(event: events.Event) -> None:
    """Events are written before the objects they name exist; fill those in now."""
    if dataclasses.is_dataclass(event):
        for f in dataclasses.fields(event):
            value = getattr(event, f.name)
            if isinstance(value, Placeholder):
                setattr(event, f.name, value())


def _describe(item: Any, _: str) -> str:
    prefix = ">>" if isinstance(item, events.Event) else "<<"
    return f"{prefix} {item!r}"


def make_context(options: Any = None) -> Context:
    """A context with an open client connection, as a listener would create it."""
    if options is None:
        from proxycore.options import Options

        options = Options()
    client = Client(
        peername=("127.0.0.1", 50000),
        sockname=("127.0.0.1", 8080),
        state=ConnectionState.OPEN,
        timestamp_start=1.0,
    )
    context = Context(client, options)
    context.server = Server(address=None)
    return context


def run_events(
    layer: Layer,
    evs: list[events.Event],
    answer: Callable[[Command], events.Event | None] | None = None,
    start: bool = True,
) -> list[Command]:
    """Feed events and answer every blocking command at once; returns all commands.

    ``answer`` may return the reply event for a command (default: hooks
    complete, connections open).  Made for property-based tests where the
    exact sequence is unknown but invariants (no exception, same flows) hold.
    """
    issued: list[Command] = []
    queue: list[events.Event] = [events.Start(), *evs] if start else list(evs)
    while queue:
        event = queue.pop(0)
        if isinstance(event, events.ConnectionClosed):
            event.connection.state &= ~ConnectionState.CAN_READ
        pending: list[events.Event] = []
        for command in layer.handle_event(event):
            _emulate_state(command)
            issued.append(command)
            if not command.blocking:
                continue
            reply_event = answer(command) if answer else None
            if reply_event is None:
                if isinstance(command, commands.OpenConnection):
                    command.connection.state = ConnectionState.OPEN
                    command.connection.timestamp_start = 1.0
                    reply_event = events.OpenConnectionCompleted(command, None)
                elif isinstance(command, StartHook):
                    reply_event = events.HookCompleted(command)
                else:
                    reply_event = events.CommandCompleted(command, None)
            pending.append(reply_event)
        queue[0:0] = pending
    return issued


# hypothesis strategies ------------------------------------------------------------------------
#
# For property tests of addons and layers: ``@given(testing.requests())``.  hypothesis is a test
# dependency, imported when a strategy is first asked for, so importing this module stays cheap.

_TOKEN = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"


def header_names() -> Any:
    """Header field names: RFC 9110 tokens, as bytes."""
    from hypothesis import strategies as st

    return st.text(_TOKEN, min_size=1, max_size=20).map(str.encode)


def header_values() -> Any:
    """Header field values: visible ASCII with inner spaces and tabs, no CR/LF, as bytes."""
    from hypothesis import strategies as st

    visible = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), max_size=30)
    return st.tuples(visible, st.sampled_from(["", " ", "\t"]), visible).map(
        lambda parts: (parts[0] + parts[1] + parts[2]).strip(" \t").encode()
    )


def headers(max_fields: int = 8) -> Any:
    """``proxycore.http.Headers`` with repeated names possible, in any case."""
    from hypothesis import strategies as st

    from proxycore.http import Headers

    return st.lists(st.tuples(header_names(), header_values()), max_size=max_fields).map(Headers)


def requests() -> Any:
    """``proxycore.http.Request`` objects: any token method, http(s), host, port, path,
    headers and body (Content-Length set to match the body)."""
    from hypothesis import strategies as st

    from proxycore.http import Request

    hosts = st.from_regex(r"\A[a-z][a-z0-9-]{0,15}(\.[a-z][a-z0-9-]{0,15}){0,2}\Z")
    paths = st.text("abcdefghijklmnopqrstuvwxyz0123456789-._~/%=&?", max_size=40).map(lambda p: "/" + p)

    def build(method: str, scheme: str, host: str, port: int, path: str, fields: Any, body: bytes) -> Request:
        fields.pop("content-length", None)
        fields.pop("transfer-encoding", None)
        fields["content-length"] = str(len(body))
        return Request(host, port, method, scheme, f"{host}:{port}", path, "HTTP/1.1", fields, body, None, 0.0, 1.0)

    return st.builds(
        build,
        st.sampled_from(["GET", "POST", "PUT", "DELETE", "HEAD", "OPTIONS", "PATCH"])
        | st.text(_TOKEN.upper()[:40], min_size=1, max_size=10),
        st.sampled_from(["http", "https"]),
        hosts,
        st.integers(1, 65535),
        paths,
        headers(),
        st.binary(max_size=200),
    )


def responses() -> Any:
    """``proxycore.http.Response`` objects: status 100-599 with a reason, headers, a body."""
    from hypothesis import strategies as st

    from proxycore.http import Response

    def build(status: int, reason: str, fields: Any, body: bytes) -> Response:
        fields.pop("content-length", None)
        fields.pop("transfer-encoding", None)
        fields["content-length"] = str(len(body))
        return Response("HTTP/1.1", status, reason, fields, body, None, 2.0, 3.0)

    reasons = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=20).map(str.strip)
    return st.builds(build, st.integers(100, 599), reasons, headers(), st.binary(max_size=200))


def chunkings(data: bytes, max_chunks: int = 10) -> Any:
    """Ways to cut ``data`` into consecutive pieces (empty ones included), for checking that
    a parser gives the same result however the bytes arrive."""
    from hypothesis import strategies as st

    def cut(points: list[int]) -> list[bytes]:
        edges = [0, *sorted(points), len(data)]
        return [data[a:b] for a, b in itertools.pairwise(edges)]

    return st.lists(st.integers(0, len(data)), max_size=max_chunks).map(cut)


class Pump:
    """Runs a layer against in-memory peers, answering what it asks as the driver would.

    Where a Playbook states the exact command sequence, a Pump lets real protocol peers
    (h2, ``ssl`` memory BIOs, wsproto) talk to the layer and the test looks at what they
    received. ``feed(event)`` hands an event to the layer and keeps answering until the
    layer asks for nothing more: connections open at once (``on_open``), hooks complete
    (``on_hook``), bytes go to ``on_send`` (by default into ``sent["client"]`` or
    ``sent["server"]``); closes, pauses, logs and timers are recorded. A subclass puts its
    peers behind ``on_send`` and feeds what they answer from ``after_event``, which runs
    after each event the layer handled.
    """

    def __init__(self, layer: Layer, start: bool = True) -> None:
        self.layer = layer
        self.context = layer.context
        self.sent: dict[str, bytearray] = {"client": bytearray(), "server": bytearray()}
        self.hooks: list[str] = []
        self.logs: list[str] = []
        self.closed: set[str] = set()
        self.paused: set[str] = set()  # the sides the layer asked the driver not to read
        self.wakeups: list[commands.RequestWakeup] = []
        self.timeouts: list[commands.RequestTimeout] = []
        if start:
            self.feed(events.Start())

    def side(self, connection: Connection) -> str:
        """``"client"`` for the context's client connection, else ``"server"``."""
        return "client" if connection is self.context.client else "server"

    def feed(self, event: events.Event) -> None:
        queue = [event]
        while queue:
            for command in self.layer.handle_event(queue.pop(0)):
                answer = self.execute(command)
                if answer is not None:
                    queue.append(answer)
            self.after_event()

    def execute(self, command: Command) -> events.Event | None:
        """Carry out one command; return the event that completes it, if it is answered now."""
        if isinstance(command, commands.SendData):
            self.on_send(command)
        elif isinstance(command, commands.OpenConnection):
            return self.on_open(command)
        elif isinstance(command, StartHook):
            self.hooks.append(command.name)
            return self.on_hook(command)
        elif isinstance(command, commands.CloseConnection):
            self.closed.add(self.side(command.connection))
        elif isinstance(command, commands.PauseReading):
            self.paused.add(self.side(command.connection))
        elif isinstance(command, commands.ResumeReading):
            self.paused.discard(self.side(command.connection))
        elif isinstance(command, commands.Log):
            self.logs.append(command.message)
        elif isinstance(command, commands.RequestTimeout):
            self.timeouts.append(command)
        elif isinstance(command, commands.RequestWakeup):
            self.wakeups.append(command)
        return None

    def on_send(self, command: commands.SendData) -> None:
        self.sent[self.side(command.connection)] += command.data

    def on_open(self, command: commands.OpenConnection) -> events.Event | None:
        """Connect at once; return None instead to hold the connection back."""
        command.connection.state = ConnectionState.OPEN
        command.connection.timestamp_start = 1.0
        return events.OpenConnectionCompleted(command, None)

    def on_hook(self, command: StartHook) -> events.Event | None:
        """Complete the hook at once; return None instead to hold it (an addon taking time)."""
        return events.HookCompleted(command)

    def after_event(self) -> None:
        """Called after each event the layer handled: feed what the peers have to send."""
