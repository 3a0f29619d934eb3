"""Checks that a flow state has the exact shape of mitmproxy's format 21.

mitmproxy refuses records with missing or unknown keys and checks the type of
most fields; proxycore's model is more forgiving, so the reader runs this check
first.  A file proxycore accepts is then one mitmproxy accepts too, and damaged
records are reported by field name instead of failing somewhere inside the model.

Like mitmproxy's constructors, the request/response fields that are bytes
(``method``, ``path``, ``reason``, ...) may also be str, and ``host`` may be
bytes; the model converts them.  Wherever a float is expected an int is fine.
"""

from __future__ import annotations

from typing import Any

TLS_VERSIONS = frozenset(
    {"SSLv3", "TLSv1", "TLSv1.1", "TLSv1.2", "TLSv1.3", "DTLSv0.9", "DTLSv1", "DTLSv1.2", "QUICv1"}
)
TRANSPORT_PROTOCOLS = frozenset({"tcp", "udp"})
VIA_SCHEMES = frozenset({"http", "https", "http3", "tls", "dtls", "tcp", "udp", "dns", "quic"})


class InvalidFlowState(ValueError):
    """A flow state does not match format 21; the message names the field."""


def _fail(where: str, message: str) -> InvalidFlowState:
    return InvalidFlowState(f"{where}: {message}")


def _kind(value: Any) -> str:
    return "None" if value is None else type(value).__name__


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _expect(where: str, value: Any, ok: bool, wanted: str) -> None:
    if not ok:
        raise _fail(where, f"expected {wanted}, got {_kind(value)} {value!r:.60}")


def _keys(
    where: str, state: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()
) -> None:
    if not isinstance(state, dict):
        raise _fail(where, f"expected a dict, got {_kind(state)}")
    missing = [k for k in required if k not in state]
    if missing:
        raise _fail(where, f"missing field(s) {', '.join(missing)}")
    allowed = set(required) | set(optional)
    extra = [k for k in state if k not in allowed]
    if extra:
        raise _fail(where, f"unexpected field(s) {', '.join(map(repr, extra))}")


# field checkers: each takes (where, value) and raises on a mismatch


def _str(where: str, v: Any) -> None:
    _expect(where, v, isinstance(v, str), "str")


def _opt_str(where: str, v: Any) -> None:
    _expect(where, v, v is None or isinstance(v, str), "str or None")


def _bytes(where: str, v: Any) -> None:
    _expect(where, v, isinstance(v, bytes), "bytes")


def _opt_bytes(where: str, v: Any) -> None:
    _expect(where, v, v is None or isinstance(v, bytes), "bytes or None")


def _text_or_bytes(where: str, v: Any) -> None:
    _expect(where, v, isinstance(v, (str, bytes)), "bytes (or str)")


def _bool(where: str, v: Any) -> None:
    _expect(where, v, isinstance(v, bool), "bool")


def _opt_bool(where: str, v: Any) -> None:
    _expect(where, v, v is None or isinstance(v, bool), "bool or None")


def _int(where: str, v: Any) -> None:
    _expect(where, v, _is_int(v), "int")


def _opt_int(where: str, v: Any) -> None:
    _expect(where, v, v is None or _is_int(v), "int or None")


def _num(where: str, v: Any) -> None:
    _expect(where, v, _is_number(v), "a number")


def _opt_num(where: str, v: Any) -> None:
    _expect(where, v, v is None or _is_number(v), "a number or None")


def _list_of(item_check: Any) -> Any:
    def check(where: str, v: Any) -> None:
        _expect(where, v, isinstance(v, (list, tuple)), "a list")
        for i, item in enumerate(v):
            item_check(f"{where}[{i}]", item)

    return check


def _address(where: str, v: Any) -> None:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) in (2, 4)
        and isinstance(v[0], str)
        and all(_is_int(x) for x in v[1:])
    )
    _expect(where, v, ok, "[host str, port int] (or an IPv6 4-item address)")


