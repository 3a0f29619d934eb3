#!/usr/bin/env python3
"""Instructions per proxied request of proxydump with and without ``-w FILE``, under cachegrind.

bench/cgproxy.py counts a plain proxydump; this runs the same two-run subtraction (N and 3N
keep-alive GETs through percall's 100 B origin) for ``-w FILE`` and for no ``-w``, and prints
both and what writing a flow costs (the difference).

    bench/cgwrite.py                     # -n 1000: 1000 vs 3000 requests, with and without -w
    bench/cgwrite.py --root /work/main   # another checkout, for an A/B
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import cgproxy  # noqa: E402


def per_request(n: int, root: str, extra: list[str]) -> float:
    """Instructions per request: the N-request run subtracted from the 3N one (cgproxy's way)."""
    long = cgproxy.run(3 * n, False, root, extra)["I refs"]
    return (long - cgproxy.run(n, False, root, extra)["I refs"]) / (2 * n)


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "-n", type=int, default=1000, help="requests of the short run (the long one makes 3n)"
    )
    parser.add_argument(
        "--root", default=ROOT, help="the checkout to run (with its .venv), e.g. main's"
    )
    parser.add_argument("--only-w", action="store_true", help="skip the run without -w")
    args = parser.parse_args()
    os.environ.setdefault("PYTHONHASHSEED", "0")  # (the figures in docs/architecture.md were taken so)
    with tempfile.TemporaryDirectory() as tmp:
        written = per_request(args.n, args.root, ["-w", os.path.join(tmp, "flows")])
    print(f"with -w    {written:10.1f} per request")
    if not args.only_w:
        plain = per_request(args.n, args.root, [])
        print(f"without -w {plain:10.1f} per request")
        print(f"-w costs   {written - plain:10.1f} per flow")
    return 0


if __name__ == "__main__":
    sys.exit(main())
