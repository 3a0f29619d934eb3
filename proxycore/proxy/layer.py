"""The sans-io Layer base class, and NextLayer, which decides what comes next.

A layer is a generator-based state machine: ``handle_event`` takes an event
and returns an iterator of commands.  Subclasses write ``_handle_event`` as a
generator; when it yields a blocking command, ``yield`` evaluates to the reply
once the matching ``CommandCompleted`` comes back.  Until then every other
event for this layer is queued, so a layer never sees events out of order
while it waits, and a sibling layer (another HTTP stream) is never held up.

A hook that nobody waits for is done at once (``context.instant_hook``, asked by ``_run``).
A layer may ask that itself and go on without yielding the hook; when the answer is no, it
yields the hook carrying itself in ``blocking``, and waits for it like for any blocking
command, without the hook being asked again (the driver started it when asked).
"""

from __future__ import annotations

import collections
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from proxycore.connection import Connection
from proxycore.proxy import commands, events
from proxycore.proxy.commands import Command, StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.events import Event

T = TypeVar("T")
#: A layer's event handler: yields commands, gets replies, returns a T (usually None).
#: Generic as in mitmproxy, so ``CommandGenerator[bool]`` annotations work.
CommandGenerator = Generator[Command, Any, T]


@dataclass(slots=True)
class _Paused:
    """A layer suspended on a blocking command: the command and the generator to resume."""

    command: Command
    generator: CommandGenerator[Any]


class Layer:
    """Base class of every protocol layer (see module docstring)."""

    context: Context
    _paused: _Paused | None
    # Events that came while paused, in order: () until the first one (a layer is made for
    # every request, and most never queue anything: no deque to make and free for them).
    _paused_event_queue: collections.deque[events.Event] | tuple[()]
    # Whether the HTTP layer hands this layer the BodyBackpressure events of its connection
    # (the HTTP/1 and HTTP/2 connection layers pause reading their peer; others have none).
    relays_backpressure: ClassVar[bool] = False

    def __init__(self, context: Context) -> None:
        # (HttpStream.__init__ repeats these four lines inline: keep them alike.)
        self.context = context
        self.context.layers.append(self)
        self._paused = None
        self._paused_event_queue = ()

    def __repr__(self) -> str:
        state = getattr(self._handle_event, "__name__", "")
        state = state.replace("state_", "")
        if state == "_handle_event":
            state = ""
        return f"{type(self).__name__}({state})" if state else type(self).__name__

    def _goto(self, state: Callable[[events.Event], Generator[Any, Any, None]]) -> None:
        """Handle the next events with ``state``: how a layer's state machine moves on.

        The handler shadows the ``_handle_event`` method on this instance (mypy forbids
        assigning to a method, so the one place that does it is here, typed). Set with
        setattr, not through ``self.__dict__``: asking for that makes CPython build the
        instance's dict, which makes every later attribute access of the layer slower.
        (A state of a layer inside the HttpLayer yields HTTP events too, hence the wider type.)
        """
        setattr(self, "_handle_event", state)  # noqa: B010 (see above)

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        """Override this with a generator of commands (a state machine moves on with _goto)."""
        raise NotImplementedError
        yield  # pragma: no cover

    def handle_event(self, event: events.Event) -> CommandGenerator[None]:
        # A plain function returning a generator: one frame less per layer per event.
        if self._paused is not None:
            return self._handle_while_paused(event)
        return self._run(self._handle_event(event), None)

    def _handle_while_paused(self, event: events.Event) -> CommandGenerator[None]:
        paused = self._paused
        if isinstance(event, events.CommandCompleted) and paused is not None and event.command is paused.command:
            self._paused = None
            yield from self._run(paused.generator, event.reply)
            yield from self._drain_queue()
        else:
            queue = self._paused_event_queue
            if not isinstance(queue, collections.deque):
                queue = self._paused_event_queue = collections.deque()
            queue.append(event)

    def _drain_queue(self) -> CommandGenerator[None]:
        while self._paused is None and self._paused_event_queue:
            queue = self._paused_event_queue
            assert isinstance(queue, collections.deque)  # (not empty: made by the first event)
            event = queue.popleft()
            yield from self._run(self._handle_event(event), None)

    def pause_on(self, command: Command, generator: CommandGenerator[Any]) -> None:
        """``generator`` yielded the blocking ``command`` outside _run (the HttpLayer runs
        its streams' handlers itself): wait for its reply as _run would."""
        command.blocking = self
        self._paused = _Paused(command, generator)

    def _run(self, generator: CommandGenerator[Any], send: Any) -> CommandGenerator[None]:
        """Drive ``generator``, passing its commands up until it blocks or ends.

        Steps with ``next(generator, None)`` where there is nothing to send (a command is
        never None): an ending generator then raises no StopIteration, which costs about
        as much as the rest of a step, once per event a layer handles."""
        if send is None:
            command = next(generator, None)
        else:
            try:
                command = generator.send(send)
            except StopIteration:
                return
        while command is not None:
            if command.blocking is True:
                instant = self.context.instant_hook
                if instant is not None and isinstance(command, StartHook) and instant(command):
                    # Nobody listens: the hook is done already (its reply would be None).
                    # Going on here saves the round trip of its reply through every layer
                    # above us.
                    command = next(generator, None)
                    continue
                command.blocking = self
                self._paused = _Paused(command, generator)
                yield command
                return
            if command.blocking is self and self._paused is None:
                # A hook this layer asked context.instant_hook about itself, not done at once
                # (see HttpStream._asked): it waits for the reply without being asked again.
                self._paused = _Paused(command, generator)
                yield command
                return
            yield command
            command = next(generator, None)


