"""Writes the HAR goldens with real mitmproxy 12.3.1 (run from the repository root):

    .cache-m12/bin/python tests/data/har/make_goldens.py

- ``corpus-mitmproxy-12.3.1.har``: mitmproxy's ``save.har`` of ``tests/data/corpus-all.mitm``
  (strings over 100,000 characters, the 1 MiB body, replaced by their SHA-256).
- ``browser-read-by-mitmproxy-12.3.1.mitm``: the flows mitmproxy's FlowReader makes of
  ``browser.har`` (a hand-written Chrome/Firefox/Slack-style HAR), saved as a flow file.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from mitmproxy import io, version
from mitmproxy.addons.savehar import SaveHar
from mitmproxy.test import taddons

sys.path.insert(0, str(Path(__file__).parent.parent))
from dumptext import fold_long_strings  # noqa: E402

HERE = Path(__file__).parent
assert version.VERSION == "12.3.1", version.VERSION


def main() -> None:
    with open(HERE.parent / "corpus-all.mitm", "rb") as f:
        flows = list(io.FlowReader(f).stream())
    with taddons.context():
        har = SaveHar().make_har(flows)
    (HERE / "corpus-mitmproxy-12.3.1.har").write_text(json.dumps(fold_long_strings(har), indent=4))
    with open(HERE / "browser.har", "rb") as f:
        imported = list(io.FlowReader(f).stream())
    with open(HERE / "browser-read-by-mitmproxy-12.3.1.mitm", "wb") as out:
        writer = io.FlowWriter(out)
        for flow in imported:
            writer.add(flow)


if __name__ == "__main__":
    main()
