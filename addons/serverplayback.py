"""Server playback (``-S FILE``): answer requests with responses recorded in flow files.

Each recorded flow is filed under a key built from its request (scheme, method, path,
query, host, port, body, selected headers; which parts count is set by the
``server_replay_*`` options, with mitmproxy's names and meaning). A live request with
the same key gets a copy of the recorded response without any upstream connection,
marked ``is_replay == "response"``. Recorded responses are used once, in file order,
unless ``server_replay_reuse`` is set. Requests with no match follow
``server_replay_extra``: forward them, kill them, or answer with an empty 204/400/404/500.

Beyond mitmproxy, recorded WebSocket and TCP conversations are played back too. A matching
WebSocket handshake gets the recorded 101 and then the recorded server messages, each once
the client has sent what preceded it (proxycore.layers.playback). A TCP flow answers the
next connection to its server's address (SNI for TLS): ``next_layer`` puts a playback layer
where a TCP relay was chosen. A CONNECT to the address of a TCP or WebSocket recording is
answered here so that the eager strategy opens no upstream connection for it.
"""

from __future__ import annotations

import base64
import logging
import urllib.parse
from collections.abc import Hashable, Sequence
from pathlib import Path
from typing import Any

from proxycore import command, ctx, hooks
from proxycore.exceptions import CommandError, OptionsError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow, Request, Response
from proxycore.layers.tcp import TCPLayer
from proxycore.proxy.layer import NextLayer
from proxycore.tcp import TCPFlow

logger = logging.getLogger("proxycore.serverplayback")

# Options that change how a request is keyed: the recorded flows are filed again.
KEY_OPTIONS = frozenset(
    {
        "server_replay_ignore_content",
        "server_replay_ignore_host",
        "server_replay_ignore_params",
        "server_replay_ignore_payload_params",
        "server_replay_ignore_port",
        "server_replay_use_headers",
    }
)


def request_key(request: Request, options: Any) -> Hashable:
    """What a recorded request and a live one must share to be a match."""
    parts = urllib.parse.urlsplit(request.url)
    key: list[Any] = [request.scheme, request.method, parts.path]
    if not options.server_replay_ignore_content:
        ignored_payload = options.server_replay_ignore_payload_params
        form: list[tuple[Any, Any]] = []
        if ignored_payload:
            form = request.multipart_form.items(multi=True) or request.urlencoded_form.items(multi=True)
        if form:
            key.append(tuple((k, v) for k, v in form if _text(k) not in ignored_payload))
        else:
            key.append(request.raw_content)
    if not options.server_replay_ignore_host:
        key.append(request.pretty_host)
    if not options.server_replay_ignore_port:
        key.append(request.port)
    ignored_params = options.server_replay_ignore_params
    query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
    key.append(tuple((k, v) for k, v in query if k not in ignored_params))
    if options.server_replay_use_headers:
        key.append(tuple((name, request.headers.get(name)) for name in options.server_replay_use_headers))
    return tuple(key)


#: A TCP recording's key: server host (the SNI with TLS), port, and whether TLS was used.
TcpKey = tuple[str, int, bool]


def tcp_key(flow: TCPFlow) -> TcpKey | None:
    server = flow.server_conn
    if server.address is None:
        return None
    host = server.sni if server.tls and server.sni else server.address[0]
    return (host, server.address[1], bool(server.tls))


