"""``--set proxy_debug``: the driver logs every event into the layers and every command out,
at debug level, naming a layer and (through the record's ``client``) the connection.

No sockets: the toy layer opens a server without an address, which the driver answers
at once with an error, so one event round trip happens in-process.
"""

from __future__ import annotations

import asyncio
import logging

import pytest

from proxycore.connection import Client
from proxycore.master import Master
from proxycore.options import Options
from proxycore.proxy import commands, events
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.server import TRACE_LIMIT, ConnectionHandler


class Toy(Layer):
    def _handle_event(self, event: events.Event) -> CommandGenerator:
        if isinstance(event, events.Start):
            err = yield commands.OpenConnection(self.context.server)
            yield commands.SendData(self.context.client, str(err).encode() + b"x" * 1000)


def run_one(proxy_debug: bool, caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    master = Master(Options(proxy_debug=proxy_debug))
    client = Client(peername=("127.0.0.1", 50123))

    async def go() -> None:
        handler = ConnectionHandler(master, client, Toy)
        handler.feed(events.Start())
        for _ in range(5):  # the open is a task; its answer is fed back from it
            await asyncio.sleep(0)

    with caplog.at_level(logging.DEBUG, logger="proxycore.proxy"):
        asyncio.run(go())
    return [r for r in caplog.records if " >> " in r.getMessage() or " << " in r.getMessage()]


def test_proxy_debug_traces_events_in_and_commands_out(caplog: pytest.LogCaptureFixture) -> None:
    records = run_one(True, caplog)
    lines = [r.getMessage() for r in records]
    assert lines[0] == "[Toy] >> Start()"
    assert lines[1].startswith("[Toy] << OpenConnection(connection=Server(")
    assert lines[2].startswith("[Toy] >> OpenConnectionCompleted(OpenConnection(")
    assert lines[2].endswith("reply='No server address given.')")
    assert lines[3].startswith("[Toy] << SendData(client, b'No server address given.xxx")
    assert lines[3].endswith(" characters)") and len(lines[3]) < TRACE_LIMIT + 60  # data is cut short
    assert len(lines) == 4
    assert all(r.levelno == logging.DEBUG for r in records)
    assert all(r.client == ("127.0.0.1", 50123) for r in records)  # type: ignore[attr-defined]


def test_no_trace_without_proxy_debug(caplog: pytest.LogCaptureFixture) -> None:
    assert run_one(False, caplog) == []
