"""TunnelLayer: the base of layers that carry one connection over another.

TLS (plaintext carried over ciphertext on the same socket) and the upstream
proxy tunnel (the origin carried over a CONNECT to a proxy) both sit between a
parent and a child layer and face the same question when the child opens its
connection: is the tunnel up, down, or being built?  This base answers it once:

- ``open``: the child's ``OpenConnection`` is answered at once with success;
- ``closed`` (or the connection carries an error): answered at once with the error;
- ``inactive``: the outer connection is opened if needed, then the subclass's
  :meth:`TunnelLayer.establish` runs the handshake and ends it with
  :meth:`TunnelLayer.finish`;
- ``establishing``: the command waits, and is answered when ``finish`` runs.

A subclass parses the handshake and translates data; it never tracks waiting
commands itself.  Events that arrive for the child while a tunnel started
without a waiting command (``held_events``) are replayed after ``finish``.
"""

from __future__ import annotations

from proxycore.connection import Connection, Server
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer, NextLayer

INACTIVE = "inactive"
ESTABLISHING = "establishing"
OPEN = "open"
CLOSED = "closed"


class TunnelLayer(Layer):
    """Carries ``conn`` (what the child sees) over ``tunnel_conn`` (the outer connection)."""

    conn: Connection
    tunnel_conn: Connection
    child_layer: Layer
    state: str
    """One of INACTIVE, ESTABLISHING, OPEN, CLOSED; subclasses may add their own."""
    waiting: list[commands.OpenConnection]
    held_events: list[events.Event] | None

    def __init__(self, context: Context, tunnel_conn: Connection, conn: Connection, child: Layer | None = None) -> None:
        super().__init__(context)
        self.tunnel_conn = tunnel_conn
        self.conn = conn
        self.child_layer = child if child is not None else NextLayer(context)
        self.state = INACTIVE
        self.waiting = []
        self.held_events = None

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.state})"

    # What subclasses provide ---------------------------------------------------------

    def establish(self) -> CommandGenerator[None]:
        """Run the handshake over the (connected) outer connection; call ``finish`` when done,
        now or from a later event.  The default has no handshake: the tunnel is up at once."""
        yield from self.finish(None)

    def open_failed(self, err: str) -> CommandGenerator[None]:
        """The outer connection could not be opened."""
        self.state = CLOSED
        yield from self.finish(err)

    def send_data(self, command: commands.SendData) -> CommandGenerator[None]:
        """The child writes to ``conn``; the default writes to the outer connection as is."""
        yield commands.SendData(self.tunnel_conn, command.data)

    def send_close(self, command: commands.CloseConnection) -> CommandGenerator[None]:
        yield command

    def other_command(self, command: commands.ConnectionCommand) -> CommandGenerator[None]:
        """Any other command for ``conn`` (PauseReading, ResumeReading...)."""
        yield command

    # The state machine -----------------------------------------------------------------

    def event_to_child(self, event: events.Event) -> CommandGenerator[None]:
        """Pass ``event`` to the child; its commands for ``conn`` go through the tunnel."""
        for command in self.child_layer.handle_event(event):
            if isinstance(command, commands.ConnectionCommand) and command.connection is self.conn:
                yield from self.command_from_child(command)
            else:
                yield command

    def command_from_child(self, command: commands.ConnectionCommand) -> CommandGenerator[None]:
        if isinstance(command, commands.OpenConnection):
            yield from self.child_opens(command)
        elif isinstance(command, commands.SendData):
            yield from self.send_data(command)
        elif isinstance(command, commands.CloseConnection):
            yield from self.send_close(command)
        else:
            yield from self.other_command(command)

    def child_opens(self, command: commands.OpenConnection) -> CommandGenerator[None]:
        if self.state == OPEN:
            yield from self.event_to_child(events.OpenConnectionCompleted(command, None))
            return
        if self.state == CLOSED or self.conn.error:
            err = self.conn.error or "Connection closed."
            yield from self.event_to_child(events.OpenConnectionCompleted(command, err))
            return
        self.waiting.append(command)
        if self.state == ESTABLISHING:
            return  # answered when the running attempt ends
        self.state = ESTABLISHING
        if not self.tunnel_conn.connected:
            assert isinstance(self.tunnel_conn, Server), "only a server connection can be opened"
            err = yield commands.OpenConnection(self.tunnel_conn)
            if err:
                yield from self.open_failed(err)
                return
        yield from self.establish()

    def establish_now(self, first_event: events.Event) -> CommandGenerator[None]:
        """Build the tunnel before anyone asked (the outer connection is already open):
        ``first_event`` and every event for the child until ``finish`` are held."""
        self.held_events = [first_event]
        self.state = ESTABLISHING
        yield from self.establish()

    def finish(self, err: str | None) -> CommandGenerator[None]:
        """The handshake ended: answer the waiting opens, then replay held events.  The
        subclass has set ``state`` (OPEN or CLOSED) before."""
        answered, self.waiting = self.waiting, []
        for command in answered:
            yield from self.event_to_child(events.OpenConnectionCompleted(command, err))
        held, self.held_events = self.held_events, None
        for event in held or ():
            yield from self.event_to_child(event)