def _opt_address(where: str, v: Any) -> None:
    if v is not None:
        _address(where, v)


def _header_pair(where: str, v: Any) -> None:
    ok = isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, bytes) for x in v)
    _expect(where, v, ok, "a [name bytes, value bytes] pair")


_headers = _list_of(_header_pair)


def _opt_headers(where: str, v: Any) -> None:
    if v is not None:
        _headers(where, v)


def _one_of(allowed: frozenset[str], optional: bool) -> Any:
    def check(where: str, v: Any) -> None:
        if v is None and optional:
            return
        _expect(
            where, v, v in allowed if isinstance(v, str) else False, f"one of {sorted(allowed)}"
        )

    return check


def _via(where: str, v: Any) -> None:
    if v is None:
        return
    ok = (
        isinstance(v, (list, tuple))
        and len(v) == 2
        and isinstance(v[0], str)
        and v[0] in VIA_SCHEMES
    )
    _expect(where, v, ok, "[scheme, [host, port]] with a known scheme, or None")
    _address(f"{where}[1]", v[1])


def _run(where: str, state: dict[str, Any], fields: dict[str, Any]) -> None:
    for key, check in fields.items():
        if key in state:
            check(f"{where}.{key}", state[key])


def _fields(
    where: str, state: Any, fields: dict[str, Any], optional: dict[str, Any] | None = None
) -> None:
    optional = optional or {}
    _keys(where, state, tuple(fields), tuple(optional))
    _run(where, state, fields)
    _run(where, state, optional)


_CONNECTION = {
    "peername": _opt_address,
    "sockname": _opt_address,
    "id": _str,
    "transport_protocol": _one_of(TRANSPORT_PROTOCOLS, optional=False),
    "error": _opt_str,
    "tls": _bool,
    "certificate_list": _list_of(_bytes),
    "alpn": _opt_bytes,
    "alpn_offers": _list_of(_bytes),
    "cipher": _opt_str,
    "cipher_list": _list_of(_str),
    "tls_version": _one_of(TLS_VERSIONS, optional=True),
    "sni": _opt_str,
    "timestamp_start": _opt_num,
    "timestamp_end": _opt_num,
    "timestamp_tls_setup": _opt_num,
}
_CLIENT = {**_CONNECTION, "timestamp_start": _num, "mitmcert": _opt_bytes, "proxy_mode": _str}
_SERVER = {**_CONNECTION, "address": _opt_address, "timestamp_tcp_setup": _opt_num, "via": _via}

_MESSAGE = {
    "http_version": _text_or_bytes,
    "headers": _headers,
    "content": _opt_bytes,
    "trailers": _opt_headers,
    "timestamp_start": _num,
    "timestamp_end": _opt_num,
}
_REQUEST = {
    **_MESSAGE,
    "host": _text_or_bytes,
    "port": _int,
    "method": _text_or_bytes,
    "scheme": _text_or_bytes,
    "authority": _text_or_bytes,
    "path": _text_or_bytes,
}
_RESPONSE = {**_MESSAGE, "status_code": _int, "reason": _text_or_bytes}


def _error(where: str, v: Any) -> None:
    if v is not None:
        _fields(where, v, {"msg": _str, "timestamp": _num})


def _tcp_message(where: str, v: Any) -> None:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) == 3
        and isinstance(v[0], bool)
        and isinstance(v[1], bytes)
        and _is_number(v[2])
    )
    _expect(where, v, ok, "[from_client bool, content bytes, timestamp]")


def _websocket_message(where: str, v: Any) -> None:
    ok = (
        isinstance(v, (list, tuple))
        and len(v) == 6
        and _is_int(v[0])
        and isinstance(v[1], bool)
        and isinstance(v[2], bytes)
        and _is_number(v[3])
        and isinstance(v[4], bool)
        and isinstance(v[5], bool)
    )
    _expect(
        where,
        v,
        ok,
        "[opcode int, from_client bool, content bytes, timestamp, dropped bool, injected bool]",
    )
    if v[0] not in (0, 1, 2, 8, 9, 10):
        raise _fail(where, f"unknown WebSocket opcode {v[0]}")


