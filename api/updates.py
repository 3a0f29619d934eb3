"""The ``/updates`` WebSocket: live changes pushed to the web UI (web API spec, section 6).

Server messages are ``{"type": ..., "payload": ...}`` JSON text frames.  Each
connection keeps its own named filters (the UI's ``search`` and ``highlight``
boxes), set with ``flows/updateFilter`` and evaluated here, so every
``flows/add``/``flows/update`` says which of them the flow matches.

Messages go through a per-connection queue drained by one task that awaits
each write: order is kept, and a slow browser slows only its own queue.  The
queue is bounded (``web_updates_max_queue`` messages, ``web_updates_max_queue_bytes``
bytes): a client that stops reading is disconnected (close code 1008) instead of
growing it without end; mitmweb's front end reconnects and fetches ``/flows`` again.

Evaluating a search over the whole view is limited to ``web_filter_time_budget``
seconds; a slower filter is refused like an invalid one (it matches no flow, the
log says why, and ``flows/filterUpdate`` carries an ``error``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import Any

import tornado.websocket

from proxycore import flowfilter
from proxycore.api import serialize
from proxycore.api.auth import AuthMixin
from proxycore.flow import Flow
from proxycore.options import parse_size

logger = logging.getLogger("proxycore.web")


class TooSlow(Exception):
    """A filter did not get through the view within web_filter_time_budget."""


def encode(message: dict[str, Any]) -> bytes:
    """JSON with non-ASCII kept as UTF-8; text that is not valid Unicode (lone surrogates
    from undecodable bytes) is escaped instead, since browsers close on invalid UTF-8."""
    text = json.dumps(message, ensure_ascii=False)
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(message).encode("ascii")


def _match_nothing(flow: Flow) -> bool:
    return False


class ClientConnection(AuthMixin, tornado.websocket.WebSocketHandler):
    application: Any

    def initialize(self) -> None:
        self.filters: dict[str, Callable[[Flow], bool]] = {}
        self._queue: collections.deque[bytes] = collections.deque()
        self._queued_bytes = 0
        self._ready = asyncio.Event()
        self._sender: asyncio.Task[None] | None = None
        self._dropped = False
        self._max_messages = 0
        self._max_bytes = 0

    # handshake: same auth as the REST routes; the 101 answer sets the XSRF cookie -------

    def prepare(self) -> None:
        self.xsrf_token  # noqa: B018 - reading it sets the _mitmproxy_xsrf cookie

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.authenticate():
            await super().get(*args, **kwargs)

    # lifecycle -------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        options = self.application.master.options
        self._max_messages = options.web_updates_max_queue
        self._max_bytes = parse_size(options.web_updates_max_queue_bytes) or 0
        self.application.connections.add(self)
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    def on_close(self) -> None:
        self.application.connections.discard(self)
        self._stop_sending()

    def _stop_sending(self) -> None:
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None
        self._queue.clear()
        self._queued_bytes = 0

    @property
    def queued(self) -> tuple[int, int]:
        """Messages and bytes waiting for this client."""
        return len(self._queue), self._queued_bytes

    def send(self, message: bytes) -> None:
        if self._dropped:
            return
        # An empty queue takes any message: one large reply must not drop a client that reads.
        full = len(self._queue) >= self._max_messages or self._queued_bytes + len(message) > self._max_bytes
        if full and self._queue:
            self._drop()
            return
        self._queue.append(message)
        self._queued_bytes += len(message)
        self._ready.set()

    def _drop(self) -> None:
        """Disconnect a client that does not keep up (once; its queue is freed at once)."""
        count, size = self.queued
        self._dropped = True
        self.application.connections.discard(self)
        self._stop_sending()
        logger.warning(
            f"Web client {self.request.remote_ip} fell behind ({count} updates, {size} bytes "
            "unsent): disconnected. The web interface reconnects and reloads the flows."
        )
        # Tornado gives the close handshake 5 s, then drops the connection.
        self.close(code=1008, reason="Too far behind on updates.")

    async def _send_loop(self) -> None:
        while True:
            await self._ready.wait()
            while self._queue:
                message = self._queue.popleft()
                self._queued_bytes -= len(message)
                try:
                    await self.write_message(message)
                except tornado.websocket.WebSocketClosedError:
                    self.on_close()
                    return
            self._ready.clear()

    # client -> server --------------------------------------------------------------

    async def on_message(self, message: str | bytes) -> None:
        try:
            data = json.loads(message)
            kind = data["type"]
            if kind != "flows/updateFilter":
                raise ValueError(f"Unsupported command: {kind}")
            name, expr = data["payload"]["name"], data["payload"]["expr"]
            if not isinstance(name, str) or not isinstance(expr, str):
                raise ValueError("filter name and expression must be strings")
        except Exception as e:
            logger.error(f"Error processing message from WebSocket client: {e}")
            self.close(code=1011, reason="Internal server error.")
            return
        self.update_filter(name, expr)

    def update_filter(self, name: str, expr: str) -> None:
        """Set (or with an empty ``expr`` drop) a filter and reply with the matching ids.

        An expression that does not parse is reported in the log and matches no
        flow; the connection stays open (mitmweb closes it, which the UI cannot
        recover from).
        """
        if not expr:
            self.filters.pop(name, None)
            self._send_filter_update(name, None)
            return
        try:
            flt: Callable[[Flow], bool] = flowfilter.parse(expr)
        except flowfilter.FilterError as e:
            self._refuse_filter(name, f"Invalid {name} filter: {e}")
            return
        self.filters[name] = flt
        self._evaluate(name, flt)

    def refresh_filters(self) -> None:
        for name, flt in list(self.filters.items()):
            self._evaluate(name, flt)

    def _evaluate(self, name: str, flt: Callable[[Flow], bool]) -> None:
        budget = self.application.master.options.web_filter_time_budget
        try:
            ids = self._matching_ids(flt, budget)
        except TooSlow:
            self._refuse_filter(
                name,
                f"The {name} filter {getattr(flt, 'pattern', '')!r} is too slow for this view "
                f"(over {budget:g} s); it is not applied. Try a narrower one.",
            )
        else:
            self._send_filter_update(name, ids)

    def _matching_ids(self, flt: Callable[[Flow], bool], budget: float) -> list[str]:
        """Ids of the flows ``flt`` matches; TooSlow once ``budget`` seconds are spent."""
        deadline = time.monotonic() + budget
        # A database store decides what it can in SQL (view.matching_ids); the deadline also
        # stops a walk that finds no match, which would otherwise hold the event loop.
        try:
            ids = list(self.application.view.matching_ids(flt, deadline))
        except TimeoutError:
            raise TooSlow() from None
        if time.monotonic() >= deadline:  # SQL took the whole budget
            raise TooSlow()
        return ids

    def _refuse_filter(self, name: str, message: str) -> None:
        """Set a filter that matches nothing, say why in the log and in the reply."""
        logger.warning(message)
        self.filters[name] = _match_nothing
        self._send_filter_update(name, [], error=message)

    def _send_filter_update(self, name: str, ids: list[str] | None, error: str | None = None) -> None:
        payload: dict[str, Any] = {"name": name, "matching_flow_ids": ids}
        if error is not None:
            payload["error"] = error
        self.send(encode({"type": "flows/filterUpdate", "payload": payload}))

    def send_flow(self, kind: str, flow: Flow, flow_json: dict[str, Any]) -> None:
        matching = {name: bool(flt(flow)) for name, flt in self.filters.items()}
        self.send(encode({"type": kind, "payload": {"flow": flow_json, "matching_filters": matching}}))


class Broadcaster:
    """Turns view, event store, option and server changes into messages for every client."""

    def __init__(self, connections: set[ClientConnection]) -> None:
        self.connections = connections

    def _all(self) -> Iterable[ClientConnection]:
        return list(self.connections)

    def send(self, kind: str, payload: Any = None, *, has_payload: bool = True) -> None:
        if not self.connections:
            return
        message = {"type": kind, "payload": payload} if has_payload else {"type": kind}
        data = encode(message)
        for conn in self._all():
            conn.send(data)

    def flow(self, kind: str, flow: Flow) -> None:
        if not self.connections:
            return
        flow_json = serialize.flow_to_json(flow)
        for conn in self._all():
            conn.send_flow(kind, flow, flow_json)

    # signal receivers ------------------------------------------------------------

    def view_add(self, flow: Flow) -> None:
        self.flow("flows/add", flow)

    def view_update(self, flow: Flow) -> None:
        self.flow("flows/update", flow)

    def view_remove(self, flow: Flow, index: int) -> None:
        self.send("flows/remove", flow.id)

    def view_refresh(self) -> None:
        for conn in self._all():
            conn.send(encode({"type": "flows/reset"}))
            conn.refresh_filters()

    def events_add(self, entry: Any) -> None:
        self.send("events/add", serialize.logentry_to_json(entry))

    def events_refresh(self) -> None:
        self.send("events/reset", has_payload=False)

    def options_changed(self, options: Any, updated: set[str]) -> None:
        self.send("options/update", serialize.options_to_json(options, updated))

    def servers_changed(self, servers: dict[str, Any]) -> None:
        self.send("state/update", {"servers": servers})
