"""Writes export goldens: what real mitmproxy's ``export`` and ``cut`` commands give for the corpus.

Run with a Python that has mitmproxy installed (not proxycore's venv), once per version:

    .cache/mitmproxy-11.0.2/bin/python tests/data/commands/make_export_goldens.py
    /path/to/mitmproxy-12.3.1/bin/python tests/data/commands/make_export_goldens.py

mitmproxy 12 needs Python 3.12 or later (e.g. ``python3.12 -m venv m12 && m12/bin/pip
install mitmproxy==12.3.1``; if its certifi pin is newer than the index has, install
mitmproxy with ``--no-deps`` and its requirements with certifi unpinned).

Each run writes ``export-<version>.json`` next to this file: for every flow of
``tests/data/corpus-all.mitm`` and of ``export-flows.mitm`` (made-up requests:
control characters, binary bodies, other methods, repeated headers), the result of every
export format (or the CommandError message), plus ``cut`` results for common
specifications. The tests compare proxycore's output to the 12.x file; the 11.x
file documents what changed between the versions.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from mitmproxy import exceptions, io, version
from mitmproxy.addons import cut, export
from mitmproxy.test import taddons, tflow

HERE = Path(__file__).parent
CORPUS = HERE.parent / "corpus-all.mitm"
MADE_UP = HERE / "export-flows.mitm"  # written on the first run (use mitmproxy 11: flow format 20)

CUTS = [
    "request.method",
    "request.scheme",
    "request.host",
    "request.port",
    "request.path",
    "request.url",
    "request.http_version",
    "request.header[Host]",
    "request.header[user-agent]",
    "request.text",
    "request.content",
    "request.timestamp_start",
    "response.status_code",
    "response.reason",
    "response.header[content-type]",
    "response.text",
    "response.content",
    "client_conn.peername.host",
    "client_conn.peername.port",
    "client_conn.tls_established",
    "client_conn.sni",
    "server_conn.address.host",
    "server_conn.address.port",
    "server_conn.tls_version",
    "marked",
    "id",
    "type",
    "intercepted",
]


def made_up_flows() -> list:
    """Requests that exercise the corners of curl/httpie quoting."""
    flows = []

    def req(name: str, **kw) -> None:
        f = tflow.tflow(resp=True)
        f.id = name
        for k, v in kw.items():
            if k == "headers":
                f.request.headers.clear()
                for hk, hv in v:
                    f.request.headers.add(hk, hv)
            else:
                setattr(f.request, k, v)
        flows.append(f)

    req("post-empty", method="POST", content=b"")
    req("put-text", method="PUT", content=b"it's a \"quoted\" body")
    req("control-chars", method="POST", content=b"line1\nline2\ttab\x01")
    req("binary-body", method="POST", content=b"\xff\xfe\x00binary")
    req("head", method="HEAD", content=b"")
    req(
        "headers",
        headers=[
            ("Host", "address"),
            ("Accept-Encoding", "gzip, br"),
            ("X-Quote", "it's"),
            ("X-Multi", "a"),
            ("X-Multi", "b"),
            ("content-length", "0"),
        ],
        content=b"",
    )
    req("other-host", headers=[("Host", "example.com"), ("User-Agent", "t")], content=b"")
    f = tflow.tflow(resp=True)
    f.id = "gzip-request"
    f.request.method = "POST"
    f.request.headers["content-encoding"] = "gzip"
    f.request.content = b"compressed request body"
    flows.append(f)
    f = tflow.tflow(resp=False)
    f.id = "no-response"
    flows.append(f)
    f = tflow.ttcpflow()
    f.id = "tcp"
    flows.append(f)
    return flows


def shorten(kind: str, value: str) -> dict:
    """Long values (the 1 MiB body) are kept as their length, hash and start."""
    if len(value) <= 4096:
        return {kind: value}
    digest = hashlib.sha256(value.encode("utf-8", "surrogatepass")).hexdigest()
    return {kind + "_long": {"len": len(value), "sha256": digest, "head": value[:300]}}


def run(func, flow, *args):
    try:
        value = func(flow, *args)
    except exceptions.CommandError as e:
        return {"error": str(e)}
    except Exception as e:  # what mitmproxy itself crashes with
        return {"crash": f"{type(e).__name__}: {e}"}
    if isinstance(value, bytes):
        return shorten("bytes", value.decode("latin-1"))
    return shorten("str", value)


def main() -> None:
    if not MADE_UP.exists():
        with open(MADE_UP, "wb") as fp:
            writer = io.FlowWriter(fp)
            for f in made_up_flows():
                writer.add(f)
    flows = []
    for path in (CORPUS, MADE_UP):
        with open(path, "rb") as fp:
            flows += list(io.FlowReader(fp).stream())
    out = {"version": version.VERSION, "flows": {}}
    exporter = export.Export()
    with taddons.context(exporter) as tctx:
        for preserve in (False, True):
            tctx.configure(exporter, export_preserve_original_ip=preserve)
            for f in flows:
                entry = out["flows"].setdefault(f.id, {})
                for name in sorted(export.formats):
                    key = name if not preserve else f"{name}+preserve_ip"
                    if preserve and name not in ("curl", "httpie"):
                        continue
                    entry[key] = run(lambda fl, n=name: exporter.export_str(n, fl), f)
                    if name.startswith("raw"):
                        entry[key + "/bytes"] = run(export.formats[name], f)
        for f in flows:
            entry = out["flows"][f.id]
            entry["cut"] = {c: run(lambda fl, c=c: cut.extract(c, fl), f) for c in CUTS}
            entry["cut_str"] = {c: run(lambda fl, c=c: cut.extract_str(c, fl), f) for c in CUTS}
    target = HERE / f"export-{version.VERSION}.json"
    target.write_text(json.dumps(out, indent=1, sort_keys=True, ensure_ascii=True) + "\n")
    print(f"wrote {target}")


if __name__ == "__main__":
    main()
