"""The JavaScript view: a small beautifier that breaks lines at ``{``, ``}`` and ``;``
and indents blocks by two spaces, leaving strings, comments and regexes alone."""

from __future__ import annotations

import re

from proxycore.contentviews import codeareas as ca
from proxycore.contentviews.api import Contentview, Metadata

_AREAS = (
    # a regex literal: after an operator or bracket, followed by flags and an end of expression
    r"(?<=[^\w\s)])\s*/(?:[^\n/]|(?<!\\)(?:\\\\)*\\/)+?/(?=[gimsuy]{0,6}\s*(?:[;,).\n]|$))",
    "'" + ca.MULTILINE_WITH_CONTINUATION + ca.NO_ESCAPE + "'",
    '"' + ca.MULTILINE_WITH_CONTINUATION + ca.NO_ESCAPE + '"',
    "`" + ca.MULTILINE + ca.NO_ESCAPE + "`",
    r"/\*" + ca.MULTILINE + r"\*/",
    "//" + ca.SINGLELINE + "$",
    r"for\(" + ca.SINGLELINE + r"\)",
)

_CONTENT_TYPES = ("application/x-javascript", "application/javascript", "text/javascript")


def beautify(code: str) -> str:
    text = ca.protect(code, _AREAS, "{};\n")
    text = re.sub(r"\s*{\s*(?!};)", " {\n", text)
    text = re.sub(r"\s*;\s*", ";\n", text)
    text = re.sub(r"(?<!{)\s*}(;)?\s*", r"\n}\1\n", text)
    out = []
    level = 0
    for line in text.splitlines(True):
        if line.endswith("{\n"):  # also "} else {": an opening line keeps its level
            out.append("  " * level + line)
            level += 1
            continue
        if line.startswith("}"):
            level -= 1
        out.append("  " * level + line)
    return ca.unprotect("".join(out))


class JavaScriptContentview(Contentview):
    name = "JavaScript"
    syntax_highlight = "javascript"

    def prettify(self, data: bytes, metadata: Metadata) -> str:
        return beautify(data.decode("utf-8", "replace"))

    def render_priority(self, data: bytes, metadata: Metadata) -> float:
        return float(bool(data) and metadata.content_type in _CONTENT_TYPES)


javascript = JavaScriptContentview()
