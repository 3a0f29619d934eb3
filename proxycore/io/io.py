"""Reading and writing mitmproxy flow files (``.mitm``, format version 21).

A flow file is a plain concatenation of tnetstring-encoded dicts, one per
flow, each being ``flow.get_state()``.  There is no header, so appending to a
file and concatenating files both give valid files, and an empty file holds
no flows.
"""

from __future__ import annotations

import marshal
import os
from collections.abc import Callable, Iterable, Iterator
from typing import IO, Any, BinaryIO

from proxycore.connection import frozen_key, same_objects
from proxycore.exceptions import FlowReadException, ProxycoreError  # noqa: F401 - FlowReadException re-exported
from proxycore.flow import Flow
from proxycore.io import compat, har, schema, tnetstring

#: flow types mitmproxy writes that proxycore has no model for (yet)
UNSUPPORTED_TYPES: frozenset[str] = frozenset()


def _flow_classes() -> dict[str, type[Flow]]:
    from proxycore.dns import DNSFlow
    from proxycore.http import HTTPFlow
    from proxycore.tcp import TCPFlow
    from proxycore.udp import UDPFlow

    return {"http": HTTPFlow, "tcp": TCPFlow, "udp": UDPFlow, "dns": DNSFlow}


class _CountingReader:
    """Wraps a binary file: counts bytes consumed and can un-read a prefix."""

    def __init__(self, fo: BinaryIO) -> None:
        self._fo = fo
        self._pending = b""
        self.position = 0

    def peek(self, n: int) -> bytes:
        while len(self._pending) < n:
            more = self._fo.read(n - len(self._pending))
            if not more:
                break
            self._pending += more
        return self._pending[:n]

    def read(self, n: int = -1) -> bytes:
        if self._pending:
            if n < 0:
                data = self._pending + self._fo.read()
                self._pending = b""
            else:
                data = self._pending[:n]
                self._pending = self._pending[n:]
        else:
            data = self._fo.read(n)
        self.position += len(data)
        return data


class FlowReader:
    """Reads flows from a binary file object: a flow file, or a HAR file (see :mod:`proxycore.io.har`).

    ``stream()`` yields one flow object (:class:`~proxycore.http.HTTPFlow` or
    :class:`~proxycore.tcp.TCPFlow`) per record, upgrading records of older
    format versions (7 and later, see :mod:`proxycore.io.compat`).  A record
    that cannot be read raises :class:`FlowReadException` after all flows
    before it were yielded; its ``offset`` says where that record starts.

    mitmproxy can also save UDP and DNS flows.  proxycore has no model for
    them: by default such a record raises FlowReadException naming its type;
    with ``skip_unsupported=True`` it is skipped and noted in ``skipped``
    as ``(offset, type)``.
    """

    def __init__(self, fo: BinaryIO, *, skip_unsupported: bool = False) -> None:
        self.fo = fo
        self.skip_unsupported = skip_unsupported
        self.skipped: list[tuple[int, str]] = []

    def stream(self) -> Iterator[Flow]:
        reader = _CountingReader(self.fo)
        head = reader.peek(4)
        if har.looks_like_har(head):
            try:
                yield from har.read_har(reader.read())
            except har.HARError as e:
                raise FlowReadException(str(e)) from e
            return
        migrator = compat.Migrator()
        classes = _flow_classes()
        number = 0
        while True:
            start = reader.position
            number += 1
            where = f"flow #{number} (the record at byte offset {start})"
            try:
                raw = tnetstring.read_raw(reader)
                if raw is None:
                    return
                state = tnetstring.loads(raw)
            except ValueError as e:
                raise FlowReadException(_describe_damage(e, start, number), start) from e
            if not isinstance(state, dict):
                raise FlowReadException(
                    f"Invalid flow file: {where} is a {type(state).__name__}, not a dict", start
                )
            try:
                state = migrator.migrate(state)
            except compat.FlowVersionError as e:
                raise FlowReadException(f"Cannot read {where}: {e}", start) from e
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise FlowReadException(
                    f"Invalid flow file: {where} could not be upgraded from format version "
                    f"{state.get('version')!r}: {type(e).__name__}: {e}",
                    start,
                ) from e
            flow_type = state.get("type")
            if not isinstance(flow_type, str):
                raise FlowReadException(
                    f"Invalid flow file: {where} has no valid 'type' field ({flow_type!r:.40})",
                    start,
                )
            if flow_type not in classes:
                if flow_type in UNSUPPORTED_TYPES:
                    if self.skip_unsupported:
                        self.skipped.append((start, flow_type))
                        continue
                    raise FlowReadException(
                        f"Cannot read {where}: it is a {flow_type.upper()} flow and proxycore has "
                        f"no {flow_type.upper()} flow model (pass skip_unsupported=True to skip "
                        f"such flows)",
                        start,
                    )
                raise FlowReadException(
                    f"Invalid flow file: {where} has unknown flow type {flow_type!r}", start
                )
            try:
                schema.check_flow_state(state)
                flow = classes[flow_type].from_state(state)
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
                raise FlowReadException(f"Invalid flow file: {where}: {e}", start) from e
            yield flow


def _describe_damage(error: ValueError, start: int, number: int) -> str:
    if isinstance(error, tnetstring.TnetstringError):
        reason = error.reason
        detail = ""
        if error.offset:
            detail = f", problem at byte offset {start + error.offset}"
    else:
        reason, detail = str(error), ""
    return (
        f"Invalid flow file: flow #{number} (the record at byte offset {start}) "
        f"is truncated or corrupt: {reason}{detail}"
    )


