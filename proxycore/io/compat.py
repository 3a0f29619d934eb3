"""Upgrading flow states written by older mitmproxy versions to format 21.

Every flow record carries ``"version"``.  Each step below rewrites a state of
version N into version N+1 (renaming, adding or dropping keys), and
:meth:`Migrator.migrate` applies them one after the other until the state has
:data:`FLOW_FORMAT_VERSION`.  The steps follow what mitmproxy's own reader
does, so an old file loads into the same v21 state in both programs.

Implemented: every step from version 7 up to 21, i.e.

====  ======================================================================
7→8   requests/responses get ``trailers: None``
8→9   ``first_line_format`` dropped, ``authority`` added, ``is_replay`` moves
      from the messages to the flow
9→10  connections get ``state``/``error``/``tls``/``alpn_offers``/
      ``cipher_list``; client ``clientcert`` and server ``cert`` become
      ``certificate_list``; ``via2``
10→11 ``alpn_proto_negotiated`` → ``alpn``; ``sni`` always str; empty lists
11→12 WebSocket flows (separate flows until then) are merged into a copy of
      their handshake HTTP flow as ``flow["websocket"]``; other HTTP flows get
      ``websocket: None`` (mitmproxy also adds it to TCP flows, which it then
      cannot load; proxycore leaves TCP flows alone)
12→13 ``marked`` becomes ``":default:"`` or ``""``
13→14 ``comment`` added; responses without ``timestamp_start`` are repaired
14→15 WebSocket messages get the ``injected`` flag (and, unlike mitmproxy,
      text content stored as str is encoded to UTF-8 bytes)
15→16 ``timestamp_created`` added
16→17 flow-level ``mode`` dropped
17→18 client ``proxy_mode = "regular"``
18→19 connection renames: ``address``/``ip_address`` → ``peername``,
      ``source_address`` → ``sockname``, ``via2`` → ``via``,
      ``cipher_name`` → ``cipher``; ``tls_established``/``tls_extensions``
      dropped; ``transport_protocol`` added
19→20 connection ``state`` dropped
20→21 TLS version ``"QUIC"`` renamed ``"QUICv1"``
====  ======================================================================

Older files, mitmproxy 0.18 to 3.0 (versions ``(0, 18)`` ... ``(3, 0)``, partly
with bytes dict keys) and 4 to 6, go through ``OLD_STEPS`` first: str keys and
texts (0.18, 0.19), bare address tuples (2.0), ``mitmcert``/``tls_version``
(3.0), connection ids (5), ``ssl_*`` → ``tls_*`` (6), ``tls_extensions`` (7).
Versions before 0.18 are rejected with a message saying so; loading them once in
mitmproxy and saving again produces a file this reader accepts.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Callable
from typing import Any

from proxycore.flow import FLOW_FORMAT_VERSION

#: Oldest format version :class:`Migrator` upgrades (from 7 on numbered; 0.18 to 6 via OLD_STEPS).
OLDEST_SUPPORTED_VERSION = 7

State = dict[str, Any]


class FlowVersionError(ValueError):
    """The record's format version cannot be read by this implementation."""


def _version_of(state: dict[Any, Any]) -> int | tuple[int, ...]:
    if "version" in state:
        raw = state["version"]
    elif b"version" in state:
        raw = state[b"version"]
    else:
        raise FlowVersionError("flow record has no 'version' field")
    if isinstance(raw, bool):
        raise FlowVersionError(f"invalid flow format version {raw!r}")
    if isinstance(raw, int):
        return raw
    if (
        isinstance(raw, (list, tuple))
        and raw
        and all(isinstance(x, int) and not isinstance(x, bool) for x in raw)
    ):
        # Before format version 4, mitmproxy stored its own release number.
        return tuple(raw[:2])
    raise FlowVersionError(f"invalid flow format version {raw!r}")


# --------------------------------------------------------------------------- steps


def _conns(state: State) -> list[State]:
    """client_conn, server_conn, and the upstream-proxy connection if present."""
    found = [state["client_conn"], state["server_conn"]]
    via = state["server_conn"].get("via")
    if isinstance(via, dict):
        found.append(via)
    return found


def _text(value: Any) -> Any:
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) else value


def _str_keys(obj: Any) -> Any:
    """Python 2 era files (mitmproxy < 1.0) may have bytes dict keys: all become str."""
    if isinstance(obj, dict):
        return {_text(k): _str_keys(v) for k, v in obj.items()}
    return obj


