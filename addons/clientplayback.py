"""Client playback (``-C FILE``): send recorded requests to their servers again, for real.

Each replay runs through the same layers as live traffic, driven by the same driver,
only with no client socket: a stand-in client layer hands the recorded request to an
HttpLayer as if a client had just sent it. Upstream TLS, HTTP/2, connection hooks and
every HTTP hook therefore behave as for live flows, and the flow is marked
``is_replay == "request"``. Flows are replayed one at a time in queue order
(``client_replay_concurrency`` 1), or all at once with -1.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from proxycore import command, ctx, hooks
from proxycore.addons.termlog import ALERT
from proxycore.connection import Client, ConnectionState, Server
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.layers.http import HttpLayer, HTTPMode
from proxycore.layers.http._commands import ReceiveHttp
from proxycore.layers.http._events import (
    RequestData,
    RequestEndOfMessage,
    RequestHeaders,
    RequestTrailers,
    ResponseData,
    ResponseHeaders,
)
from proxycore.layers.http._hooks import HttpErrorHook, HttpResponseHook
from proxycore.proxy import commands, events
from proxycore.proxy.context import Context
from proxycore.proxy.layer import CommandGenerator, Layer
from proxycore.proxy.mode_specs import ProxyMode, UpstreamMode
from proxycore.proxy.server import ConnectionHandler
from proxycore.tcp import TCPFlow
from proxycore.udp import UDPFlow

if TYPE_CHECKING:
    from proxycore.layers.websocket import WebsocketEndHook

logger = logging.getLogger("proxycore.clientplayback")

STREAM_ID = 1


# WebSocket replay: seconds without a frame from the server after our last message (and
# after our close) before we go on; and the longest recorded pause kept with client_replay_timing.
WEBSOCKET_QUIET = 1.0
MAX_GAP = 10.0


class ReplayClient(Layer):
    """Stands where Http1Server would: "receives" the recorded request, drops the answer.

    For a WebSocket flow it goes on after the 101: it sends the recorded client messages as
    masked frames (one after the other, or with their pauses when client_replay_timing is
    on), then, once the server has been quiet for a second, a close (1000), and finally
    hangs up if the server has not."""

    def __init__(self, context: Context, flow: HTTPFlow) -> None:
        super().__init__(context)
        self.flow = flow
        self.messages = [m for m in flow.websocket.messages if m.from_client] if flow.websocket else []
        self.timing = bool(getattr(context.options, "client_replay_timing", False))
        self.frames: Any = None
        self.timer: commands.RequestWakeup | None = None
        self.stage = ""
        self.previous: float | None = None

    def _handle_event(self, event: events.Event) -> CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield from self.send_request()
        elif isinstance(event, ResponseHeaders):
            if event.response.status_code == 101 and self.flow.websocket is not None:
                import wsproto.frame_protocol

                self.frames = wsproto.frame_protocol.FrameProtocol(client=True, extensions=[])
                self.stage = "sending"
                yield from self.wait(0)
        elif isinstance(event, ResponseData) and self.stage in ("quiet", "closing"):
            yield from self.wait(WEBSOCKET_QUIET)  # the server still talks: listen longer
        elif isinstance(event, events.Wakeup) and event.command is self.timer:
            yield from self.tick()
        # Anything else would go to the client: there is none.

    def wait(self, delay: float) -> CommandGenerator[None]:
        self.timer = commands.RequestWakeup(delay)
        yield self.timer

    def tick(self) -> CommandGenerator[None]:
        if self.stage == "sending":
            if not self.messages:
                self.stage = "quiet"
                yield from self.wait(WEBSOCKET_QUIET)
                return
            message = self.messages[0]
            if self.timing and self.previous is not None:
                gap = min(max(message.timestamp - self.previous, 0.0), MAX_GAP)
                self.previous = message.timestamp
                if gap > 0:
                    yield from self.wait(gap)
                    return
            self.previous = message.timestamp
            self.messages.pop(0)
            payload: Any = message.content
            if message.is_text:
                payload = message.content.decode("utf-8", "surrogateescape")
            yield ReceiveHttp(RequestData(STREAM_ID, self.frames.send_data(payload, fin=True)))
            yield from self.wait(0)
        elif self.stage == "quiet":
            import wsproto.frame_protocol

            self.stage = "closing"
            close = self.frames.close(wsproto.frame_protocol.CloseReason.NORMAL_CLOSURE, "")
            yield ReceiveHttp(RequestData(STREAM_ID, close))
            yield from self.wait(WEBSOCKET_QUIET)
        elif self.stage == "closing":
            self.stage = "done"
            yield ReceiveHttp(RequestEndOfMessage(STREAM_ID))

    def send_request(self) -> CommandGenerator[None]:
        request = self.flow.request
        request.timestamp_start = request.timestamp_end = time.time()
        content = request.raw_content
        yield ReceiveHttp(
            RequestHeaders(
                STREAM_ID, request, end_stream=not (content or request.trailers), replay_flow=self.flow
            )
        )
        if content:
            yield ReceiveHttp(RequestData(STREAM_ID, content))
        if request.trailers:
            yield ReceiveHttp(RequestTrailers(STREAM_ID, request.trailers))
        yield ReceiveHttp(RequestEndOfMessage(STREAM_ID))


def replay_stack(flow: HTTPFlow) -> Any:
    """The layers for one replay: HTTP toward the recorded destination, TLS below for https."""

    def make(context: Context) -> Layer:
        request = flow.request
        upstream = _upstream_proxy()
        if upstream is not None:
            # As a client of upstream mode would: absolute form for http, CONNECT for https.
            # No address on the context's server, so the HttpLayer opens (and tunnels) its own.
            context.server = Server(address=None, via=(upstream.scheme, upstream.address))
            http = HttpLayer(context, HTTPMode.upstream)
            http.connections[context.client] = ReplayClient(context.fork(), flow)
            return http
        context.server = Server(address=(request.host, request.port))
        http = HttpLayer(context, HTTPMode.transparent)
        http.connections[context.client] = ReplayClient(context.fork(), flow)
        if request.scheme != "https":
            return http
        from proxycore.layers.tls import ServerTLSLayer

        context.server.sni = request.pretty_host
        return ServerTLSLayer(context, http)

    return make


def _upstream_proxy() -> UpstreamMode | None:
    """The upstream proxy replays go through: the first mode's, if it is upstream mode (as mitmproxy)."""
    modes = ctx.options.mode
    if not modes:
        return None
    try:
        mode = ProxyMode.parse(modes[0])
    except ValueError:
        return None
    return mode if isinstance(mode, UpstreamMode) else None


