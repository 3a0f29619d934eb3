#!/usr/bin/env python3
"""Build proxycore/utils/markers.json, the one table of flow markers.

Source: GitHub's emoji list, https://api.github.com/emojis, the list mitmproxy's
``mitmproxy.utils.emoji`` (and so its console and web front end) is built from.  That
API answers a JSON object of short name -> image URL; the image's file name is the
emoji's code points in hex, joined by "-" (".../unicode/1f1e6-1f1eb.png").  Entries
whose file name is not code points are GitHub's own pictures (":octocat:") and have no
character: they are left out.  Code points are joined with U+200D, as mitmproxy joins
them, so that every name maps to the same string in both programs.

To those come the markers that are not emoji: ``:default:`` (U+25CF, the dot of
mitmproxy's console) and every ASCII letter and digit, each standing for itself.

The result is committed; nothing reads this script at run time or in the tests.
Run it when GitHub's list should be picked up again:

    python3 tools/make_markers.py                   # fetches the list
    python3 tools/make_markers.py --from saved.json # a saved copy of the API's answer
"""

from __future__ import annotations

import argparse
import json
import string
import sys
import urllib.request
from pathlib import Path

SOURCE = "https://api.github.com/emojis"
OUT = Path(__file__).resolve().parent.parent / "proxycore" / "utils" / "markers.json"
DEFAULT_MARK = "\u25cf"
JOINER = "\u200d"


def character(image_url: str) -> str | None:
    """The emoji an image URL of GitHub's list stands for, None for a GitHub-only picture."""
    stem = image_url.rsplit("/", 1)[-1].split(".png", 1)[0]
    try:
        return JOINER.join(chr(int(part, 16)) for part in stem.split("-"))
    except ValueError:
        return None


def build(github: dict[str, str]) -> dict[str, str]:
    """Marker name -> character: GitHub's emoji (as ``:name:``), ``:default:``, letters, digits."""
    table: dict[str, str] = {}
    for name, url in github.items():
        char = character(url)
        if char is not None:
            table[f":{name}:"] = char
    table[":default:"] = DEFAULT_MARK
    for char in string.ascii_letters + string.digits:
        table[char] = char
    return table


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--from", dest="saved", type=Path, help="a saved copy of the API's JSON answer")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.saved is not None:
        github = json.loads(args.saved.read_text(encoding="utf-8"))
    else:
        request = urllib.request.Request(SOURCE, headers={"Accept": "application/vnd.github+json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            github = json.load(response)
    table = build(github)
    args.out.write_text(json.dumps(table, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(table)} markers to {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
