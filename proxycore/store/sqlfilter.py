"""Flow filters as SQL WHERE clauses, so a database narrows a search before Python does.

``translate(filter, dialect)`` returns a :class:`Condition`: SQL text, its
parameters, and ``exact``.  An exact condition selects precisely the flows the
filter matches; an inexact one selects a superset (every match, maybe more), and
the caller runs the filter in Python over those rows.  Operators the row columns
answer (method, host, URL, status, marked, marker, comment, type, error, replay,
addresses) are pushed down; bodies, headers, content types and metadata are not.

Regexes: SQLite calls back into Python (``pc_regexp``, the filter's own compiled
pattern, so the answer is the filter's); PostgreSQL's regex dialect differs from
Python's, so there only literal patterns become ``ILIKE`` (a superset: ASCII case
folding) and the rest is left to Python.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from proxycore import flowfilter

# Filter operator -> the columns its regex is searched in (any of them matching).
REGEX_COLUMNS: dict[str, tuple[str, ...]] = {
    "d": ("host", "pretty_host"),
    "u": ("url",),
    "m": ("method",),
    "src": ("src",),
    "dst": ("dst",),
    "marker": ("marked",),
    "comment": ("comment",),
}
# Operators that look at an HTTP request (other flows keep sort keys in these columns).
HTTP_ONLY = frozenset({"d", "u", "m"})
# Argument-less operators -> SQL (exact).
PREDICATES: dict[str, str] = {
    "all": "1=1",
    "http": "type = 'http'",
    "tcp": "type = 'tcp'",
    "udp": "type = 'udp'",
    "dns": "type = 'dns'",
    "websocket": "websocket = 1",
    "e": "error = 1",
    "marked": "marked <> ''",
    "q": "(type IN ('http', 'dns') AND response = 0)",
    "s": "(type IN ('http', 'dns') AND response = 1)",
    "replay": "replay IS NOT NULL",
    "replayq": "COALESCE(replay, '') = 'request'",
    "replays": "COALESCE(replay, '') = 'response'",
}
_SPECIAL = set("\\.^$*+?{}[]|()")
# Operators that read message bodies: the only ones a row must be read with its bodies for.
BODY_CODES = frozenset({"b", "bq", "bs"})


@dataclass
class Condition:
    sql: str
    params: list[Any] = field(default_factory=list)
    exact: bool = True


TRUE = Condition("1=1", [], True)


class IdSet:
    """A filter matching the flows whose id is in a set (``@id,id`` flow specs)."""

    def __init__(self, ids: Any) -> None:
        self.ids = frozenset(ids)

    def __call__(self, flow: Any) -> bool:
        return flow.id in self.ids


def like_of(expr: str) -> tuple[str, bool] | None:
    """A LIKE pattern selecting every string ``expr`` finds (None if it has no such pattern),
    and whether it selects exactly those (no ``.``, which LIKE's ``_`` only approximates)."""
    out = ["%"]
    exact = True
    i = 0
    while i < len(expr):
        c = expr[i]
        if c == "\\":
            if i + 1 >= len(expr) or expr[i + 1].isalnum():
                return None
            c = expr[i + 1]
            i += 1
        elif c == ".":
            out.append("_")
            exact = False
            i += 1
            continue
        elif c in _SPECIAL:
            return None
        out.append("\\" + c if c in "\\%_" else c)
        i += 1
    out.append("%")
    return "".join(out), exact


class Dialect:
    """How one database spells placeholders, booleans and regex tests."""

    placeholder = "?"
    like = "LIKE"  # SQLite's LIKE folds ASCII case, as the filters' IGNORECASE does for ASCII

    def __init__(self) -> None:
        self.patterns: dict[int, Any] = {}

    def regex(self, column: str, predicate: flowfilter.RegexPredicate) -> Condition | None:
        """An exact regex test of ``column``, or None when the database cannot run one."""
        key = id(predicate.regex)
        self.patterns[key] = predicate.regex
        return Condition(f"pc_regexp({self.placeholder}, {column})", [key], True)


class PostgresDialect(Dialect):
    placeholder = "%s"
    like = "ILIKE"

    def regex(self, column: str, predicate: flowfilter.RegexPredicate) -> Condition | None:
        return None


def _regex(predicate: flowfilter.RegexPredicate, dialect: Dialect) -> Condition:
    columns = REGEX_COLUMNS.get(predicate.code)
    if columns is None:
        return Condition("1=1", [], False)
    like = like_of(predicate.expr) if predicate.expr.isascii() else None
    folds = bool(predicate.regex.flags & re.IGNORECASE)
    parts: list[Condition] = []
    for column in columns:
        if predicate.code in HTTP_ONLY:
            column = f"(CASE WHEN type = 'http' THEN {column} END)"
        if like is not None:
            # LIKE folds ASCII case as the filter does: the filter's own answer for a plain
            # word, else a cheap superset that the regex (where the database runs one, only
            # on the rows LIKE keeps) or Python narrows.
            cond = Condition(
                f"COALESCE({column}, '') {dialect.like} {dialect.placeholder} ESCAPE '\\'",
                [like[0]],
                like[1] and folds,
            )
            if not cond.exact:
                exact = dialect.regex(column, predicate)
                if exact is not None:
                    cond = _join(" AND ", [cond, exact])
                    cond.exact = True
        else:
            found = dialect.regex(column, predicate)
            if found is None:
                return Condition("1=1", [], False)
            cond = found
        parts.append(cond)
    return _join(" OR ", parts)


def _join(op: str, parts: list[Condition]) -> Condition:
    if len(parts) == 1:
        return parts[0]
    return Condition(
        "(" + op.join(p.sql for p in parts) + ")",
        [x for p in parts for x in p.params],
        all(p.exact for p in parts),
    )


def translate(flt: Any, dialect: Dialect) -> Condition:
    """``flt`` (a parsed filter, a plain callable or None) as a WHERE condition."""
    if flt is None or flt is flowfilter.match_all:
        return TRUE
    if isinstance(flt, IdSet):
        if not flt.ids:
            return Condition("1=0", [], True)
        marks = ", ".join([dialect.placeholder] * len(flt.ids))
        return Condition(f"id IN ({marks})", sorted(flt.ids), True)
    if isinstance(flt, flowfilter.And):
        parts = [translate(f, dialect) for f in flt.filters]
        decided = [p for p in parts if p.sql != "1=1" or p.exact]
        if not decided:
            return Condition("1=1", [], all(p.exact for p in parts))
        joined = _join(" AND ", decided)
        joined.exact = all(p.exact for p in parts)
        return joined
    if isinstance(flt, flowfilter.Or):
        parts = [translate(f, dialect) for f in flt.filters]
        if any(p.sql == "1=1" and not p.exact for p in parts):
            return Condition("1=1", [], False)  # one side can match anything
        return _join(" OR ", parts)
    if isinstance(flt, flowfilter.Not):
        inner = translate(flt.filter, dialect)
        if not inner.exact:
            return Condition("1=1", [], False)  # NOT of a superset says nothing
        return Condition(f"NOT ({inner.sql})", inner.params, True)
    if isinstance(flt, flowfilter.IntPredicate) and flt.code == "c":
        # IS NOT NULL instead of COALESCE: "status = ?" can use the index, and NOT of it
        # still matches flows without a response (FALSE, not NULL, for them).
        return Condition(
            f"(type = 'http' AND status IS NOT NULL AND status = {dialect.placeholder})",
            [flt.num],
            True,
        )
    if isinstance(flt, flowfilter.RegexPredicate):
        return _regex(flt, dialect)
    if isinstance(flt, flowfilter.Predicate) and flt.code in PREDICATES:
        return Condition(PREDICATES[flt.code], [], True)
    return Condition("1=1", [], False)


def needs_bodies(flt: Any) -> bool:
    """Whether running ``flt`` in Python needs the flows' bodies (read from the bodies table,
    a query per row): only the body operators do; a plain callable might."""
    if flt is None or flt is flowfilter.match_all or isinstance(flt, IdSet):
        return False
    if isinstance(flt, flowfilter.And | flowfilter.Or):
        return any(needs_bodies(f) for f in flt.filters)
    if isinstance(flt, flowfilter.Not):
        return needs_bodies(flt.filter)
    if isinstance(flt, flowfilter.Predicate):
        return flt.code in BODY_CODES
    return True