def _end_hooks() -> tuple[type[HttpResponseHook], type[HttpErrorHook], type[WebsocketEndHook]]:
    from proxycore.layers.websocket import WebsocketEndHook

    return (HttpResponseHook, HttpErrorHook, WebsocketEndHook)


class ReplayHandler(ConnectionHandler):
    """A connection handler with no client socket; done once the flow's last hook ran.

    The response/error hook (for a WebSocket, its end) is watched: it always gets a task,
    and its end is how we know the replay is over."""

    def __init__(self, master: Any, flow: HTTPFlow) -> None:
        # Here rather than on the class: the WebSocket layer is imported by the first replay.
        self.watched_hooks = _end_hooks()
        # A copy of the recorded client (its TLS details, ALPN offers and SNI shape the
        # upstream handshake), so the flow's own client_conn stays as recorded.
        import uuid  # here, not at start: uuid imports platform (~0.3 MB, issue 15)

        client = Client.from_state(flow.client_conn.get_state())
        client.id = str(uuid.uuid4())
        client.state = ConnectionState.OPEN
        super().__init__(master, client, replay_stack(flow), log_as="replay")
        self.flow = flow
        self.finished = asyncio.Event()

    async def replay(self) -> None:
        await self.run_detached(self.finished)

    def hook_finished(self, hook: Any) -> None:
        if hook.flow is not self.flow:
            return
        if isinstance(hook, HttpResponseHook) and self.flow.websocket is not None:
            return  # switched to WebSocket: the replay goes on until websocket_end
        self.finished.set()

    def close_all(self) -> None:
        # Upstream connections that are still readable are reported closed first, so a
        # replay cut short (idle timeout) ends its flow with an error instead of hanging.
        for connection in list(self.protocols):
            if connection is not self.client:
                self.read_closed(connection, None)
        super().close_all()


