"""proxycore.utils.saferegex: filter regexes run in linear time, or are refused when they could not."""

from __future__ import annotations

import re
import time

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore.flowfilter import FilterError, parse
from proxycore.utils import saferegex
from tests.flows import http_flow
from tests.hypothesis_budget import budget


def test_catastrophic_pattern_runs_in_linear_time() -> None:
    pattern = saferegex.compile("(a+)+$", re.IGNORECASE)
    assert pattern.linear
    start = time.perf_counter()
    assert pattern.search("a" * 50_000 + "!") is None
    assert time.perf_counter() - start < 1
    assert pattern.search("xaaa")


def test_filter_from_the_issue_does_not_freeze() -> None:
    flow = http_flow(url="http://" + "a" * 40 + "/")
    start = time.perf_counter()
    assert parse('~u "(a+)+$"')(flow) is False
    assert parse('~u "(a+)+/$"')(flow) is True
    assert time.perf_counter() - start < 1


def test_backreference_falls_back_to_re() -> None:
    pattern = saferegex.compile(r"(ab)\1")
    assert not pattern.linear
    assert pattern.search("xababx") and not pattern.search("abba")


def test_backtracking_only_pattern_with_nested_repetition_is_refused() -> None:
    with pytest.raises(saferegex.SlowPatternError):
        saferegex.compile(r"(a+)+\1")
    with pytest.raises(saferegex.SlowPatternError):
        saferegex.compile(r"(?=x)(a|b*)*$")
    with pytest.raises(FilterError, match="refused.*exponential"):
        parse(r'~u "(\\w+)*\\1"')


@pytest.mark.parametrize(
    "pattern, nested",
    [
        ("(a+)+", True),
        ("(?:ab*)*", True),
        ("(a|b+){2,5}", True),
        ("(a{3})+", False),  # a fixed count inside a repeat cannot backtrack
        ("a+b+c*", False),
        ("(ab)+", False),
        ("(a?)+", False),
    ],
)
def test_nested_repetition_detection(pattern: str, nested: bool) -> None:
    assert saferegex.has_nested_repetition(pattern) is nested


def test_invalid_syntax_is_re_error_as_before() -> None:
    with pytest.raises(re.error):
        saferegex.compile("(unclosed")
    with pytest.raises(re.error):
        saferegex.compile(r"\p{L}")  # RE2 knows \p, re (and mitmproxy) does not: still refused


def test_bytes_patterns_match_any_byte() -> None:
    pattern = saferegex.compile(b"a.b", re.DOTALL)
    assert pattern.linear
    assert pattern.search(b"a\xffb") and pattern.search(b"a\nb")
    assert saferegex.compile("é".encode()).search("café".encode())


def test_bytes_ignorecase_folds_ascii_only_as_re_does() -> None:
    pattern = saferegex.compile("é".encode(), re.IGNORECASE)
    assert not pattern.linear  # RE2's Latin-1 folding would match more bytes than re's
    assert not pattern.search("É".encode())
    assert saferegex.compile(b"abc", re.IGNORECASE).search(b"xABCx")


def test_flags_carry_over() -> None:
    assert saferegex.compile("^b", re.MULTILINE).search("a\nb")
    assert not saferegex.compile("^b").search("a\nb")
    assert saferegex.compile("CAFÉ", re.IGNORECASE).search("café")
    assert not saferegex.compile("a.b").search("a\nb")
    pattern = saferegex.compile(b"x", re.DOTALL | re.IGNORECASE)
    assert pattern.pattern == b"x" and pattern.flags & re.DOTALL


_atoms = st.sampled_from(["a", "b", ".", "[ab]", "[^a]", "\\n", "^", "x", "(?:a|b)", "(a)"])
_quantifiers = st.sampled_from(["", "", "*", "+", "?", "{1,2}", "*?"])
_patterns = st.lists(st.tuples(_atoms, _quantifiers), min_size=1, max_size=6).map(
    lambda parts: "".join(atom + ("" if atom == "^" else q) for atom, q in parts)
)
_flag_sets = st.sampled_from([0, re.IGNORECASE, re.DOTALL, re.MULTILINE, re.IGNORECASE | re.DOTALL])


@budget(300, deadline=None)
@given(_patterns, _flag_sets, st.text("abAB\nx", max_size=12), st.booleans())
def test_same_answers_as_re_on_the_common_subset(pattern: str, flags: int, subject: str, binary: bool) -> None:
    if binary:
        compiled_pattern: str | bytes = pattern.encode()
        text: str | bytes = subject.encode()
    else:
        compiled_pattern, text = pattern, subject
    expected = re.search(compiled_pattern, text, flags) is not None
    assert (saferegex.compile(compiled_pattern, flags).search(text) is not None) is expected


@pytest.mark.filterwarnings("ignore::FutureWarning")  # re's notes on [a--b] and friends
@budget(300, deadline=None)
@given(st.text(alphabet=st.sampled_from("a()[]{}*+?|\\^$.1,-:=!<>P#bdswZ"), max_size=16))
def test_any_text_compiles_or_raises_the_documented_errors(pattern: str) -> None:
    try:
        compiled = saferegex.compile(pattern, re.IGNORECASE)
    except (re.error, saferegex.SlowPatternError, OverflowError, RecursionError):
        return
    compiled.search("aaa-bbb 111")  # searching never raises
    expr = '~u "' + pattern.replace("\\", "\\\\").replace('"', '\\"') + '"'
    assert parse(expr).pattern == expr