def _websocket(where: str, v: Any) -> None:
    if v is None:
        return
    _fields(
        where,
        v,
        {
            "messages": _list_of(_websocket_message),
            "closed_by_client": _opt_bool,
            "close_code": _opt_int,
            "close_reason": _opt_str,
            "timestamp_end": _opt_num,
        },
    )


def _request(where: str, v: Any) -> None:
    _fields(where, v, _REQUEST)


def _opt_response(where: str, v: Any) -> None:
    if v is not None:
        _fields(where, v, _RESPONSE)


_DNS_QUESTION = {"name": _str, "type": _int, "class_": _int}
_DNS_RECORD = {"name": _str, "type": _int, "class_": _int, "ttl": _int, "data": _bytes}
_DNS_MESSAGE = {
    "id": _int,
    "query": _bool,
    "op_code": _int,
    "authoritative_answer": _bool,
    "truncation": _bool,
    "recursion_desired": _bool,
    "recursion_available": _bool,
    "reserved": _int,
    "response_code": _int,
    "questions": _list_of(lambda where, v: _fields(where, v, _DNS_QUESTION)),
    "answers": _list_of(lambda where, v: _fields(where, v, _DNS_RECORD)),
    "authorities": _list_of(lambda where, v: _fields(where, v, _DNS_RECORD)),
    "additionals": _list_of(lambda where, v: _fields(where, v, _DNS_RECORD)),
    "timestamp": _opt_num,
}


def _dns_message(where: str, v: Any) -> None:
    _fields(where, v, _DNS_MESSAGE)


def _opt_dns_message(where: str, v: Any) -> None:
    if v is not None:
        _dns_message(where, v)


_FLOW = {
    "version": _int,
    "type": _str,
    "id": _str,
    "error": _error,
    "client_conn": lambda where, v: _fields(where, v, _CLIENT),
    "server_conn": lambda where, v: _fields(where, v, _SERVER),
    "intercepted": _bool,
    "is_replay": _one_of(frozenset({"request", "response"}), optional=True),
    "marked": _str,
    "metadata": lambda where, v: _expect(where, v, isinstance(v, dict), "a dict"),
    "comment": _str,
    "timestamp_created": _num,
}

#: extra fields per flow type proxycore has a model for
TYPE_FIELDS: dict[str, dict[str, Any]] = {
    "http": {"request": _request, "response": _opt_response, "websocket": _websocket},
    "tcp": {"messages": _list_of(_tcp_message)},
    "udp": {"messages": _list_of(_tcp_message)},
    "dns": {"request": _dns_message, "response": _opt_dns_message},
}


def check_flow_state(state: Any, where: str = "flow") -> None:
    """Raise :class:`InvalidFlowState` unless ``state`` is a well-formed v21 state.

    ``state["type"]`` must be one of :data:`TYPE_FIELDS`; the caller deals with
    other types.  ``backup`` (optional, a complete earlier state of the flow or
    None) is checked too.
    """
    if not isinstance(state, dict):
        raise _fail(where, f"expected a dict, got {_kind(state)}")
    flow_type = state.get("type")
    if flow_type not in TYPE_FIELDS:
        raise _fail(f"{where}.type", f"unsupported flow type {flow_type!r}")
    _fields(where, state, {**_FLOW, **TYPE_FIELDS[flow_type]}, {"backup": lambda w, v: None})
    backup = state.get("backup")
    if backup is not None:
        check_flow_state(backup, f"{where}.backup")
        if backup.get("type") != flow_type:
            raise _fail(
                f"{where}.backup.type", f"is {backup.get('type')!r}, the flow is {flow_type!r}"
            )
