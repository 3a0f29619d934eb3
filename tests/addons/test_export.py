"""Export and cut against real mitmproxy: goldens from tests/data/commands/make_export_goldens.py.

``export-12.3.1.json`` holds what mitmproxy 12.3.1 gives for every flow of the corpus and
of ``export-flows.mitm`` (made-up corner cases): every export format with and without
``export_preserve_original_ip`` and a set of cut specifications. Where mitmproxy itself
crashes (e.g. a body that does not decode), proxycore raises a CommandError instead.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from proxycore.addons import cut, export
from proxycore.addons.export import Export
from proxycore.exceptions import CommandError
from proxycore.io import FlowReader
from proxycore.master import Master
from tests.hypothesis_budget import budget

DATA = Path(__file__).parents[1] / "data"
GOLDEN = json.loads((DATA / "commands" / "export-12.3.1.json").read_text())
GOLDEN_11 = json.loads((DATA / "commands" / "export-11.0.2.json").read_text())


def _flows() -> dict[str, Any]:
    flows = {}
    for path in (DATA / "corpus-all.mitm", DATA / "commands" / "export-flows.mitm"):
        with open(path, "rb") as fp:
            flows.update({f.id: f for f in FlowReader(fp).stream()})
    return flows


FLOWS = _flows()
CASES = [(fid, key) for fid, entry in GOLDEN["flows"].items() for key in entry if not key.startswith("cut")]
CUT_CASES = [
    (fid, kind, spec) for fid, entry in GOLDEN["flows"].items() for kind in ("cut", "cut_str") for spec in entry[kind]
]


def shorten(kind: str, value: str) -> dict[str, Any]:
    """As the golden script stores long values."""
    if len(value) <= 4096:
        return {kind: value}
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return {kind + "_long": {"len": len(value), "sha256": digest, "head": value[:300]}}


def run(func: Any, *args: Any) -> dict[str, Any]:
    try:
        value = func(*args)
    except CommandError as e:
        return {"error": str(e)}
    if isinstance(value, bytes):
        return shorten("bytes", value.decode("latin-1"))
    return shorten("str", value)


@pytest.fixture(scope="module")
def exporter() -> Export:
    master = Master()
    addon = Export()
    master.addons.add(addon)
    return addon


def test_goldens_cover_every_format_and_flow() -> None:
    assert GOLDEN["version"] == "12.3.1" and GOLDEN_11["version"] == "11.0.2"
    assert set(GOLDEN["flows"]) == set(FLOWS) and len(FLOWS) == 26
    formats = {key.split("/")[0].split("+")[0] for _, key in CASES}
    assert formats == set(export.FORMATS) == {"curl", "httpie", "raw", "raw_request", "raw_response"}


@pytest.mark.parametrize(("flow_id", "key"), CASES)
def test_export_matches_mitmproxy(exporter: Export, flow_id: str, key: str) -> None:
    flow = FLOWS[flow_id]
    name, _, variant = key.partition("/")
    name, _, option = name.partition("+")
    exporter_master_options = exporter_options(exporter)
    exporter_master_options.export_preserve_original_ip = option == "preserve_ip"
    expected = GOLDEN["flows"][flow_id][key]
    if variant == "bytes":
        got = run(export.FORMATS[name], flow)
    else:
        got = run(exporter.export_str, name, flow)
    if "crash" in expected:
        assert "error" in got, expected["crash"]
    else:
        assert got == expected


def exporter_options(exporter: Export) -> Any:
    from proxycore import ctx

    return ctx.options


@pytest.mark.parametrize(("flow_id", "kind", "spec"), CUT_CASES)
def test_cut_matches_mitmproxy(flow_id: str, kind: str, spec: str) -> None:
    flow = FLOWS[flow_id]
    func = cut.extract if kind == "cut" else cut.extract_str
    expected = GOLDEN["flows"][flow_id][kind][spec]
    got = run(func, spec, flow)
    if "crash" in expected:
        assert "error" in got, expected["crash"]
    else:
        assert got == expected


# properties ---------------------------------------------------------------------------

from hypothesis import example, given  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from proxycore.http import HTTPFlow, Request, Response  # noqa: E402
from tests.flows import http_flow  # noqa: E402

header_names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz-", min_size=1, max_size=12)
header_values = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FF, blacklist_characters="\x7f"), max_size=20)


@budget(200, deadline=None)
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD"]),
    body=st.binary(max_size=64) | st.text(max_size=64).map(str.encode),
    headers=st.lists(st.tuples(header_names, header_values), max_size=5),
    encoding=st.sampled_from([None, "gzip", "br", "deflate", "zstd", "bogus"]),
)
def test_export_raises_only_command_errors(exporter: Export, method: str, body: bytes, headers: list, encoding: str | None) -> None:
    flow = http_flow(response=True, method=method, req_body=b"", req_headers=dict(headers) or {"x": "y"})
    if encoding:
        flow.request.headers["content-encoding"] = encoding
    flow.request.content = body
    for name in export.FORMATS:
        try:
            text = exporter.export_str(name, flow)
        except CommandError:
            assert name in ("curl", "httpie")  # only a body that is not text is refused
            continue
        text.encode("utf-8")  # never lone surrogates


@budget(200, deadline=None)
@given(
    body=st.text(alphabet=st.characters(min_codepoint=32, blacklist_categories=["Cs"]), min_size=1, max_size=64),
    headers=st.lists(st.tuples(header_names, header_values), max_size=5),
)
@example(body="\ufeff", headers=[])  # a byte order mark alone once exported as -d ''
def test_curl_words_give_back_the_request(exporter: Export, body: str, headers: list) -> None:
    import shlex

    flow = http_flow(method="POST", req_body=b"", req_headers=headers or [("x", "y")])
    flow.request.headers["content-type"] = "text/plain; charset=utf-8"
    flow.request.text = body
    words = shlex.split(exporter.export_str("curl", flow))
    assert words[-2:] == ["-d", body]
    sent = [words[i + 1] for i, w in enumerate(words) if w == "-H"]
    redundant = {"content-length", "accept-encoding"} | ({"host"} if flow.request.headers.get("host") == flow.request.host else set())
    expected = [f"{k}: {v}" for k, v in flow.request.headers.items(multi=True) if k.lower() not in redundant]
    assert sent == expected
    assert words[words.index("-X") + 1] == "POST" and words[-3] == flow.request.pretty_url


@budget(200, deadline=None)
@given(spec=st.text(max_size=40), which=st.sampled_from(["http", "ws", "tcp", "undecodable"]))
def test_cut_raises_only_command_errors(spec: str, which: str) -> None:
    from tests.flows import tcp_flow, ws_flow

    def undecodable() -> HTTPFlow:
        flow = http_flow()
        flow.request = Request.make("GET", "http://x/")
        flow.response = Response.make(200, b"\xff\xfe\x00", {"content-type": "text/html; charset=utf-16"})
        return flow

    flow = {"http": lambda: http_flow(response=True), "ws": ws_flow, "tcp": tcp_flow, "undecodable": undecodable}[which]()
    for cut_spec in (spec, "request." + spec, "response." + spec, "request.header[" + spec + "]"):
        try:
            value = cut.extract(cut_spec, flow)
        except CommandError:
            continue
        assert isinstance(value, (str, bytes))


@pytest.mark.parametrize("body", ["\ufeff", "\ufeffa=1", "a\ufeff"])
def test_a_byte_order_mark_stays_in_the_exported_body(exporter: Export, body: str) -> None:
    import shlex

    flow = http_flow(method="POST", req_body=body.encode(), req_headers={"content-type": "text/plain; charset=utf-8"})
    assert shlex.split(exporter.export_str("curl", flow))[-2:] == ["-d", body]
    assert shlex.split(exporter.export_str("httpie", flow).split(" <<< ")[1]) == [body]