class FlowEncoder:
    """``tnetstring.dumps(flow.get_state())``, with the connections' frames reused.

    Every flow of a keep-alive connection carries the same client and server state (a
    third of a small flow's values), so the last frame of each connection (by its id) is
    kept and used again while the state would be the same. Two ways to know that: the
    connection's ``state_key()`` holds the same objects (by identity) as when the frame was
    made, and they are values that cannot change (``frozen_key``), so its state is not
    even made; otherwise (a certificate, a list where a tuple belongs...) the state is made
    and its ``marshal`` form compared: equal marshal bytes mean equal values of the same
    types (marshal tells 1, 1.0 and True apart), hence the same frame. A state marshal
    cannot write (a subclass, an object in it) or without a str id is encoded as it is.
    """

    #: Connections remembered at most; emptied when full.
    MAX_KEPT = 512

    def __init__(self) -> None:
        self._frames: dict[str, tuple[bytes, bytes]] = {}
        self._keyed: dict[Any, tuple[tuple[Any, ...], tnetstring.Encoded]] = {}

    def encode(self, flow: Flow) -> bytes:
        if type(flow).get_state is not _FLOW_GET_STATE:  # a subclass that makes its own state
            return self.encode_state(flow.get_state())
        return tnetstring.dumps(flow.state_with(self._kept(flow.client_conn), self._kept(flow.server_conn)))

    def _kept(self, connection: Any) -> Any:
        """The connection's kept frame while its state_key holds the same objects, else its
        state (as encode_state takes it)."""
        state_key = getattr(connection, "state_key", None)
        if state_key is None:
            return self._connection(connection.get_state())
        key = state_key()
        if key is None:  # (a connection whose state can change unseen: made every time)
            return self._connection(connection.get_state())
        ident = connection.id
        kept = self._keyed.get(ident)
        if kept is not None and same_objects(kept[0], key):
            return kept[1]
        state = connection.get_state()
        if type(ident) is not str or not frozen_key(key):
            return self._connection(state)
        frame = tnetstring.Encoded(tnetstring.dumps(state))
        if len(self._keyed) >= self.MAX_KEPT:
            self._keyed.clear()
        self._keyed[ident] = (key, frame)
        return frame

    def encode_state(self, state: dict[str, Any]) -> bytes:
        """``tnetstring.dumps(state)`` for a flow's state (its connection fields are
        replaced by their frames)."""
        for name in _CONNECTION_FIELDS:
            connection = state.get(name)
            if type(connection) is dict:
                state[name] = self._connection(connection)
        return tnetstring.dumps(state)

    def _connection(self, state: dict[str, Any]) -> Any:
        ident = state.get("id")
        if type(ident) is not str:
            return state
        try:
            form = marshal.dumps(state, 2)  # version 2: no back references, same bytes for equal data
        except ValueError:
            return state
        last = self._frames.get(ident)
        if last is not None and last[0] == form:
            return tnetstring.Encoded(last[1])
        frame = tnetstring.dumps(state)
        if len(self._frames) >= self.MAX_KEPT:
            self._frames.clear()
        self._frames[ident] = (form, frame)
        return tnetstring.Encoded(frame)


_CONNECTION_FIELDS = ("client_conn", "server_conn")
_FLOW_GET_STATE = Flow.get_state


class FlowWriter:
    """Appends flows to a binary file object, in the format mitmproxy reads."""

    def __init__(self, fo: IO[bytes]) -> None:
        self.fo = fo
        self.encode = FlowEncoder().encode

    def add(self, flow: Flow) -> None:
        self.fo.write(self.encode(flow))


class FilteredFlowWriter:
    """A FlowWriter that only writes flows for which ``flt(flow)`` is true.

    ``flt`` may be any callable taking a flow (e.g. a parsed filter
    expression) or None to write everything.
    """

    def __init__(self, fo: IO[bytes], flt: Callable[[Flow], Any] | None) -> None:
        if flt is not None and not callable(flt):
            raise TypeError(f"flt must be callable or None, not {type(flt).__name__}")
        self.fo = fo
        self.flt = flt
        self.encode = FlowEncoder().encode

    def add(self, flow: Flow, encoded: bytes | None = None) -> None:
        """Write ``flow`` (``encoded``: its bytes as made elsewhere, by a worker)."""
        if self.flt is not None and not self.flt(flow):
            return
        self.fo.write(self.encode(flow) if encoded is None else encoded)


def read_flows_from_paths(
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
) -> list[Flow]:
    """Read every flow of every file; any problem raises FlowReadException at once.

    ``~`` in paths is expanded.  A message names the file it is about.
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    flows: list[Flow] = []
    for path in paths:
        path = os.path.expanduser(os.fspath(path))
        try:
            with open(path, "rb") as fo:
                flows.extend(FlowReader(fo).stream())
        except OSError as e:
            raise FlowReadException(f"{path}: {e.strerror or e}") from e
        except FlowReadException as e:
            raise FlowReadException(f"{path}: {e}", e.offset) from e
    return flows


def read_flows_for(
    what: str,
    paths: Iterable[str | os.PathLike[str]] | str | os.PathLike[str],
    error: type[ProxycoreError],
) -> list[Flow]:
    """``read_flows_from_paths`` for an option or a command: a problem is raised as ``error``
    (OptionsError, CommandError) with a message naming what the file was for ("client replay")."""
    try:
        return read_flows_from_paths(paths)
    except FlowReadException as e:
        raise error(f"Cannot read {what} file {e}") from e
