"""The ``/updates`` WebSocket: live changes pushed to the web UI (web API spec, section 6).

Server messages are ``{"type": ..., "payload": ...}`` JSON text frames.  Each
connection keeps its own named filters (the UI's ``search`` and ``highlight``
boxes), set with ``flows/updateFilter`` and evaluated here, so every
``flows/add``/``flows/update`` says which of them the flow matches.

Messages go through a per-connection queue drained by one task that awaits
each write: order is kept, and a slow browser slows only its own queue.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from typing import Any

import tornado.websocket

from proxycore import flowfilter
from proxycore.api import serialize
from proxycore.api.auth import AuthMixin
from proxycore.flow import Flow

logger = logging.getLogger("proxycore.web")


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
        self._queue: asyncio.Queue[bytes] = asyncio.Queue()
        self._sender: asyncio.Task[None] | None = None

    # handshake: same auth as the REST routes; the 101 answer sets the XSRF cookie -------

    def prepare(self) -> None:
        self.xsrf_token  # noqa: B018 - reading it sets the _mitmproxy_xsrf cookie

    async def get(self, *args: Any, **kwargs: Any) -> None:
        if self.authenticate():
            await super().get(*args, **kwargs)

    # lifecycle -------------------------------------------------------------------

    def open(self, *args: Any, **kwargs: Any) -> None:
        self.application.connections.add(self)
        self._sender = asyncio.get_running_loop().create_task(self._send_loop())

    def on_close(self) -> None:
        self.application.connections.discard(self)
        if self._sender is not None:
            self._sender.cancel()
            self._sender = None

    def send(self, message: bytes) -> None:
        self._queue.put_nowait(message)

    async def _send_loop(self) -> None:
        while True:
            message = await self._queue.get()
            try:
                await self.write_message(message)
            except tornado.websocket.WebSocketClosedError:
                self.on_close()
                return

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
        ids: list[str] | None
        if expr:
            try:
                flt: Callable[[Flow], bool] = flowfilter.parse(expr)
            except flowfilter.FilterError as e:
                logger.warning(f"Invalid {name} filter: {e}")
                flt = _match_nothing
            self.filters[name] = flt
            ids = [f.id for f in self.application.view if flt(f)]
        else:
            self.filters.pop(name, None)
            ids = None
        self.send(encode({"type": "flows/filterUpdate", "payload": {"name": name, "matching_flow_ids": ids}}))

    def refresh_filters(self) -> None:
        for name, flt in list(self.filters.items()):
            ids = [f.id for f in self.application.view if flt(f)]
            self.send(encode({"type": "flows/filterUpdate", "payload": {"name": name, "matching_flow_ids": ids}}))

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
