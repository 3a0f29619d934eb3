"""HAR files: export equal to mitmproxy 12.3.1's save.har, import equal to mitmproxy's reader,
round trips, the hardump option and the save.har command (goldens in tests/data/har)."""

from __future__ import annotations

import io
import json
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import http
from proxycore.addons.savehar import SaveHar
from proxycore.io import FlowReader, FlowReadException, har
from proxycore.master import Master
from tests.data.dumptext import fold_long_strings
from tests.flows import CORPUS
from tests.hypothesis_budget import budget
from tests.processes import proxydump

HAR_DATA = Path(__file__).parents[1] / "data" / "har"
BROWSER_HAR = HAR_DATA / "browser.har"


def read(data: bytes) -> list:
    return list(FlowReader(io.BytesIO(data)).stream())


def corpus_flows() -> list:
    return read(CORPUS.read_bytes())


def without_creator(document: dict) -> dict:
    document = json.loads(json.dumps(document))
    del document["log"]["creator"]
    return document


def comparable_state(flow) -> dict:
    """A flow's state without what is new on every read: ids and the creation time."""

    def scrub(value):
        if isinstance(value, dict):
            return {k: scrub(v) for k, v in value.items() if k not in ("id", "timestamp_created")}
        if isinstance(value, list):
            return [scrub(v) for v in value]
        return value

    return scrub(flow.get_state())


def test_export_equals_mitmproxy_save_har():
    document, skipped = har.make_har(corpus_flows())
    expected = json.loads((HAR_DATA / "corpus-mitmproxy-12.3.1.har").read_text())
    assert skipped == 1  # the TCP flow
    assert without_creator(fold_long_strings(document)) == without_creator(expected)
    assert document["log"]["creator"] == {"name": "proxycore", "version": document["log"]["creator"]["version"], "comment": ""}


def test_import_equals_mitmproxy_reader():
    ours = read(BROWSER_HAR.read_bytes())
    with open(HAR_DATA / "browser-read-by-mitmproxy-12.3.1.mitm", "rb") as f:
        theirs = list(FlowReader(f).stream())
    assert len(ours) == len(theirs) == 7
    for mine, reference in zip(ours, theirs, strict=True):
        assert comparable_state(mine) == comparable_state(reference)


def test_import_of_a_browser_har():
    flows = read(BROWSER_HAR.read_bytes())
    page, logo, login, photo, put, blocked, latin = flows
    assert page.request.http_version == "HTTP/2" and page.request.pretty_url == "https://example.com/?q=caf%C3%A9&x=1"
    assert page.request.headers[":authority"] == "example.com" and page.request.cookies["theme"] == "dark"
    assert "content-encoding" not in page.response.headers  # bodies in HAR files are decoded
    assert page.response.text == "<!doctype html><title>Café ☕</title><p>Hello</p>"
    assert page.server_conn.address == ("93.184.215.14", 443)
    started = datetime(2026, 11, 20, 10, 0, 0, 12000, tzinfo=UTC).timestamp()
    assert page.request.timestamp_start == pytest.approx(started)
    assert page.response.timestamp_end == pytest.approx(started + 0.095123)
    assert logo.response.content.startswith(b"\x89PNG")  # base64 body
    assert login.request.urlencoded_form["password"] == "s3cret" and login.server_conn.address == ("10.1.2.3", 80)
    assert login.response.reason == "Found" and login.response.headers["location"] == "/home"
    assert photo.response.content == b"" and photo.response.headers["content-length"] == "5000"  # Firefox: no body
    assert photo.server_conn.address is None  # no serverIPAddress
    assert put.request.http_version == "HTTP/3" and put.request.json() == {"name": "ü"}
    assert put.response.reason == "I'm a teapot"
    assert blocked.response.status_code == 0 and blocked.request.http_version == "HTTP/1.1"
    assert latin.response.raw_content == "café".encode("latin-1")  # the declared charset


def test_fiddler_byte_order_mark_is_accepted():
    with_bom = read(b"\xef\xbb\xbf" + BROWSER_HAR.read_bytes())
    assert [comparable_state(f) for f in with_bom] == [comparable_state(f) for f in read(BROWSER_HAR.read_bytes())]