def _py3_state(state: dict[Any, Any]) -> State:
    state = _str_keys(state)
    for key in ("type", "id"):
        if key in state:
            state[key] = _text(state[key])
    request = state.get("request")
    if request and "first_line_format" in request:
        request["first_line_format"] = _text(request["first_line_format"])
    error = state.get("error")
    if error and "msg" in error:
        error["msg"] = _text(error["msg"])
    return state


def _server_conns(state: State) -> list[State]:
    """server_conn and, if present, the upstream-proxy connection in ``via``."""
    via = state["server_conn"].get("via")
    return [state["server_conn"], via] if via else [state["server_conn"]]


def _v0_18_to_v0_19(state: dict[Any, Any], _m: Migrator) -> State:
    state = _py3_state(state)
    state["request"].pop("stickyauth", None)
    state["request"].pop("stickycookie", None)
    client = state["client_conn"]
    client.update(sni=None, alpn_proto_negotiated=None, cipher_name=None, tls_version=None)
    for conn in _server_conns(state):
        conn["alpn_proto_negotiated"] = None
    state["mode"] = "regular"
    state["metadata"] = {}
    return state


def _v0_19_to_v1_0(state: dict[Any, Any], _m: Migrator) -> State:
    return _py3_state(state)


def _v1_0_to_v2_0(state: State, _m: Migrator) -> State:
    # Addresses were {"address": (host, port)}; from 2.0 on the tuple itself.
    state["client_conn"]["address"] = state["client_conn"]["address"]["address"]
    for conn in _server_conns(state):
        for key in ("address", "source_address", "ip_address"):
            if conn.get(key):
                conn[key] = conn[key]["address"]
    return state


def _v2_0_to_v3_0(state: State, _m: Migrator) -> State:
    state["client_conn"]["mitmcert"] = None
    for conn in _server_conns(state):
        conn["tls_version"] = None
    return state


def _v3_0_to_v4(state: State, _m: Migrator) -> State:
    return state  # only the numbering changed


def _v4_to_v5(state: State, m: Migrator) -> State:
    # Connections get ids; the records of one connection (same start, same address) share it.
    client = state["client_conn"]
    key = ("client", client["timestamp_start"], *client["address"])
    client["id"] = m.connection_ids.setdefault(key, str(uuid.uuid4()))
    for conn in _server_conns(state):
        key = ("server", conn["timestamp_start"], *(conn.get("source_address") or ()))
        conn["id"] = m.connection_ids.setdefault(key, str(uuid.uuid4()))
    return state


def _v5_to_v6(state: State, _m: Migrator) -> State:
    for conn in [state["client_conn"], *_server_conns(state)]:
        conn["tls_established"] = conn.pop("ssl_established")
        conn["timestamp_tls_setup"] = conn.pop("timestamp_ssl_setup")
    return state


def _v6_to_v7(state: State, _m: Migrator) -> State:
    state["client_conn"]["tls_extensions"] = None
    return state


def _v7_to_v8(state: State, _m: Migrator) -> State:
    for key in ("request", "response"):
        if state.get(key) is not None:
            state[key]["trailers"] = None
    return state


def _v8_to_v9(state: State, _m: Migrator) -> State:
    replay_of_request = False
    if "request" in state:
        request = state["request"]
        request.pop("first_line_format", None)
        request["authority"] = b""
        replay_of_request = bool(request.pop("is_replay", False))
    replay_of_response = False
    if state.get("response") is not None:
        replay_of_response = bool(state["response"].pop("is_replay", False))
    if replay_of_request:
        state["is_replay"] = "request"
    elif replay_of_response:
        state["is_replay"] = "response"
    else:
        state["is_replay"] = None
    return state


def _v9_to_v10(state: State, _m: Migrator) -> State:
    def tls_fields(conn: State) -> None:
        conn["state"] = 0
        conn["error"] = None
        conn["tls"] = conn["tls_established"]
        negotiated = conn["alpn_proto_negotiated"]
        conn["alpn_offers"] = [negotiated] if negotiated else None
        cipher = conn["cipher_name"]
        conn["cipher_list"] = [cipher] if cipher else None

    def server_fields(conn: State) -> None:
        cert = conn.pop("cert", None)
        conn["certificate_list"] = [cert] if cert else []
        conn["cipher_name"] = None
        conn["via2"] = None
        tls_fields(conn)

    client = state["client_conn"]
    client["sockname"] = ("", 0)
    client_cert = client.pop("clientcert", None)
    client["certificate_list"] = [client_cert] if client_cert else []
    tls_fields(client)
    server_fields(state["server_conn"])
    if state["server_conn"].get("via"):
        server_fields(state["server_conn"]["via"])
    return state