class ClientPlayback:
    def __init__(self) -> None:
        self.queue: asyncio.Queue[Flow] = asyncio.Queue()
        self.inflight: list[Flow] = []
        self.playback_task: asyncio.Task[None] | None = None
        self.replay_tasks: set[asyncio.Task[None]] = set()

    def load(self, loader: Any) -> None:
        # ``client_replay`` itself is one of the engine's options.
        loader.add_option(
            "client_replay_concurrency", int, 1,
            "Concurrency limit on in-flight client replay requests. "
            "Currently the only valid values are 1 and -1 (no limit).",
        )
        loader.add_option(
            "client_replay_timing", bool, False,
            "Replaying WebSocket, TCP and UDP flows: keep the recorded pauses between the client's messages "
            "(each at most 10 s) instead of sending them one after the other (proxycore only).",
        )

    def configure(self, updated: set[str]) -> None:
        if "client_replay_concurrency" in updated and ctx.options.client_replay_concurrency not in (1, -1):
            raise OptionsError("Currently the only valid client_replay_concurrency values are -1 and 1.")
        if "client_replay" in updated and ctx.options.client_replay:
            from proxycore.io import read_flows_for  # here, not at start (issue 15: ~0.7 MB)

            self.start_replay(read_flows_for("client replay", ctx.options.client_replay, OptionsError))

    def running(self) -> None:
        if self.playback_task is None:
            self.playback_task = asyncio.get_running_loop().create_task(self.playback())

    async def done(self) -> None:
        tasks = [t for t in (self.playback_task, *self.replay_tasks) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.playback_task = None

    async def playback(self) -> None:
        while True:
            flow = await self.queue.get()
            self.inflight.append(flow)
            if ctx.options.client_replay_concurrency == -1:
                task = asyncio.get_running_loop().create_task(self.replay(flow))
                self.replay_tasks.add(task)
                task.add_done_callback(self.replay_tasks.discard)
            else:
                await self.replay(flow)

    async def replay(self, flow: Flow) -> None:
        try:
            if isinstance(flow, (TCPFlow, UDPFlow)):
                from proxycore.addons.streamreplay import StreamReplayHandler

                await StreamReplayHandler(ctx.master, flow, ctx.options.client_replay_timing).replay()
            else:
                assert isinstance(flow, HTTPFlow)
                await ReplayHandler(ctx.master, flow).replay()
        except Exception:
            logger.exception("Client replay has crashed!")
        finally:
            self.inflight.remove(flow)
            self.queue.task_done()

    def check(self, flow: Flow) -> str | None:
        """Why this flow cannot be replayed, or None."""
        if flow.live or flow in self.inflight:
            return "Can't replay live flow."
        if flow.intercepted:
            return "Can't replay intercepted flow."
        if isinstance(flow, (TCPFlow, UDPFlow)):
            if not flow.server_conn.address:
                return "Can't replay a flow without a server address."
            return None
        if not isinstance(flow, HTTPFlow):
            return "Can only replay HTTP, TCP and UDP flows."
        if flow.request is None:
            return "Can't replay flow with missing request."
        if flow.request.raw_content is None:
            return "Can't replay flow with missing content."
        if flow.request.method.upper() == "CONNECT":
            return "Can't replay CONNECT requests."
        return None

    # commands ---------------------------------------------------------------------

    @command.command("replay.client.count")
    def count(self) -> int:
        """Number of flows queued for replay or being replayed."""
        return self.queue.qsize() + len(self.inflight)

    @command.command("replay.client.stop")
    def stop_replay(self) -> None:
        """Clear the replay queue (replays already under way finish)."""
        cleared: list[Flow] = []
        while not self.queue.empty():
            flow = self.queue.get_nowait()
            self.queue.task_done()
            flow.revert()
            cleared.append(flow)
        ctx.master.addons.trigger(hooks.UpdateHook(cleared))
        logger.log(ALERT, "Client replay queue cleared.")

    @command.command("replay.client")
    def start_replay(self, flows: Sequence[Flow]) -> None:
        """Queue flows for replay, skipping (with a warning) the ones that can't be replayed."""
        queued: list[Flow] = []
        for flow in flows:
            problem = self.check(flow)
            if problem:
                logger.warning(problem)
                continue
            if not isinstance(flow, HTTPFlow):
                # TCP/UDP: the replay is recorded as a new flow; this one stays as it is.
                self.queue.put_nowait(flow)
                continue
            flow.backup()
            flow.is_replay = "request"
            flow.response = None
            flow.error = None
            self.queue.put_nowait(flow)
            queued.append(flow)
        ctx.master.addons.trigger(hooks.UpdateHook(queued))

    @command.command("replay.client.file")
    def load_file(self, path: Path) -> None:
        """Queue the flows of a file for replay."""
        from proxycore.io import read_flows_for  # here, not at start (issue 15: ~0.7 MB)

        self.start_replay(read_flows_for("client replay", [path], CommandError))
