"""WorkerPool: the primary's side of ``--workers N``.

It starts the worker processes, replaces one that dies, passes every option change on
to all of them, and feeds the flows they report to the addons that must see each flow
exactly once: the observers (view, ``-w`` writer, HAR writer, proxydump's output).  Other
addons (scripts, intercept, replay…) already ran in the worker and are not run again.
A flow delivered here gets ``resume``/``kill`` that reach the worker owning it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import marshal
import os
import shutil
import signal
import socket
import sys
import weakref
from collections import deque
from collections.abc import Coroutine
from typing import Any

from proxycore import ctx, workers
from proxycore.flow import Flow

logger = logging.getLogger("proxycore.workers")

# Addons (by class name) that the flows of workers are delivered to.
OBSERVERS = frozenset({"View", "Save", "SaveHar", "Dumper"})
# Options that only mean something in the primary.
PRIMARY_ONLY = frozenset({
    "workers", "save_stream_file", "save_stream_filter", "hardump", "rfile", "readfile_filter",
    "client_replay", "keepserving",
})
# An observer's handler of a hook: (addon, hook name, handler, whether it takes a list of
# flows, as ``update`` does).
_Call = tuple[Any, str, Any, bool]
# Reading a channel pauses this long after a burst that came this soon after the one
# before: under load the next read then brings many flows at once, not one or two (each
# read costs the primary a wake-up, a recv() and a write() of the -w file).  The worker's
# messages wait in the socket meanwhile, where a worker that dies cannot take them along.
HOLD_OFF = 0.002
# ... unless the read was this large, or ended inside a message: more is on its way (a flow
# with a large body must not arrive a read every HOLD_OFF).
HOLD_OFF_BELOW = 1 << 16
# A worker that dies sooner than this after its start is restarted with a growing delay.
QUICK_EXIT = 2.0
STOP_TIMEOUT = 5.0
# How long a change of the listen options waits for the workers' answers (a worker that
# does not answer in time counts as one that followed it).
LISTEN_TIMEOUT = 10.0
WORKER_GONE = "Worker process exited."


def _forwarded(name: str) -> bool:
    return name not in PRIMARY_ONLY and not name.startswith("web_")


def _is_observer(addon: Any) -> bool:
    return type(addon).__name__ in OBSERVERS


def _flow_classes() -> dict[str, type[Flow]]:
    global _classes
    if _classes is None:
        from proxycore.http import HTTPFlow
        from proxycore.tcp import TCPFlow

        _classes = {"http": HTTPFlow, "tcp": TCPFlow}
    return _classes


_classes: dict[str, type[Flow]] | None = None


class _Worker:
    """One connected worker: its channel and the process behind it."""

    def __init__(self, index: int, pid: int, writer: asyncio.WriteTransport) -> None:
        self.index = index
        self.pid = pid
        self.writer = writer
        self.connections = workers.KeptConnections()  # the objects made of its states
        self.flows: weakref.WeakValueDictionary[str, Flow] = weakref.WeakValueDictionary()
        # its live WebSocket and TCP flows, kept: their messages come one by one ("message")
        self.streams: dict[str, Flow] = {}
        # what its listeners serve, as it last reported ("listeners"): None until it does
        self.listeners: tuple[list[Any], str | None] | None = None
        # the answers ("listen_update") to the changes of the listen options sent, in order
        self.listen_answers: deque[asyncio.Future[str | None]] = deque()

    def connections_of(self, state: dict[str, Any]) -> tuple[Any, Any] | None:
        """The client and server objects of a flow message's state: made of the states it
        carries (and kept, as the worker keeps them), or those kept for the ids it carries.
        Every message goes through here, so that both ends keep the same (None: one
        of them cannot be made)."""
        client = state.get("client_conn")
        server = state.get("server_conn")
        if type(client) is str and type(server) is str:  # (mostly: connections kept alive)
            kept = self.connections.kept
            client, server = kept.get(client), kept.get(server)
        else:
            from proxycore.connection import Client, Server

            client, server = self._connection(Client, client), self._connection(Server, server)
        return None if client is None or server is None else (client, server)

    def _connection(self, cls: Any, value: Any) -> Any:
        if type(value) is str:
            return self.connections.kept.get(value)
        try:
            connection = cls.from_state(value)
        except Exception as e:
            logger.error(f"worker {self.index} sent a connection that cannot be read: {e!r:.200}")
            connection = None
        if type(value) is dict and type(value.get("id")) is str:
            self.connections.keep(value["id"], connection)
        return connection

    def send(self, message: tuple[Any, ...]) -> None:
        if not self.writer.is_closing():
            self.writer.write(workers.encode(message))


class SharedListener:
    """A mode the workers serve, as the web API reports a listener (``servers_json``)."""

    def __init__(self, mode: Any, addresses: list[tuple[str, int]], last_exception: str | None = None) -> None:
        self.mode = mode
        self.addresses = addresses
        self.last_exception = last_exception

    @property
    def is_running(self) -> bool:
        return bool(self.addresses)


class WorkerPool:
    def __init__(self) -> None:
        self.workers: dict[int, _Worker] = {}
        self.processes: dict[int, asyncio.subprocess.Process] = {}
        self.flows: weakref.WeakValueDictionary[str, Flow] = weakref.WeakValueDictionary()
        self._channel_dir: str | None = None
        self._server: asyncio.AbstractServer | None = None
        self._keepers: list[asyncio.Task[None]] = []
        self._reading: set[asyncio.Future[None]] = set()  # each worker's channel, until it ends
        self._stopping = False
        self._stop_asked = False  # a worker asked the proxy to stop: it is not replaced
        self._hooks: tuple[list[str], list[str], list[str]] = ([], [], [])
        self._flush_pending = False
        self._observer_calls: dict[str, tuple[dict[str, Any], list[_Call]]] = {}
        # Listening sockets bound here and handed to every worker, and the shared
        # connection counts (proxycore/workers/balance.py).
        self._shared: list[tuple[str, int, list[socket.socket]]] = []
        self._counts: Any = None
        # A change of the listen options: its outcome (None, or why the workers could not
        # follow it; then the options go back, as one process's Proxyserver does), which the
        # web API awaits; the values the workers serve; the last change that failed.
        self.update_task: asyncio.Task[str | None] | None = None
        self._listen_applied: dict[str, Any] = {}
        self._listen_failure: str | None = None
        self._reverting = False

    # lifecycle ------------------------------------------------------------------------

    async def running(self) -> None:
        options = ctx.options
        if not workers.serves_elsewhere(options) or not options.server:
            return
        count = workers.worker_count(options.workers)
        if options.listen_port == 0:  # every worker must bind the same port: choose it here
            options.update(listen_port=_free_port(options.listen_host))
        import tempfile  # only when workers start, not in every proxy (issue 15: start-up imports)

        self._channel_dir = tempfile.mkdtemp(prefix="proxycore-workers-")
        path = os.path.join(self._channel_dir, "channel")
        loop = asyncio.get_running_loop()
        self._server = await loop.create_unix_server(lambda: _Channel(self), path)
        if not self._share_listeners(options):
            return  # logged: the start-up error check ends the proxy, as without workers
        from proxycore.workers.balance import Counts

        self._counts = Counts(os.path.join(self._channel_dir, "counts"), count, create=True)
        self._keepers = [asyncio.create_task(self._keep(i, path)) for i in range(count)]
        self._listen_applied = {name: getattr(options, name) for name in workers.LISTEN_OPTIONS}
        logger.info(f"Starting {count} worker processes.")

    def _share_listeners(self, options: Any) -> bool:
        """Bind the TCP listeners of the modes here, for the workers to share one accept
        queue; False (and the error logged once, as one process logs it) if one fails."""
        from proxycore.addons.proxyserver import listen_failure
        from proxycore.proxy import server

        self._close_shared()
        for mode in _modes(options):
            if mode.transport_protocol != "tcp":
                continue
            host = mode.listen_host(options.listen_host).strip("[]")
            port = mode.listen_port(options.listen_port)
            if port is None:
                continue
            try:
                sockets = server.bind_shared(host, port)
            except OSError as e:
                logger.error(listen_failure(mode, host, port, e))
                self._close_shared()
                return False
            self._shared.append((host, port, sockets))
        return True

    def listeners(self) -> list[SharedListener]:
        """What the workers serve, for the web API's servers (``api/app.py``: the primary's
        proxyserver runs no listener): each mode with the addresses the workers report
        (after a change of the listen options each binds its own) and the error of one, if
        any; until the first report, the addresses of the sockets bound here for them."""
        if not self._keepers or self._stopping:  # (no workers started)
            return []
        reports = [self.workers[i].listeners for i in sorted(self.workers)]
        if not any(reports):
            bound = {(host, port): sockets for host, port, sockets in self._shared}
            result = []
            for mode in _modes(ctx.options):
                host = mode.listen_host(ctx.options.listen_host).strip("[]")
                sockets = bound.get((host, mode.listen_port(ctx.options.listen_port)), [])
                result.append(SharedListener(mode, [s.getsockname()[:2] for s in sockets]))
            return result
        merged: dict[str, SharedListener] = {}
        for report in reports:
            listeners, failed = report or ([], None)
            if failed and not listeners:  # (none left: the modes asked for, with the error)
                listeners = [(mode.full_spec, [], None) for mode in _modes(ctx.options)]
            for spec, addresses, error in listeners:
                entry = merged.get(spec)
                if entry is None:
                    entry = merged[spec] = SharedListener(_mode(spec), [])
                entry.addresses += [(a[0], a[1]) for a in addresses if (a[0], a[1]) not in entry.addresses]
                entry.last_exception = entry.last_exception or failed or error or self._listen_failure
        return [entry for entry in merged.values() if entry.mode is not None]

    def _close_shared(self) -> None:
        for _, _, sockets in self._shared:
            for sock in sockets:
                sock.close()
        self._shared = []

    def _worker_args(self) -> tuple[list[str], list[int]]:
        """The extra argument of ``python -m proxycore.workers`` and the descriptors it names."""
        import json

        listeners: list[tuple[str, int, list[int]]] = [
            (host, port, [s.fileno() for s in sockets]) for host, port, sockets in self._shared
        ]
        fds = [fd for _, _, fds_ in listeners for fd in fds_]
        counts = self._counts.path if self._counts is not None else ""
        return [json.dumps({"listeners": listeners, "counts": counts})], fds

    async def done(self) -> None:
        self._stopping = True
        self._close_shared()
        for task in self._keepers:
            task.cancel()
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        for process in self.processes.values():
            try:
                await asyncio.wait_for(process.wait(), STOP_TIMEOUT)
            except TimeoutError:
                process.kill()
                await process.wait()
        if self._reading:  # what the workers sent before they exited: -w and the view get it
            await asyncio.wait(self._reading, timeout=STOP_TIMEOUT)
        if self._server is not None:
            self._server.close()
        for worker in self.workers.values():
            worker.writer.close()
        if self._channel_dir:
            shutil.rmtree(self._channel_dir, ignore_errors=True)

    async def _keep(self, index: int, path: str) -> None:
        """Run worker ``index``; when it exits (and we are not stopping), start another."""
        loop = asyncio.get_running_loop()
        delay = 0.0
        while not self._stopping:
            started = loop.time()
            extra, fds = self._worker_args()
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "proxycore.workers", path, str(index), *extra,
                stdin=asyncio.subprocess.DEVNULL, pass_fds=fds,
            )
            self.processes[index] = process
            status = await process.wait()
            if self._counts is not None:
                from proxycore.workers.balance import ABSENT

                self._counts.set(index, ABSENT)  # nobody waits for a worker that is gone
            if self._stopping or self._stop_asked:
                return
            how = f"was killed by signal {-status}" if status < 0 else f"exited with status {status}"
            logger.error(f"Worker {index} (pid {process.pid}) {how}; starting a new one.")
            delay = min(max(delay * 2, 0.25), 10.0) if loop.time() - started < QUICK_EXIT else 0.0
            await asyncio.sleep(delay)

    # options ---------------------------------------------------------------------------

    def configure(self, updated: set[str]) -> None:
        listen = bool(updated & workers.LISTEN_OPTIONS)
        if listen:
            self._close_shared()  # the workers bind the new listeners themselves
            if not self._reverting:
                self._listen_failure = None
        if not self.workers:
            return
        values = {name: getattr(ctx.options, name) for name in updated if _forwarded(name)}
        answers = []
        for worker in self.workers.values():
            if values:
                worker.send(("options", values))
                if listen:
                    answers.append(asyncio.get_running_loop().create_future())
                    worker.listen_answers.append(answers[-1])
        if answers:
            self.update_task = asyncio.get_running_loop().create_task(self._listen_outcome(answers))
        # Observers may have switched hooks on or off: look once the hook index is rebuilt.
        asyncio.get_running_loop().call_soon(self._send_hooks)

    async def _listen_outcome(self, answers: list[asyncio.Future[str | None]]) -> str | None:
        """None once every worker follows a change of the listen options; else the first
        error, the options put back (the workers went back already, as one process does)."""
        done, _ = await asyncio.wait(answers, timeout=LISTEN_TIMEOUT)
        errors = [f.result() for f in answers if f in done and f.result()]
        options = ctx.options
        if not errors:
            self._listen_applied = {name: getattr(options, name) for name in workers.LISTEN_OPTIONS}
            return None
        self._listen_failure = errors[0]
        restore = {k: v for k, v in self._listen_applied.items() if getattr(options, k) != v}
        self._reverting = True
        try:
            options.update(**restore)
        finally:
            self._reverting = False
        return errors[0]

    def _snapshot(self) -> dict[str, Any]:
        options = ctx.options
        return {name: value for name, value in options.items() if options.has_changed(name) and _forwarded(name)}

    def _wanted_hooks(self) -> tuple[list[str], list[str], list[str]]:
        """The hooks observers implement, those of them to send as finished flow-file
        records (when the only observer is an unfiltered ``-w``, proxydump -q -w, the
        primary does not need flow objects at all, only the bytes to append), and those
        whose flow comes with its record (``-w`` among other observers: the worker makes
        the record, as it would have alone, rather than the primary for every worker).
        The end hooks of a WebSocket or TCP flow come along whenever a hook that makes the
        primary keep such a flow does (proxydump's output: ``tcp_message`` but no
        ``tcp_end``), so that it is dropped when it ends."""

        addons = ctx.master.addons
        observers: set[Any] = set()
        hooks = []
        for name in workers.FORWARDABLE:
            found = [a for a, _ in addons.handlers(name) if _is_observer(a)]
            if found:
                hooks.append(name)
                observers.update(found)
        ends = {end for name in hooks for end in workers.STREAM_HOOKS.get(name, ())}
        hooks += [name for name in workers.FORWARDABLE if name in ends and name not in hooks]
        save = self._save()
        records = save is not None and observers == {save} and save.filter is None
        if not records:
            written = [h for h in hooks if h in workers.LAST_HOOKS and any(a is save for a, _ in addons.handlers(h))]
            return hooks, [], written
        # Only a flow's last hook makes a record, and then nothing else is sent: Save also
        # listens to the first hooks (to write flows still open when its file closes), and
        # a copy of every flow would be appended for them.
        last = [h for h in hooks if h in workers.LAST_HOOKS]
        return last, last, []

    def _save(self) -> Any:
        save = ctx.master.addons.get("save")
        return save if save is not None and type(save).__name__ == "Save" else None

    def _send_hooks(self) -> None:
        hooks = self._wanted_hooks()
        if hooks != self._hooks:
            self._hooks = hooks
            for worker in self.workers.values():
                worker.send(("hooks", *hooks))

    def _write_records(self, records: list[bytes]) -> None:
        """Append the records that arrived together; the file is flushed once the loop has
        handled what it read (one write() for a burst, or for the bursts of several
        workers, rather than one per flow)."""
        save = self._save()
        if save is not None and save.writer is not None and save.file is not None:
            save.writer.fo.write(records[0] if len(records) == 1 else b"".join(records))
            if not self._flush_pending:
                self._flush_pending = True
                asyncio.get_running_loop().call_soon(self._flush_records, save.file)

    def _flush_records(self, file: Any) -> None:
        self._flush_pending = False
        if not file.closed:
            file.flush()

    # the channel -----------------------------------------------------------------------

    def _connected(self, hello: tuple[Any, ...], transport: asyncio.WriteTransport) -> _Worker:
        worker = _Worker(hello[1], hello[2], transport)
        self.workers[worker.index] = worker
        self._hooks = self._wanted_hooks()
        worker.send(("options", self._snapshot()))
        worker.send(("hooks", *self._hooks))
        worker.send(("logs", self._event_log() is not None))
        return worker

    def _lost(self, worker: _Worker) -> Coroutine[Any, Any, None] | None:
        """The worker's channel ended and what it sent was handled; what is left to await
        (its live flows ended, when it died while the proxy runs on)."""
        if self.workers.get(worker.index) is worker:
            del self.workers[worker.index]
        for answer in worker.listen_answers:  # (a worker that is gone follows no change)
            if not answer.done():
                answer.set_result(None)
        return None if self._stopping else self._end_flows_of(worker)

    def _received(self, worker: _Worker, message: tuple[Any, ...]) -> Coroutine[Any, Any, None] | None:
        """Handle a message other than ``record``; what is left to await if an observer awaits."""
        kind = message[0]
        if kind == "flow":
            connections = worker.connections_of(message[3])
            if connections is not None:
                record = message[4] if len(message) > 4 else None
                return self._deliver(worker, message[1], message[2], message[3], *connections, record)
        elif kind == "message":
            return self._deliver_message(worker, message[1], message[2], message[3])
        elif kind == "shutdown":  # a script or command in the worker asked
            self._stop_asked = True
            ctx.master.exit_code = ctx.master.exit_code or message[1]
            ctx.master.shutdown()
        elif kind == "listeners":
            worker.listeners = (message[1], message[2])
        elif kind == "listen_update":
            if worker.listen_answers:
                answer = worker.listen_answers.popleft()
                if not answer.done():
                    answer.set_result(message[1])
        elif kind == "log":
            store = self._event_log()
            if store is not None:
                store.deliver_line(message[1], message[2])
        return None

    async def _end_flows_of(self, worker: _Worker) -> None:
        """A worker that died ran its live flows (an intercepted one, say) to no end: end
        them here with an error, as a killed connection would, so that none stays
        intercepted or live for ever in the view and ``-w`` gets them as it gets errors."""
        from proxycore.flow import Error

        for flow in list(worker.flows.values()):
            if not flow.live:
                continue
            flow.live = False
            flow.intercepted = False
            if flow.error is None:
                flow.error = Error(WORKER_GONE)
            pending = self._notify("tcp_error" if flow.type == "tcp" else "error", flow)
            if pending is not None:
                await pending

    def _deliver_message(
        self, worker: _Worker, hook: str, flow_id: str, state: list[Any]
    ) -> Coroutine[Any, Any, None] | None:
        """One more message of a live WebSocket or TCP flow, which the worker sent alone."""
        flow = worker.streams.get(flow_id)
        messages = None if flow is None else workers.flow_messages(flow)
        if flow is None or messages is None:
            return None
        if flow.type == "tcp":
            from proxycore.tcp import TCPMessage

            messages.append(TCPMessage.from_state(state))
        else:
            from proxycore.websocket import WebSocketMessage

            messages.append(WebSocketMessage.from_state(state))
        return self._notify(hook, flow)

    def _notify(self, hook: str, flow: Flow) -> Coroutine[Any, Any, None] | None:
        """Run ``hook`` and then ``update`` on the observers, as the driver would; what is
        left to await if one of them awaits."""
        return self._call(self._calls(hook), flow)

    def _event_log(self) -> Any:
        """proxyweb's EventStore, which shows the workers' log lines too (None: none here)."""
        return ctx.master.addons.get("eventstore")

    def _deliver(
        self,
        worker: _Worker,
        hook: str,
        live: bool,
        state: dict[str, Any],
        client: Any,
        server: Any,
        record: bytes | None = None,
    ) -> Coroutine[Any, Any, None] | None:
        """Run the observers for the flow of a ``flow`` message; what is left to await if
        one of them awaits (None when all of them are done)."""
        flow = self.flows.get(state["id"])
        first = flow is None
        if flow is None:
            cls = _flow_classes().get(state.get("type", ""))
            if cls is None:
                return None
            flow = cls.from_state_with(state, client, server)
            self._attach(flow, worker)
            self.flows[flow.id] = flow
        else:
            flow.set_state_with(state, client, server)
        flow.live = live and (hook not in workers.LAST_HOOKS or flow.intercepted)
        if hook in workers.LAST_HOOKS:
            worker.streams.pop(flow.id, None)
        elif flow.type == "tcp" or getattr(flow, "websocket", None) is not None:
            worker.streams[flow.id] = flow
        calls = self._calls(hook)
        start = 0  # the hook's own calls, from which Save may write the worker's record
        introduce = workers.FIRST_HOOK.get(flow.type)
        if first and introduce and introduce != hook:
            before = self._calls(introduce)
            start = len(before)
            calls = before + calls
        return self._call(calls, flow, start, record)

    def _call(
        self, calls: list[_Call], flow: Flow, start: int = 0, record: bytes | None = None
    ) -> Coroutine[Any, Any, None] | None:
        """Run ``calls`` on ``flow`` until one awaits: then the rest, to be awaited.  From
        ``start`` on, Save's -w writes the worker's ``record`` for the flow, if there is one."""
        save = self._save() if record is not None else None
        addons = ctx.master.addons
        for i, (addon, name, handler, listed) in enumerate(calls):
            if i == start and save is not None:
                save.prepared = (flow, record)  # what its -w writes for this flow
            try:
                result = handler([flow] if listed else flow)
            except Exception as e:
                addons._report(addon, name, e)
                continue
            if result is not None and inspect.isawaitable(result):
                if save is not None:
                    save.prepared = None  # others may change the flow meanwhile
                return self._finish(calls, i, result, flow)
        if save is not None:
            save.prepared = None
        return None

    async def _finish(self, calls: list[_Call], index: int, result: Any, flow: Flow) -> None:
        """Await the observer at ``index`` of ``calls``, then run those after it."""
        addon, name = calls[index][:2]
        try:
            await result
        except Exception as e:
            ctx.master.addons._report(addon, name, e)
        rest = self._call(calls[index + 1 :], flow)
        if rest is not None:
            await rest

    def _calls(self, hook: str) -> list[_Call]:
        """The observers' handlers of ``hook`` and then of ``update``, as the driver runs
        them; kept while the manager's hook index is the same object (it makes a new one
        when the handlers may have changed, and fills it a hook at a time)."""
        addons = ctx.master.addons
        kept = self._observer_calls.get(hook)
        if kept is not None and kept[0] is addons.hook_index:
            return kept[1]
        calls = [(a, hook, h, False) for a, h in addons.handlers(hook) if _is_observer(a)]
        calls += [(a, "update", h, True) for a, h in addons.handlers("update") if _is_observer(a)]
        self._observer_calls[hook] = (addons.hook_index, calls)
        return calls

    def _attach(self, flow: Flow, worker: _Worker) -> None:
        """Give ``flow`` a resume and a kill that act in the worker running it."""
        kill = type(flow).kill
        worker.flows[flow.id] = flow

        def resume_remote() -> None:
            if flow.intercepted:
                flow.intercepted = False
                state = flow.get_state()
                state["metadata"] = {}
                worker.send(("resume", flow.id, state))

        def kill_remote() -> None:
            kill(flow)
            worker.send(("kill", flow.id))

        def inject_remote(event: Any) -> None:
            message = event.message
            opcode = int(getattr(message, "type", 0))
            kind = "tcp" if flow.type == "tcp" else "websocket"
            worker.send(("inject", flow.id, kind, message.from_client, message.content, opcode))

        # a worker's flow is controlled in its worker: these instances forward the calls
        flow.resume = resume_remote  # type: ignore[method-assign]
        flow.kill = kill_remote  # type: ignore[method-assign]  # as resume
        flow.inject_remote = inject_remote  # type: ignore[attr-defined]  # see Proxyserver.inject_event


class _Channel(asyncio.Protocol):
    """The primary's end of one worker's channel: the messages of what arrived together are
    parsed and handled right there, in order; no stream reader and no task woken for each
    burst.  While an observer awaits, reading pauses and later messages wait their turn."""

    def __init__(self, pool: WorkerPool) -> None:
        self.pool = pool
        self.transport: asyncio.Transport | None = None
        self.worker: _Worker | None = None
        self.partial = bytearray()  # the start of a message the next reads complete
        self.waiting: deque[tuple[Any, ...]] = deque()
        self.busy = False  # an observer awaits
        self.held = False  # reading pauses for HOLD_OFF
        self.last_read = float("-inf")
        self.loop: asyncio.AbstractEventLoop | None = None
        self.eof = False  # the worker closed the channel (it exited)
        self.ended: asyncio.Future[None] | None = None  # done once all it sent was handled

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # a stream transport (a uvloop one is not an asyncio.Transport)
        try:
            self.loop = asyncio.get_running_loop()
        except RuntimeError:  # (tests that feed a channel by hand)
            self.loop = None
        else:
            self.ended = self.loop.create_future()
            self.pool._reading.add(self.ended)

    def data_received(self, data: bytes | bytearray) -> None:
        size = len(data)
        if self.partial:
            self.partial += data
            data = self.partial
        try:
            offset = _parse(data, self.waiting)
        except (ValueError, EOFError, TypeError) as e:  # a length too large, bad marshal data
            logger.error(f"worker channel closed: {e!r:.200}")
            self.waiting.clear()
            self._close()
            return
        if data is self.partial:
            del self.partial[:offset]
        elif offset < len(data):
            self.partial += memoryview(data)[offset:]
        if not self.busy:
            self._run()
        loop = self.loop
        if loop is not None:
            now = loop.time()
            if (
                now - self.last_read < HOLD_OFF
                and size < HOLD_OFF_BELOW
                and not self.partial
                and not self.held
                and self.transport is not None
            ):
                self.held = True
                self.transport.pause_reading()
                loop.call_later(HOLD_OFF, self._release)
            self.last_read = now

    def _release(self) -> None:
        self.held = False
        self._resume_reading()

    def _resume_reading(self) -> None:
        if not self.busy and not self.held and self.transport is not None and not self.transport.is_closing():
            self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        if not self.busy:
            self._end()

    def _end(self) -> None:
        """The channel is closed and every message it brought handled: the worker is gone."""
        worker, self.worker = self.worker, None
        pending = self.pool._lost(worker) if worker is not None else None
        if pending is not None:
            asyncio.ensure_future(self._end_after(pending))
        else:
            self._ended()

    async def _end_after(self, pending: Coroutine[Any, Any, None]) -> None:
        try:
            await pending
        finally:
            self._ended()

    def _ended(self) -> None:
        if self.ended is not None and not self.ended.done():
            self.ended.set_result(None)
            self.pool._reading.discard(self.ended)

    def _close(self) -> None:
        if self.transport is not None:
            self.transport.close()

    def _run(self) -> None:
        """Handle the waiting messages until an observer awaits; a burst's records are
        appended together, before the next flow (the file keeps their order)."""
        pool, waiting = self.pool, self.waiting
        records: list[bytes] = []
        while waiting:
            message = waiting.popleft()
            worker = self.worker
            if worker is None:
                if message[0] != "hello":
                    waiting.clear()
                    self._close()
                    return
                assert self.transport is not None
                self.worker = pool._connected(message, self.transport)
            elif message[0] == "record":
                records.append(message[1])
            else:
                if records:
                    pool._write_records(records)
                    records = []
                try:
                    pending = pool._received(worker, message)
                except Exception as e:  # one message the primary cannot read: the next may do
                    logger.error(f"worker {worker.index} sent a message that cannot be read: {e!r:.200}")
                    continue
                if pending is not None:
                    self.busy = True
                    assert self.transport is not None
                    self.transport.pause_reading()
                    asyncio.ensure_future(self._resume_after(pending))
                    return
        if records:
            pool._write_records(records)

    async def _resume_after(self, pending: Coroutine[Any, Any, None]) -> None:
        try:
            await pending
        except Exception as e:  # (an observer's own failure: the messages behind it still go)
            logger.error(f"worker channel: an observer failed: {e!r:.200}")
        finally:
            self.busy = False
        self._run()  # (which may find another observer that awaits)
        if self.eof and not self.busy:
            self._end()
        else:
            self._resume_reading()


def _parse(data: bytes | bytearray, into: deque[tuple[Any, ...]]) -> int:
    """Append the whole messages at the start of ``data`` to ``into``; the length of them."""
    offset, size = 0, len(data)
    with memoryview(data) as view:
        while size - offset >= 4:
            (length,) = workers._LENGTH.unpack_from(data, offset)
            if length > workers.MAX_MESSAGE:
                raise ValueError(f"channel message of {length} bytes")
            end = offset + 4 + length
            if end > size:
                break
            into.append(marshal.loads(view[offset + 4 : end]))
            offset = end
    return offset


def _modes(options: Any) -> list[Any]:
    from proxycore.addons.proxyserver import parse_modes

    try:
        return parse_modes(options.mode)
    except ValueError:
        return []


def _mode(spec: str) -> Any:
    """The mode of a spec a worker reports (None if this process cannot read it)."""
    from proxycore.proxy.mode_specs import ProxyMode

    try:
        return ProxyMode.parse(spec)
    except ValueError:
        return None


def _free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host or "", 0))
        return s.getsockname()[1]
