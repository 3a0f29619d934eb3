"""Flow files of mitmproxy 0.18 to 6 (release-numbered formats, bytes keys of the Python 2
era) are upgraded step by step; the records here are built by hand in the old shape."""

from __future__ import annotations

import io
from typing import Any

import pytest

from proxycore.io import FlowReader, FlowReadException, tnetstring


def bytes_keys(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k.encode(): bytes_keys(v) for k, v in obj.items()}
    return obj


def v0_18_record(path: bytes, client_port: int = 5000) -> dict[bytes, Any]:
    client = {
        "address": {"address": ["127.0.0.1", client_port]},
        "clientcert": None,
        "ssl_established": False,
        "timestamp_end": None,
        "timestamp_ssl_setup": None,
        "timestamp_start": 100.0,
    }
    server = {
        "address": {"address": ["example.com", 80]},
        "cert": None,
        "ip_address": {"address": ["192.0.2.1", 80]},
        "sni": None,
        "source_address": {"address": ["10.0.0.1", 40000]},
        "ssl_established": False,
        "timestamp_end": None,
        "timestamp_ssl_setup": None,
        "timestamp_start": 101.0,
        "timestamp_tcp_setup": 102.0,
        "via": None,
    }
    request = {
        "content": b"",
        "first_line_format": b"relative",
        "headers": [[b"Host", b"example.com"]],
        "host": b"example.com",
        "http_version": b"HTTP/1.1",
        "is_replay": False,
        "method": b"GET",
        "path": path,
        "port": 80,
        "scheme": b"http",
        "stickyauth": False,
        "stickycookie": False,
        "timestamp_end": 103.5,
        "timestamp_start": 103.0,
    }
    response = {
        "content": b"hello",
        "headers": [[b"Content-Length", b"5"]],
        "http_version": b"HTTP/1.1",
        "is_replay": False,
        "reason": b"OK",
        "status_code": 200,
        "timestamp_end": 104.5,
        "timestamp_start": 104.0,
    }
    state = {
        "version": [0, 18],
        "type": b"http",
        "id": b"old-" + path,
        "error": None,
        "intercepted": False,
        "marked": False,
        "client_conn": client,
        "server_conn": server,
        "request": request,
        "response": response,
    }
    return bytes_keys(state)


def read(*records: dict[bytes, Any]) -> list[Any]:
    data = b"".join(tnetstring.dumps(r) for r in records)
    return list(FlowReader(io.BytesIO(data)).stream())


def test_a_0_18_record_with_bytes_keys_loads():
    (flow,) = read(v0_18_record(b"/one"))
    assert flow.id == "old-/one"
    assert flow.request.url == "http://example.com/one"
    assert flow.response.content == b"hello"
    assert flow.client_conn.peername == ("127.0.0.1", 5000)
    assert flow.server_conn.address == ("example.com", 80)
    assert flow.server_conn.sockname == ("10.0.0.1", 40000)
    assert flow.client_conn.tls_established is False


def test_records_of_one_connection_share_its_id():
    one, two, other = read(v0_18_record(b"/one"), v0_18_record(b"/two"), v0_18_record(b"/x", client_port=6000))
    assert one.client_conn.id == two.client_conn.id != other.client_conn.id
    assert one.server_conn.id == two.server_conn.id


def test_versions_before_0_18_are_refused_with_a_hint():
    record = v0_18_record(b"/one")
    record[b"version"] = [0, 17]
    with pytest.raises(FlowReadException, match="0.17 is too old .* upgrades versions 0.18 to"):
        read(record)
