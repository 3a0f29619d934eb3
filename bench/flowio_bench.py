#!/usr/bin/env python3
"""Reading and writing 100,000 small flows: proxycore's io next to mitmproxy's, same file, same run.

Each measurement runs in its own process so peak memory (ru_maxrss) is its own.

    python3 bench/flowio_bench.py [--flows 100000] [--mitm-python .cache/mitmproxy-11.0.2/bin/python]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Runs in either interpreter: MODULE is "proxycore" or "mitmproxy".
MEASURE = r"""
import json, resource, sys, time
module, mode, path, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
io = __import__(module + ".io", fromlist=["io"])
start = time.perf_counter()
if mode == "read":
    n = 0
    with open(path, "rb") as f:
        for flow in io.FlowReader(f).stream():
            n += 1
else:
    with open(sys.argv[5], "rb") as f:
        template = next(io.FlowReader(f).stream())
    with open(path, "wb") as f:
        writer = io.FlowWriter(f)
        for i in range(count):
            template.id = "%032x" % i
            writer.add(template)
    n = count
elapsed = time.perf_counter() - start
print(json.dumps({"flows": n, "seconds": elapsed, "flows_per_s": n / elapsed,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def measure(python: str, module: str, mode: str, path: Path, count: int, template: Path) -> dict:
    out = subprocess.run(
        [python, "-c", MEASURE, module, mode, str(path), str(count), str(template)],
        capture_output=True, text=True, check=True, cwd=ROOT,
    )
    return json.loads(out.stdout)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flows", type=int, default=100_000)
    parser.add_argument("--mitm-python", default=str(ROOT / ".cache/mitmproxy-11.0.2/bin/python"))
    args = parser.parse_args()
    template = Path(tempfile.mkdtemp()) / "one.mitm"
    # The first corpus flow: a small GET with its response (about 2 KB of state).
    with (ROOT / "tests/data/corpus-all.mitm").open("rb") as src:
        sys.path.insert(0, str(ROOT))
        from proxycore.io import FlowReader, FlowWriter

        first = next(FlowReader(src).stream())
    with template.open("wb") as f:
        FlowWriter(f).add(first)
    ours_file = template.parent / "ours.mitm"
    theirs_file = template.parent / "theirs.mitm"
    systems = [("proxycore", sys.executable, ours_file), ("mitmproxy", args.mitm_python, theirs_file)]
    rows = []
    for name, python, path in systems:
        rows.append((name, "write", measure(python, name, "write", path, args.flows, template)))
    for name, python, path in systems:
        rows.append((name, "read", measure(python, name, "read", path, args.flows, template)))
    print(f"{'system':10} {'op':6} {'flows':>7} {'seconds':>8} {'flows/s':>9} {'peak RSS MB':>12}")
    for name, op, r in rows:
        print(f"{name:10} {op:6} {r['flows']:7d} {r['seconds']:8.2f} {r['flows_per_s']:9.0f} {r['peak_rss_mb']:12.1f}")
    by = {(n, op): r for n, op, r in rows}
    for op in ("write", "read"):
        ratio = by[("proxycore", op)]["flows_per_s"] / by[("mitmproxy", op)]["flows_per_s"]
        print(f"{op}: proxycore is {ratio:.1f}x mitmproxy")
    return 0


if __name__ == "__main__":
    sys.exit(main())
