"""Records what mitmproxy-rs 0.12's Protobuf and gRPC views (those of mitmproxy 12) print
for a set of bodies, into goldens.json; tests/contentviews/test_protobuf_view.py compares ours with it.

The bodies are built here: hand-made messages for shop.proto, and seeded random ones
(random field numbers, wire types and values, nested messages, text, bytes).  Needs
Python >= 3.12 with mitmproxy-rs 0.12, not the project's venv:

    python3.12 -m venv /tmp/rs12 && /tmp/rs12/bin/pip install mitmproxy-rs==0.12.15
    /tmp/rs12/bin/python tests/data/protobuf/record.py
"""

from __future__ import annotations

import base64
import gzip
import json
import random
import struct
import zlib
from pathlib import Path
from types import SimpleNamespace

HERE = Path(__file__).parent


# a tiny protobuf encoder ------------------------------------------------------------------


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def v(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def ld(number: int, data: bytes | str) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return key(number, 2) + varint(len(data)) + data


def f32(number: int, bits: int) -> bytes:
    return key(number, 5) + struct.pack("<I", bits & 0xFFFFFFFF)


def f64(number: int, bits: int) -> bytes:
    return key(number, 1) + struct.pack("<Q", bits & (1 << 64) - 1)


def zz(n: int) -> int:
    return (n << 1) ^ (n >> 63)


def grpc(*messages: bytes, compress: str | None = None) -> bytes:
    out = b""
    for m in messages:
        if compress == "gzip":
            out += b"\x01" + struct.pack(">I", len(c := gzip.compress(m, mtime=0))) + c
        elif compress == "deflate":
            d = zlib.compressobj(wbits=-15)
            c = d.compress(m) + d.flush()
            out += b"\x01" + struct.pack(">I", len(c)) + c
        else:
            out += b"\x00" + struct.pack(">I", len(m)) + m
    return out


def random_message(rng: random.Random, depth: int = 0) -> bytes:
    out = b""
    for _ in range(rng.randint(1, 5)):
        number = rng.choice([1, 2, 3, 5, 15, 16, 100, 2047, 536870911])
        kind = rng.choice(["v", "v", "ld", "text", "f32", "f64", "nested", "repeat"])
        if kind == "v":
            out += v(number, rng.choice([0, 1, 2, 127, 128, 300, 2**31, 2**63 - 1, 2**63, 2**64 - 1,
                                         rng.getrandbits(rng.randint(1, 64))]))
        elif kind == "ld":
            out += ld(number, bytes(rng.getrandbits(8) for _ in range(rng.randint(0, 12))))
        elif kind == "text":
            out += ld(number, rng.choice(["", "a", "hello world", "tab\there", "12", "true", "null", "x: y",
                                          "- item", "with 'quote'", "#comment", "~", "1.5", "0x1F", "\r\n",
                                          "yes", "NO", "  padded  ", "a\x0cb"]))
        elif kind == "f32":
            out += f32(number, rng.choice([0, 0x3FC00000, 0x7F800000, 0xFF800000, 0x00000001, 0x4B189680,
                                           0x501502F9, 0x33D6BF95, rng.getrandbits(32)]))
        elif kind == "f64":
            out += f64(number, rng.choice([0, 0x3FF8000000000000, 0x7FF0000000000000, 1, 0x4415AF1D78B58C40,
                                           0x3E7AD7F29ABCAF48, rng.getrandbits(64)]))
        elif kind == "nested" and depth < 3:
            out += ld(number, random_message(rng, depth + 1))
        else:
            for _ in range(rng.randint(2, 3)):
                out += v(number, rng.getrandbits(rng.randint(1, 20)))
    return out


def cases() -> list[dict]:
    item = (
        ld(1, "kettle") + v(2, zz(-7)) + ld(3, varint(1) + varint(300) + varint(2**64 - 5)) + v(4, 2)
        + ld(5, ld(1, "paris") + v(2, 2**64 - 3))  # one entry: mitmproxy-rs prints maps in hash order
        + ld(6, b"\x00\xffbin") + f32(7, 0xDEADBEEF) + f64(8, 0x4029000000000000) + v(9, 1) + v(10, 150)
        + ld(11, ld(1, "sale") + v(2, 5)) + ld(11, ld(1, "new")) + ld(12, "fragile")
        + f32(16, 0x3F000000) + f64(17, 2**64 - 2) + f64(18, 7) + v(99, 42)
    )
    listing = ld(1, item) + ld(1, ld(1, "cup") + v(4, 9)) + ld(2, "page-2")
    request = ld(1, "kett") + v(2, 10)
    out: list[dict] = []

    def add(view: str, data: bytes, **extra: object) -> None:
        out.append({"view": view, "data": base64.b64encode(data).decode(), **extra})

    d = {"definitions": "shop.proto"}
    add("protobuf", item, content_type="application/x-protobuf", path="/shop.v1.Catalog/Watch", is_request=False, **d)
    add("protobuf", request, path="/shop.v1.Catalog/List", is_request=True, **d)
    add("protobuf", listing, path="/shop.v1.Catalog/List", is_request=False, **d)
    add("protobuf", item, path="/Item", is_request=False, **d)  # a message named like the "method"
    add("protobuf", request, path="/unknown", is_request=True, **d)  # first service, its first method
    add("protobuf", request, path="/unknown", is_request=False, **d)
    add("protobuf", ld(1, "x") + v(2, 3) + ld(4, "mismatch"), path="/shop.v1.Catalog/Watch", is_request=False, **d)
    add("protobuf", item)
    add("protobuf", listing)
    add("protobuf", b"")
    for bad in (b"\xff\xff", b"\x08", b"\x0a\x05abc", b"\x0b\x0c", b"\x00\x01", b"\x0f", b"\x12\x02\x08"):
        add("protobuf", bad)
    add("grpc", grpc(request, request), path="/shop.v1.Catalog/List", is_request=True, **d)
    add("grpc", grpc(listing), path="/shop.v1.Catalog/List", is_request=False, **d)
    add("grpc", grpc(request, v(1, 1)))
    add("grpc", grpc(request, compress="gzip"), headers={"grpc-encoding": "gzip"})
    add("grpc", grpc(request, compress="deflate"), headers={"grpc-encoding": "deflate"})
    add("grpc", grpc(request, compress="gzip"), headers={"grpc-encoding": "br"})
    add("grpc", b"")
    add("grpc", b"\x02\x00\x00\x00\x00")
    add("grpc", b"\x00\x00\x00\x00\x09\x08")
    add("grpc", grpc(b""))
    rng = random.Random(17)
    for _ in range(150):
        add("protobuf", random_message(rng))
    for _ in range(40):
        data = bytearray(random_message(rng))
        for _ in range(rng.randint(1, 3)):  # damaged messages
            data[rng.randrange(len(data))] = rng.getrandbits(8)
        add("protobuf", bytes(data))
    return out


def run(case: dict) -> dict:
    import mitmproxy_rs.contentviews as rs

    view = {"protobuf": rs.protobuf, "grpc": rs.grpc}[case["view"]]
    headers = case.get("headers", {})
    request = SimpleNamespace(path=case.get("path", "/"), headers=headers)
    response = SimpleNamespace(headers=headers)
    definitions = case.get("definitions")
    metadata = SimpleNamespace(
        content_type=case.get("content_type"),
        flow=SimpleNamespace(request=request),
        http_message=request if case.get("is_request", True) else response,
        protobuf_definitions=str(HERE / definitions) if definitions else None,
    )
    try:
        return {"text": view.prettify(base64.b64decode(case["data"]), metadata)}
    except ValueError:
        return {"error": True}


def main() -> None:
    recorded = []
    for case in cases():
        case["expected"] = run(case)
        recorded.append(case)
    (HERE / "goldens.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
