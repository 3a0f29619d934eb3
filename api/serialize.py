"""The JSON shapes of mitmproxy's web API: flows, certificates, log entries, options, commands.

Shapes and key order follow mitmweb 12.3.1 (see the web API spec, section 5),
because its front end and its users' scripts read them.  Message bodies are
never sent, only their length and SHA-256.
"""

from __future__ import annotations

import inspect
import json
import pathlib
import sys
import textwrap
import typing
import weakref
from collections.abc import Callable, Sequence
from typing import Any

from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.optmanager import OptManager, _type_name
from proxycore.store.base import STORED_BODIES, body_digest
from proxycore.tcp import TCPFlow
from proxycore.udp import UDPFlow
from proxycore.utils import signals
from proxycore.utils.emoji import marker_char

# Certificates are immutable and shared by many flows; reading one for display is slow.
# Keyed by identity (hashing a Cert computes its fingerprint), dropped when it dies.
_cert_json: dict[int, tuple[weakref.ref[Any], dict[str, Any]]] = {}


def cert_to_json(certificates: Sequence[Any]) -> dict[str, Any] | None:
    """The first certificate of a connection's chain, or None."""
    if not certificates:
        return None
    cert = certificates[0]
    key = id(cert)
    entry = _cert_json.get(key)
    if entry is None or entry[0]() is not cert:
        def forget(_: object, key: int = key) -> None:
            _cert_json.pop(key, None)

        ref = weakref.ref(cert, forget)
        entry = _cert_json[key] = (ref, _cert_fields(cert))
    return entry[1]


def _cert_fields(cert: Any) -> dict[str, Any]:
    return {
        "keyinfo": list(cert.keyinfo),
        "sha256": cert.fingerprint().hex(),
        "notbefore": int(cert.notbefore.timestamp()),
        "notafter": int(cert.notafter.timestamp()),
        "serial": str(cert.serial),
        "subject": [list(pair) for pair in cert.subject],
        "issuer": [list(pair) for pair in cert.issuer],
        "altnames": [str(name) for name in cert.altnames],
    }


def _address(address: Any) -> list[Any] | None:
    return list(address) if address is not None else None


