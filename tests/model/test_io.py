"""Flow files: tnetstring codec, FlowReader/FlowWriter, the upgrade chain, mitmproxy's corpus."""

from __future__ import annotations

import base64
import copy
import hashlib
import io
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.certs import Cert, create_ca, dummy_cert
from proxycore.connection import Client, Server
from proxycore.flow import Error
from proxycore.http import Headers, HTTPFlow, Request, Response
from proxycore.io import (
    FilteredFlowWriter,
    FlowReader,
    FlowReadException,
    FlowWriter,
    compat,
    read_flows_from_paths,
    tnetstring,
)
from proxycore.io.schema import InvalidFlowState, check_flow_state
from proxycore.tcp import TCPFlow, TCPMessage
from proxycore.websocket import WebSocketData, WebSocketMessage

# Flow files written by mitmdump 11 (tests/data/README.md), each next to the JSON of what
# mitmproxy's own reader makes of it: one file per scenario, and all of them concatenated.
DATA = Path(__file__).parents[1] / "data"
ALL = DATA / "corpus-all.mitm"
CORPUS_FILES = [*sorted((DATA / "corpus").glob("*.mitm")), ALL]


# --------------------------------------------------------------------------- helpers


def read_all(data: bytes, **kw: Any) -> list[Any]:
    return list(FlowReader(io.BytesIO(data), **kw).stream())


def write_all(flows: list[Any]) -> bytes:
    out = io.BytesIO()
    writer = FlowWriter(out)
    for f in flows:
        writer.add(f)
    return out.getvalue()


def read_until_error(data: bytes) -> tuple[list[Any], FlowReadException | None]:
    """Flows delivered before the reader gave up, and the exception (if any)."""
    delivered: list[Any] = []
    try:
        for f in FlowReader(io.BytesIO(data)).stream():
            delivered.append(f)
    except FlowReadException as e:
        return delivered, e
    return delivered, None


def record_offsets(data: bytes) -> list[int]:
    """Start offset of each top-level record."""
    offsets, pos = [], 0
    while pos < len(data):
        offsets.append(pos)
        _, rest = tnetstring.pop(data[pos:])
        pos = len(data) - len(rest)
    return offsets


