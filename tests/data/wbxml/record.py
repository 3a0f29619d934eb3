"""Records what mitmproxy's WBXML view prints for a set of bodies into goldens.json, which
tests/contentviews/test_wbxml_view.py compares ours with.  Run with mitmproxy's source on the path:

    PYTHONPATH=/path/to/mitmproxy-source python3 tests/data/wbxml/record.py

The bodies: hand-made ActiveSync messages and seeded random token streams (every inline
string terminated: mitmproxy's reader waits forever for a missing NUL).
"""

from __future__ import annotations

import base64
import json
import random
from pathlib import Path

HERE = Path(__file__).parent
HEADER = b"\x03\x01\x6a\x00"  # WBXML 1.3, unknown public id, UTF-8, no string table


def s(text: str) -> bytes:
    return b"\x03" + text.encode() + b"\x00"


def cases() -> list[bytes]:
    sync = (HEADER + b"\x45\x5c\x4f\x4b" + s("0") + b"\x01\x52" + s("1") + b"\x01\x4e" + s("1") + b"\x01"
            + b"\x56\x47\x4d" + s("client-1") + b"\x01\x5d\x00\x11\x4a" + s("hello") + b"\x01\x01\x01\x01\x01\x01")
    ping = HEADER + b"\x00\x0d\x45\x48" + s("480") + b"\x01\x49\x4a\x4b" + s("Inbox") + b"\x01\x01\x01\x01"
    folders = HEADER + b"\x00\x07\x56\x4c" + s("1") + b"\x01\x52" + s("0") + b"\x01\x01"
    opaque = HEADER + b"\x45\x5c\xc3\x05ab\x00cd\x01\x01"
    out = [sync, ping, folders, opaque,
           HEADER + b"\x05",  # an empty element
           HEADER + b"\x45" + s("caf\u00e9"),  # unclosed, a non-ASCII string
           HEADER,  # no body: a bare declaration
           b"", b"\x03", b"\x03\x01\x04\x00\x05", b"\x03\x01\x6a\x02\x05", HEADER + b"\x01",
           HEADER + b"\x00\x30\x05", HEADER + b"\x85", HEADER + b"\x00\x03\x05", HEADER + b"\x45\x04",
           HEADER + b"\x45\xc3\x03]]>\x01", HEADER + b"\x3f"]
    from mitmproxy.contrib.wbxml.ASWBXML import ASWBXML

    pages = [sorted(p.tokenLookup) or [5] for p in ASWBXML().codePages]
    rng = random.Random(23)
    for _ in range(200):
        body = bytearray(HEADER + b"\x45")  # most inside one root element, as real messages are
        depth, page = 1, 0
        for _ in range(rng.randint(1, 25)):
            kind = rng.random()
            if kind < 0.15:
                page = rng.choice([0, 1, 2, 7, 13, 14, 17, 24, rng.randint(0, 26)])
                body += bytes([0, page])
            elif kind < 0.3 and depth > 1:
                body.append(1)
                depth -= 1
            elif kind < 0.45:
                body += s(rng.choice(["x", "", "12", "a&b<c>", "  sp  ", "line\nbreak"]))
            elif kind < 0.5:
                data = bytes(rng.randint(0x20, 0x7E) for _ in range(rng.randint(0, 6)))
                body += b"\xc3" + bytes([len(data)]) + data
            else:
                known = pages[page] if page < len(pages) else [5]
                token = (rng.choice(known) if rng.random() < 0.95 else rng.randint(5, 0x3F))
                token |= 0x40 if rng.random() < 0.6 else 0
                if rng.random() < 0.03:
                    token |= 0x80
                body.append(token)
                depth += bool(token & 0x40)
        out.append(bytes(body))
    return out


def main() -> None:
    from mitmproxy.contrib.wbxml import ASCommandResponse

    recorded = []
    for data in cases():
        try:
            expected = {"text": ASCommandResponse.ASCommandResponse(data).xmlString}
        except ValueError:
            expected = {"error": True}
        recorded.append({"data": base64.b64encode(data).decode(), "expected": expected})
    (HERE / "goldens.json").write_text(json.dumps(recorded, indent=1) + "\n")


if __name__ == "__main__":
    main()
