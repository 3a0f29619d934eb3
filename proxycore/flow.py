"""The Flow base class and Error, shared by HTTP and TCP flows (mitmproxy's shape)."""

from __future__ import annotations

import asyncio
import copy
import threading
import time
from typing import Any, ClassVar

from proxycore.connection import Client, Server
from proxycore.utils.ids import new_id

FLOW_FORMAT_VERSION = 21

_ID_LOCK = threading.Lock()


class Error:
    """Why a flow failed; ``msg`` is shown to users, ``timestamp`` says when."""

    KILLED_MESSAGE: ClassVar[str] = "Connection killed."

    def __init__(self, msg: str, timestamp: float | None = None) -> None:
        self.msg = msg
        self.timestamp = timestamp if timestamp is not None else time.time()

    def __str__(self) -> str:
        return self.msg

    def __repr__(self) -> str:
        return f"Error({self.msg!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Error) and self.get_state() == other.get_state()

    def get_state(self) -> dict[str, Any]:
        return {"msg": self.msg, "timestamp": self.timestamp}

    def set_state(self, state: dict[str, Any]) -> None:
        self.msg = state["msg"]
        self.timestamp = state["timestamp"]

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Error:
        return cls(state["msg"], state["timestamp"])


class Flow:
    """A proxied exchange between a client and a server, with intercept and undo support."""

    type: ClassVar[str] = "flow"

    # A flow is made for every request: what starts out the same for every flow and is not
    # read for every request is a class attribute until the flow sets its own (all
    # immutable), not an assignment per flow. (``error`` and ``intercepted`` are read for
    # each hook: CPython 3.11 reads a class attribute through an instance more slowly than
    # the instance's own, which costs more than their assignments.)
    marked = ""
    is_replay: str | None = None
    comment = ""
    _backup: dict[str, Any] | None = None
    _resume_event: asyncio.Event | None = None
    _id: str | None = None  # see id

    def __init__(self, client_conn: Client, server_conn: Server, live: bool = False) -> None:
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.live = live
        self.error: Error | None = None
        self.intercepted = False
        self.metadata: dict[str, Any] = {}
        self.timestamp_created = time.time()

    @property
    def id(self) -> str:
        """A random UUID4 as text, made when it is first read: most flows of a proxy that
        keeps none are never asked for it (new_id was a quarter of a flow's cost)."""
        value = self._id
        if value is None:
            with _ID_LOCK:  # two threads reading it first at once get the same id
                value = self._id
                if value is None:
                    value = self._id = new_id()
        return value

    @id.setter
    def id(self, value: str) -> None:
        self._id = value

    def __getstate__(self) -> dict[str, Any]:
        """For copy and pickle: the id is made first, so that a copy keeps it."""
        self.id  # noqa: B018 (made on first read)
        return self.__dict__

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.id[:8]}>"

    # state -------------------------------------------------------------------

    def get_state(self) -> dict[str, Any]:
        return self.state_with(self.client_conn.get_state(), self.server_conn.get_state())

    def state_with(self, client_conn: Any, server_conn: Any) -> dict[str, Any]:
        """``get_state()`` with the connections' states given: a flow writer passes the
        frames it kept of them (proxycore/io/io.py). Subclasses add their fields here."""
        metadata = self.metadata
        return {
            "version": FLOW_FORMAT_VERSION,
            "type": self.type,
            "id": self.id,
            "error": self.error.get_state() if self.error else None,
            "client_conn": client_conn,
            "server_conn": server_conn,
            "intercepted": self.intercepted,
            "is_replay": self.is_replay,
            "marked": self.marked,
            # (most flows have none: an empty dict is copied without deepcopy's machinery)
            "metadata": copy.deepcopy(metadata) if metadata or type(metadata) is not dict else {},
            "comment": self.comment,
            "timestamp_created": self.timestamp_created,
            "backup": self._backup,
        }

    def set_state(self, state: dict[str, Any]) -> None:
        self.set_state_with(state, Client.from_state(state["client_conn"]), Server.from_state(state["server_conn"]))

    def set_state_with(self, state: dict[str, Any], client_conn: Client, server_conn: Server) -> None:
        """``set_state()`` with the connection objects given, its ``client_conn`` and
        ``server_conn`` not read: the primary of ``--workers`` passes the objects it made from
        earlier states (proxycore/workers/pool.py). Subclasses read their fields here."""
        self.id = state["id"]
        error = state.get("error")
        self.error = Error.from_state(error) if error else None
        self.client_conn = client_conn
        self.server_conn = server_conn
        self.intercepted = state.get("intercepted", False)
        self.is_replay = state.get("is_replay")
        marked = state.get("marked", "")
        self.marked = ":default:" if marked is True else (marked or "")
        metadata = state.get("metadata")
        # (most flows have none: no deepcopy machinery for nothing)
        self.metadata = copy.deepcopy(metadata) if metadata else {}
        self.comment = state.get("comment", "")
        self.timestamp_created = state["timestamp_created"] if "timestamp_created" in state else time.time()
        self._backup = state.get("backup")

    @classmethod
    def from_state(cls, state: dict[str, Any]) -> Flow:
        if cls.set_state is not Flow.set_state:  # a class that reads its state its own way
            flow = cls(Client(), Server())
            flow.set_state(state)
            return flow
        return cls.from_state_with(state, Client.from_state(state["client_conn"]), Server.from_state(state["server_conn"]))

    @classmethod
    def from_state_with(cls, state: dict[str, Any], client_conn: Client, server_conn: Server) -> Flow:
        """``from_state()`` with the connection objects given (see set_state_with)."""
        flow = cls(client_conn, server_conn)
        flow.set_state_with(state, client_conn, server_conn)
        return flow

    def copy(self) -> Flow:
        """A copy with a new id that is not live (e.g. for replay)."""
        state = self.get_state()
        duplicate = type(self).from_state(state)
        duplicate.id = new_id()
        duplicate.live = False
        return duplicate

    # modification tracking ----------------------------------------------------

    def _state_without_backup(self) -> dict[str, Any]:
        state = self.get_state()
        state["backup"] = None
        return state

    def modified(self) -> bool:
        return self._backup is not None and self._backup != self._state_without_backup()

    def backup(self, force: bool = False) -> None:
        """Remember the current state once, so ``revert`` can undo later edits."""
        if self._backup is None or force:
            self._backup = self._state_without_backup()

    def revert(self) -> None:
        if self._backup is not None:
            backup = self._backup
            self.set_state(backup)
            self._backup = None

    # interception --------------------------------------------------------------

    @property
    def killable(self) -> bool:
        return self.live and not (self.error is not None and self.error.msg == Error.KILLED_MESSAGE)

    def kill(self) -> None:
        """Abort the flow; an intercepted flow is released so its connection can close."""
        self.error = Error(Error.KILLED_MESSAGE)
        self.intercepted = False
        self.live = False
        if self._resume_event is not None:
            self._resume_event.set()

    def intercept(self) -> None:
        if self.intercepted:
            return
        self.intercepted = True
        if self._resume_event is not None:
            self._resume_event.clear()

    def resume(self) -> None:
        if not self.intercepted:
            return
        self.intercepted = False
        if self._resume_event is not None:
            self._resume_event.set()

    async def wait_for_resume(self) -> None:
        """Return once the flow is not intercepted (immediately in the common case)."""
        if not self.intercepted:
            return
        if self._resume_event is None:
            self._resume_event = asyncio.Event()
        while self.intercepted:
            self._resume_event.clear()
            await self._resume_event.wait()
