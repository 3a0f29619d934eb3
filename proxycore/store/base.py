"""The FlowStore interface, and how a flow becomes a stored record.

A store keeps flows by id in arrival order and answers the questions the view, the
web API and the store commands ask: one flow, a page of flows in an order, how many
match a filter, which are oldest (retention).  Backends (memory, SQLite, PostgreSQL)
differ in where the flows live, not in what they answer.

A record is the flow's state (``flow.get_state()``) serialised with ``marshal``
with the request and response bodies taken out (they live apart, so a row stays
small), plus the columns a query can test without unpacking the state.
"""

from __future__ import annotations

import hashlib
import marshal
import time
import weakref
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from proxycore.flow import Flow

ORDER_COLUMNS = {"time": "ts", "method": "method", "url": "url", "size": "size"}
BODY_PARTS = ("request", "response")


class StoreError(Exception):
    """A store that cannot be opened or used (bad path, newer schema, server gone)."""


@dataclass
class Record:
    """One flow as a store row: query columns, the packed state, and its bodies."""

    id: str
    type: str
    ts: float
    method: str | None
    host: str | None
    pretty_host: str | None
    url: str | None
    status: int | None
    response: bool
    websocket: bool
    error: bool
    marked: str
    comment: str
    replay: str | None
    src: str | None
    dst: str | None
    size: int
    state: bytes
    bodies: dict[str, bytes] = field(default_factory=dict)
    instance: str = ""
    # (length, SHA-256 hex) of each body, what the flow list shows without reading them
    body_meta: dict[str, tuple[int, str]] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return len(self.state) + sum(len(b) for b in self.bodies.values())


def _address(address: Any) -> str | None:
    return f"{address[0]}:{address[1]}" if address else None


