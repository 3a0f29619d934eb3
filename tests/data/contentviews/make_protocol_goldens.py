"""Writes ``protocol_views.json``: mitmproxy 12.3.1's output of its DNS, ZIP, msgpack,
Socket.IO and MQTT views for inputs built here.

Run with a Python that has mitmproxy 12.3.1 installed (not proxycore's venv):

    .cache-m12/bin/python tests/data/contentviews/make_protocol_goldens.py
"""

from __future__ import annotations

import base64
import io
import ipaddress
import json
import struct
import zipfile
from pathlib import Path

from mitmproxy import contentviews, dns, http, tcp, version, websocket
from mitmproxy.test import tflow

HERE = Path(__file__).parent
assert version.VERSION == "12.3.1", version.VERSION


def dns_answer() -> bytes:
    query = dns.DNSMessage(
        4242, True, 0, False, False, True, False, 0, 0,
        [dns.Question("example.com", dns.types.A, dns.classes.IN)], [], [], [],
    )
    answer = query.succeed([
        dns.ResourceRecord.A("example.com", ipaddress.IPv4Address("192.0.2.1")),
        dns.ResourceRecord.TXT("example.com", "v=spf1 -all"),
        dns.ResourceRecord.CNAME("www.example.com", "example.com"),
        dns.ResourceRecord("example.com", dns.types.MX, dns.classes.IN, 300, b"\x00\x0a\x04mail\x00"),
    ])
    return answer.packed


def dns_query() -> bytes:
    return dns.DNSMessage(
        7, True, 0, False, False, True, False, 0, 0,
        [dns.Question("example.org", dns.types.AAAA, dns.classes.IN)], [], [], [],
    ).packed


def zipped(names: list[str]) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as z:
        for name in names:
            z.writestr(name, b"content of " + name.encode())
    return out.getvalue()


def msgpack_sample() -> bytes:
    # {"a": 1, "list": [1, -2, 3.5, true, null, "x"], "nested": {"k": "v"}}
    return (
        b"\x83\xa1a\x01\xa4list\x96\x01\xfe\xcb\x40\x0c\x00\x00\x00\x00\x00\x00\xc3\xc0\xa1x"
        b"\xa6nested\x81\xa1k\xa1v"
    )


MSGPACK_SCALARS = [
    b"\xa5hello", b"\x92\x01\xa1x", b"\x81\x01\x02", b"\x93\xc2\xc3\xc0", b"\xa0", b"\x80", b"\x90",
    b"\xd9\x03abc", b"\xff", b"\xd0\x80", b"\xcf" + b"\xff" * 8, b"\xa1:", b"\xa3a b", b"\xa2-1", b"\xa4true",
    b"\xca\x3f\xc0\x00\x00", b"\xcd\x01\x00", b"\x82\xa1b\x90\xa1c\x80", b"\x91\x91\x01",
    b"\xc1", b"\x92\x01", b"\xc4\x02\x00\x01",
]


def mqtt_packet(kind: int, flags: int, body: bytes) -> bytes:
    length, encoded = len(body), b""
    while True:
        byte, length = length % 128, length // 128
        encoded += bytes([byte | (0x80 if length else 0)])
        if not length:
            break
    return bytes([kind << 4 | flags]) + encoded + body


def s(text: bytes) -> bytes:
    return struct.pack("!H", len(text)) + text


MQTT = {
    "mqtt-connect": mqtt_packet(1, 0, s(b"MQTT") + b"\x04\xc2\x00\x3c" + s(b"client-1") + s(b"user") + s(b"secret")),
    "mqtt-connect-will": mqtt_packet(1, 0, s(b"MQTT") + b"\x04\x06\x00\x3c" + s(b"c2") + s(b"last/will") + s(b"bye\x00")),
    "mqtt-publish": mqtt_packet(3, 0, s(b"sensors/temp") + b"21.5 \xff"),
    "mqtt-publish-qos1": mqtt_packet(3, 2, s(b"a/b") + b"\x00\x07" + b"payload"),
    "mqtt-subscribe": mqtt_packet(8, 2, b"\x00\x01" + s(b"a/#") + b"\x01" + s(b"b/+") + b"\x00"),
    "mqtt-pingreq": mqtt_packet(12, 0, b""),
    "mqtt-connack": mqtt_packet(2, 0, b"\x00\x00"),
}


