"""DNS over UDP (one message per datagram) and TCP (two-byte length prefix), as a layer.

Each query becomes a DNSFlow.  The dns_request hook may answer it (``flow.response``),
fail it (``flow.error``) or point ``flow.server_conn.address`` at a name server; without
any of these the query goes to the context's server, and an answer is matched to its
flow by message id.  A query nobody can answer gets SERVFAIL, never silence.
"""

from __future__ import annotations

import collections
import struct
import time

from proxycore.connection import Connection, TransportProtocol
from proxycore.dns import DNSFlow, DNSMessage
from proxycore.flow import Error
from proxycore.net.dns import response_codes
from proxycore.proxy import commands, events
from proxycore.proxy.commands import StartHook, hook_dataclass
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer

#: Flows of one connection kept for matching answers; older ones are forgotten first.
MAX_OPEN_FLOWS = 1024
_LENGTH = struct.Struct("!H")


@hook_dataclass
class DnsRequestHook(StartHook):
    """A query arrived; set ``flow.response`` to answer it yourself."""

    name = "dns_request"
    flow: DNSFlow


@hook_dataclass
class DnsResponseHook(StartHook):
    """An answer arrived from the server or was set by an addon; it may still be changed."""

    name = "dns_response"
    flow: DNSFlow


@hook_dataclass
class DnsErrorHook(StartHook):
    name = "dns_error"
    flow: DNSFlow


def pack_message(message: DNSMessage, transport: TransportProtocol | str) -> bytes:
    """The message as it goes on ``transport``: TCP prefixes its length."""
    packed = message.packed
    if transport == TransportProtocol.TCP:
        return _LENGTH.pack(len(packed)) + packed
    return packed


class DNSLayer(Layer):
    """Answers the client's queries from hooks or the server (see module docstring)."""

    def __init__(self, context: Context) -> None:
        super().__init__(context)
        self.flows: collections.OrderedDict[int, DNSFlow] = collections.OrderedDict()
        self.buffers: dict[Connection, bytearray] = {}
        if not context.server.connected and context.server.timestamp_start is None:
            context.server.transport_protocol = context.client.transport_protocol

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.DataReceived):
            from_client = event.connection == self.context.client
            try:
                messages = self.unpack(event.connection, event.data)
            except ValueError as e:
                yield commands.Log(f"{'client' if from_client else 'server'} sent an invalid DNS message: {e}")
                yield commands.CloseConnection(event.connection)
                if from_client:
                    self._goto(self.state_done)
                return
            for message in messages:
                if from_client:
                    yield from self.query(message)
                else:
                    yield from self.answer(message)
        elif isinstance(event, events.ConnectionClosed):
            yield from self.closed(event.connection)

    def state_done(self, event: events.Event) -> CommandGenerator[None]:
        return
        yield

    def unpack(self, connection: Connection, data: bytes) -> list[DNSMessage]:
        """The complete messages in ``data`` (TCP keeps a partial one for later)."""
        now = time.time()
        if connection.transport_protocol == TransportProtocol.UDP:
            return [DNSMessage.unpack(data, timestamp=now)]
        buffer = self.buffers.setdefault(connection, bytearray())
        buffer += data
        messages = []
        while len(buffer) >= _LENGTH.size:
            (size,) = _LENGTH.unpack_from(buffer)
            if size == 0:
                raise ValueError("a DNS message length of zero")
            if len(buffer) < _LENGTH.size + size:
                break
            messages.append(DNSMessage.unpack(bytes(buffer[2 : 2 + size]), timestamp=now))
            del buffer[: 2 + size]
        return messages

    def unpack_message(self, data: bytes, from_client: bool) -> list[DNSMessage]:
        """mitmproxy's name: the messages in ``data`` from the client or the server."""
        return self.unpack(self.context.client if from_client else self.context.server, data)

    def query(self, message: DNSMessage) -> CommandGenerator[None]:
        flow = self.flows.pop(message.id, None)
        if flow is None:
            flow = DNSFlow(self.context.client, self.context.server, live=True)
        self.flows[message.id] = flow
        while len(self.flows) > MAX_OPEN_FLOWS:
            _, old = self.flows.popitem(last=False)
            old.live = False
        flow.request = message  # a repeated id asks again
        yield DnsRequestHook(flow)
        if flow.response is not None:
            yield from self.answer(flow.response, flow)
            return
        if flow.error is not None:
            yield from self.fail(flow, flow.error.msg)
            return
        server = self.context.server
        if not server.address:
            yield from self.fail(flow, "No hook has set a response and there is no upstream server.")
            return
        if not server.connected:
            err = yield commands.OpenConnection(server)
            if err:
                yield from self.fail(flow, err)
                return
        yield commands.SendData(server, pack_message(flow.request, server.transport_protocol))

    def answer(self, message: DNSMessage, flow: DNSFlow | None = None) -> CommandGenerator[None]:
        if flow is None:
            flow = self.flows.get(message.id)
            if flow is None:
                yield commands.Log(f"DNS answer with unknown id {message.id} dropped", "debug")
                return
        flow.response = message
        yield DnsResponseHook(flow)
        if flow.response is not None:
            yield commands.SendData(
                self.context.client, pack_message(flow.response, self.context.client.transport_protocol)
            )

    def fail(self, flow: DNSFlow, reason: str) -> CommandGenerator[None]:
        flow.error = Error(reason)
        yield DnsErrorHook(flow)
        servfail = flow.request.fail(response_codes.SERVFAIL)
        yield commands.SendData(self.context.client, pack_message(servfail, self.context.client.transport_protocol))

    def closed(self, connection: Connection) -> CommandGenerator[None]:
        client = self.context.client
        if connection == client:
            if self.context.server.connected:
                yield commands.CloseConnection(self.context.server)
            yield commands.CloseConnection(client)
            self._goto(self.state_done)
            for flow in self.flows.values():
                flow.live = False
            return
        # The server went away: whatever it left unanswered fails now.
        yield commands.CloseConnection(connection)
        for flow in list(self.flows.values()):
            if flow.response is None and flow.error is None:
                yield from self.fail(flow, connection.error or "Connection closed by the server.")
