"""Tests for the flow filter language (proxycore.flowfilter)."""

from __future__ import annotations

import gzip
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from proxycore import flowfilter
from proxycore.connection import Client, Server
from proxycore.flow import Error, Flow
from proxycore.flowfilter import FilterError, match, parse
from proxycore.http import HTTPFlow
from proxycore.tcp import TCPMessage
from tests.flows import http_flow, tcp_flow, ws_flow

# ---------------------------------------------------------------------------
# flow builders


class FakeFlow(Flow):
    """A flow of another type (as UDP/DNS flows would be), to check type restrictions."""

    type = "udp"

    def __init__(self) -> None:
        super().__init__(Client(peername=("192.168.0.9", 53)), Server(address=("dns.example", 53)))
        self.messages = [TCPMessage(True, b"udp question"), TCPMessage(False, b"udp answer")]


def yes(expr: str, flow: Flow) -> None:
    assert parse(expr)(flow) is True, expr


def no(expr: str, flow: Flow) -> None:
    assert parse(expr)(flow) is False, expr


# ---------------------------------------------------------------------------
# operators without argument


def test_all():
    for flow in (http_flow(), tcp_flow(), ws_flow(), FakeFlow()):
        yes("~all", flow)
        no("!~all", flow)


def test_flow_types():
    h, t, w, u = http_flow(), tcp_flow(), ws_flow(), FakeFlow()
    yes("~http", h)
    yes("~http", w)
    no("~http", t)
    no("~http", u)
    yes("~tcp", t)
    no("~tcp", h)
    no("~tcp", u)
    yes("~websocket", w)
    no("~websocket", h)
    no("~websocket", t)
    for flow in (h, t, w):
        no("~udp", flow)
        no("~dns", flow)
    yes("~udp", u)
    no("~dns", u)


def test_request_response():
    q, s = http_flow(), http_flow(response=True)
    yes("~q", q)
    no("~q", s)
    yes("~s", s)
    no("~s", q)
    no("~q", tcp_flow())
    no("~s", tcp_flow())


def test_error():
    yes("~e", http_flow(error=True))
    no("~e", http_flow())
    t = tcp_flow()
    no("~e", t)
    t.error = Error("reset")
    yes("~e", t)


def test_asset():
    no("~a", http_flow())  # no response
    no("~a", http_flow(response=True))
    for ctype in (
        "text/javascript",
        "application/x-javascript",
        "application/javascript; charset=utf-8",
        "text/css",
        "image/png",
        "font/woff2",
        "application/font-woff",
    ):
        yes("~a", http_flow(response=True, resp_headers={"content-type": ctype}))
    no("~a", http_flow(response=True, resp_headers={"content-type": "text/html"}))
    # only the response counts
    no("~a", http_flow(response=True, req_headers={"content-type": "text/css"}))
    no("~a", tcp_flow())


def test_marked_and_replay():
    f = http_flow()
    no("~marked", f)
    f.marked = ":star:"
    yes("~marked", f)
    no("~replay", f)
    f.is_replay = "request"
    yes("~replay", f)
    yes("~replayq", f)
    no("~replays", f)
    f.is_replay = "response"
    yes("~replays", f)
    no("~replayq", f)


# ---------------------------------------------------------------------------
# regex operators


def test_body():
    f = http_flow(response=True)
    yes("~b content", f)
    yes("~b message", f)
    yes("~bq content", f)
    no("~bq message", f)
    yes("~bs message", f)
    no("~bs content", f)
    no("~b nonexistent", f)
    yes("~b CONTENT", f)  # case-insensitive
    yes("~b ^cont", f)  # search, anchored at the body start


def test_body_is_decoded_or_raw():
    f = http_flow(response=True, resp_headers={"content-encoding": "gzip"})
    f.response.raw_content = gzip.compress(b"compressed secret")
    yes("~bs 'compressed secret'", f)
    f.response.raw_content = b"not gzip at all"
    yes("~bs 'not gzip'", f)
    f.response.raw_content = None  # streamed, body not kept
    no("~bs .", f)
    yes("~b content", f)


def test_body_dotall_bytes():
    f = http_flow(req_body=b"line1\nline2\xff")
    yes("~b line1.line2", f)
    yes(r"~b line2\xff", f)
    no("~b line3", f)


