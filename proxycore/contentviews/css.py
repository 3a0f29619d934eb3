"""The CSS view: one declaration per line, rules separated by a blank line.

Only whitespace changes, so any input (also broken CSS) can be shown."""

from __future__ import annotations

import re

from proxycore.contentviews import codeareas as ca
from proxycore.contentviews.api import Contentview, Metadata

_AREAS = (
    "'" + ca.SINGLELINE + ca.NO_ESCAPE + "'",
    '"' + ca.SINGLELINE + ca.NO_ESCAPE + '"',
    r"/\*" + ca.MULTILINE + r"\*/",
    "//" + ca.SINGLELINE + "$",
)


def beautify(css: str, indent: str = "    ") -> str:
    text = ca.protect(css.strip(), _AREAS, "{};:")
    text = re.sub(r"\s*;\s*", ";\n", text)
    text = re.sub(r"\s*{\s*", " {\n", text)
    text = re.sub(r"\s*}\s*", "\n}\n\n", text)
    text = re.sub(r"\s*:\s*(?=[^{]+})", ": ", text)  # "a : b" inside a rule -> "a: b"
    text = re.sub(r"\s*,\s*", ", ", text)
    text = re.sub("\n[ \t]+", "\n", text)
    text = re.sub("\n(?![}\n])(?=[^{]*})", "\n" + indent, text)  # indent declarations
    return ca.unprotect(text).rstrip("\n") + "\n"


class ViewCSS(Contentview):
    name = "ViewCSS"
    syntax_highlight = "css"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return beautify(data.decode("utf-8", "surrogateescape"))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(bool(data) and metadata.content_type == "text/css")


css = ViewCSS()
