"""Writes the mitmdump goldens for flow detail 3 and 4 (run from the repository root):

    python tests/data/make_dump_goldens.py .cache-m12/bin/mitmdump

The mitmdump given must be 12.3.1.  Long bodies are folded to a hash (see dumptext.py);
the level-3 file is cut as mitmdump's help describes (see dumptext.cut_bodies).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dumptext import cut_bodies, fold_long_bodies  # noqa: E402

DATA = Path(__file__).parent


def main(mitmdump: str) -> None:
    version = subprocess.run([mitmdump, "--version"], capture_output=True, text=True, check=True).stdout
    assert "Mitmproxy: 12.3.1" in version, version
    for detail in (3, 4):
        out = subprocess.run(
            [mitmdump, "-n", "-r", str(DATA / "corpus-all.mitm"), "--flow-detail", str(detail)],
            capture_output=True, text=True, check=True,
        ).stdout
        if detail == 3:
            out = cut_bodies(out)
        (DATA / f"mitmdump-12.3.1-all-detail{detail}.txt").write_text(fold_long_bodies(out))


if __name__ == "__main__":
    main(sys.argv[1])