def test_body_websocket_and_tcp():
    w = ws_flow()
    yes("~b 'hello from'", w)
    yes("~b binary", w)
    yes("~bq hello", w)
    no("~bq binary", w)
    yes("~bs binary", w)
    no("~bs hello", w)
    t = tcp_flow()
    yes("~b ping", t)
    yes("~b pong", t)
    yes("~bq ping", t)
    no("~bq pong", t)
    yes("~bs pong", t)
    no("~bs ping", t)
    u = FakeFlow()
    yes("~bq question", u)
    no("~bs question", u)


def test_headers():
    f = http_flow(response=True)
    yes("~h header", f)
    yes("~h 'header: qvalue'", f)
    yes("~h 'header-response: svalue'", f)
    yes("~hq qvalue", f)
    no("~hq svalue", f)
    yes("~hs svalue", f)
    no("~hs qvalue", f)
    yes("~h HEADER", f)
    yes(r"~h '^header-response: svalue\\r$'", f)  # MULTILINE, CRLF after every line
    yes("~hq ^content-length:", f)  # MULTILINE: a later line matches ^ too
    no("~hs anything", http_flow())
    no("~h header", tcp_flow())


def test_content_type():
    f = http_flow(
        response=True,
        req_headers={"content-type": "application/json"},
        resp_headers={"Content-Type": "text/html; charset=utf-8"},
    )
    yes("~t json", f)
    yes("~t html", f)
    yes("~tq json", f)
    no("~tq html", f)
    yes("~ts html", f)
    no("~ts json", f)
    no("~t header", http_flow())  # only Content-Type values are searched
    no("~ts .", http_flow())
    no("~t .", tcp_flow())


def test_method():
    f = http_flow(method="POST")
    yes("~m post", f)
    yes("~m ^P", f)
    no("~m get", f)
    no("~m .", tcp_flow())


def test_domain_includes_pretty_host():
    f = http_flow(url="http://10.0.0.5:8080/", req_headers={"Host": "virtual.example:8080"})
    yes("~d 10.0.0.5", f)
    yes(r"~d virtual\.example", f)
    yes("~d VIRTUAL", f)
    no("~d other", f)
    no("~d 8080", f)
    no("~d .", tcp_flow())


def test_url():
    f = http_flow(url="https://example.com/path?q=1")
    yes(r"~u example\.com/path", f)
    yes(r"~u ^https://example\.com/path\?q=1$", f)
    yes("example", f)  # bare word
    yes("EXAMPLE", f)
    no("~u other", f)
    no("other", f)
    no("~u .", tcp_flow())


def test_url_uses_pretty_url():
    f = http_flow(url="http://10.0.0.5/x", req_headers={"Host": "virtual.example"})
    yes("~u ^http://virtual.example/x$", f)
    no("~u 10.0.0.5", f)


def test_status_code():
    f = http_flow(response=True, status=404)
    yes("~c 404", f)
    yes("~c 0404", f)
    no("~c 200", f)
    no("~c 200", http_flow())
    no("~c 200", tcp_flow())


def test_src_dst():
    f = http_flow()
    yes("~src 127.0.0.1", f)
    yes("~src :22$", f)
    yes("~src ^127.0.0.1:22$", f)
    no("~src 10.0.0.1", f)
    yes("~dst address:22", f)
    no("~dst 127", f)
    t = tcp_flow()
    yes("~src 10.0.0.1:5000", t)
    yes("~dst tcp.example:7", t)
    f.client_conn.peername = None
    f.server_conn.address = None
    no("~src .*", f)
    no("~dst .*", f)


def test_marker_comment_meta():
    f = http_flow()
    no("~marker .", f)
    yes("~marker ''", f)  # an empty regex matches the empty marker
    f.marked = ":red_circle:"
    yes("~marker red", f)
    no("~marker green", f)
    f.comment = "first line\nsecond line"
    yes("~comment ^second", f)  # MULTILINE
    no("~comment third", f)
    f.metadata = {"tag": "important", "count": 3}
    yes("~meta '^count: 3$'", f)
    yes("~meta 'tag: imp'", f)
    no("~meta missing", f)


