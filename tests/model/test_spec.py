"""The shared ``[/flow-filter]/subject/replacement`` parser (proxycore.utils.spec)."""

from __future__ import annotations

import codecs
import warnings

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxycore import flowfilter
from proxycore.addons.maplocal import parse_map_local_spec
from proxycore.addons.mapremote import parse_map_remote_spec
from proxycore.exceptions import OptionsError
from proxycore.utils.spec import (
    SpecError,
    check_regex,
    format_spec,
    matching,
    parse_modify_spec,
    parse_option,
    parse_spec,
    unescape,
)
from tests.addon_utils import tflow


def test_two_parts_match_every_flow():
    spec = parse_spec("/foo/bar")
    assert spec.matches is flowfilter.match_all
    assert (spec.subject, spec.replacement) == ("foo", "bar")


def test_three_parts_have_a_filter():
    spec = parse_spec("|~d example.com|/api|/v2")
    assert (spec.subject, spec.replacement) == ("/api", "/v2")
    assert spec.matches(tflow("http://example.com/api"))
    assert not spec.matches(tflow("http://other.org/api"))


def test_any_separator_and_replacement_may_hold_it_after_a_filter():
    assert parse_spec(":~q:a:b:c").replacement == "b:c"
    assert parse_spec("/a/").replacement == ""
    assert parse_spec("//b").subject == ""


@pytest.mark.parametrize(
    "text, message",
    [
        ("", "Empty pattern"),
        ("/", "Invalid number of parameters"),
        ("/only", "Invalid number of parameters"),
        ("/~~/a/b", "Invalid filter expression"),
        ("//a/b", "Empty filter expression"),
    ],
)
def test_errors(text, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(text)


def test_spec_error_is_a_value_error():
    assert issubclass(SpecError, ValueError)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("plain", b"plain"),
        (r"a\nb\tc", b"a\nb\tc"),
        (r"\x00\xff", b"\x00\xff"),
        (r"\\d+", b"\\d+"),
        (r"\d+", b"\\d+"),  # unknown escapes stay, so regexes read naturally
        (r"\101", b"A"),
        ("é", "é".encode()),
    ],
)
def test_unescape(text, expected):
    assert unescape(text) == expected


@pytest.mark.parametrize("text", ["abc\\", r"\x4", r"\xzz"])
def test_unescape_errors(text):
    with pytest.raises(SpecError):
        unescape(text)


def test_modify_spec_reads_files_on_use(tmp_path):
    path = tmp_path / "value.txt"
    path.write_bytes(b"one")
    spec = parse_modify_spec(f"|x-h|@{path}", subject_is_regex=False)
    assert spec.subject == b"x-h"
    assert spec.read_replacement() == b"one"
    path.write_bytes(b"two")
    assert spec.read_replacement() == b"two"


def test_modify_spec_errors(tmp_path):
    with pytest.raises(SpecError, match="Invalid file path"):
        parse_modify_spec(f"|x|@{tmp_path / 'missing'}", subject_is_regex=False)
    with pytest.raises(SpecError, match="Invalid regular expression"):
        parse_modify_spec("/(unclosed/x", subject_is_regex=True)
    assert parse_modify_spec("/(unclosed/x", subject_is_regex=False).subject == b"(unclosed"


def test_parse_option_names_the_bad_pattern():
    assert [s.subject for s in parse_option("map_remote", ["/a/b", "|c|d"], parse_spec)] == ["a", "c"]
    with pytest.raises(OptionsError, match=r"^Cannot parse map_remote option /only: Invalid number"):
        parse_option("map_remote", ["/a/b", "/only"], parse_spec)


def test_matching_keeps_order_and_evaluates_filters_lazily():
    flow = tflow("http://example.com/api")
    rules = [parse_spec("|~d example.com|1|x"), parse_spec("|~d other.org|2|x"), parse_spec("/3/x")]
    assert [r.subject for r in matching(rules, flow)] == ["1", "3"]
    seen = []
    for rule in matching(rules, flow):
        seen.append(rule.subject)
        flow.request.host = "other.org"  # the next filter sees the change
    assert seen == ["1", "2", "3"]


def test_check_regex_refuses_overflowing_repeats():
    with pytest.raises(SpecError):
        check_regex("a{99999999999}")


# properties -------------------------------------------------------------------------------


def modify_spec_without_files(subject_is_regex: bool):
    def parse(text: str) -> object:
        assume("@" not in text)  # file names are tested above; keep arbitrary paths off the disk
        return parse_modify_spec(text, subject_is_regex)

    return parse


@pytest.mark.parametrize(
    "parse",
    [
        parse_spec,
        unescape,
        modify_spec_without_files(True),
        modify_spec_without_files(False),
        parse_map_remote_spec,
        parse_map_local_spec,  # only stats the path
    ],
    ids=["spec", "unescape", "modify-regex", "modify-plain", "map_remote", "map_local"],
)
@given(text=st.text())
def test_parsers_raise_only_spec_error(parse, text):
    try:
        parse(text)
    except SpecError:
        pass


@given(st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=127)))
def test_unescape_agrees_with_pythons_escape_decoder(text):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            expected = codecs.escape_decode(text)[0]
        except ValueError:
            expected = None
    try:
        actual = unescape(text)
    except SpecError:
        actual = None
    assert actual == expected


separators = st.characters(min_codepoint=33, max_codepoint=126)
words = st.text(st.characters(blacklist_categories=("Cs",)), max_size=20)


@given(separators, words, words)
def test_round_trip_without_filter(sep, subject, replacement):
    assume(sep not in subject and sep not in replacement)
    spec = parse_spec(format_spec(subject, replacement, sep=sep))
    assert (spec.matches, spec.subject, spec.replacement) == (flowfilter.match_all, subject, replacement)


@given(separators, st.sampled_from(["~q", "~d example.com", "!~s", "~m POST & ~u /api"]), words, words)
def test_round_trip_with_filter(sep, expression, subject, replacement):
    assume(sep not in expression and sep not in subject)  # the replacement may contain it
    spec = parse_spec(format_spec(subject, replacement, filter_expr=expression, sep=sep))
    assert (spec.matches.pattern, spec.subject, spec.replacement) == (expression, subject, replacement)
