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

DATA = Path(__file__).parent / "data"
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
