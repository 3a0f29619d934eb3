"""Instructions of one proxy start under cachegrind: exec, the first proxied answer, then stop.

CPU milliseconds of a start vary by tens of percent on a busy machine; the instruction count
of the same start varies by well under 1 %.  One proxydump (or proxyweb) process from this
checkout, or from ``--root``, runs under ``valgrind --tool=cachegrind``; one GET goes through it
as soon as it listens, then SIGINT stops it.  The count includes the interpreter's own start
and the shutdown, which no change to proxycore moves.

    bench/cgstart.py                        # proxydump -q
    bench/cgstart.py --web                  # proxyweb -q (no browser)
    bench/cgstart.py --root /work/main      # another checkout, for an A/B
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import cgproxy  # noqa: E402


def instructions(root: str, web: bool) -> int:
    """``I refs`` of one proxy process of the checkout ``root`` that answered one GET."""
    return cgproxy.run(1, False, root, web=web)["I refs"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default=os.path.dirname(HERE), help="the checkout to run (with its .venv)")
    parser.add_argument("--web", action="store_true", help="proxyweb instead of proxydump")
    args = parser.parse_args()
    print(f"{instructions(args.root, args.web) / 1e6:.1f} M instructions")
    return 0


if __name__ == "__main__":
    sys.exit(main())
