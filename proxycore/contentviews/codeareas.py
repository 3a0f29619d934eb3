"""Protecting strings, comments and regex literals while a beautifier rewrites code.

The CSS and JavaScript views reformat code with regular expressions that insert line
breaks around ``{``, ``}`` and ``;``.  Inside a string or comment those characters must
stay as they are, so before formatting they are moved into Unicode's private use area
(U+E000 + the character) and moved back afterwards.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

NO_ESCAPE = r"(?<!\\)(?:\\\\)*"
MULTILINE = r"[\s\S]*?"
SINGLELINE = r".*?"
MULTILINE_WITH_CONTINUATION = r"(?:.|(?<=\\)\n)*?"

_PRIVATE = re.compile(r"[\ue000-\ue0ff]")


def protect(code: str, areas: Iterable[str], specials: str) -> str:
    """Hide ``specials`` inside every match of the ``areas`` patterns."""
    pieces = re.split("({})".format("|".join(areas)), code, flags=re.MULTILINE)
    hide = re.compile(f"[{specials}]")
    for i in range(1, len(pieces), 2):
        pieces[i] = hide.sub(lambda m: chr(ord(m.group(0)) + 0xE000), pieces[i])
    return "".join(pieces)


def unprotect(code: str) -> str:
    return _PRIVATE.sub(lambda m: chr(ord(m.group(0)) - 0xE000), code)
