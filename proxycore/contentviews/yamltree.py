"""Block-style YAML for nested data (mappings, lists, scalars), as the DNS, msgpack and
ZIP views print it.

The scalar style (plain, single- or double-quoted) follows :mod:`yamlout`, which matches
ruamel.yaml; long strings are not folded here.  Nested collections go on the following
lines, indented by two under a mapping key; a list under a key keeps the key's column
(``key:\\n- item``), and a mapping inside a list starts on the dash's line.
"""

from __future__ import annotations

import math
from typing import Any

from proxycore.contentviews.yamlout import _analyze, _double_quote_safe, _escape, _style


class Verbatim(str):
    """A value already written as YAML (a tagged value, a number with a comment): as is."""


def scalar(value: Any, key: bool = False) -> str:
    if isinstance(value, Verbatim):
        return str(value)
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return ".nan"
        if math.isinf(value):
            return ".inf" if value > 0 else "-.inf"
        return repr(value)
    text = str(value)
    style = _style(text, _analyze(text), simple_key=key)
    if style == "":
        return text
    if style == "'":
        return "'" + text.replace("'", "''") + "'"
    return '"' + "".join(ch if _double_quote_safe(ch) and ch != "\n" else _escape(ch) for ch in text) + '"'


def _is_collection(value: Any) -> bool:
    return isinstance(value, dict | list | tuple) and len(value) > 0


def _lines(value: Any, indent: int) -> list[str]:
    """The lines of a non-empty collection, each starting at ``indent``."""
    pad = " " * indent
    lines: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            head = f"{pad}{scalar(key, key=True)}:"
            if _is_collection(item):
                lines.append(head)
                lines += _lines(item, indent if isinstance(item, list | tuple) else indent + 2)
            else:
                lines.append(f"{head} {_inline(item)}")
        return lines
    for item in value:
        if _is_collection(item):
            nested = _lines(item, indent + 2)
            lines.append(f"{pad}- {nested[0].lstrip()}")
            lines += nested[1:]
        else:
            lines.append(f"{pad}- {_inline(item)}")
    return lines


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, list | tuple):
        return "[]"
    return scalar(value)


def dumps(value: Any) -> str:
    """``value`` as a YAML document, ending in a newline."""
    if _is_collection(value):
        return "\n".join(_lines(value, 0)) + "\n"
    return _inline(value) + "\n"