def _plain(value: Any) -> Any:
    """``value`` with anything marshal cannot write replaced by its repr (metadata may hold objects)."""
    if isinstance(value, dict):
        return {_plain(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return (list if isinstance(value, list) else tuple)(_plain(v) for v in value)
    if value is None or type(value) in (str, bytes, int, float, bool):
        return value
    # subclasses (an IntEnum, a str enum, a namedtuple above) are not marshallable as such
    if isinstance(value, str):
        return str.__str__(value)  # the text itself, not an enum's "Class.NAME"
    if isinstance(value, bool):
        return bool(value)
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value)
    if isinstance(value, bytes):
        return bytes(value)
    return repr(value)


def pack_state(state: dict[str, Any], owned: bool = False) -> tuple[bytes, dict[str, bytes]]:
    """State -> (marshal bytes without bodies, {part: body}). ``owned``: the state was made
    for this call (``get_state()``), so its dicts are changed in place instead of copied."""
    if not owned:
        state = dict(state)
    bodies: dict[str, bytes] = {}
    for part in BODY_PARTS:
        message = state.get(part)
        if isinstance(message, dict) and message.get("content"):
            bodies[part] = message["content"]
            if owned:
                message["content"] = None
            else:
                state[part] = {**message, "content": None}
    state["_store_bodies"] = list(bodies)
    try:
        data = marshal.dumps(state)
    except ValueError:
        data = marshal.dumps(_plain(state))
    return data, bodies


def unpack_state(data: bytes, bodies: dict[str, bytes]) -> dict[str, Any]:
    state = marshal.loads(data)
    for part in state.pop("_store_bodies", ()):
        message = state.get(part)
        if isinstance(message, dict):
            message["content"] = bodies.get(part, b"")
    return state


# message -> (the body it had, its SHA-256): a flow is written again after each change, and
# its request body would be hashed again every time.
_digests: weakref.WeakKeyDictionary[Any, tuple[bytes, str]] = weakref.WeakKeyDictionary()

# message of a flow read for the list without its bodies -> (length, SHA-256) of the body
# left in the store (the web API's contentLength and contentHash)
STORED_BODIES: weakref.WeakKeyDictionary[Any, tuple[int, str]] = weakref.WeakKeyDictionary()


# Bodies shorter than this are hashed each time rather than remembered: a flow is mostly
# written once, and the weak dictionary's entry costs more than hashing a small body
# (cachegrind: ~19k instructions against ~9k for SHA-256 of 100 bytes, ~28 a byte).
DIGEST_MEMO_MIN = 1024


def body_digest(message: Any, body: bytes) -> str:
    if len(body) < DIGEST_MEMO_MIN:
        return hashlib.sha256(body).hexdigest()
    cached = _digests.get(message)
    if cached is None or cached[0] is not body:
        cached = (body, hashlib.sha256(body).hexdigest())
        try:
            _digests[message] = cached
        except TypeError:  # not weakly referenceable
            pass
    return cached[1]


def listed_flow(data: bytes, meta: dict[str, tuple[int, str]]) -> Flow | None:
    """The flow without its bodies, each body's message noted in STORED_BODIES with ``meta``;
    None when that is not possible (a body without meta: a row from before schema 2; a flow
    with a backup, whose ``modified()`` compares bodies)."""
    state = marshal.loads(data)
    parts = state.pop("_store_bodies", ())
    if state.get("backup") is not None or any(part not in meta for part in parts):
        return None
    for part in parts:
        message = state.get(part)
        if isinstance(message, dict):
            message["content"] = None
    flow = flow_from_state(state)
    for part in parts:
        message = getattr(flow, part, None)
        if message is not None:
            STORED_BODIES[message] = meta[part]
    return flow


def flow_from_state(state: dict[str, Any]) -> Flow:
    from proxycore.io.io import _flow_classes  # the flow types flow files hold

    cls = _flow_classes().get(state.get("type", ""))
    if cls is None:
        raise StoreError(f"stored flow of unknown type {state.get('type')!r}")
    return cls.from_state(state)


def flow_size(flow: Flow) -> int:
    """The view's ``size`` order key: body bytes (and WebSocket/TCP message bytes)."""
    if flow.type == "dns":  # the answer's record data, as mitmproxy's view counts it
        response = getattr(flow, "response", None)
        return response.size if response is not None else 0
    size = 0
    for message in (getattr(flow, "request", None), getattr(flow, "response", None)):
        raw = getattr(message, "raw_content", None)
        if raw:
            size += len(raw)
    for message in getattr(flow, "messages", None) or []:
        size += len(message.content)
    websocket = getattr(flow, "websocket", None)
    for message in getattr(websocket, "messages", None) or []:
        size += len(message.content)
    return size


def record_of(flow: Flow, instance: str = "") -> Record:
    """Snapshot ``flow`` now (the proxy goes on changing it) as a Record."""
    data, bodies = pack_state(flow.get_state(), owned=True)
    body_meta = {
        part: (len(body), body_digest(getattr(flow, part), body)) for part, body in bodies.items()
    }
    request = getattr(flow, "request", None)
    response = getattr(flow, "response", None)
    http_request = request if flow.type == "http" and request is not None else None
    if http_request is not None:
        method, url = http_request.method, http_request.pretty_url
    else:  # the view's sort keys for other flows (filters test the type first)
        from proxycore.utils.human import format_address

        address = getattr(flow.server_conn, "address", None)
        method, url = flow.type.upper(), format_address(address) if address else ""
    return Record(
        id=flow.id,
        type=flow.type,
        ts=flow.timestamp_created,
        method=method,
        host=http_request.host if http_request is not None else None,
        pretty_host=http_request.pretty_host if http_request is not None else None,
        url=url,
        status=response.status_code if http_request is not None and response is not None else None,
        response=response is not None,
        websocket=getattr(flow, "websocket", None) is not None,
        error=flow.error is not None,
        marked=flow.marked or "",
        comment=flow.comment or "",
        replay=flow.is_replay,
        src=_address(getattr(flow.client_conn, "peername", None)),
        dst=_address(getattr(flow.server_conn, "address", None)),
        size=flow_size(flow),
        state=data,
        bodies=bodies,
        instance=instance,
        body_meta=body_meta,
    )


def flow_of(record_state: bytes, bodies: dict[str, bytes]) -> Flow:
    return flow_from_state(unpack_state(record_state, bodies))


def past_deadline(deadline: float | None) -> None:
    """Raise TimeoutError once ``deadline`` (a time.monotonic() value, None: never) has passed."""
    if deadline is not None and time.monotonic() >= deadline:
        raise TimeoutError("the filter took longer than its time budget")


def oldest_over_limits(
    flows: Iterable[Flow], max_flows: int = 0, max_bytes: int = 0, max_age: float = 0,
    now: float | None = None,
) -> list[str]:
    """Ids of the flows retention drops from ``flows`` (given oldest first): the unmarked
    ones older than ``max_age``, then the oldest unmarked until at most ``max_flows`` and
    ``max_bytes`` (by :func:`flow_size`) remain.  0 means no limit."""
    everything = list(flows)
    unmarked = [f for f in everything if not f.marked]
    doomed: list[str] = []
    if max_age:
        cutoff = (now or time.time()) - max_age
        doomed += [f.id for f in unmarked if f.timestamp_created < cutoff]
    chosen = set(doomed)
    if max_flows and len(everything) - len(doomed) > max_flows:
        excess = len(everything) - len(doomed) - max_flows
        for flow in unmarked:
            if excess <= 0:
                break
            if flow.id not in chosen:
                doomed.append(flow.id)
                chosen.add(flow.id)
                excess -= 1
    if max_bytes:
        total = sum(flow_size(f) for f in everything if f.id not in chosen)
        for flow in unmarked:
            if total <= max_bytes:
                break
            if flow.id not in chosen:
                doomed.append(flow.id)
                chosen.add(flow.id)
                total -= flow_size(flow)
    return doomed


@dataclass
class Stats:
    flows: int
    bytes: int
    marked: int
    backend: str
    location: str

    def text(self) -> str:
        return (
            f"{self.backend} store {self.location}: {self.flows} flows, "
            f"{self.bytes} bytes, {self.marked} marked"
        )


class FlowStore:
    """What every backend provides.  Flows go in as Flow objects and come out as new
    Flow objects (except in the memory backend, which keeps the objects).

    ``query`` parameters: ``flt`` a parsed filter (or None for all), ``order`` one of
    ``ORDER_COLUMNS``, ``reverse``, ``offset`` and ``limit`` in that order.
    """

    backend = "?"
    location = ""
    persistent = True
    scope = "fleet"  # a store of one instance: its retention and clear act on every flow

    def put(self, flows: Iterable[Flow]) -> None:
        """Add or replace flows (a flow keeps its arrival position when replaced)."""
        raise NotImplementedError

    def get(self, flow_id: str) -> Flow | None:
        raise NotImplementedError

    def has(self, flow_id: str) -> bool:
        return self.get(flow_id) is not None

    def delete(self, flow_ids: Iterable[str]) -> None:
        raise NotImplementedError

    def clear(self, keep_marked: bool = False) -> list[str]:
        """Delete every flow (or every unmarked one); the ids deleted."""
        raise NotImplementedError

    def count(self, flt: Any = None) -> int:
        raise NotImplementedError

    def query(
        self, flt: Any = None, order: str = "time", reverse: bool = False,
        offset: int = 0, limit: int | None = None, bodies: bool = True,
    ) -> Iterator[Flow]:
        """``bodies=False``: flows for the list only -- a database store may leave bodies
        in the store (content None, length and hash in STORED_BODIES)."""
        raise NotImplementedError

    def ids(
        self, flt: Any = None, order: str = "time", reverse: bool = False, deadline: float | None = None
    ) -> Iterator[str]:
        """Ids in order; past ``deadline`` (time.monotonic()) a TimeoutError, even while no
        flow matches (a search over millions must not hold the event loop for minutes)."""
        for flow in self.query(flt, order, reverse):
            past_deadline(deadline)
            yield flow.id

    def flush(self) -> None:
        """Make every write so far durable and visible to queries."""

    def over_limits(
        self, max_flows: int = 0, max_bytes: int = 0, max_age: float = 0, now: float | None = None
    ) -> list[str]:
        """Ids of the oldest unmarked flows over the limits (0: no limit), oldest first."""
        raise NotImplementedError

    def retention(
        self, max_flows: int = 0, max_bytes: int = 0, max_age: float = 0, now: float | None = None
    ) -> list[str]:
        """Delete the flows :meth:`over_limits` names; the ids deleted."""
        doomed = self.over_limits(max_flows, max_bytes, max_age, now)
        if doomed:
            self.delete(doomed)
            self.flush()
        return doomed

    def stats(self) -> Stats:
        raise NotImplementedError

    def vacuum(self) -> None:
        """Give freed space back (no-op where there is none to give)."""

    def close(self) -> None:
        """Flush and release the backend."""

    @staticmethod
    def now() -> float:
        return time.time()