def socketio_flow() -> http.HTTPFlow:
    flow = tflow.twebsocketflow()
    flow.request.path = "/socket.io/?EIO=4&transport=websocket"
    return flow


def cases() -> list[dict]:
    out = []

    def add(case_id: str, kind: str, data: bytes, view: str, **extra: object) -> None:
        out.append({"id": case_id, "kind": kind, "content_b64": base64.b64encode(data).decode(), "view": view, **extra})

    add("dns-doh-response", "response", dns_answer(), "auto", headers=[["content-type", "application/dns-message"]])
    add("dns-doh-query", "request", dns_query(), "auto", headers=[["content-type", "application/dns-message"]])
    add("dns-tcp-explicit", "tcp", struct.pack("!H", len(dns_query())) + dns_query(), "dns")
    add("dns-invalid-explicit", "response", b"\x00\x01", "dns", headers=[["content-type", "application/dns-message"]])
    add("zip-two-files", "response", zipped(["a.txt", "dir/b.bin"]), "auto", headers=[["content-type", "application/zip"]])
    add("zip-empty", "response", zipped([]), "auto", headers=[["content-type", "application/zip"]])
    add("zip-not-a-zip", "response", b"PK nope", "zip archive", headers=[["content-type", "application/zip"]])
    add("msgpack-auto", "response", msgpack_sample(), "auto", headers=[["content-type", "application/msgpack"]])
    add("msgpack-explicit", "response", msgpack_sample(), "msgpack", headers=[["content-type", "application/octet-stream"]])
    for i, data in enumerate(MSGPACK_SCALARS):
        add(f"msgpack-{i}", "response", data, "msgpack", headers=[])
    add("msgpack-x-auto", "response", b"\x81\xa1a\x01", "auto", headers=[["content-type", "application/x-msgpack"]])
    for i, data in enumerate([b'42["chat","hi"]', b"2", b'0{"sid":"abc"}', b"41", b"6", b"43[1]"]):
        add(f"socketio-{i}", "socketio", data, "auto")
    for name, data in MQTT.items():
        add(name, "tcp", data, "mqtt")
    return out


def build(case: dict) -> tuple[object, object]:
    data = base64.b64decode(case["content_b64"])
    headers = [(k.encode(), v.encode()) for k, v in case.get("headers", [])]
    if case["kind"] == "request":
        request = http.Request.make("POST", "http://example.com/dns-query", b"", headers)
        request.raw_content = data
        return request, None
    if case["kind"] == "response":
        response = http.Response.make(200, b"", headers)
        response.raw_content = data
        return response, None
    if case["kind"] == "socketio":
        flow = socketio_flow()
        return websocket.WebSocketMessage(websocket.Opcode.TEXT, True, data), flow
    return tcp.TCPMessage(True, data), None


def main() -> None:
    results = []
    for case in cases():
        message, flow = build(case)
        result = contentviews.prettify_message(message, flow, case["view"])
        summary = {"view_name": result.view_name, "syntax_highlight": result.syntax_highlight,
                   "description": result.description}
        if result.syntax_highlight == "error":
            lines = result.text.strip().splitlines()
            summary["text_first_line"] = lines[0]
        else:
            summary["text"] = result.text
        results.append({**case, "result": summary})
    (HERE / "protocol_views.json").write_text(json.dumps({"mitmproxy": version.VERSION, "cases": results}, indent=1) + "\n")


if __name__ == "__main__":
    from mitmproxy.test import taddons

    with taddons.context():  # the views read ctx.options
        main()
