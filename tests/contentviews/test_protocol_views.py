"""The DNS, ZIP, MessagePack, Socket.IO and MQTT views: output equal to mitmproxy 12.3.1's
(goldens in tests/data/contentviews/protocol_views.json, written by make_protocol_goldens.py)
except where noted, and no exception but ValueError on arbitrary input."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import contentviews, http
from proxycore.contentviews.api import Metadata
from proxycore.contentviews.mqtt import describe
from proxycore.contentviews.msgpack_view import decode
from proxycore.tcp import TCPMessage
from proxycore.test import tflow
from proxycore.websocket import Opcode, WebSocketMessage
from tests.hypothesis_budget import budget

GOLDEN = json.loads((Path(__file__).parents[1] / "data" / "contentviews" / "protocol_views.json").read_text())

# mitmproxy 12.3.1 cuts two bytes off every DNS message it finds in an HTTP body (the TCP
# length prefix), so it cannot show a DNS-over-HTTPS body; proxycore parses the body whole.
DELIBERATE = {"dns-doh-response", "dns-doh-query"}


def build(case: dict) -> tuple[object, object]:
    data = base64.b64decode(case["content_b64"])
    if case["kind"] == "request":
        request = http.Request.make("POST", "http://example.com/dns-query", b"", case["headers"])
        request.raw_content = data
        return request, None
    if case["kind"] == "response":
        response = http.Response.make(200, b"", case["headers"])
        response.raw_content = data
        return response, None
    if case["kind"] == "socketio":
        flow = tflow.twebsocketflow()
        flow.request.path = "/socket.io/?EIO=4&transport=websocket"
        return WebSocketMessage(Opcode.TEXT, True, data), flow
    return TCPMessage(True, data), None


def summary(result: contentviews.ContentviewResult) -> dict:
    out = {"view_name": result.view_name, "syntax_highlight": result.syntax_highlight, "description": result.description}
    if result.syntax_highlight == "error":
        out["text_first_line"] = result.text.strip().splitlines()[0]
    else:
        out["text"] = result.text
    return out


CASES = [c for c in GOLDEN["cases"] if c["id"] not in DELIBERATE]


@pytest.mark.parametrize("case", CASES, ids=[c["id"] for c in CASES])
def test_output_equals_mitmproxy(case: dict) -> None:
    message, flow = build(case)
    assert summary(contentviews.prettify_message(message, flow, case["view"])) == case["result"]


def test_dns_over_https_body_is_parsed_whole() -> None:
    (case,) = [c for c in GOLDEN["cases"] if c["id"] == "dns-doh-response"]
    message, _ = build(case)
    result = contentviews.prettify_message(message, None, "auto")
    assert result.view_name == "DNS" and "id: 4242" in result.text
    assert "- name: example.com\n  type: A\n  class: IN\n  ttl: 60\n  data: 192.0.2.1" in result.text
    assert "data: www.example.com" not in result.text and "data: example.com" in result.text  # the CNAME


def test_dns_flow_messages_pick_the_dns_view() -> None:
    flow = tflow.tdnsflow(resp=True)
    flow.server_conn.address = None  # answered by a hook: the port does not tell
    result = contentviews.prettify_message(flow.response, flow, "auto")
    assert result.view_name == "DNS" and "data: 8.8.4.4" in result.text


def builtin_view_names() -> set[str]:
    """Names of the views proxycore ships (other tests register views of their own)."""
    return {
        name for name in contentviews.view_names()
        if name == "auto" or type(contentviews.registry[name]).__module__.startswith("proxycore.contentviews")
    }


def test_view_names_equal_mitmweb_but_for_the_rust_views() -> None:
    catalogue = json.loads((Path(__file__).parents[1] / "data" / "mitmweb-12.3.1-catalogue.json").read_text())
    missing = sorted(set(catalogue["contentViews"]) - set(contentviews.view_names()))
    assert missing == []
    assert builtin_view_names() <= set(catalogue["contentViews"])


@budget(300)
@given(st.binary(max_size=200), st.sampled_from(["dns", "zip archive", "msgpack", "socket.io", "mqtt"]))
def test_views_raise_only_value_errors(data: bytes, name: str) -> None:
    view = contentviews.get(name)
    assert view is not None
    for metadata in (Metadata(), Metadata(tcp_message=TCPMessage(True, data))):
        try:
            view.prettify(data, metadata)
        except ValueError:
            pass


def test_msgpack_limits() -> None:
    with pytest.raises(ValueError, match="nested too deeply"):
        decode(b"\x91" * 1000 + b"\x01")
    with pytest.raises(ValueError, match="longer than the data"):
        decode(b"\xdd\xff\xff\xff\xff")
    with pytest.raises(ValueError, match="after the MessagePack value"):
        decode(b"\x01\x02")


def test_mqtt_bad_length() -> None:
    with pytest.raises(ValueError, match="Malformed Remaining Length"):
        describe(b"\x30\xff\xff\xff\xff\x01")
    assert describe(b"\xd0\x00") == "[PINGRESP]"
    assert describe(bytes([0x30, 7]) + struct.pack("!H", 1) + b"t" + b"data") == "[PUBLISH] 'data' to topic 't'"