def _alpn(value: bytes | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return value.decode("ascii", "backslashreplace")


def _connection(conn: Any, server: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": conn.id,
        "peername": _address(conn.peername),
        "sockname": _address(conn.sockname),
    }
    if server:
        data["address"] = _address(conn.address)
    data.update(
        tls_established=conn.timestamp_tls_setup is not None,
        cert=cert_to_json(conn.certificate_list),
        sni=conn.sni,
        cipher=conn.cipher,
        alpn=_alpn(conn.alpn),
        tls_version=conn.tls_version,
        timestamp_start=conn.timestamp_start,
    )
    if server:
        data["timestamp_tcp_setup"] = conn.timestamp_tcp_setup
    data["timestamp_tls_setup"] = conn.timestamp_tls_setup
    data["timestamp_end"] = conn.timestamp_end
    return data


def _content_meta(message: Any) -> tuple[int | None, str | None]:
    raw = message.raw_content
    if raw is None:
        # read for a list without its body: length and hash as stored
        return STORED_BODIES.get(message, (None, None))
    # cached per message: /flows is fetched again and again, and the store hashed it already
    return len(raw), body_digest(message, raw)


def _messages_meta(messages: Sequence[Any]) -> dict[str, Any]:
    return {
        "contentLength": sum(len(m.content) for m in messages),
        "count": len(messages),
        "timestamp_last": messages[-1].timestamp if messages else None,
    }


def _fields(headers: Any) -> list[list[str]]:
    """Header fields in order, duplicates kept (``items(multi=True)``, without the detour)."""
    return [
        [name.decode("utf-8", "surrogateescape"), value.decode("utf-8", "surrogateescape")]
        for name, value in headers.fields
    ]


def _request(request: Any) -> dict[str, Any]:
    length, digest = _content_meta(request)
    return {
        "method": request.method,
        "scheme": request.scheme,
        "host": request.host,
        "port": request.port,
        "path": request.path,
        "http_version": request.http_version,
        "headers": _fields(request.headers),
        "contentLength": length,
        "contentHash": digest,
        "timestamp_start": request.timestamp_start,
        "timestamp_end": request.timestamp_end,
        "pretty_host": request.pretty_host,
    }


def _response(response: Any) -> dict[str, Any]:
    length, digest = _content_meta(response)
    data = {
        "http_version": response.http_version,
        "status_code": response.status_code,
        "reason": response.reason,
        "headers": _fields(response.headers),
        "contentLength": length,
        "contentHash": digest,
        "timestamp_start": response.timestamp_start,
        "timestamp_end": response.timestamp_end,
    }
    if response.trailers:
        data["trailers"] = _fields(response.trailers)
    return data


def flow_to_json(flow: Flow) -> dict[str, Any]:
    """One flow as ``GET /flows`` and the ``flows/add|update`` messages carry it."""
    data: dict[str, Any] = {
        "id": flow.id,
        "intercepted": flow.intercepted,
        "is_replay": flow.is_replay,
        "type": flow.type,
        "modified": flow.modified(),
        "marked": marker_char(flow.marked),
        "comment": flow.comment,
        "timestamp_created": flow.timestamp_created,
        "client_conn": _connection(flow.client_conn, server=False),
        "server_conn": _connection(flow.server_conn, server=True),
    }
    if flow.error:
        data["error"] = flow.error.get_state()
    if isinstance(flow, HTTPFlow):
        data["request"] = _request(flow.request)
        response = flow.response
        if response is not None:
            data["response"] = _response(response)
        websocket = flow.websocket
        if websocket is not None:
            data["websocket"] = {
                "messages_meta": _messages_meta(websocket.messages),
                "closed_by_client": websocket.closed_by_client,
                "close_code": websocket.close_code,
                "close_reason": websocket.close_reason,
                "timestamp_end": websocket.timestamp_end,
            }
    elif isinstance(flow, TCPFlow | UDPFlow):
        data["messages_meta"] = _messages_meta(flow.messages)
    elif (dns := sys.modules.get("proxycore.dns")) is not None and isinstance(flow, dns.DNSFlow):
        # (a DNS flow exists only once proxycore.dns is imported: a start does not import it)
        data["request"] = flow.request.to_json()
        if flow.response is not None:
            data["response"] = flow.response.to_json()
    return data


class FlowJsonCache:
    """The JSON text of each shown flow, kept until the view says the flow changed.

    ``GET /flows`` re-serialises every flow, and with thousands of flows that
    takes seconds; most of them have not changed since the last request.  The
    view's signals cover every change a client can see live (they are what the
    WebSocket sends), so entries are dropped on add/update/remove and all of them
    on a refresh (a flow may have changed while it was hidden).
    """

    DB_LIMIT = 10000  # entries kept when the view's flows live in a database store

    def __init__(self) -> None:
        self._text: dict[str, str] = {}
        self._view: Any = None

    def text(self, flow: Flow) -> str:
        text = self._text.get(flow.id)
        if text is None:
            # Tornado's JSON for handlers: ASCII only, "</" escaped.
            text = json.dumps(flow_to_json(flow)).replace("</", "<\\/")
            if len(self._text) >= self.DB_LIMIT and getattr(self._view, "db", None) is not None:
                del self._text[next(iter(self._text))]  # bounded memory: drop the oldest entry
            self._text[flow.id] = text
        return text

    def forget(self, flow: Flow, *args: Any) -> None:
        self._text.pop(flow.id, None)

    def clear(self) -> None:
        self._text.clear()

    def connect(self, view: Any, on: bool = True) -> None:
        pairs: list[tuple[signals.Signal, Callable[..., Any]]] = [
            (view.sig_view_add, self.forget),
            (view.sig_view_update, self.forget),
            (view.sig_view_remove, self.forget),
            (view.sig_store_remove, self.forget),
            (view.sig_view_refresh, self.clear),
            (view.sig_store_refresh, self.clear),
        ]
        signals.wire(pairs, on)
        self.clear()
        self._view = view if on else None


def logentry_to_json(entry: Any) -> dict[str, Any]:
    return {"id": entry.id, "message": entry.msg, "level": entry.level}


def options_to_json(options: OptManager, names: Sequence[str] | set[str] | None = None) -> dict[str, Any]:
    """``GET /options`` (all options) or the payload of ``options/update`` (``names``)."""
    result = {}
    for name in sorted(options.keys() if names is None else names):
        if name not in options:
            continue
        choices = options.choices(name)
        result[name] = {
            "type": _type_name(options.typespec(name)),
            "default": options.default(name),
            "value": getattr(options, name),
            "help": options.help(name),
            "choices": list(choices) if choices is not None else None,
        }
    return result


# commands ------------------------------------------------------------------------------

_SIMPLE_TYPES = {str: "str", int: "int", bool: "bool", bytes: "bytes", pathlib.Path: "path"}


def type_name(hint: Any) -> str:
    """The type names mitmproxy's command catalogue uses (``flow[]``, ``str[]``, ``path``…)."""
    if hint in _SIMPLE_TYPES:
        return _SIMPLE_TYPES[hint]
    if isinstance(hint, type) and issubclass(hint, Flow):
        return "flow"
    origin = typing.get_origin(hint)
    if origin in (list, tuple, Sequence, typing.Sequence):
        args = typing.get_args(hint)
        inner = args[0] if args else str
        if isinstance(inner, type) and issubclass(inner, Flow):
            return "flow[]"
        if typing.get_origin(inner) in (list, tuple, Sequence, typing.Sequence):
            return "data[][]"
        return f"{type_name(inner)}[]"
    name = getattr(hint, "display", None)  # a choice or cut type object, mitmproxy style
    if isinstance(name, str):
        return name
    return "unknown"


def _hints(func: Any) -> dict[str, Any]:
    try:
        return typing.get_type_hints(func)
    except Exception:  # an annotation that does not resolve: show what we can
        return {}


def command_to_json(name: str, func: Any) -> dict[str, Any]:
    hints = _hints(func)
    parameters = []
    shown = []
    for param in inspect.signature(func).parameters.values():
        parameters.append(
            {
                "name": param.name,
                "type": type_name(hints.get(param.name, str)),
                "kind": param.kind.name,
            }
        )
        shown.append(f"*{param.name}" if param.kind is param.VAR_POSITIONAL else param.name)
    returns = hints.get("return")
    return_type = type_name(returns) if returns not in (None, type(None)) else None
    signature = f"{name} {' '.join(shown)}"
    if return_type:
        signature += f" -> {return_type}"
    doc = func.__doc__
    return {
        "help": "\n".join(textwrap.wrap(doc.strip())) if doc else None,
        "parameters": parameters,
        "return_type": return_type,
        "signature_help": signature,
    }


def commands_to_json(commands: dict[str, Any]) -> dict[str, Any]:
    return {name: command_to_json(name, commands[name]) for name in sorted(commands)}


def to_jsonable(value: Any) -> Any:
    """A command's result as JSON: flows become flow JSON, bytes text, tuples lists."""
    if isinstance(value, Flow):
        return flow_to_json(value)
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [to_jsonable(v) for v in value]
    if isinstance(value, pathlib.Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