def _v10_to_v11(state: State, _m: Migrator) -> State:
    for conn in _conns(state):
        sni = conn["sni"]
        if isinstance(sni, bytes):
            conn["sni"] = sni.decode("ascii", "backslashreplace")
        conn["alpn"] = conn.pop("alpn_proto_negotiated")
        conn["alpn_offers"] = conn["alpn_offers"] or []
        conn["cipher_list"] = conn["cipher_list"] or []
    return state


_DUPLICATE_NOTE = (
    "This WebSocket flow has been migrated from an old file format version "
    "and may appear duplicated."
)


def _placeholder_handshake(ws_state: State) -> State:
    """Stand-in HTTP flow for a WebSocket flow whose handshake is not in the file."""
    return {
        "version": 12,
        "type": "http",
        "id": ws_state["id"],
        "error": ws_state["error"],
        "client_conn": ws_state["client_conn"],
        "server_conn": ws_state["server_conn"],
        "intercepted": ws_state["intercepted"],
        "is_replay": ws_state["is_replay"],
        "marked": ws_state["marked"],
        "metadata": {},
        "mode": "transparent",
        "request": {
            "http_version": b"HTTP/1.1",
            "headers": [],
            "content": None,
            "trailers": None,
            "timestamp_start": 0,
            "timestamp_end": 0,
            "host": b"unknown",
            "port": 80,
            "method": b"GET",
            "scheme": b"http",
            "authority": b"",
            "path": b"/",
        },
        "response": None,
    }


def _v11_to_v12(state: State, m: Migrator) -> State:
    state["version"] = 12
    metadata = state["metadata"]
    if "websocket" in metadata:
        # A handshake: remember it, a later WebSocket flow will refer to it.
        m.websocket_handshakes[state["id"]] = copy.deepcopy(state)
    if "websocket_handshake" not in metadata:
        # mitmproxy adds this to TCP flows as well and then fails to load them
        # (unexpected key); only HTTP flows have a ``websocket`` member.
        if state.get("type") == "http":
            state["websocket"] = None
        return state
    ws_state = state
    handshake = m.websocket_handshakes.pop(metadata["websocket_handshake"], None)
    merged = handshake if handshake is not None else _placeholder_handshake(ws_state)
    merged["metadata"]["duplicated"] = _DUPLICATE_NOTE
    merged["websocket"] = {
        "messages": ws_state["messages"],
        "closed_by_client": ws_state["close_sender"] == "client",
        "close_code": ws_state["close_code"],
        "close_reason": ws_state["close_reason"],
        "timestamp_end": (merged.get("server_conn") or {}).get("timestamp_end"),
    }
    return merged


def _v12_to_v13(state: State, _m: Migrator) -> State:
    state["marked"] = ":default:" if state["marked"] else ""
    return state


def _v13_to_v14(state: State, _m: Migrator) -> State:
    state["comment"] = ""
    response = state.get("response")
    if response and response["timestamp_start"] is None:
        # Old versions could store responses without timestamps; make them up
        # from the request, as mitmproxy does.
        response["timestamp_start"] = state["request"]["timestamp_end"]
        response["timestamp_end"] = state["request"]["timestamp_end"] + 1
    return state


def _text_content_as_bytes(message: list[Any]) -> list[Any]:
    # Old files store the content of text messages as str.  mitmproxy keeps
    # that str as it is; proxycore encodes it, because message content is
    # bytes everywhere else (and in every v21 file).
    if isinstance(message[2], str):
        message = [*message[:2], message[2].encode("utf-8", "surrogateescape"), *message[3:]]
    return message


def _v14_to_v15(state: State, _m: Migrator) -> State:
    websocket = state.get("websocket")
    if websocket:
        websocket["messages"] = [
            [*_text_content_as_bytes(message), False] for message in websocket["messages"]
        ]
    return state


def _v15_to_v16(state: State, _m: Migrator) -> State:
    source = state["request"] if "request" in state else state["client_conn"]
    state["timestamp_created"] = source["timestamp_start"]
    return state


def _v16_to_v17(state: State, _m: Migrator) -> State:
    state.pop("mode", None)
    return state


def _v17_to_v18(state: State, _m: Migrator) -> State:
    state["client_conn"]["proxy_mode"] = "regular"
    return state


