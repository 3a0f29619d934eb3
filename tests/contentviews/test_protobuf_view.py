"""The Protobuf and gRPC views against what mitmproxy 12's (mitmproxy-rs 0.12) print for
the same bodies (tests/data/protobuf/goldens.json, recorded by record.py there), the
.proto reader, and properties over arbitrary input."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import contentviews
from proxycore.contentviews import proto_schema
from proxycore.contentviews.api import Metadata
from proxycore.contentviews.grpc_view import grpc
from proxycore.contentviews.protobuf_view import protobuf
from tests.hypothesis_budget import budget

DATA = Path(__file__).parents[1] / "data" / "protobuf"
GOLDENS = json.loads((DATA / "goldens.json").read_text())


def metadata_for(case: dict) -> Metadata:
    headers = case.get("headers", {})
    request = SimpleNamespace(path=case.get("path", "/"), headers=headers)
    response = SimpleNamespace(headers=headers)
    definitions = case.get("definitions")
    return Metadata(
        flow=SimpleNamespace(request=request),
        content_type=case.get("content_type"),
        http_message=request if case.get("is_request", True) else response,
        protobuf_definitions=DATA / definitions if definitions else None,
    )


def _case_id(case: dict) -> str:
    return f"{case['view']}-{GOLDENS.index(case)}"


@pytest.mark.parametrize("case", GOLDENS, ids=_case_id)
def test_output_equals_mitmproxy_rs(case):
    view = {"protobuf": protobuf, "grpc": grpc}[case["view"]]
    data = base64.b64decode(case["data"])
    try:
        got = {"text": view.prettify(data, metadata_for(case))}
    except ValueError:
        got = {"error": True}
    assert got == case["expected"]


# beyond the goldens ---------------------------------------------------------------------------


@budget(300, deadline=None)
@given(st.binary(max_size=300), st.sampled_from(["protobuf", "grpc"]))
def test_arbitrary_bytes_give_text_or_a_value_error(data, name):
    view = {"protobuf": protobuf, "grpc": grpc}[name]
    try:
        text = view.prettify(data, Metadata())
    except ValueError:
        return
    assert isinstance(text, str)


def test_deep_nesting_is_bounded():
    data = b"\x08\x01"
    for _ in range(300):  # 300 levels of field 1 holding a message
        data = b"\x0a" + bytes([len(data)]) + data if len(data) < 128 else b"\x0a" + _varint(len(data)) + data
    text = protobuf.prettify(data, Metadata())
    assert text.count("\n") < 200  # below MAX_DEPTH the rest is shown as bytes
    assert "!binary" in text


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def test_grpc_compressed_message_may_not_inflate_without_bound():
    import zlib

    from proxycore.contentviews import grpc_view

    bomb = zlib.compress(b"\0" * (grpc_view.MAX_DECOMPRESSED + 1), 9)[2:-4]  # raw deflate
    body = b"\x01" + len(bomb).to_bytes(4, "big") + bomb
    meta = Metadata(http_message=SimpleNamespace(headers={"grpc-encoding": "deflate"}))
    with pytest.raises(ValueError, match="inflates beyond"):
        grpc.prettify(body, meta)


def test_definitions_from_a_directory_and_their_errors(tmp_path):
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "one.proto").write_text(
        'syntax = "proto3"; package p; message Ping { int32 seq = 1; Pong pong = 2; }')
    (tmp_path / "two.proto").write_text("syntax = 'proto3'; package p; message Pong { string text = 1; }")
    meta = Metadata(protobuf_definitions=tmp_path, flow=SimpleNamespace(request=SimpleNamespace(path="/Ping")))
    data = b"\x08\x07\x12\x04\x0a\x02hi"
    assert protobuf.prettify(data, meta) == "seq: 7\npong:\n  text: hi\n"
    (tmp_path / "two.proto").write_text("message Pong { Missing m = 1; }")
    with pytest.raises(ValueError, match="unknown type 'Missing'"):
        protobuf.prettify(data, Metadata(protobuf_definitions=tmp_path))
    (tmp_path / "two.proto").write_text("message Pong { string text = ; }")
    with pytest.raises(ValueError, match="two.proto"):
        protobuf.prettify(data, Metadata(protobuf_definitions=tmp_path))


def test_proto3_default_values_are_not_shown_but_explicit_ones_are(tmp_path):
    proto = tmp_path / "d.proto"
    proto.write_text('syntax = "proto3"; message M { int32 a = 1; optional int32 b = 2; string c = 3; }')
    meta = Metadata(protobuf_definitions=proto)
    assert protobuf.prettify(b"\x08\x00\x10\x00\x1a\x00", meta) == "b: 0\n"
    proto.write_text("message M { optional int32 a = 1; }")  # proto2: presence is explicit
    assert protobuf.prettify(b"\x08\x00", Metadata(protobuf_definitions=proto)) == "a: 0\n"


def test_schema_reader_finds_services_enums_and_nested_types():
    schema = proto_schema.load(DATA / "shop.proto")
    assert [m.name for m in schema.files[0].services["Catalog"]] == ["List", "Watch"]
    assert schema.enums["shop.v1.Color"] == {0: "COLOR_UNSPECIFIED", 1: "RED", 2: "GREEN"}
    tags = next(f for f in schema.messages["shop.v1.Item"].fields if f.name == "tags")
    assert (tags.type, tags.repeated) == ("shop.v1.Item.Tag", True)
    stock = next(f for f in schema.messages["shop.v1.Item"].fields if f.name == "stock")
    assert stock.map_types == ("string", "int64")
    request = proto_schema.find_message(schema, "/shop.v1.Catalog/Watch", is_request=True)
    response = proto_schema.find_message(schema, "/shop.v1.Catalog/Watch", is_request=False)
    assert (request.full_name, response.full_name) == ("shop.v1.ListRequest", "shop.v1.Item")


def test_views_are_picked_by_content_type_and_use_the_option(tmp_path):
    from proxycore import http
    from proxycore.options import Options

    request = http.Request.make("POST", "http://example.com/shop.v1.Catalog/List", b"",
                                {"content-type": "application/grpc"})
    request.raw_content = b"\x00\x00\x00\x00\x06\x0a\x02ab\x10\x05"
    flow = SimpleNamespace(request=request)
    result = contentviews.prettify_message(request, flow)
    assert (result.view_name, result.text) == ("gRPC", "1: ab\n2: 5  # !sint: -3\n")
    assert Options().protobuf_definitions is None
    from proxycore import ctx

    options = Options(protobuf_definitions=str(DATA / "shop.proto"))
    previous = getattr(ctx, "options", None)
    ctx.options = options
    try:
        result = contentviews.prettify_message(request, flow)
    finally:
        ctx.options = previous
    assert result.text == "query: ab\nlimit: 5\n"
    request.headers["content-type"] = "application/x-protobuf"
    request.raw_content = b"\x08\x96\x01"
    assert contentviews.prettify_message(request, flow).view_name == "Protobuf"


_PROTO_WORDS = st.sampled_from([
    "syntax", "=", '"proto3"', ";", "package", "a.b", "message", "M", "N", "{", "}", "enum", "E", "int32",
    "string", "repeated", "optional", "map", "<", ">", ",", "x", "1", "2", "0x10", "-1", "oneof", "service",
    "rpc", "(", ")", "returns", "stream", "[", "]", "option", "reserved", "import", '"f.proto"', "//c\n",
    "/* c */", ".M", "M.N", "'q'", "3.5",
])


@budget(400, deadline=None)
@given(st.lists(_PROTO_WORDS, max_size=40))
def test_proto_reader_raises_only_value_errors(tmp_path_factory, words):
    path = tmp_path_factory.mktemp("proto") / "p.proto"
    path.write_text(" ".join(words))
    try:
        schema = proto_schema.load(path)
    except ValueError:
        return
    proto_schema.find_message(schema, "/a.b.S/M", True)


def test_deeply_nested_definitions_are_an_error_not_a_crash(tmp_path):
    path = tmp_path / "deep.proto"
    path.write_text("message M { " * 5000 + "}" * 5000)
    with pytest.raises(ValueError, match="nested too deeply"):
        proto_schema.load(path)


def test_an_rpc_naming_an_enum_finds_no_message(tmp_path):
    path = tmp_path / "e.proto"
    path.write_text("enum E { A = 0; } service S { rpc M (E) returns (E); }")
    assert proto_schema.find_message(proto_schema.load(path), "/S/M", True) is None
    assert protobuf.prettify(b"\x08\x01", Metadata(protobuf_definitions=path)) == "1: 1  # !sint: -1\n"