@pytest.mark.parametrize(
    "data",
    [b"{", b'{"log": {}}', b'{"log": {"entries": [{"request": {}}]}}', b"{}", b'{"log": {"entries": [1]}}'],
)
def test_invalid_har_gives_one_clear_error(data):
    with pytest.raises(FlowReadException, match="^Unable to read HAR file. Please provide a valid HAR file$"):
        read(data)


def test_export_import_round_trip():
    flows = [f for f in corpus_flows() if isinstance(f, http.HTTPFlow)]
    text, _ = har.dumps(flows)
    back = read(text.encode())
    assert len(back) == len(flows)
    for original, copy in zip(flows, back, strict=True):
        assert copy.request.method == original.request.method
        if original.request.method != "CONNECT":
            assert copy.request.pretty_url == original.request.pretty_url
        assert copy.request.timestamp_start == pytest.approx(original.request.timestamp_start)
        if original.response is None:
            assert copy.response.status_code == 0
            continue
        assert copy.response.status_code == original.response.status_code
        assert copy.response.content == original.response.content  # decoded on both sides
        assert [k for k, _ in copy.response.headers.items(multi=True) if k.lower() != "content-encoding"] == [
            k for k, _ in original.response.headers.items(multi=True) if k.lower() != "content-encoding"
        ]


def test_websocket_messages_and_errors_in_export():
    document, _ = har.make_har(corpus_flows())
    entries = document["log"]["entries"]
    websocket = next(e for e in entries if e.get("_resourceType") == "websocket")
    kinds = {(m["type"], m["opcode"]) for m in websocket["_webSocketMessages"]}
    assert {("send", 1), ("receive", 1), ("send", 2)} <= kinds
    failed = [e for e in entries if e["response"]["status"] == 0]
    assert failed and all(e["response"]["_error"] for e in failed)


def test_save_har_command_and_zhar(tmp_path):
    master = Master()
    master.addons.add(SaveHar())
    flows = corpus_flows()
    master.commands.call("save.har", flows, str(tmp_path / "out.har"))
    master.commands.call("save.har", flows, str(tmp_path / "out.zhar"))
    plain = (tmp_path / "out.har").read_bytes()
    assert zlib.decompress((tmp_path / "out.zhar").read_bytes()) == plain
    assert len(read(plain)) == 15
    master.commands.call("save.har", [], str(tmp_path / "none.har"))
    assert json.loads((tmp_path / "none.har").read_text())["log"]["entries"] == []


@pytest.mark.e2e
def test_hardump_writes_at_exit_with_the_save_filter(tmp_path):
    out = tmp_path / "dump.har"
    r = proxydump("-n", "-q", "-r", str(CORPUS), "--set", f"hardump={out}", "~m POST")
    assert r.returncode == 0, r.stderr
    entries = json.loads(out.read_text())["log"]["entries"]
    assert entries and {e["request"]["method"] for e in entries} == {"POST"}
    r = proxydump("-n", "-q", "-r", str(CORPUS), "--set", "hardump=-")
    assert r.returncode == 0, r.stderr
    assert len(json.loads(r.stdout)["log"]["entries"]) == 15


@pytest.mark.e2e
def test_proxydump_reads_har_files(tmp_path):
    r = proxydump("-n", "-r", str(BROWSER_HAR))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0] == "127.0.0.1:0: GET https://example.com/?q=caf%C3%A9&x=1 HTTP/2"
    assert r.stdout.count(" << ") == 7
    bad = tmp_path / "bad.har"
    bad.write_text('{"log": ')
    r = proxydump("-n", "-r", str(bad))
    assert r.returncode == 1 and "Unable to read HAR file" in r.stderr and "Traceback" not in r.stderr


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=20,
)


@budget(200)
@given(st.lists(json_values, max_size=3), st.booleans())
def test_reader_raises_only_its_own_error_on_any_json(entries, take_real_entry):
    document = json.loads(BROWSER_HAR.read_text())
    if take_real_entry:
        # a real entry with one field replaced by arbitrary JSON
        entry = document["log"]["entries"][0]
        entry["response"]["content"] = entries[0] if entries else None
        entries = [entry]
    data = json.dumps({"log": {"entries": entries}}).encode()
    try:
        flows = read(data)
    except FlowReadException as e:
        assert str(e).startswith("Unable to read HAR file")
    else:
        assert all(isinstance(f, http.HTTPFlow) for f in flows)