def test_case_sensitive_env(monkeypatch):
    f = http_flow(response=True)
    monkeypatch.setenv("MITMPROXY_CASE_SENSITIVE_FILTERS", "1")
    no("~b CONTENT", f)
    no("~d ADDRESS", f)
    yes("~b content", f)
    monkeypatch.setenv("MITMPROXY_CASE_SENSITIVE_FILTERS", "0")
    yes("~b CONTENT", f)


def test_regex_kinds():
    assert isinstance(parse("~b x").regex.pattern, bytes)
    assert isinstance(parse("~h x").regex.pattern, bytes)
    assert isinstance(parse("~m x").regex.pattern, bytes)
    assert isinstance(parse("~t x").regex.pattern, bytes)
    assert isinstance(parse("~d x").regex.pattern, str)
    assert isinstance(parse("x").regex.pattern, str)
    assert parse("~b x").regex.flags & re.DOTALL
    assert parse("~h x").regex.flags & re.MULTILINE
    assert parse("~meta x").regex.flags & re.MULTILINE
    assert parse("~u x").regex.flags & re.IGNORECASE
    assert parse("~b é").regex.pattern == "é".encode()


# ---------------------------------------------------------------------------
# combinators, precedence, grouping


def test_not_and_or():
    f = http_flow(response=True)
    yes("~s & ~http", f)
    no("~s & ~tcp", f)
    yes("~q | ~s", f)
    no("~q | ~tcp", f)
    yes("!~q", f)
    yes("!!~s", f)
    yes("! ~q", f)
    no("!~s", f)
    yes("~s ~http", f)  # side by side = and
    no("~s ~tcp", f)
    yes("~http & ~s & !~e & ~c 200", f)
    yes("~tcp | ~q | ~s", f)


@pytest.mark.parametrize(
    "expr, canonical",
    [
        ("~q | ~s ~e", "(~q | ~s) & ~e"),
        ("~q ~s | ~e", "~q & (~s | ~e)"),
        ("~q & ~s | ~e", "~q & ~s | ~e"),
        ("~q | ~s & ~e", "~q | ~s & ~e"),
        ("!~q & ~s", "!~q & ~s"),
        ("!(~q & ~s)", "!(~q & ~s)"),
        ("!~q | ~s", "!~q | ~s"),
        ("(~q | ~s) & ~e", "(~q | ~s) & ~e"),
        ("~q & ~s & ~e", "~q & ~s & ~e"),
        ("~q & ~s ~e", "~q & ~s & ~e"),
        ("( ~q )", "~q"),
        ("(~q)", "~q"),
        ("~q&~s", "~q & ~s"),
        ("~q|~s", "~q | ~s"),
        ("((~q))", "~q"),
        ("(~q ~s) | ~e", "~q & ~s | ~e"),
        ("!!~q", "!!~q"),
        ("~d foo|~d bar", "~d foo| & ~d bar"),
        ("foo&bar", "~u foo&bar"),
        ("~d a!b", "~d a!b"),
        ("~d !x", '~d "!x"'),
        ("(~d foo)", "~d foo"),
    ],
)
def test_precedence_and_repr(expr, canonical):
    f = parse(expr)
    assert repr(f) == canonical
    assert f.pattern == expr
    assert repr(parse(canonical)) == canonical


def test_precedence_semantics():
    q, s, e = http_flow(), http_flow(response=True), http_flow(response=True, error=True)
    # juxtaposition binds loosest: (~q | ~s) & ~e
    no("~q | ~s ~e", s)
    yes("~q | ~s ~e", e)
    # & binds tighter than |
    yes("~q | ~s & ~e", q)
    yes("~e & ~s | ~q", q)
    no("~e & (~s | ~q)", q)
    # ! binds tightest
    yes("!~q & ~s", s)
    no("!(~q | ~s)", s)