def _v18_to_v19(state: State, _m: Migrator) -> State:
    client = state["client_conn"]
    client["peername"] = client.pop("address", None)
    if client.get("timestamp_start") is None:
        client["timestamp_start"] = 0.0
    client.pop("tls_extensions")

    server = state["server_conn"]
    server["peername"] = server.pop("ip_address", None)
    server["sockname"] = server.pop("source_address", None)
    server["via"] = server.pop("via2", None)

    for conn in (client, server):
        conn.pop("tls_established")
        conn["cipher"] = conn.pop("cipher_name", None)
        conn.setdefault("transport_protocol", "tcp")
        for key in ("peername", "sockname", "address"):
            addr = conn.get(key)
            if addr and isinstance(addr[0], bytes):
                conn[key] = [addr[0].decode("utf-8", "backslashreplace"), *addr[1:]]

    if server["sni"] is True:
        server["sni"] = server["address"][0]
    return state


def _v19_to_v20(state: State, _m: Migrator) -> State:
    state["client_conn"].pop("state", None)
    state["server_conn"].pop("state", None)
    return state


def _v20_to_v21(state: State, _m: Migrator) -> State:
    for conn in (state["client_conn"], state["server_conn"]):
        if conn["tls_version"] == "QUIC":
            conn["tls_version"] = "QUICv1"
    return state


Step = Callable[[State, "Migrator"], State]

#: from-version → step producing version + 1
STEPS: dict[int, Step] = {
    7: _v7_to_v8,
    8: _v8_to_v9,
    9: _v9_to_v10,
    10: _v10_to_v11,
    11: _v11_to_v12,
    12: _v12_to_v13,
    13: _v13_to_v14,
    14: _v14_to_v15,
    15: _v15_to_v16,
    16: _v16_to_v17,
    17: _v17_to_v18,
    18: _v18_to_v19,
    19: _v19_to_v20,
    20: _v20_to_v21,
}


#: mitmproxy 0.18 to 3.0 numbered the format by release: from-version -> (step, next version)
OLD_STEPS: dict[int | tuple[int, ...], tuple[Step, int | tuple[int, ...]]] = {
    (0, 18): (_v0_18_to_v0_19, (0, 19)),
    (0, 19): (_v0_19_to_v1_0, (1, 0)),
    (1, 0): (_v1_0_to_v2_0, (2, 0)),
    (2, 0): (_v2_0_to_v3_0, (3, 0)),
    (3, 0): (_v3_0_to_v4, 4),
    4: (_v4_to_v5, 5),
    5: (_v5_to_v6, 6),
    6: (_v6_to_v7, 7),
}


class Migrator:
    """Upgrades the records of one file; keeps what a step needs across records.

    (Only 11→12 needs that: a WebSocket flow refers to its handshake flow,
    which came earlier in the same file.)
    """

    def __init__(self) -> None:
        self.websocket_handshakes: dict[str, State] = {}
        self.connection_ids: dict[tuple[Any, ...], str] = {}  # 4 -> 5

    def migrate(self, state: dict[Any, Any]) -> State:
        """Return ``state`` upgraded to :data:`FLOW_FORMAT_VERSION` (may modify it).

        Raises :class:`FlowVersionError` for versions that cannot be read, and
        KeyError/TypeError/... if an old record lacks what its version implies.
        """
        while True:
            version = _version_of(state)
            if version == FLOW_FORMAT_VERSION:
                return state
            if version in OLD_STEPS:
                step, following = OLD_STEPS[version]
                state = step(state, self)
                state["version"] = following
                continue
            if isinstance(version, tuple) or version < OLDEST_SUPPORTED_VERSION:
                raise FlowVersionError(
                    f"flow format version {_show(version)} is too old for "
                    f"proxycore, which upgrades versions 0.18 to "
                    f"{FLOW_FORMAT_VERSION}; open and save the file with mitmproxy first"
                )
            if version > FLOW_FORMAT_VERSION:
                raise FlowVersionError(
                    f"proxycore cannot read files with flow format version {version}, "
                    f"it reads versions up to {FLOW_FORMAT_VERSION}; please update proxycore"
                )
            state = STEPS[version](state, self)
            state["version"] = version + 1


def _show(version: int | tuple[int, ...]) -> str:
    return ".".join(map(str, version)) if isinstance(version, tuple) else str(version)


def migrate_flow(state: dict[Any, Any]) -> State:
    """Upgrade one record on its own (WebSocket flows of version <= 11 then lose
    their handshake; :class:`~proxycore.io.FlowReader` keeps one Migrator per file)."""
    return Migrator().migrate(state)