def websocket_accept(key: str) -> str:
    """The Sec-WebSocket-Accept answering this client's key (RFC 6455, 4.2.2): a recorded
    101 carries the one for the recorded client's key, which a live client would refuse."""
    import hashlib  # OpenSSL's digests: only once a WebSocket handshake is replayed

    digest = hashlib.sha1((key.strip() + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").encode()).digest()
    return base64.b64encode(digest).decode()


def _text(value: str | bytes) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else value


class ServerPlayback:
    def __init__(self) -> None:
        self.flowmap: dict[Hashable, list[HTTPFlow]] = {}
        self.tcpmap: dict[TcpKey, list[TCPFlow]] = {}

    @property
    def hooks_active(self) -> bool:
        """Only with recorded flows loaded (commands that load them refresh the hook index)."""
        return bool(self.flowmap or self.tcpmap)

    def load(self, loader: Any) -> None:
        # ``server_replay`` itself is one of the engine's options.
        loader.add_option(
            "server_replay_kill_extra", bool, False,
            "Kill extra requests during replay (for which no replayable response was found). "
            "[Deprecated, prefer to use server_replay_extra='kill']",
        )
        loader.add_option(
            "server_replay_extra", str, "forward",
            "Behaviour for extra requests during replay for which no replayable response was "
            "found. A status code answers them with an empty response of that status.",
            choices=("forward", "kill", "204", "400", "404", "500"),
        )
        loader.add_option(
            "server_replay_reuse", bool, False,
            "Keep flows in the server replay state after use, so that a response can be "
            "replayed several times.",
        )
        loader.add_option("server_replay_nopop", bool, False, "Deprecated alias for `server_replay_reuse`.")
        loader.add_option(
            "server_replay_timing", bool, False,
            "Play recorded WebSocket and TCP server messages back with their recorded pauses "
            "(each at most 10 s) instead of at once.",
        )
        loader.add_option(
            "server_replay_refresh", bool, True,
            "Refresh server replay responses: shift date, expires and last-modified headers "
            "and cookie expiry by the time since recording.",
        )
        loader.add_option(
            "server_replay_use_headers", Sequence[str], [],
            "Request headers that need to match while searching for a saved flow to replay.",
        )
        loader.add_option(
            "server_replay_ignore_content", bool, False,
            "Ignore request content while searching for a saved flow to replay.",
        )
        loader.add_option(
            "server_replay_ignore_params", Sequence[str], [],
            "Request query parameters to ignore while searching for a saved flow to replay.",
        )
        loader.add_option(
            "server_replay_ignore_payload_params", Sequence[str], [],
            "Request payload parameters (application/x-www-form-urlencoded or "
            "multipart/form-data) to ignore while searching for a saved flow to replay.",
        )
        loader.add_option(
            "server_replay_ignore_host", bool, False,
            "Ignore the request's destination host while searching for a saved flow to replay.",
        )
        loader.add_option(
            "server_replay_ignore_port", bool, False,
            "Ignore the request's destination port while searching for a saved flow to replay.",
        )

    def configure(self, updated: set[str]) -> None:
        opts = ctx.options
        if "server_replay_kill_extra" in updated and opts.server_replay_kill_extra:
            logger.warning(
                "server_replay_kill_extra is deprecated, use server_replay_extra=kill instead."
            )
        if "server_replay_nopop" in updated and opts.server_replay_nopop:
            # An error, as in mitmdump 12: given at startup it stops proxydump (exit status 1);
            # set later (a script, the web API) it still acts as server_replay_reuse.
            logger.error("server_replay_nopop is now called server_replay_reuse: set that one instead.")
        if "server_replay" in updated and opts.server_replay:
            from proxycore.io import read_flows_for  # here, not at start (issue 15: ~0.7 MB)

            self.load_flows(read_flows_for("server replay", opts.server_replay, OptionsError))
        elif updated & KEY_OPTIONS:
            tcp = [f for flows in self.tcpmap.values() for f in flows]
            self.load_flows([f for flows in self.flowmap.values() for f in flows] + tcp)

    # commands ---------------------------------------------------------------------

    @command.command("replay.server")
    def load_flows(self, flows: Sequence[Flow]) -> None:
        """Replay server responses from these flows (replacing the ones loaded before)."""
        self.flowmap = {}
        self.tcpmap = {}
        self.add_flows(flows)

    @command.command("replay.server.add")
    def add_flows(self, flows: Sequence[Flow]) -> None:
        """Add the responses of these flows to the server replay list."""
        for flow in flows:
            if isinstance(flow, HTTPFlow):
                self.flowmap.setdefault(request_key(flow.request, ctx.options), []).append(flow)
            elif isinstance(flow, TCPFlow) and (key := tcp_key(flow)) is not None:
                self.tcpmap.setdefault(key, []).append(flow)
        ctx.master.addons.refresh_hooks()
        ctx.master.addons.trigger(hooks.UpdateHook([]))

    @command.command("replay.server.file")
    def load_file(self, path: Path) -> None:
        """Replay server responses from the flows in a file."""
        from proxycore.io import read_flows_for  # here, not at start (issue 15: ~0.7 MB)

        self.load_flows(read_flows_for("server replay", [path], CommandError))

    @command.command("replay.server.stop")
    def clear(self) -> None:
        """Stop server replay."""
        self.flowmap = {}
        self.tcpmap = {}
        ctx.master.addons.refresh_hooks()
        ctx.master.addons.trigger(hooks.UpdateHook([]))

    @command.command("replay.server.count")
    def count(self) -> int:
        """Number of recorded flows still waiting to be replayed."""
        return sum(len(flows) for flows in self.flowmap.values()) + sum(len(f) for f in self.tcpmap.values())

    # matching ---------------------------------------------------------------------

    def next_flow(self, flow: HTTPFlow) -> HTTPFlow | None:
        """The recorded flow answering this request, if any (taken off the list unless reused)."""
        key = request_key(flow.request, ctx.options)
        candidates = self.flowmap.get(key)
        if not candidates:
            return None
        if ctx.options.server_replay_reuse or ctx.options.server_replay_nopop:
            return next((f for f in candidates if f.response is not None), None)
        while candidates:
            recorded = candidates.pop(0)
            if recorded.response is not None:
                break
        else:
            recorded = None
        if not candidates:
            del self.flowmap[key]
        return recorded

    def _hash(self, flow: HTTPFlow) -> Hashable:
        """What a recorded request and ``flow``'s must share to match (mitmproxy's name)."""
        return request_key(flow.request, ctx.options)

    def request(self, flow: HTTPFlow) -> None:
        if not self.flowmap:
            return
        recorded = self.next_flow(flow)
        if recorded is not None:
            assert recorded.response is not None
            response = Response.from_state(recorded.response.get_state())
            if ctx.options.server_replay_refresh:
                response.refresh()
            flow.response = response
            flow.is_replay = "response"
            if recorded.websocket is not None:
                flow.websocket_playback = recorded.websocket  # the HTTP layer plays it after the 101
                key = flow.request.headers.get("sec-websocket-key")
                if key is not None and "sec-websocket-accept" in response.headers:
                    response.headers["sec-websocket-accept"] = websocket_accept(key)
            return
        opts = ctx.options
        if opts.server_replay_kill_extra or opts.server_replay_extra == "kill":
            logger.warning(f"server_playback: killed non-replay request {flow.request.url}")
            flow.kill()
        elif opts.server_replay_extra != "forward":
            logger.warning(
                f"server_playback: returned {opts.server_replay_extra} non-replay request "
                f"{flow.request.url}"
            )
            flow.response = Response.make(int(opts.server_replay_extra))
            flow.is_replay = "response"

    # TCP ------------------------------------------------------------------------------

    def _take_tcp(self, key: TcpKey, take: bool) -> TCPFlow | None:
        """The recorded TCP flow for ``key`` (taken off the list when ``take``, unless reused)."""
        candidates = self.tcpmap.get(key)
        if not candidates:
            return None
        recorded = candidates[0]
        if take and not (ctx.options.server_replay_reuse or ctx.options.server_replay_nopop):
            candidates.pop(0)
            if not candidates:
                del self.tcpmap[key]
        return recorded

    def http_connect(self, flow: HTTPFlow) -> None:
        """A CONNECT to a recorded TCP or WebSocket server is answered here: no eager upstream
        connection (a request inside that has no recording connects when it is forwarded)."""
        if flow.response is not None:
            return
        target = (flow.request.host, flow.request.port)
        # With TLS a TCP recording's key is the SNI, not known yet: its address counts here.
        tcp = any(f.server_conn.address == target for flows in self.tcpmap.values() for f in flows)
        websocket = any(
            f.websocket is not None and (f.request.host, f.request.port) == target
            for flows in self.flowmap.values()
            for f in flows
        )
        if tcp or websocket:
            flow.response = Response.make(200)
            flow.response.reason = "Connection established"
            flow.response.headers.clear()

    def next_layer(self, nextlayer: NextLayer) -> None:
        """Where a TCP relay was chosen (or nothing yet, for a server that speaks first) toward
        a recorded TCP server, the recording answers instead."""
        if not self.tcpmap:
            return
        # Imported with the first recorded TCP flow: playback brings the WebSocket layer.
        from proxycore.layers.playback import TcpPlaybackLayer
        from proxycore.layers.tls import ClientTLSLayer

        layer = nextlayer.layer
        if layer is not None and not (isinstance(layer, TCPLayer) and not layer.ignore):
            return
        context = nextlayer.context
        address = context.server.address
        if address is None:
            return
        # The layer chosen already is in context.layers, after the one it goes under.
        parents = [each for each in context.layers if each is not layer]
        tls = bool(parents) and isinstance(parents[-1], ClientTLSLayer)
        host = (context.server.sni or context.client.sni or address[0]) if tls else address[0]
        key = (host, address[1], tls)
        recorded = self._take_tcp(key, take=False)
        if recorded is None:
            return
        if layer is None:
            server_first = bool(recorded.messages) and not recorded.messages[0].from_client
            if nextlayer.data_client() or not server_first:
                return  # the default choice decides whether this is raw TCP at all
        self._take_tcp(key, take=True)
        if layer is not None:
            context.layers.remove(layer)
        nextlayer.layer = TcpPlaybackLayer(context, recorded, bool(ctx.options.server_replay_timing))