def test_tree_shape():
    f = parse("~q ~s | ~e")
    assert isinstance(f, flowfilter.And)
    assert [type(x) for x in f.filters] == [flowfilter.FReq, flowfilter.Or]  # mitmproxy's class name
    assert isinstance(f.filters[0], flowfilter.Predicate)
    assert isinstance(parse("~hq x"), flowfilter.FHeadRequest) and isinstance(parse("~u x"), flowfilter.FUrl)
    assert f.filters[0].code == "q"
    n = parse("!~q")
    assert isinstance(n, flowfilter.Not) and n.filter.code == "q"
    c = parse("~c 201")
    assert isinstance(c, flowfilter.IntPredicate) and c.num == 201
    r = parse("~d example")
    assert isinstance(r, flowfilter.RegexPredicate) and r.expr == "example" and r.code == "d"


# ---------------------------------------------------------------------------
# quoting and bare words


@pytest.mark.parametrize(
    "expr, regex",
    [
        ('~u "a b"', "a b"),
        ("~u 'a b'", "a b"),
        (r'~u "a\"b"', 'a"b'),
        (r"~u 'a\'b'", "a'b"),
        (r'~u "a\\b"', "a\\b"),
        (r'~u "a\.b"', "a.b"),  # any other escaped character stands for itself
        (r'~u "a\\.b"', r"a\.b"),
        (r'~u "a\tb\nc"', "a\tb\nc"),
        (r"~u a\.b", r"a\.b"),  # unquoted: backslashes are literal
        ('~u "it\'s"', "it's"),
        ("~u '(x)'", "(x)"),
        ('~u "~q"', "~q"),
        ('~u ""', ""),
        ('"a b"', "a b"),
        ("x|y", "x|y"),
        ("a&b!", "a&b!"),
    ],
)
def test_quoting(expr, regex):
    f = parse(expr)
    assert isinstance(f, flowfilter.RegexPredicate)
    assert f.expr == regex
    assert repr(parse(repr(f))) == repr(f)
    assert parse(repr(f)).expr == regex


def test_quoted_regex_matches():
    f = http_flow(url="http://example.com/a%20b/x.y")
    yes(r'~u "x\\.y"', f)
    yes(r'~u "a%20b/"', f)
    yes('"example.com/a"', f)
    no(r'~u "x\\.z"', f)


def test_bare_words():
    f = http_flow(url="http://example.com/index.html")
    yes("index", f)
    yes("example index", f)  # two words, both must match
    no("example other", f)
    yes("other | index", f)
    yes("!other", f)
    yes("(index)", f)
    assert repr(parse("index")) == "~u index"


# ---------------------------------------------------------------------------
# errors


@pytest.mark.parametrize(
    "expr, position, reason",
    [
        ("~x", 0, "unknown operator '~x'"),
        ("~q ~nope", 3, "unknown operator '~nope'"),
        ("~c200", 0, "~c 200"),
        ("~dexample", 0, "~d example"),
        ("~", 0, "operator name"),
        ("~d", 2, "~d needs a regular expression"),
        ("~d   ", 5, "~d needs a regular expression"),
        ("~d )", 3, "~d needs a regular expression"),
        ("(~d)", 3, "~d needs a regular expression"),
        ("~c", 2, "~c needs an integer"),
        ("~c x", 3, "~c needs an integer"),
        ("~c 2x", 3, "~c needs an integer"),
        ("~c '200'", 3, "~c needs an integer"),
        ("~c -1", 3, "~c needs an integer"),
        ("(~q", 0, "unbalanced '('"),
        ("((~q) ~s", 0, "unbalanced '('"),
        ("~q)", 2, "unbalanced ')'"),
        (")", 0, "unbalanced ')'"),
        ("()", 0, "empty parentheses"),
        ("~d 'abc", 3, "unterminated ' quote"),
        ('"abc', 0, 'unterminated " quote'),
        ('~u "abc\\"', 3, 'unterminated " quote'),
        ("~q |", 4, "missing operand after '|'"),
        ("~q &", 4, "missing operand after '&'"),
        ("~q & | ~s", 5, "missing operand after '&'"),
        ("!", 1, "missing operand after '!'"),
        ("(!)", 2, "missing operand after '!'"),
        ("& ~q", 0, "expected a filter expression before '&'"),
        ("| ~q", 0, "expected a filter expression before '|'"),
        ("   ", 0, "empty filter expression"),
        ("~u a[", 4, "invalid regular expression 'a[': unterminated character set"),
        ("~d x(?", 5, "nothing to repeat"),  # unquoted: x, then "(", then the bare word "?"
        ("~b '(unclosed'", 3, "invalid regular expression"),
        ("foo *", 4, "invalid regular expression '*'"),
        ("~h '[z-a]'", 3, "bad character range"),
    ],
)
def test_errors(expr, position, reason):
    with pytest.raises(FilterError) as info:
        parse(expr)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.position == position, str(err)
    assert reason in err.reason, str(err)
    assert err.expression == expr
    assert str(err).startswith(f"Invalid filter expression: {expr!r}")
    assert f"at position {position}" in str(err)


