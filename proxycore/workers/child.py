"""A worker process: the default addons and scripts, listeners on the shared port, and
PrimaryLink, which reports flows to the primary and carries out its resume/kill.

Started by the primary as ``python -m proxycore.workers CHANNEL INDEX``; it takes its
options from the primary's first message and exits when the channel closes.
"""

from __future__ import annotations

import asyncio
import logging
import os
import select
import signal
import weakref
from typing import Any

from proxycore import workers
from proxycore.exceptions import OptionsError
from proxycore.proxy import server

logger = logging.getLogger("proxycore.workers")

# A larger message is not held for the end of the pass but written at once, its flow's
# connection waiting for the channel: a worker waits as a whole only for small messages.
HOLD_AT_MOST = 64 * 1024

_MESSAGE_HOOKS = frozenset({"websocket_message", "tcp_message"})
MAX_STREAMS = 10_000
# Log lines kept until the primary says whether it wants them (the first ones: a script's
# load-time lines, "listening at"); those beyond are counted, not kept.
MAX_EARLY_LINES = 1000


class PrimaryLink:
    """The last addon of a worker: sends each flow hook the primary asked for.

    Its hook methods exist only for those hooks (``__getattr__``), so a hook the primary
    does not want stays one the driver can skip without a task.

    The messages of one loop pass go out together (``flush``): at the end of the pass, or
    before the driver writes to any peer (``server.BEFORE_WRITES``), whichever is first.  So
    a finished flow is in the primary's socket before its client hears more (a worker
    killed after answering loses no finished flow), and flows that finish in the same pass
    cost one send and one wakeup of the primary instead of one each."""

    def __init__(self, writer: asyncio.StreamWriter, loop: asyncio.AbstractEventLoop) -> None:
        self.writer = writer
        self.loop = loop
        self.fd = writer.transport.get_extra_info("socket").fileno()
        self.wanted: frozenset[str] = frozenset()
        self.records: frozenset[str] = frozenset()  # hooks sent as flow-file records
        self.with_records: frozenset[str] = frozenset()  # hooks sent with their record
        self.flows: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self.held: list[bytes] = []  # messages of this pass, not sent yet
        # live WebSocket/TCP flows: how many of their messages the primary has
        self.sent_messages: dict[str, int] = {}
        self.log_forwarder: LogForwarder | None = None  # until the primary says ("logs", wanted)

    def __getattr__(self, name: str) -> Any:
        if name in self.__dict__.get("wanted", ()):
            return lambda flow: self._forward(name, flow)
        raise AttributeError(name)

    def _forward(self, hook: str, flow: Any) -> Any:
        """A plain function (so the driver runs it without a task) that returns the drain
        to await only for a message that went to the channel at once and is not all out."""
        if self.writer.is_closing():
            return None
        if hook in self.records:
            if hook == "response" and flow.websocket is not None:
                return None  # saved at websocket_end, as the Save addon does
            data = workers.encode_record(flow)
        else:
            data = self._flow_message(hook, flow)
        transport = self.writer.transport
        if len(data) > HOLD_AT_MOST or transport.get_write_buffer_size():
            # A large body, or the primary behind: this flow's connection waits until the
            # message is in the primary's socket, not the whole worker (what is held, older,
            # goes first; while the transport holds any of these, so does every message).
            self.send_now(data)
            return self.writer.drain() if transport.get_write_buffer_size() else None
        if not self.held:
            server.BEFORE_WRITES = self.flush
            # Flushed at the end of the pass with the driver's writes (first, when this is
            # the first flow of the pass; else the writes before us call BEFORE_WRITES).
            server._pass_writer.add(self, self.loop)
        self.held.append(data)
        return None

    def flush(self) -> None:
        """Send the held messages in one write.  Should the primary be so far behind that
        its socket cannot take them (they are small: see HOLD_AT_MOST), the whole worker
        waits here until it can: nothing else may reach a client first."""
        held = self.held
        if not held:
            return
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        server.BEFORE_WRITES = None
        try:
            sent = os.write(self.fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return  # the primary is gone (the worker stops when its channel reads EOF)
        if sent < len(data):
            _write_all(self.fd, memoryview(data)[sent:])

    flush_writes = flush  # (what the driver's pass writer calls at the end of the pass)

    def send_now(self, data: bytes) -> None:
        """Write ``data`` now, after what is held (a large flow message, a log line, a report)."""
        if not self.writer.is_closing():
            self.flush()
            self.writer.write(data)

    def _flow_message(self, hook: str, flow: Any) -> bytes:
        """The flow; for a message hook, the message it added alone when the primary has
        the flow with all the others (the whole flow each time made a WebSocket or TCP
        session quadratic: 2,000 round trips took 17 s instead of 1 s)."""
        messages = workers.flow_messages(flow)
        if hook in _MESSAGE_HOOKS and messages and self.sent_messages.get(flow.id) == len(messages) - 1:
            try:
                data = workers.encode(("message", hook, flow.id, messages[-1].get_state()))
            except ValueError:  # (a script's content marshal cannot carry: the flow goes)
                pass
            else:
                self.sent_messages[flow.id] = len(messages)
                return data
        self.flows[flow.id] = flow
        # (a response of a WebSocket flow is saved at websocket_end, as in Save)
        with_record = hook in self.with_records and not (hook == "response" and flow.websocket is not None)
        data = workers.encode_flow(hook, flow, with_record)
        if hook in workers.LAST_HOOKS or messages is None:
            self.sent_messages.pop(flow.id, None)
        else:
            if len(self.sent_messages) >= MAX_STREAMS and flow.id not in self.sent_messages:
                self.sent_messages.clear()  # (flows sent in full again: bounded, still right)
            self.sent_messages[flow.id] = len(messages)
        return data

    def running(self) -> None:
        from proxycore import ctx

        _forget_shared()  # (the proxyserver, an addon before this one, has bound its listeners)
        self.report_listeners(ctx.master)

    def report_listeners(
        self, master: Any, update: asyncio.Task[str | None] | None = None, answer: bool = False
    ) -> None:
        """Tell the primary what this worker's listeners serve (the web API's servers): each
        mode's addresses and error, and why ``update`` (a change the primary sent) failed,
        if it did; the primary binds nothing itself once the listen options changed.
        ``answer``: then answer the primary's change (``listen_update``)."""
        error = None
        if update is not None:
            error = "The listeners were not updated." if update.cancelled() else _result(update)
        listeners = [
            (li.mode.full_spec, [list(a[:2]) for a in li.addresses], str(li.last_exception or "") or None)
            for li in getattr(master.addons.get("proxyserver"), "listeners", ())
        ]
        self.send_now(workers.encode(("listeners", listeners, error)))
        if answer:
            self.send_now(workers.encode(("listen_update", error)))

    def stop_all(self, master: Any, stop_here: Any) -> None:
        """Ask the primary to stop the proxy (with this worker's exit code), then stop."""
        data = workers.encode(("shutdown", int(master.exit_code or 0)))
        try:
            master.event_loop.call_soon_threadsafe(self.send_now, data)  # (may come from a thread)
        except (AttributeError, RuntimeError):  # not running yet, or the loop is closed
            pass
        stop_here()

    def handle(self, master: Any, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "options":
            proxyserver = master.addons.get("proxyserver")
            before = getattr(proxyserver, "update_task", None)
            failure = None
            try:
                master.options.update_defer(**message[1])  # (a script loaded later declares some)
            except OptionsError as e:
                logger.error(f"worker cannot apply the primary's options: {e}")
                failure = str(e)
            update = getattr(proxyserver, "update_task", None)
            if update is not None and update is not before:  # the listeners change: report them
                update.add_done_callback(lambda task: self.report_listeners(master, task, answer=True))
            elif message[1].keys() & workers.LISTEN_OPTIONS:  # (not running yet, or refused)
                self.send_now(workers.encode(("listen_update", failure)))
        elif kind == "hooks":
            self.wanted = frozenset(message[1]) & frozenset(workers.FORWARDABLE)
            self.records = frozenset(message[2])
            self.with_records = frozenset(message[3])
            master.addons.refresh_hooks()
        elif kind == "logs":
            forwarder = self.log_forwarder
            self.log_forwarder = None
            if forwarder is not None:
                forwarder.answered(message[1])
        elif kind == "resume":
            flow = self.flows.get(message[1])
            if flow is not None:
                _apply_edits(flow, message[2])
                flow.resume()
        elif kind == "kill":
            flow = self.flows.get(message[1])
            if flow is not None and flow.killable:
                flow.kill()
        elif kind == "inject":
            _inject(master, self.flows.get(message[1]), *message[2:])


def _result(task: asyncio.Task[str | None]) -> str | None:
    """The error a listener update returned, or the one it raised."""
    failure = task.exception()
    return task.result() if failure is None else repr(failure)


def _write_all(fd: int, data: memoryview) -> None:
    """Write the rest of a message to the channel's non-blocking socket, waiting while it
    is full; an error means the primary is gone."""
    poller = select.poll()
    poller.register(fd, select.POLLOUT)
    while data:
        poller.poll(1000)
        try:
            data = data[os.write(fd, data) :]
        except BlockingIOError:
            continue
        except OSError:
            return


class LogForwarder(logging.Handler):
    """Sends this worker's log lines to the primary for its event log (proxyweb's Events),
    formatted there as the terminal shows them; the worker's own terminal output stays.

    Installed before the scripts load and the listeners bind, it keeps the lines (up to
    MAX_EARLY_LINES) until the primary says whether it has an event log (``answered``):
    then they are sent, or dropped with the handler."""

    def __init__(self, link: PrimaryLink) -> None:
        from proxycore.addons.termlog import TermLogHandler

        super().__init__(logging.DEBUG)
        self.link = link
        self.loop = asyncio.get_running_loop()
        self.text = TermLogHandler(level=logging.DEBUG)
        self.text.colour = False
        self.text.full_tracebacks = True
        self.early: list[bytes] | None = []  # None once the primary answered
        self.left_out = 0

    def install(self) -> None:
        logging.getLogger().addHandler(self)

    def answered(self, wanted: bool) -> None:
        """The primary's ``("logs", wanted)``: send the lines kept so far and those to come,
        or none."""
        early, self.early = self.early or [], None
        if not wanted:
            logging.getLogger().removeHandler(self)
            return
        if self.left_out:
            note = f"{self.left_out} more log lines of this worker's start were left out."
            early.append(workers.encode(("log", logging.WARNING, note)))
        for data in early:
            self.link.send_now(data)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = workers.encode(("log", record.levelno, self.text.format(record)))
        except Exception:
            self.handleError(record)
            return
        early = self.early
        if early is not None:
            if len(early) < MAX_EARLY_LINES:
                early.append(data)
            else:
                self.left_out += 1
            return
        try:
            self.loop.call_soon_threadsafe(self.link.send_now, data)  # (a record may come from a thread)
        except RuntimeError:  # the loop is closed: the worker is ending
            pass


def _inject(master: Any, flow: Any, kind: str, from_client: bool, content: bytes, opcode: int) -> None:
    """A message the primary's user injected into a live TCP or WebSocket flow of ours."""
    from proxycore.exceptions import CommandError
    from proxycore.proxy.events import MessageInjected

    if flow is None:
        return
    if kind == "tcp":
        from proxycore.tcp import TCPMessage

        message: Any = TCPMessage(from_client, content)
    else:
        from proxycore.websocket import Opcode, WebSocketMessage

        message = WebSocketMessage(Opcode(opcode), from_client, content)
    try:
        master.addons.get("proxyserver").inject_event(MessageInjected(flow, message))
    except CommandError as e:
        logger.info(f"cannot inject into {flow!r}: {e}")


def _apply_edits(flow: Any, state: dict[str, Any]) -> None:
    """What the primary's user changed while the flow was intercepted: request, response,
    mark and comment (never the connections, which the worker's driver owns)."""
    for part in ("request", "response"):
        message = getattr(flow, part, None)
        wanted = state.get(part)
        if message is not None and wanted and message.get_state() != wanted:
            message.set_state(wanted)
    flow.marked = state.get("marked", flow.marked)
    flow.comment = state.get("comment", flow.comment)


def _forget_shared() -> None:
    """Close the listening sockets the primary handed down, once our listeners started (they
    hold copies of those they use): a port the options no longer name (changed before or
    after this worker started) must not stay open with nobody accepting.  Listeners bound
    later bind with SO_REUSEPORT here, as the primary closed its sockets on the change."""
    for sockets in server.SHARED_SOCKETS.values():
        for sock in sockets:
            sock.close()
    server.SHARED_SOCKETS.clear()


def _share(index: int, spec: str) -> None:
    """Take the listening sockets the primary handed down, and balance accepts with the
    other workers through the shared counts (see proxycore/workers/balance.py)."""
    import json
    import socket

    from proxycore.proxy import server
    from proxycore.workers.balance import Counts

    shared = json.loads(spec)
    for host, port, fds in shared["listeners"]:
        sockets = [socket.socket(fileno=fd) for fd in fds]  # (leaves the descriptor's flags alone)
        for sock in sockets:
            sock.setblocking(False)
        server.SHARED_SOCKETS[(host, port)] = sockets
    if shared["counts"]:
        counts = Counts(shared["counts"], int(os.stat(shared["counts"]).st_size) // 8)
        counts.set(index, 0)
        server._client_slots.publish = lambda n: counts.set(index, n)
        server.ACCEPT_GATE = lambda: counts.hold_back(index)


async def run(channel: str, index: int, shared: str = "") -> int:
    from proxycore.addons import default_addons
    from proxycore.addons.termlog import TermLog
    from proxycore.compat import install_mitmproxy_alias
    from proxycore.master import Master
    from proxycore.options import Options

    workers.IN_WORKER = True
    server.REUSE_PORT = True
    if shared:
        _share(index, shared)
    for name in ("asyncio", "hpack", "h2", "tornado"):
        logging.getLogger(name).setLevel(logging.WARNING)
    if index > 0:  # "listening at ..." once (worker 0), not once per worker; failures still show
        logging.getLogger("proxycore.proxyserver").setLevel(logging.WARNING)
    termlog = TermLog(manage_root_level=True)
    install_mitmproxy_alias()
    reader, writer = await asyncio.open_unix_connection(channel)
    writer.transport.set_write_buffer_limits(high=0)
    writer.write(workers.encode(("hello", index, os.getpid())))
    await writer.drain()  # (the high-water mark is 0: all of it; PrimaryLink writes to the socket itself)
    first = await workers.receive(reader)
    if first is None or first[0] != "options":
        return 1
    opts = Options()
    master = Master(opts)
    link = PrimaryLink(writer, asyncio.get_running_loop())
    link.log_forwarder = LogForwarder(link)  # (keeps the lines until the primary answers)
    link.log_forwarder.install()
    # A shutdown asked for here (a script's ctx.master.shutdown(), the exit command) stops
    # the whole proxy, as in one process: the primary hears of it first.  A signal or the
    # primary's going stop only this worker.
    stop_here = master.shutdown
    master.shutdown = lambda: link.stop_all(master, stop_here)  # type: ignore[method-assign]  # this instance only
    master.addons.add(termlog, *default_addons(), link)
    try:
        opts.update_defer(**first[1])
    except OptionsError as e:
        logger.error(f"worker {index}: {e}")
        return 1

    async def listen() -> None:
        while (message := await workers.receive(reader)) is not None:
            link.handle(master, message)
        stop_here()  # the primary is gone

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop_here)
    listening = loop.create_task(listen())
    try:
        await master.run(freeze_heap=True)
    finally:
        link.flush()
        listening.cancel()
        writer.close()
        termlog.uninstall()
    return 0