@hook_dataclass
class NextLayerHook(StartHook):
    """Addons decide which layer handles the connection next by setting ``data.layer``."""

    name = "next_layer"
    data: NextLayer


class NextLayer(Layer):
    """Buffers events until an addon (via ``next_layer``) picks the real layer.

    The hook fires on start (when ``ask_on_start``) and on every new chunk of
    data; once ``layer`` is set, the buffered events are replayed into it and
    this layer becomes a transparent pass-through.
    """

    layer: Layer | None
    events: list[Event]

    def __init__(self, context: Context, ask_on_start: bool = False) -> None:
        super().__init__(context)
        self.context.layers.remove(self)
        self.layer = None
        self.events = []
        self._ask_on_start = ask_on_start

    def __repr__(self) -> str:
        return f"NextLayer:{self.layer!r}"

    def handle_event(self, event: Event) -> CommandGenerator[None]:
        # While our own hook is pending, its reply (and queued events) go through
        # the base class; after that everything belongs to the chosen layer.
        if self.layer is not None and self._paused is None:
            return self.layer.handle_event(event)
        return super().handle_event(event)

    def _handle_event(self, event: Event) -> CommandGenerator[None]:
        if self.layer is not None:
            yield from self.layer.handle_event(event)
            return
        self.events.append(event)
        if isinstance(event, events.Start) and not self._ask_on_start:
            return
        if isinstance(event, events.ConnectionClosed) and event.connection == self.context.client:
            # Nothing was decided and the client is gone: there is nothing left to do.
            if not self.data_client():
                yield commands.CloseConnection(self.context.client)
                if self.context.server.connected:
                    yield commands.CloseConnection(self.context.server)
                return
        if isinstance(event, (events.DataReceived, events.Start, events.ConnectionClosed)):
            yield from self._ask()

    def _ask(self) -> CommandGenerator[None]:
        yield NextLayerHook(self)
        if self.layer is not None:
            buffered, self.events = self.events, []
            for event in buffered:
                yield from self.layer.handle_event(event)

    def _data(self, connection: Connection) -> bytes:
        return b"".join(
            e.data
            for e in self.events
            if isinstance(e, events.DataReceived) and e.connection == connection
        )

    def data_client(self) -> bytes:
        """Everything the client sent so far, for peeking (TLS ClientHello, HTTP verb…)."""
        return self._data(self.context.client)

    def data_server(self) -> bytes:
        return self._data(self.context.server)