def test_empty_expression():
    with pytest.raises(FilterError, match="^Empty filter expression$") as info:
        parse("")
    assert info.value.position == 0


def test_nesting_limit():
    deep = "(" * 200 + "~q" + ")" * 200
    with pytest.raises(FilterError, match="nested deeper"):
        parse(deep)
    with pytest.raises(FilterError, match="nested deeper"):
        parse("!" * 200 + "~q")
    ok = "(" * 20 + "!(~q | ~s ~e)" + ")" * 20
    assert parse(ok)(http_flow()) is True
    assert parse(ok)(http_flow(error=True)) is False


def test_worst_case_nesting_still_evaluates():
    # each level nests And -> Or -> And, the deepest tree the limit allows
    expr = "~q"
    for _ in range(flowfilter.MAX_NESTING):
        expr = f"(~http ~tcp | ~all & {expr})"
    f = parse(expr)
    assert f(http_flow()) is True
    assert f(http_flow(response=True)) is False
    assert repr(parse(repr(f))) == repr(f)
    half = "!(" * (flowfilter.MAX_NESTING // 2) + "~q" + ")" * (flowfilter.MAX_NESTING // 2)
    assert parse(half)(http_flow()) is ((flowfilter.MAX_NESTING // 2) % 2 == 0)
    with pytest.raises(FilterError, match="nested deeper"):
        parse("(" + expr + ")")


def test_not_a_string():
    with pytest.raises(TypeError):
        parse(None)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------
# API: match, pattern, help


def test_match():
    f = http_flow(response=True)
    assert match("~s", f) is True
    assert match("~q", f) is False
    assert match(parse("~s"), f) is True
    assert match(None, f) is True
    assert match(flowfilter.match_all, f) is True
    with pytest.raises(FilterError):
        match("~x", f)
    with pytest.raises(ValueError):
        match("", f)


def test_pattern_and_repr():
    f = parse("  ~q   |~s  ")
    assert f.pattern == "  ~q   |~s  "
    assert repr(f) == "~q | ~s"
    inner = f.filters[0]
    assert inner.pattern == "~q"  # parts built by the parser report their normal form
    f.pattern = "custom"
    assert f.pattern == "custom"
    built = flowfilter.Or([parse("~q"), flowfilter.Not(parse("~e"))])
    assert built.pattern == "~q | !~e"
    assert built(http_flow()) is True


def test_help():
    entries = dict(flowfilter.help)
    for op in (
        "~a ~all ~e ~http ~tcp ~udp ~dns ~websocket ~q ~s ~marked ~replay ~replayq ~replays".split()
    ):
        assert op in entries, op
    for op in "b bq bs h hq hs t tq ts m d u src dst marker meta comment".split():
        assert f"~{op} regex" in entries, op
    assert "~c int" in entries
    assert [k for k, _ in flowfilter.help[-4:]] == ["!", "&", "|", "(...)"]
    ops = flowfilter.help[:-4]
    assert ops == sorted(ops)
    assert all(isinstance(d, str) and d for _, d in flowfilter.help)
    # every documented operator parses
    for syntax, _ in ops:
        parse(syntax.replace(" regex", " x").replace(" int", " 200"))


def test_type_restricted_operators_on_tcp():
    t = tcp_flow()
    for expr in (
        "~h .",
        "~hq .",
        "~hs .",
        "~t .",
        "~m .",
        "~d .",
        "~u .",
        "~c 200",
        "~a",
        "~q",
        "~s",
        "~http",
    ):
        no(expr, t)


def test_http_flow_without_request_does_not_crash():
    f = HTTPFlow(Client(peername=("127.0.0.1", 1)), Server(address=None))
    for expr in ("~m .", "~d .", "~u .", "~h .", "~t .", "~b .", "~q", "~c 200", "~dst ."):
        assert parse(expr)(f) in (True, False)


# ---------------------------------------------------------------------------
# property tests


def _sample_flows() -> list[Flow]:
    marked = http_flow(response=True, status=404)
    marked.marked = ":x:"
    marked.comment = "note"
    return [
        http_flow(),
        http_flow(response=True, error=True),
        marked,
        ws_flow(),
        tcp_flow(),
        FakeFlow(),
    ]


SAMPLE_FLOWS = _sample_flows()


@pytest.mark.filterwarnings("ignore::FutureWarning")  # re warns about "[[" in some regexes
@given(st.text())
def test_parse_arbitrary_text(text):
    try:
        f = parse(text)
    except FilterError as e:
        assert 0 <= e.position <= len(text)
        return
    assert isinstance(f, flowfilter.Filter)
    assert f.pattern == text
    for flow in SAMPLE_FLOWS:
        assert f(flow) in (True, False)
    assert repr(parse(repr(f))) == repr(f)


@pytest.mark.filterwarnings("ignore::FutureWarning")  # re warns about "[[" in some regexes
@given(st.text(alphabet="~!&|()'\"\\ \tabcdeqsmuhtx0129.*[]?", max_size=30))
def test_parse_syntax_soup(text):
    try:
        f = parse(text)
    except FilterError as e:
        assert 0 <= e.position <= len(text)
        return
    for flow in SAMPLE_FLOWS:
        assert f(flow) in (True, False)
    assert repr(parse(repr(f))) == repr(f)


_ARG_TEXT = st.text(alphabet=st.sampled_from(list("ab ()~'\"\\|&!.\n\té")), max_size=8)


def _quote_by_hand(text: str, quote_char: str) -> str:
    escaped = text.replace("\\", "\\\\").replace(quote_char, "\\" + quote_char).replace("\n", "\\n")
    return quote_char + escaped + quote_char


_LEAF = st.one_of(
    st.sampled_from(
        ["~q", "~s", "~e", "~http", "~tcp", "~websocket", "~marked", "~a", "~all", "~c 404"]
    ),
    st.sampled_from(["example", "path", "a.b", "x|y", "a&b", "~b ping", "~bq hello", "~src 127"]),
    st.builds(
        lambda op, text, q: f"~{op} {_quote_by_hand(re.escape(text), q)}",
        st.sampled_from(["b", "h", "d", "u", "comment", "marker", "meta", "t", "m"]),
        _ARG_TEXT,
        st.sampled_from(["'", '"']),
    ),
)


def _combine(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.one_of(
        st.builds(lambda a: f"!{a}" if a.startswith(("~", "(", "!")) else f"!({a})", children),
        st.builds(lambda a, b: f"{a} & {b}", children, children),
        st.builds(lambda a, b: f"{a} | {b}", children, children),
        st.builds(lambda a, b: f"{a} {b}", children, children),
        st.builds(lambda a: f"({a})", children),
    )


EXPRESSIONS = st.recursive(_LEAF, _combine, max_leaves=12)


@given(EXPRESSIONS)
def test_repr_round_trip(expr):
    f = parse(expr)
    text = repr(f)
    again = parse(text)
    assert repr(again) == text
    assert repr(parse(repr(again))) == text
    for flow in SAMPLE_FLOWS:
        assert f(flow) == again(flow), (expr, text, flow)


@given(st.text(max_size=20))
def test_quote_round_trip(text):
    f = parse("~u " + flowfilter.quote(re.escape(text)))
    assert f.expr == re.escape(text)
    assert f.regex.search(text)


def test_parse_option_unset_is_none_and_bad_is_an_options_error():
    from proxycore.exceptions import OptionsError

    assert flowfilter.parse_option(None) is None
    assert flowfilter.parse_option("") is None
    assert flowfilter.parse_option("~q").pattern == "~q"
    with pytest.raises(OptionsError, match="unbalanced"):
        flowfilter.parse_option("~q )")