def as_json(value: Any) -> Any:
    """The corpus JSON encoding: bytes -> {"b64": ...}, tuples -> lists."""
    if isinstance(value, bytes):
        return {"b64": base64.b64encode(value).decode()}
    if isinstance(value, dict):
        return {k: as_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [as_json(v) for v in value]
    return value


def diff_state(ours: Any, expected: Any, path: str = "flow") -> list[str]:
    """Field-by-field, type-by-type differences between our JSON-encoded state and the corpus's."""
    if isinstance(expected, dict) and set(expected) == {"sha256", "len"}:
        # bodies over 64 KiB are stored as a digest in the corpus JSON
        if not (isinstance(ours, dict) and set(ours) == {"b64"}):
            return [f"{path}: expected bytes, got {type(ours).__name__}"]
        raw = base64.b64decode(ours["b64"])
        if (hashlib.sha256(raw).hexdigest(), len(raw)) != (expected["sha256"], expected["len"]):
            return [f"{path}: large bytes differ"]
        return []
    if type(ours) is not type(expected):
        return [
            f"{path}: {type(ours).__name__} {ours!r:.50} != {type(expected).__name__} {expected!r:.50}"
        ]
    if isinstance(expected, dict):
        problems = []
        if list(ours) != list(expected):
            problems.append(f"{path}: keys {list(ours)} != {list(expected)}")
        for key in expected:
            if key in ours:
                problems += diff_state(ours[key], expected[key], f"{path}.{key}")
        return problems
    if isinstance(expected, list):
        if len(ours) != len(expected):
            return [f"{path}: length {len(ours)} != {len(expected)}"]
        problems = []
        for i, (a, b) in enumerate(zip(ours, expected, strict=True)):
            problems += diff_state(a, b, f"{path}[{i}]")
        return problems
    return [] if ours == expected else [f"{path}: {ours!r:.60} != {expected!r:.60}"]


def make_http_flow(**request_kw: Any) -> HTTPFlow:
    client = Client(
        peername=("127.0.0.1", 50000),
        sockname=("127.0.0.1", 8080),
        timestamp_start=1700000000.0,
        tls=True,
        alpn=b"h2",
        alpn_offers=[b"h2", b"http/1.1"],
        tls_version="TLSv1.3",
        sni="example.com",
        timestamp_tls_setup=1700000000.5,
    )
    server = Server(
        address=("example.com", 443),
        peername=("93.184.216.34", 443),
        sockname=("10.0.0.5", 41000),
        tls=True,
        alpn=b"h2",
        cipher="TLS_AES_256_GCM_SHA384",
        timestamp_start=1700000000.1,
        timestamp_tcp_setup=1700000000.2,
    )
    flow = HTTPFlow(client, server)
    flow.request = Request(
        request_kw.pop("host", "example.com"),
        443,
        request_kw.pop("method", "POST"),
        "https",
        "example.com",
        "/submit?x=1",
        "HTTP/2.0",
        Headers([(b"content-type", b"text/plain"), (b"X-Dup", b"1"), (b"x-dup", b"2")]),
        b"hello \xff body",
        None,
        1700000001.0,
        1700000001.25,
    )
    flow.response = Response(
        "HTTP/2.0",
        200,
        "",
        Headers([(b"content-type", b"application/octet-stream")]),
        bytes(range(256)),
        Headers([(b"x-trailer", b"yes")]),
        1700000001.5,
        1700000002.0,
    )
    return flow


def make_tcp_flow() -> TCPFlow:
    flow = TCPFlow(
        Client(peername=("::1", 50001, 0, 0), sockname=("::1", 8080, 0, 0), timestamp_start=1.5),
        Server(address=("localhost", 22)),
    )
    flow.messages = [TCPMessage(True, b"\x00ssh", 2.0), TCPMessage(False, b"", 3)]
    return flow


# --------------------------------------------------------------------------- tnetstring


@pytest.mark.parametrize(
    "value, encoded",
    [
        ("hi", b"2:hi;"),
        (b"hi", b"2:hi,"),
        (5, b"1:5#"),
        (-12, b"3:-12#"),
        (True, b"4:true!"),
        (False, b"5:false!"),
        (None, b"0:~"),
        (1.5, b"3:1.5^"),
        (946681200.0, b"11:946681200.0^"),
        (1e20, b"5:1e+20^"),
        ([b"x", 1], b"8:1:x,1:1#]"),
        ([], b"0:]"),
        ({}, b"0:}"),
        ("\u00fc", b"2:\xc3\xbc;"),
        ({"a": 1, "b": b"x"}, b"16:1:b;1:x,1:a;1:1#}"),
    ],
)
def test_tnetstring_known_encodings(value: Any, encoded: bytes) -> None:
    assert tnetstring.dumps(value) == encoded
    assert tnetstring.loads(encoded) == value
    assert tnetstring.dumps(tnetstring.loads(encoded)) == encoded


def test_tnetstring_dict_order_is_reversed_on_disk_and_restored_on_load() -> None:
    value = {"first": 1, "second": 2, "third": {"x": None, "y": [True]}}
    data = tnetstring.dumps(value)
    assert data.index(b"third") < data.index(b"second") < data.index(b"first")
    loaded = tnetstring.loads(data)
    assert list(loaded) == ["first", "second", "third"]
    assert list(loaded["third"]) == ["x", "y"]


def test_tnetstring_tuples_become_lists_and_bools_stay_bools() -> None:
    assert tnetstring.loads(tnetstring.dumps((1, (b"a", True)))) == [1, [b"a", True]]
    assert tnetstring.dumps([True, 1]) == b"11:4:true!1:1#]"


def test_tnetstring_special_floats() -> None:
    assert tnetstring.loads(tnetstring.dumps(float("inf"))) == float("inf")
    assert tnetstring.loads(tnetstring.dumps(-0.0)) == 0.0
    assert math.isnan(tnetstring.loads(tnetstring.dumps(float("nan"))))
    assert tnetstring.loads(b"2:10^") == 10.0


def test_tnetstring_duplicate_keys_last_one_wins() -> None:
    assert tnetstring.loads(b"16:1:k;1:1#1:k;1:2#}") == {"k": 2}


@pytest.mark.parametrize("value", [object(), {1, 2}, bytearray(b"x"), 1j, {"k": object()}])
def test_tnetstring_dumps_rejects_other_types(value: Any) -> None:
    with pytest.raises(ValueError, match="cannot encode"):
        tnetstring.dumps(value)


def test_tnetstring_dumps_rejects_cycles_and_lone_surrogates() -> None:
    loop: list[Any] = []
    loop.append(loop)
    with pytest.raises(ValueError, match="nested too deeply"):
        tnetstring.dumps(loop)
    with pytest.raises(ValueError, match="UTF-8"):
        tnetstring.dumps("\ud800")


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty input"),
        (b"x", "length prefix"),
        (b":0,", "invalid length prefix"),
        (b"5:ab,", "announces 5 bytes"),
        (b"2:ab", "announces 2 bytes"),
        (b"2:ab?", "unknown type tag"),
        (b"1:a#", "invalid integer"),
        (b"2:+1#", "invalid integer"),
        (b"3:1_0#", "invalid integer"),
        (b"3:abc^", "invalid float"),
        (b"4:True!", "invalid boolean"),
        (b"1:x~", "null value"),
        (b"2:\xff\xfe;", "not valid UTF-8"),
        (b"3:0:~}", "key without a value"),
        (b"6:0:]0:~}", "dict key of type list"),
        (b"0:~0:~", "trailing byte"),
        (b"1234567890123:x,", "absurdly long"),
        (b"4:2:a,]", "announces 2 bytes"),
        (b"4:1:x}]", "length prefix"),
    ],
)
def test_tnetstring_malformed_input(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        tnetstring.loads(data)


def test_tnetstring_error_reports_offset() -> None:
    with pytest.raises(tnetstring.TnetstringError) as info:
        tnetstring.loads(b"10:1:a,3:abc#]")
    assert info.value.offset == 7
    assert "offset 7" in str(info.value)


def test_tnetstring_deep_nesting_does_not_hit_the_recursion_limit() -> None:
    data = b"0:]"
    for _ in range(20000):
        data = b"%d:%b]" % (len(data), data)
    value = tnetstring.loads(data)
    depth = 0
    while value:
        (value,) = value
        depth += 1
    assert depth == 20000


def test_tnetstring_load_reads_exactly_one_value() -> None:
    fo = io.BytesIO(tnetstring.dumps({"a": [1, 2]}) + tnetstring.dumps(b"next") + b"junk")
    assert tnetstring.load(fo) == {"a": [1, 2]}
    assert tnetstring.load(fo) == b"next"
    assert fo.read() == b"junk"
    with pytest.raises(ValueError, match="empty file"):
        tnetstring.load(io.BytesIO(b""))


def test_tnetstring_load_truncated_file() -> None:
    with pytest.raises(ValueError, match="announced"):
        tnetstring.load(io.BytesIO(b"10:abc"))
    with pytest.raises(ValueError, match="before the type tag"):
        tnetstring.load(io.BytesIO(b"3:abc"))
    with pytest.raises(ValueError, match="inside a length prefix"):
        tnetstring.load(io.BytesIO(b"12"))
    with pytest.raises(ValueError, match="expected a digit"):
        tnetstring.load(io.BytesIO(b"{}"))


def test_tnetstring_huge_length_prefix_does_not_allocate_it() -> None:
    with pytest.raises(ValueError, match="only 1 present"):
        tnetstring.load(io.BytesIO(b"999999999999:x"))


def test_tnetstring_pop_and_dump() -> None:
    out = io.BytesIO()
    tnetstring.dump([1, "a"], out)
    tnetstring.dump(None, out)
    value, rest = tnetstring.pop(out.getvalue())
    assert value == [1, "a"] and rest == b"0:~"


scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False)
    | st.binary(max_size=40)
    | st.text(max_size=40)
)
keys = st.text(max_size=10) | st.binary(max_size=10) | st.integers() | st.booleans() | st.none()
values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=5) | st.dictionaries(keys, children, max_size=5),
    max_leaves=30,
)


def _same(a: Any, b: Any) -> bool:
    """Equality that also compares types and dict order (1 == True == 1.0 would hide bugs)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return (
            list(a) == list(b)
            and all(_same(a[k], b[k]) for k in a)
            and all(type(x) is type(y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    return a == b


@given(values)
def test_tnetstring_roundtrip_property(value: Any) -> None:
    data = tnetstring.dumps(value)
    loaded = tnetstring.loads(data)
    assert _same(loaded, value)
    assert tnetstring.dumps(loaded) == data
    assert tnetstring.load(io.BytesIO(data + b"rest")) == loaded


@given(st.binary(max_size=200))
def test_tnetstring_loads_only_raises_value_error(data: bytes) -> None:
    try:
        tnetstring.loads(data)
    except ValueError:
        pass
    try:
        tnetstring.load(io.BytesIO(data))
    except ValueError:
        pass


@given(values, st.data())
def test_tnetstring_mutated_input_only_raises_value_error(value: Any, data: st.DataObject) -> None:
    encoded = bytearray(tnetstring.dumps(value))
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(encoded) - 1))
        encoded[i] = data.draw(st.integers(0, 255))
    cut = data.draw(st.integers(0, len(encoded)))
    for candidate in (bytes(encoded), bytes(encoded[:cut])):
        try:
            tnetstring.loads(candidate)
        except ValueError:
            pass


# --------------------------------------------------------------------------- the corpus


def test_corpus_is_all_there() -> None:
    """The parametrized tests below cannot shrink unnoticed if files go missing."""
    assert len(CORPUS_FILES) == 16
    assert all(p.is_file() and p.with_suffix(".json").is_file() for p in CORPUS_FILES)


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_file_state_matches_mitmproxy(path: Path) -> None:
    expected = json.loads(path.with_suffix(".json").read_text())
    assert expected["flow_format_version"] == 21
    flows = read_all(path.read_bytes())
    assert len(flows) == len(expected["flows"])
    for flow, want in zip(flows, expected["flows"], strict=True):
        assert flow.type == want["type"]
        assert diff_state(as_json(flow.get_state()), want) == []


@pytest.mark.parametrize("path", CORPUS_FILES, ids=lambda p: p.name)
def test_corpus_write_read_roundtrip_is_byte_identical(path: Path) -> None:
    original = path.read_bytes()
    flows = read_all(original)
    rewritten = write_all(flows)
    again = read_all(rewritten)
    assert [f.get_state() for f in again] == [f.get_state() for f in flows]
    assert rewritten == original


def test_corpus_objects_look_right() -> None:
    flows = read_all(ALL.read_bytes())
    assert len(flows) == 16
    by_type = {f.type for f in flows}
    assert by_type == {"http", "tcp"}
    h2 = [f for f in flows if f.type == "http" and f.request.http_version == "HTTP/2.0"]
    assert h2 and all(isinstance(c, Cert) for f in h2 for c in f.server_conn.certificate_list)
    assert h2[0].server_conn.certificate_list[0].cn
    assert all(isinstance(f.client_conn.peername, tuple) for f in flows)
    ws = [f for f in flows if f.type == "http" and f.websocket is not None]
    assert len(ws) == 2 and all(len(f.websocket.messages) == 8 for f in ws)
    assert ws[0].websocket.close_reason == "bye" and ws[0].websocket.closed_by_client is True
    tcp = next(f for f in flows if f.type == "tcp")
    assert [m.content for m in tcp.messages][:2] == [b"hello tcp\n", b"hello tcp\n"]
    refused = next(f for f in flows if f.error is not None)
    assert refused.response is None and "Connect call failed" in refused.error.msg


def test_corpus_all_is_the_concatenation() -> None:
    names = [p for p in CORPUS_FILES if p != ALL]
    total = sum(len(read_all(p.read_bytes())) for p in names)
    assert len(read_flows_from_paths([ALL])) == total


# --------------------------------------------------------------------------- damaged files


def test_truncated_file_delivers_earlier_flows_then_names_the_offset() -> None:
    data = ALL.read_bytes()
    offsets = record_offsets(data)
    assert len(offsets) == 16
    for index in (0, 1, 5, 15):
        start = offsets[index]
        end = offsets[index + 1] if index + 1 < len(offsets) else len(data)
        for cut in (start + 1, start + 7, (start + end) // 2, end - 1):
            delivered, error = read_until_error(data[:cut])
            assert len(delivered) == index, cut
            assert error is not None and error.offset == start
            assert f"byte offset {start}" in str(error)
            assert "truncated or corrupt" in str(error)


def test_cut_at_a_record_boundary_is_a_clean_end() -> None:
    data = ALL.read_bytes()
    offsets = record_offsets(data)
    delivered, error = read_until_error(data[: offsets[3]])
    assert error is None and len(delivered) == 3


def test_truncated_small_file() -> None:
    flows = [make_http_flow(), make_tcp_flow(), make_http_flow()]
    data = write_all(flows)
    offsets = record_offsets(data)
    delivered, error = read_until_error(data[:-1])
    assert [f.id for f in delivered] == [f.id for f in flows[:2]]
    assert error is not None and error.offset == offsets[2]
    assert "before the type tag" in str(error)


def test_corrupt_length_prefix() -> None:
    flows = [make_http_flow(), make_tcp_flow()]
    data = bytearray(write_all(flows))
    second = record_offsets(bytes(data))[1]
    data[second] = ord("x")
    delivered, error = read_until_error(bytes(data))
    assert len(delivered) == 1
    assert error is not None and error.offset == second
    assert f"byte offset {second}" in str(error)


def test_corrupt_byte_inside_a_record_names_its_position() -> None:
    flow = make_tcp_flow()
    data = bytearray(write_all([make_http_flow(), flow]))
    second = record_offsets(bytes(data))[1]
    pos = data.index(b"5:false!", second)
    data[pos + 2 : pos + 7] = b"fal5e"
    delivered, error = read_until_error(bytes(data))
    assert len(delivered) == 1
    assert error is not None and error.offset == second
    assert f"problem at byte offset {pos}" in str(error)
    assert "invalid boolean" in str(error)


def test_garbage_after_the_last_flow() -> None:
    data = write_all([make_http_flow()])
    delivered, error = read_until_error(data + b"\n")
    assert len(delivered) == 1
    assert error is not None and error.offset == len(data)


def test_top_level_value_that_is_not_a_dict() -> None:
    delivered, error = read_until_error(tnetstring.dumps([1, 2]))
    assert delivered == [] and error is not None and "not a dict" in str(error)


def test_empty_file_has_no_flows() -> None:
    assert read_all(b"") == []


def test_har_file_is_recognised() -> None:
    for data in (b'{"log": {}}', b'\xef\xbb\xbf{"log": {}}'):
        with pytest.raises(FlowReadException, match="HAR"):
            read_all(data)


def test_reader_works_on_unseekable_streams() -> None:
    flows = [make_http_flow(), make_tcp_flow()]
    data = write_all(flows)

    class Pipe(io.RawIOBase):
        def __init__(self, payload: bytes) -> None:
            self.payload = payload

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:  # at most 5 bytes per call, like a slow pipe
            n = min(len(buffer), 5, len(self.payload))
            buffer[:n] = self.payload[:n]
            self.payload = self.payload[n:]
            return n

    got = list(FlowReader(Pipe(data)).stream())  # type: ignore[arg-type]
    assert [f.get_state() for f in got] == [f.get_state() for f in flows]


# --------------------------------------------------------------------------- writing our own flows


def test_writer_matches_the_spec_example_byte_for_byte() -> None:
    # The TCP flow record from the format spec, §2.7 (961 bytes, written by mitmproxy 12.3.1).
    expected = (
        b"956:8:messages;32:28:4:true!2:hi,12:1700000001.0^]]6:backup;0:~17:timestamp_created;"
        b"12:1700000000.0^7:comment;0:;8:metadata;0:}6:marked;0:;9:is_replay;0:~11:intercepted;"
        b"5:false!11:server_conn;337:3:via;0:~19:timestamp_tcp_setup;0:~7:address;21:11:example.com;"
        b"3:443#]19:timestamp_tls_setup;0:~13:timestamp_end;0:~15:timestamp_start;0:~3:sni;0:~"
        b"11:tls_version;0:~11:cipher_list;0:]6:cipher;0:~11:alpn_offers;0:]4:alpn;0:~"
        b"16:certificate_list;0:]3:tls;5:false!5:error;0:~18:transport_protocol;3:tcp;2:id;2:s1;"
        b"8:sockname;0:~8:peername;0:~}11:client_conn;357:10:proxy_mode;7:regular;8:mitmcert;0:~"
        b"19:timestamp_tls_setup;0:~13:timestamp_end;0:~15:timestamp_start;12:1700000000.0^3:sni;0:~"
        b"11:tls_version;0:~11:cipher_list;0:]6:cipher;0:~11:alpn_offers;0:]4:alpn;0:~"
        b"16:certificate_list;0:]3:tls;5:false!5:error;0:~18:transport_protocol;3:tcp;2:id;2:c1;"
        b"8:sockname;18:8:10.0.0.1;4:8080#]8:peername;19:8:10.0.0.2;5:51000#]}5:error;0:~2:id;2:f1;"
        b"4:type;3:tcp;7:version;2:21#}"
    )
    assert len(expected) == 961
    flow = TCPFlow(
        Client(
            peername=("10.0.0.2", 51000),
            sockname=("10.0.0.1", 8080),
            id="c1",
            timestamp_start=1700000000.0,
        ),
        Server(address=("example.com", 443), id="s1"),
    )
    flow.id = "f1"
    flow.timestamp_created = 1700000000.0
    flow.messages.append(TCPMessage(True, b"hi", 1700000001.0))
    assert write_all([flow]) == expected
    (loaded,) = read_all(expected)
    assert loaded.get_state() == flow.get_state()


def test_http_flow_roundtrip_with_every_member() -> None:
    flow = make_http_flow()
    flow.error = Error("Connection killed.", 1700000003.0)
    flow.marked = ":red_circle:"
    flow.comment = "a comment \u2713"
    flow.is_replay = "request"
    flow.metadata = {"bytes": b"\x00", "nested": {"n": [1, 2.5, None]}}
    flow.websocket = WebSocketData()
    flow.websocket.messages = [
        WebSocketMessage(1, True, b"text", 1700000004.0),
        WebSocketMessage(2, False, b"\x00\x01", 1700000005.0, dropped=True, injected=True),
    ]
    flow.websocket.closed_by_client = False
    flow.websocket.close_code = 1001
    flow.websocket.close_reason = "going away"
    flow.websocket.timestamp_end = 1700000006.0
    flow.backup()
    flow.request.path = "/changed"
    assert flow.modified()

    data = write_all([flow])
    (loaded,) = read_all(data)
    assert tnetstring.loads(tnetstring.dumps(loaded.get_state())) == tnetstring.loads(data)
    assert write_all([loaded]) == data
    assert loaded.modified()
    loaded.revert()
    assert loaded.request.path == "/submit?x=1"
    check_flow_state(tnetstring.loads(data))


def test_certificates_are_written_as_pem_and_read_back_as_cert_objects() -> None:
    key, ca = create_ca("proxycore test", "proxycore test CA", key_size=2048)
    leaf = dummy_cert(key, ca, "example.com", ["example.com"])
    ca_cert = Cert(ca)
    flow = make_http_flow()
    flow.server_conn.certificate_list = [leaf, ca_cert]
    flow.client_conn.mitmcert = leaf

    state = tnetstring.loads(write_all([flow]))
    pems = state["server_conn"]["certificate_list"]
    assert pems == [leaf.to_pem(), ca_cert.to_pem()]
    assert pems[0].startswith(b"-----BEGIN CERTIFICATE-----")
    assert state["client_conn"]["mitmcert"] == leaf.to_pem()

    (loaded,) = read_all(write_all([flow]))
    assert loaded.server_conn.certificate_list == [leaf, ca_cert]
    assert isinstance(loaded.client_conn.mitmcert, Cert)
    assert loaded.client_conn.mitmcert.cn == "example.com"


def test_ipv6_peername_keeps_flowinfo_and_scope_id() -> None:
    (loaded,) = read_all(write_all([make_tcp_flow()]))
    assert loaded.client_conn.peername == ("::1", 50001, 0, 0)
    assert [(m.from_client, m.content, m.timestamp) for m in loaded.messages] == [
        (True, b"\x00ssh", 2.0),
        (False, b"", 3),
    ]


def test_filtered_writer() -> None:
    flows = [make_http_flow(method="GET"), make_http_flow(method="POST"), make_tcp_flow()]
    out = io.BytesIO()
    writer = FilteredFlowWriter(out, lambda f: f.type == "http" and f.request.method == "POST")
    for f in flows:
        writer.add(f)
    assert [f.id for f in read_all(out.getvalue())] == [flows[1].id]

    out = io.BytesIO()
    writer = FilteredFlowWriter(out, None)
    for f in flows:
        writer.add(f)
    assert len(read_all(out.getvalue())) == 3

    with pytest.raises(TypeError):
        FilteredFlowWriter(io.BytesIO(), "~q")  # type: ignore[arg-type]


def test_read_flows_from_paths(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mitm", tmp_path / "b.mitm"
    a.write_bytes(write_all([make_http_flow()]))
    b.write_bytes(write_all([make_tcp_flow(), make_tcp_flow()]))
    assert [f.type for f in read_flows_from_paths([a, str(b)])] == ["http", "tcp", "tcp"]
    assert len(read_flows_from_paths(str(b))) == 2

    with pytest.raises(FlowReadException, match="missing.mitm") as info:
        read_flows_from_paths([a, tmp_path / "missing.mitm"])
    assert info.value.offset is None

    bad = tmp_path / "bad.mitm"
    bad.write_bytes(a.read_bytes() + b"7:broken")
    with pytest.raises(FlowReadException, match="bad.mitm") as info:
        read_flows_from_paths([bad])
    assert info.value.offset == len(a.read_bytes())


def test_read_flows_for_raises_the_callers_error(tmp_path: Path) -> None:
    from proxycore.exceptions import CommandError
    from proxycore.io import read_flows_for

    path = tmp_path / "a.mitm"
    path.write_bytes(write_all([make_http_flow()]))
    assert len(read_flows_for("client replay", [path], CommandError)) == 1
    with pytest.raises(CommandError, match=r"^Cannot read client replay file .*missing\.mitm"):
        read_flows_for("client replay", [tmp_path / "missing.mitm"], CommandError)


def test_append_mode_gives_a_valid_file(tmp_path: Path) -> None:
    path = tmp_path / "flows.mitm"
    for flow in (make_http_flow(), make_tcp_flow()):
        with open(path, "ab") as fo:
            FlowWriter(fo).add(flow)
    assert [f.type for f in read_flows_from_paths([path])] == ["http", "tcp"]


# --------------------------------------------------------------------------- state checks


def flow_state() -> dict[str, Any]:
    return tnetstring.loads(write_all([make_http_flow()]))


@pytest.mark.parametrize(
    "mutate, message",
    [
        (lambda s: s.pop("comment"), "missing field"),
        (lambda s: s.update(extra=1), "unexpected field"),
        (lambda s: s["client_conn"].update(sni=b"example.com"), "client_conn.sni"),
        (lambda s: s["server_conn"].update(alpn="h2"), "server_conn.alpn"),
        (lambda s: s["client_conn"].update(tls_version="TLSv9"), "tls_version"),
        (lambda s: s["client_conn"].update(transport_protocol="sctp"), "transport_protocol"),
        (lambda s: s["client_conn"].update(peername=[b"127.0.0.1", 1]), "peername"),
        (lambda s: s["request"].update(content="text"), "request.content"),
        (lambda s: s["request"].update(headers=[["a", "b"]]), r"request.headers\[0\]"),
        (lambda s: s["response"].update(status_code="200"), "status_code"),
        (lambda s: s["request"].pop("path"), "missing field"),
        (lambda s: s.update(is_replay="yes"), "is_replay"),
        (lambda s: s.update(error={"msg": "x"}), "error"),
        (lambda s: s.update(backup={"type": "http"}), "backup"),
        (lambda s: s.update(metadata=[]), "metadata"),
    ],
)
def test_invalid_states_are_rejected_with_the_field_name(mutate: Any, message: str) -> None:
    state = flow_state()
    mutate(state)
    with pytest.raises(InvalidFlowState, match=message):
        check_flow_state(state)
    first = write_all([make_tcp_flow()])
    with pytest.raises(FlowReadException, match=message) as info:
        read_all(first + tnetstring.dumps(state))
    assert info.value.offset == len(first)


def test_lenient_where_mitmproxy_is() -> None:
    state = flow_state()
    state["request"]["method"] = "GET"  # str accepted, converted to bytes
    state["request"]["host"] = b"example.org"  # bytes accepted, converted to str
    state["request"]["timestamp_start"] = 1700000000  # ints for floats
    state["version"] = 20
    (flow,) = read_all(tnetstring.dumps(state))
    assert flow.request.data.method == b"GET"
    assert flow.request.host == "example.org"


def test_udp_and_dns_flows_are_read() -> None:
    from proxycore.dns import DNSFlow, DNSMessage, Question

    tcp_state = tnetstring.loads(write_all([make_tcp_flow()]))
    udp_state = dict(tcp_state, type="udp")
    dns_flow = DNSFlow(make_tcp_flow().client_conn, make_tcp_flow().server_conn)
    dns_flow.request = DNSMessage(7, True, 0, False, False, True, False, 0, 0, [Question("a.example", 1, 1)], [], [], [])
    data = write_all([make_http_flow()]) + tnetstring.dumps(udp_state) + write_all([dns_flow, make_tcp_flow()])

    flows = read_all(data)
    assert [f.type for f in flows] == ["http", "udp", "dns", "tcp"]
    assert flows[1].messages[0].content == tcp_state["messages"][0][1]
    assert flows[2].request == dns_flow.request and flows[2].response is None


def test_malformed_dns_flow_is_reported() -> None:
    state = dict(tnetstring.loads(write_all([make_tcp_flow()])), type="dns")
    del state["messages"]
    state.update(request={"id": 1}, response=None)
    with pytest.raises(FlowReadException, match="request"):
        read_all(tnetstring.dumps(state))


def test_unknown_flow_type() -> None:
    state = dict(tnetstring.loads(write_all([make_tcp_flow()])), type="smtp")
    with pytest.raises(FlowReadException, match="unknown flow type 'smtp'"):
        read_all(tnetstring.dumps(state))


# --------------------------------------------------------------------------- versions and upgrades


def test_newer_version_is_rejected() -> None:
    state = flow_state()
    state["version"] = 22
    with pytest.raises(FlowReadException, match="version 22.*update") as info:
        read_all(tnetstring.dumps(state))
    assert info.value.offset == 0


@pytest.mark.parametrize("version", [6, 4, [0, 18], [3, 0, 0], "21", None, True])
def test_unreadable_versions(version: Any) -> None:
    state = flow_state()
    state["version"] = version
    with pytest.raises(FlowReadException, match="version"):
        read_all(tnetstring.dumps(state))


def test_missing_version() -> None:
    state = flow_state()
    del state["version"]
    with pytest.raises(FlowReadException, match="no 'version'"):
        read_all(tnetstring.dumps(state))


def test_v20_quic_is_renamed() -> None:
    state = flow_state()
    state["version"] = 20
    state["client_conn"]["tls_version"] = "QUIC"
    state["server_conn"]["tls_version"] = "QUIC"
    (flow,) = read_all(tnetstring.dumps(state))
    assert flow.client_conn.tls_version == flow.server_conn.tls_version == "QUICv1"
    assert flow.get_state()["version"] == 21


def v19_state() -> dict[str, Any]:
    state = flow_state()
    state["version"] = 19
    state["client_conn"]["state"] = 0
    state["server_conn"]["state"] = 3
    return state


def test_v19_drops_connection_state() -> None:
    (flow,) = read_all(tnetstring.dumps(v19_state()))
    assert "state" not in flow.get_state()["server_conn"]


def _v7_client(address: list[Any]) -> dict[str, Any]:
    return {
        "address": address,
        "alpn_proto_negotiated": None,
        "cipher_name": None,
        "clientcert": None,
        "id": "client-7",
        "mitmcert": None,
        "sni": None,
        "timestamp_end": None,
        "timestamp_start": 100.0,
        "timestamp_tls_setup": None,
        "tls_established": False,
        "tls_extensions": None,
        "tls_version": None,
    }


def _v7_server(sni: Any = None, tls: bool = False) -> dict[str, Any]:
    return {
        "address": ["ws.example", 80],
        "alpn_proto_negotiated": b"http/1.1" if tls else None,
        "cert": None,
        "id": "server-7",
        "ip_address": ["192.0.2.1", 80],
        "sni": sni,
        "source_address": ["10.1.1.1", 40000],
        "timestamp_end": 130.0,
        "timestamp_start": 101.0,
        "timestamp_tcp_setup": 102.0,
        "timestamp_tls_setup": 103.0 if tls else None,
        "tls_established": tls,
        "tls_version": "TLSv1.2" if tls else None,
        "via": None,
    }


def v7_handshake(flow_id: str, sni: Any = None) -> dict[str, Any]:
    return {
        "version": 7,
        "type": "http",
        "id": flow_id,
        "error": None,
        "intercepted": False,
        "marked": True,
        "metadata": {"websocket": True},
        "mode": "regular",
        "client_conn": _v7_client(["::ffff:127.0.0.1", 5000, 0, 0]),
        "server_conn": _v7_server(sni=sni, tls=sni is not None),
        "request": {
            "content": b"",
            "first_line_format": "relative",
            "headers": [[b"Host", b"ws.example"], [b"Upgrade", b"websocket"]],
            "host": b"ws.example",
            "http_version": b"HTTP/1.1",
            "is_replay": False,
            "method": b"GET",
            "path": b"/chat",
            "port": 80,
            "scheme": b"http",
            "timestamp_end": 104.0,
            "timestamp_start": 103.5,
        },
        "response": {
            "content": b"",
            "headers": [[b"Upgrade", b"websocket"]],
            "http_version": b"HTTP/1.1",
            "is_replay": True,
            "reason": b"Switching Protocols",
            "status_code": 101,
            "timestamp_end": None,
            "timestamp_start": None,
        },
    }


def v7_websocket(flow_id: str, handshake_id: str) -> dict[str, Any]:
    return {
        "version": 7,
        "type": "websocket",
        "id": flow_id,
        "error": None,
        "intercepted": False,
        "marked": False,
        "metadata": {"websocket_handshake": handshake_id},
        "client_conn": _v7_client(["127.0.0.1", 5000]),
        "server_conn": _v7_server(),
        "client_key": "key",
        "close_code": 1000,
        "close_reason": "done",
        "close_sender": "client",
        "messages": [[1, True, "h\u00e9llo", 110, False], [2, False, b"\x00\x01", 111.5, True]],
    }


def v7_tcp() -> dict[str, Any]:
    return {
        "version": 7,
        "type": "tcp",
        "id": "tcp-7",
        "error": {"msg": "reset", "timestamp": 120.0},
        "intercepted": False,
        "marked": False,
        "metadata": {},
        "mode": "transparent",
        "client_conn": _v7_client(["127.0.0.1", 6000]),
        "server_conn": _v7_server(sni=b"tcp.example", tls=True),
        "messages": [[True, b"ping", 121.0], [False, b"pong", 122.0]],
    }


def test_upgrade_from_v7() -> None:
    records = [
        v7_handshake("hs-1", sni=True),
        v7_websocket("ws-1", "hs-1"),
        v7_websocket("ws-2", "no-such-handshake"),
        v7_tcp(),
    ]
    flows = read_all(b"".join(tnetstring.dumps(r) for r in records))
    handshake, merged, orphan, tcp = flows
    assert [f.type for f in flows] == ["http", "http", "http", "tcp"]

    # the handshake itself, upgraded field by field
    assert handshake.id == "hs-1" and handshake.websocket is None
    assert handshake.marked == ":default:" and handshake.comment == ""
    assert handshake.is_replay == "response"
    assert handshake.timestamp_created == 103.5
    assert handshake.request.host == "ws.example" and handshake.request.data.authority == b""
    assert handshake.request.trailers is None
    assert (handshake.response.timestamp_start, handshake.response.timestamp_end) == (104.0, 105.0)
    client, server = handshake.client_conn, handshake.server_conn
    assert client.peername == ("::ffff:127.0.0.1", 5000, 0, 0) and client.sockname == ("", 0)
    assert client.proxy_mode == "regular" and client.certificate_list == []
    assert server.peername == ("192.0.2.1", 80) and server.sockname == ("10.1.1.1", 40000)
    assert server.address == ("ws.example", 80) and server.via is None
    assert server.sni == "ws.example"  # sni=True meant "the address"
    assert server.tls is True and server.alpn == b"http/1.1"
    assert server.alpn_offers == [b"http/1.1"] and server.cipher is None
    state = handshake.get_state()
    assert "tls_established" not in state["server_conn"] and "mode" not in state

    # the WebSocket flow became a copy of its handshake with the messages attached
    assert merged.id == "hs-1"
    assert merged.request.path == "/chat" and merged.response.status_code == 101
    assert "duplicated" in merged.metadata
    ws = merged.websocket
    assert ws is not None and ws.closed_by_client is True
    assert (ws.close_code, ws.close_reason, ws.timestamp_end) == (1000, "done", 130.0)
    assert [(m.type, m.from_client, m.content, m.dropped, m.injected) for m in ws.messages] == [
        (1, True, "h\u00e9llo".encode(), False, False),
        (2, False, b"\x00\x01", True, False),
    ]

    # a WebSocket flow whose handshake is missing gets a placeholder request
    assert orphan.id == "ws-2" and orphan.request.host == "unknown"
    assert orphan.response is None and orphan.websocket is not None

    assert tcp.error is not None and tcp.error.msg == "reset"
    assert tcp.timestamp_created == 100.0
    assert tcp.server_conn.sni == "tcp.example"
    assert [m.content for m in tcp.messages] == [b"ping", b"pong"]

    # every upgraded flow is a valid v21 state and survives a write/read cycle
    for flow in flows:
        check_flow_state(flow.get_state())
    rewritten = write_all(flows)
    assert [f.get_state() for f in read_all(rewritten)] == [f.get_state() for f in flows]


def test_v11_handshakes_are_tracked_per_file() -> None:
    handshake = tnetstring.dumps(v7_handshake("hs-x"))
    websocket = tnetstring.dumps(v7_websocket("ws-x", "hs-x"))
    read_all(handshake)
    (alone,) = read_all(websocket)
    assert alone.request.host == "unknown"  # a handshake from another file is not used


def test_migrate_flow_does_each_step_once() -> None:
    state = copy.deepcopy(v7_tcp())
    upgraded = compat.migrate_flow(state)
    assert upgraded["version"] == 21
    check_flow_state(upgraded)
    assert sorted(compat.STEPS) == list(range(compat.OLDEST_SUPPORTED_VERSION, 21))


_SMALL_FILE = write_all([make_http_flow(), make_tcp_flow()])


@given(st.data())
def test_reader_on_damaged_files_only_raises_flow_read_exception(data: st.DataObject) -> None:
    damaged = bytearray(_SMALL_FILE)
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, len(damaged) - 1))
        damaged[i] = data.draw(st.sampled_from(b"0123456789:,;#^!~]}xT\x00"))
    cut = data.draw(st.integers(0, len(damaged)))
    for candidate in (bytes(damaged), bytes(damaged[:cut])):
        try:
            for flow in FlowReader(io.BytesIO(candidate)).stream():
                flow.get_state()
        except FlowReadException as e:
            assert e.offset is not None and 0 <= e.offset <= len(candidate)


@given(st.binary(max_size=300))
def test_reader_on_arbitrary_bytes_only_raises_flow_read_exception(data: bytes) -> None:
    try:
        list(FlowReader(io.BytesIO(data)).stream())
    except FlowReadException:
        pass


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


_SMALL_STATES = [tnetstring.loads(write_all([f])) for f in (make_http_flow(), make_tcp_flow())]


@given(st.data())
def test_reader_on_wrong_structures_only_raises_flow_read_exception(data: st.DataObject) -> None:
    state = copy.deepcopy(data.draw(st.sampled_from(_SMALL_STATES)))
    for _ in range(data.draw(st.integers(1, 3))):
        path = data.draw(st.sampled_from(_paths(state)[1:]))
        parent = state
        for step in path[:-1]:
            parent = parent[step]
        if isinstance(parent, dict) and data.draw(st.booleans()):
            del parent[path[-1]]
        else:
            parent[path[-1]] = data.draw(values)
    if data.draw(st.booleans()):
        state["version"] = data.draw(st.integers(compat.OLDEST_SUPPORTED_VERSION, 21))
    try:
        for flow in read_all(tnetstring.dumps(state)):
            flow.get_state()
    except FlowReadException:
        pass


def _careful(data: bytes) -> Any:
    value, end = tnetstring._parse(data, 0, len(data))
    if end != len(data):
        raise ValueError("trailing bytes")
    return value


def _near_valid() -> st.SearchStrategy[bytes]:
    """Valid encodings with one byte replaced, dropped or inserted: inputs both parsers half-accept."""

    def mutate(args: tuple[bytes, int, int, str]) -> bytes:
        data, index, byte, how = args
        i = index % (len(data) + 1)
        if how == "replace" and i < len(data):
            return data[:i] + bytes([byte]) + data[i + 1 :]
        if how == "drop":
            return data[:i] + data[i + 1 :]
        return data[:i] + bytes([byte]) + data[i:]

    return st.tuples(
        values.map(tnetstring.dumps),
        st.integers(0, 10_000),
        st.sampled_from(b"0123456789:,;#^!~]}-.et"),
        st.sampled_from(["replace", "drop", "insert"]),
    ).map(mutate)


@given(st.binary(max_size=200) | _near_valid() | values.map(tnetstring.dumps))
def test_tnetstring_fast_parser_accepts_exactly_what_the_careful_one_does(data: bytes) -> None:
    try:
        fast, end = tnetstring._parse_fast(data, 0, 0)
        fast_ok = end == len(data)
    except Exception:
        fast_ok = False
    try:
        careful = _careful(data)
    except ValueError:
        assert not fast_ok, "the fast parser accepted input the careful one rejects"
        return
    if fast_ok:
        assert _same(fast, careful)
    assert _same(tnetstring.loads(data), careful)
