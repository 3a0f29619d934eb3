"""Command machinery (types, parsing, errors) and the built-in commands of Core, Export, Cut,
Save, Comment and ScriptLoader, called both with values and with text as the command bar does."""

from __future__ import annotations

import logging
import os
import pathlib
import shutil
import stat
from collections.abc import Sequence
from typing import Any

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from proxycore import command, flowfilter, types
from proxycore.addons import default_addons
from proxycore.exceptions import CommandError
from proxycore.flow import Flow
from proxycore.http import HTTPFlow
from proxycore.io import FlowReader
from proxycore.master import Master
from tests.flows import http_flow, tcp_flow, ws_flow


class Flows:
    """The smallest ``view.flows.resolve`` provider: flows in a list (the web UI has a real view)."""

    def __init__(self) -> None:
        self.flows: list[Flow] = []
        self.updated: list[Flow] = []

    @command.command("view.flows.resolve")
    def resolve(self, flow_spec: str) -> Sequence[Flow]:
        if flow_spec == "@all":
            return list(self.flows)
        if flow_spec == "@marked":
            return [f for f in self.flows if f.marked]
        if flow_spec.startswith("@"):
            ids = flow_spec[1:].split(",")
            return [f for f in self.flows if f.id in ids]
        try:
            match = flowfilter.parse(flow_spec)
        except flowfilter.FilterError as e:
            raise CommandError(str(e)) from e
        return [f for f in self.flows if match(f)]

    def update(self, flows: Sequence[Flow]) -> None:
        self.updated.extend(flows)


@pytest.fixture
def master() -> Master:
    m = Master()
    m.addons.add(*default_addons())
    return m


@pytest.fixture
def flows(master: Master) -> Flows:
    holder = Flows()
    master.addons.add(holder)
    get = http_flow(response=True)
    post = http_flow(response=True, method="POST", url="https://example.com/submit", req_body=b"a=1")
    holder.flows = [get, post, tcp_flow()]
    return holder


# machinery --------------------------------------------------------------------------


class Typed:
    """An addon using every argument type."""

    @command.command("t.all")
    def all_types(
        self,
        a: str,
        b: int,
        c: bool,
        d: bytes,
        e: types.Path,
        f: types.CutSpec,
        g: types.Marker,
        h: Sequence[str],
        i: pathlib.Path,
    ) -> None:
        self.got = [a, b, c, d, e, f, g, h, i]

    @command.command("t.choice")
    @command.argument("value", types.Choice("t.options"))
    def choice(self, value: str) -> str:
        return value

    @command.command("t.options")
    def options(self) -> Sequence[str]:
        return ["one", "two"]

    @command.command("t.flow")
    def one_flow(self, flow: Flow) -> str:
        return flow.id

    @command.command("t.bad_return")
    def bad_return(self) -> int:
        return "not an int"  # type: ignore[return-value]

    @command.command("t.varargs")
    def varargs(self, first: int, *rest: int) -> Sequence[str]:
        return [str(first), *(str(r) for r in rest)]

    @command.command("t.untyped")
    def untyped(self, x) -> None:  # type: ignore[no-untyped-def]
        pass

    @command.command("t.unknown_type")
    def unknown_type(self, x: dict) -> None:
        pass


def test_arguments_are_parsed_by_type(master: Master) -> None:
    typed = Typed()
    master.addons.add(typed)
    home = os.path.expanduser("~")
    master.commands.call_strings(
        "t.all", ["x\\ty", "42", "true", "\\x00\\xffz", "~/f", "a,b", ":red_circle:", "p, q", "~/g"]
    )
    result = typed.got
    assert result == ["x\ty", 42, True, b"\x00\xffz", f"{home}/f", ["a", "b"], ":red_circle:", ["p", "q"], pathlib.Path(home, "g")]
    assert isinstance(result[4], types.Path)
    master.commands.execute('t.all "two words" -1 false "" /x "" true x /y')
    assert typed.got[:7] == ["two words", -1, False, b"", "/x", [""], ":default:"]
    master.commands.execute("t.all a 1 false b c d false e f")
    assert typed.got[6] == ""  # false unmarks


@pytest.mark.parametrize(
    ("words", "message"),
    [
        (["a", "x", "true", "b", "p", "c", ":red_circle:", "h", "i"], "invalid literal for int"),
        (["a", "1", "yes", "b", "p", "c", ":red_circle:", "h", "i"], "Booleans are 'true' or 'false', got yes"),
        (["a", "1", "true", "b", "p", "c", ":nope:", "h", "i"], "Invalid choice."),
        (["a", "1", "true", "\\x4", "p", "c", "true", "h", "i"], "Invalid escape sequence"),
        (["a", "1"], "Command argument mismatch"),
        (["a"] * 10, "Command argument mismatch"),
    ],
)
def test_argument_errors(master: Master, words: list[str], message: str) -> None:
    master.addons.add(Typed())
    with pytest.raises(CommandError, match=message):
        master.commands.call_strings("t.all", words)


def test_choice_flow_varargs_and_return_checks(master: Master, flows: Flows) -> None:
    master.addons.add(Typed())
    cmds = master.commands
    assert cmds.execute("t.choice two") == "two"
    with pytest.raises(CommandError, match="Invalid choice."):
        cmds.execute("t.choice three")
    get = flows.flows[0]
    assert cmds.execute(f"t.flow @{get.id}") == get.id
    assert cmds.execute("t.flow ~tcp") == flows.flows[2].id
    with pytest.raises(CommandError, match="Command requires one flow, specification matched 3."):
        cmds.execute("t.flow @all")
    with pytest.raises(CommandError, match="Command requires one flow, specification matched 0."):
        cmds.execute("t.flow @nope")
    with pytest.raises(CommandError, match="Invalid filter expression"):
        cmds.execute("t.flow '~q ('")
    assert cmds.execute("t.varargs 1 2 3") == ["1", "2", "3"]
    assert cmds.execute("t.varargs 1") == ["1"]
    with pytest.raises(CommandError, match="t.bad_return returned unexpected data - expected int"):
        cmds.execute("t.bad_return")
    assert cmds.call("t.bad_return") == "not an int"  # calls with values are not checked
    with pytest.raises(CommandError, match="Unknown command: nope"):
        cmds.execute("nope")
    with pytest.raises(CommandError, match="Invalid command"):
        cmds.execute("   ")


def test_flows_need_a_view() -> None:
    m = Master()
    m.addons.add(*default_addons())
    with pytest.raises(CommandError, match="Unknown command: view.flows.resolve"):
        m.commands.execute("flow.mark @all")


def test_commands_with_unknown_types_are_skipped(master: Master, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        master.addons.add(Typed())
    assert "t.untyped" not in master.commands.commands and "t.unknown_type" not in master.commands.commands
    assert "Could not load command t.untyped: Argument x has an unknown type" in caplog.text
    assert "Could not load command t.unknown_type" in caplog.text


def test_direct_calls_with_wrong_arguments_raise_command_error(master: Master) -> None:
    with pytest.raises(CommandError, match="command argument mismatch"):
        master.commands.call("export", "curl")
    with pytest.raises(CommandError, match="command argument mismatch"):
        master.commands.call("flow.set.options", 1)


def test_signature_help_and_dump(master: Master) -> None:
    cmds = master.commands
    assert cmds.get_command("set").signature_help() == "set option *value"
    assert cmds.get_command("options.reset").signature_help() == "options.reset "
    assert cmds.get_command("export.formats").signature_help() == "export.formats  -> str[]"
    assert cmds.get_command("cut").signature_help() == "cut flows cuts -> data[][]"
    text = cmds.dump()
    assert "\nexport format f -> str\n" in text
    assert len([line for line in text.splitlines() if line and not line.startswith("#")]) == len(cmds.commands)


def test_lexer() -> None:
    assert command.lex('a "b c"  \'d\'e"f') == ["a", " ", '"b c"', "  ", "'d'", "e", '"f']
    assert [command.unquote(p) for p in command.lex('x "unterminated')] == ["x", " ", '"unterminated']
    assert command.quote("plain") == "plain" and command.quote("") == '""'
    assert command.quote("a b") == '"a b"' and command.quote('say "hi"') == "'say \"hi\"'"
    assert command.quote("it's \"x\"") == '"it\'s \\x22x\\x22"'


@pytest.fixture(scope="module")
def full_master() -> Master:
    """One master with every default addon for all examples (building it per example cost
    ~50 ms each); the examples then also run against whatever state earlier ones left."""
    m = Master()
    m.addons.add(*default_addons())
    return m


@given(st.text())
def test_execute_raises_only_command_errors(full_master: Master, text: str) -> None:
    try:
        full_master.commands.execute(text)
    except CommandError:
        pass


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), min_size=0, max_size=30))
def test_quoted_words_come_back_whole(word: str) -> None:
    # With both quote kinds, " is written as \x22 and the str type decodes escapes again.
    assume(not ("'" in word and '"' in word and "\\" in word))
    pieces = command.words(command.quote(word))
    assert len(pieces) == 1
    back = pieces[0]
    assert (types.unescape(back) if back != word else back) == word


@given(st.text(max_size=40))
def test_type_parsers_raise_only_value_errors(text: str) -> None:
    for t in (int, bool, bytes, str, types.Marker, types.CutSpec, Sequence[str]):
        handler = types.handler(t)
        assert handler is not None
        try:
            handler.parse(None, t, text)  # type: ignore[arg-type]
        except ValueError:
            pass


# core -----------------------------------------------------------------------------


def test_set(master: Master) -> None:
    cmds, opts = master.commands, master.options
    cmds.execute("set anticache")
    assert opts.anticache is True
    cmds.execute("set anticache false")
    cmds.execute("set anticache toggle")
    assert opts.anticache is True
    cmds.execute("set listen_port 8081")
    cmds.execute("set listen_port")
    assert opts.listen_port is None
    cmds.execute("set ignore_hosts a b")
    assert opts.ignore_hosts == ["a", "b"]
    cmds.execute("set ignore_hosts")
    assert opts.ignore_hosts == []
    with pytest.raises(CommandError, match="Received multiple values for listen_host"):
        cmds.execute("set listen_host a b")
    with pytest.raises(CommandError, match="Unknown option"):
        cmds.execute("set nope 1")
    with pytest.raises(CommandError):
        cmds.execute("set listen_port x")


def test_options_reset_one_save_load(master: Master, tmp_path: pathlib.Path) -> None:
    cmds, opts = master.commands, master.options
    cmds.execute("set listen_port 9999")
    cmds.execute("set ignore_hosts example.com")
    cmds.execute("options.reset.one listen_port")
    assert opts.listen_port is None
    with pytest.raises(CommandError, match="No such option: nope"):
        cmds.execute("options.reset.one nope")
    path = tmp_path / "options.yaml"
    path.write_text("# mine\nlisten_port: 1234\nnot_an_option: 1\n")
    cmds.execute(f"options.save {path}")
    saved = path.read_text()
    assert "ignore_hosts:\n- example.com\n" in saved and "listen_port: 1234" in saved
    assert "not_an_option" not in saved
    cmds.execute("options.reset")
    assert opts.ignore_hosts == []
    cmds.execute(f"options.load {path}")
    assert opts.ignore_hosts == ["example.com"] and opts.listen_port == 1234
    cmds.execute(f"options.load {tmp_path / 'missing.yaml'}")  # missing files are skipped
    path.write_text("listen_port: [1\n")
    with pytest.raises(CommandError, match=r"Could not load options - Error reading .*: Config error at line"):
        cmds.execute(f"options.load {path}")
    path.write_text("listen_port: notanumber\n")
    with pytest.raises(CommandError, match="Could not load options"):
        cmds.execute(f"options.load {path}")
    path.write_text("just a string\n")
    with pytest.raises(CommandError, match="no keys found"):
        cmds.execute(f"options.load {path}")
    with pytest.raises(CommandError, match="Could not save options"):
        cmds.execute(f"options.save {tmp_path / 'no' / 'dir.yaml'}")


def test_options_load_keeps_unknown_options_and_resolves_scripts(master: Master, tmp_path: pathlib.Path) -> None:
    (tmp_path / "s.py").write_text("")
    path = tmp_path / "conf.yaml"
    path.write_text("scripts: [s.py]\nlater_option: 5\n")
    master.commands.call("options.load", str(path))
    assert master.options.scripts == [str(tmp_path / "s.py")]

    class Later:
        def load(self, loader: Any) -> None:
            loader.add_option("later_option", int, 0, "Declared after the file was loaded.")

    master.addons.add(Later())
    assert master.options.later_option == 5


def test_mark_toggle_comment(master: Master, flows: Flows) -> None:
    cmds = master.commands
    get, post, tcp = flows.flows
    cmds.execute(f"flow.mark @{get.id} :red_circle:")
    assert get.marked == ":red_circle:" and flows.updated == [get]
    cmds.execute("flow.mark @all true")
    assert {f.marked for f in flows.flows} == {":default:"}
    cmds.execute("flow.mark ~tcp false")
    assert tcp.marked == ""
    with pytest.raises(CommandError, match="Invalid choice."):
        cmds.execute("flow.mark @all :no_such_emoji:")
    with pytest.raises(CommandError, match="invalid marker value"):
        cmds.call("flow.mark", [get], ":no_such_emoji:")
    cmds.execute("flow.mark.toggle @all")
    assert [f.marked for f in flows.flows] == ["", "", ":default:"]
    cmds.execute("flow.comment ~http 'checked by hand'")
    assert get.comment == post.comment == "checked by hand" and tcp.comment == ""


def test_resume_and_kill(master: Master, flows: Flows) -> None:
    get, post, _ = flows.flows
    get.intercept()
    get.live = post.live = True
    master.commands.execute("flow.resume @all")
    assert not get.intercepted
    master.commands.execute(f"flow.kill @{post.id}")
    assert post.error is not None and post.error.msg == "Connection killed."
    assert not get.error


def test_flow_set(master: Master, flows: Flows) -> None:
    cmds = master.commands
    get, post, tcp = flows.flows
    cmds.execute("flow.set @all method PUT")
    assert get.request.method == post.request.method == "PUT"
    cmds.execute(f"flow.set @{get.id} host example.org")
    assert get.request.host == "example.org" and get.request.pretty_url == "http://example.org:22/path"
    cmds.execute(f"flow.set @{get.id} path /new?x=1")
    assert get.request.path == "/new?x=1"
    cmds.execute(f"flow.set @{post.id} url https://other.example:8443/p")
    assert (post.request.host, post.request.port, post.request.path) == ("other.example", 8443, "/p")
    cmds.execute("flow.set @all status_code 404")
    assert get.response.status_code == 404 and get.response.reason == "Not Found"
    cmds.execute("flow.set @all status_code 599")
    assert get.response.status_code == 599 and get.response.reason == "Not Found"  # unknown code: reason kept
    cmds.execute("flow.set @all reason Gone")
    assert post.response.reason == "Gone"
    with pytest.raises(CommandError, match="Status code is not an integer: abc"):
        cmds.execute("flow.set @all status_code abc")
    with pytest.raises(CommandError, match="URL 'nope' is invalid"):
        cmds.execute("flow.set @all url nope")
    with pytest.raises(CommandError, match="Invalid choice."):
        cmds.execute("flow.set @all scheme https")
    with pytest.raises(CommandError, match="Invalid attribute"):
        cmds.call("flow.set", [get], "scheme", "https")
    assert tcp.error is None
    assert cmds.execute("flow.set.options") == ["host", "status_code", "method", "path", "url", "reason"]


def test_encode_decode_revert(master: Master, flows: Flows) -> None:
    cmds = master.commands
    get = flows.flows[0]
    get.response.content = b"hello " * 100
    cmds.execute(f"flow.encode @{get.id} response gzip")
    assert get.response.headers["content-encoding"] == "gzip"
    assert get.response.raw_content != get.response.content == b"hello " * 100
    assert get.modified()
    cmds.execute(f"flow.encode @{get.id} response br")  # already encoded: left alone
    assert get.response.headers["content-encoding"] == "gzip"
    cmds.execute(f"flow.decode @{get.id} response")
    assert "content-encoding" not in get.response.headers and get.response.raw_content == b"hello " * 100
    cmds.execute(f"flow.encode.toggle @{get.id} response")
    assert get.response.headers["content-encoding"] == "deflate"
    cmds.execute(f"flow.encode.toggle @{get.id} response")
    assert "content-encoding" not in get.response.headers
    cmds.execute("flow.revert @all")  # back to before the first command's backup
    assert "content-encoding" not in get.response.headers and get.response.raw_content == b"hello " * 100
    assert not get.modified()
    with pytest.raises(CommandError, match="Invalid choice."):
        cmds.execute(f"flow.encode @{get.id} response compress")
    with pytest.raises(CommandError, match="Invalid encoding"):
        cmds.call("flow.encode", [get], "response", "compress")
    cmds.execute("flow.decode @all nothing")  # not request/response: nothing to do
    get.response.headers["content-encoding"] = "gzip"
    get.response.raw_content = b"not gzip"
    with pytest.raises(CommandError, match="Cannot decode the response"):
        cmds.execute(f"flow.decode @{get.id} response")
    assert cmds.execute("flow.encode.options") == ["gzip", "deflate", "br", "zstd"]


# export -----------------------------------------------------------------------------


def test_export_commands(master: Master, flows: Flows, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    cmds = master.commands
    post = flows.flows[1]
    assert cmds.execute("export.formats") == ["curl", "httpie", "raw", "raw_request", "raw_response"]
    curl = cmds.execute(f"export curl @{post.id}")
    assert curl == "curl -H 'header: qvalue' -X POST https://example.com/submit -d a=1"
    assert cmds.execute(f"export httpie @{post.id}") == "http POST https://example.com/submit 'header: qvalue' <<< a=1"
    assert cmds.execute(f"export raw_request @{post.id}").startswith("POST /submit HTTP/1.1\r\n")
    with pytest.raises(CommandError, match="No such export format: har"):
        cmds.execute(f"export har @{post.id}")
    with pytest.raises(CommandError, match="Can't export flow with no request."):
        cmds.execute("export curl ~tcp")
    with pytest.raises(CommandError, match="Can't export flow with no request or response."):
        cmds.execute("export raw ~tcp")
    target = tmp_path / "req.sh"
    cmds.execute(f"export.file curl @{post.id} {target}")
    assert target.read_text() == curl
    cmds.execute(f"export.file raw_response @{post.id} {target}")
    assert target.read_bytes().endswith(b"\r\n\r\nmessage")
    with caplog.at_level(logging.ERROR):
        cmds.execute(f"export.file curl @{post.id} {tmp_path / 'no' / 'such'}")
    assert "No such file or directory" in caplog.text


def test_export_binary_and_surrogates(master: Master) -> None:
    flow = http_flow(response=True, method="POST", req_body=b"\xff\xfe\xfd")
    master.commands.call("export", "raw_request", flow)
    text = master.commands.call("export", "raw_request", flow)
    assert text.endswith("\\xff\\xfe\\xfd")  # undecodable bytes as escapes, never surrogates
    text.encode("utf-8")


def fake_clipboard(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, *, fails: bool = False) -> pathlib.Path:
    """An xclip on PATH that stores what it is given (a real process, as the real tool is)."""
    out = tmp_path / "clipboard.txt"
    tool = tmp_path / "bin" / "xclip"
    tool.parent.mkdir()
    body = "echo 'Error: cannot open display' >&2; exit 1" if fails else f'exec {shutil.which("cat")} > "{out}"'
    tool.write_text(f"#!/bin/sh\n{body}\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", str(tool.parent))
    monkeypatch.setenv("DISPLAY", ":0")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    return out


@pytest.mark.e2e
def test_clip_commands(master: Master, flows: Flows, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = fake_clipboard(tmp_path, monkeypatch)
    post = flows.flows[1]
    master.commands.execute(f"export.clip curl @{post.id}")
    assert out.read_text() == master.commands.execute(f"export curl @{post.id}")
    master.commands.execute(f"cut.clip @{post.id} request.method")
    assert out.read_text() == "POST"
    master.commands.execute("cut.clip ~http request.method,response.status_code")
    assert out.read_bytes() == b"GET,200\r\nPOST,200\r\n"


def test_clip_without_a_tool_is_a_clear_error(
    master: Master, flows: Flows, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    with caplog.at_level(logging.ERROR):  # logged, not raised, as mitmproxy's clip commands
        master.commands.execute("export.clip curl '~m POST'")
        assert "No clipboard tool found: install wl-clipboard" in caplog.text
        caplog.clear()
        master.commands.execute("cut.clip @all request.method")
        assert "No clipboard tool found" in caplog.text


@pytest.mark.e2e
def test_clip_tool_failure(
    master: Master, flows: Flows, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    fake_clipboard(tmp_path, monkeypatch, fails=True)
    with caplog.at_level(logging.ERROR):
        master.commands.execute("export.clip curl '~m POST'")
    assert "xclip failed: Error: cannot open display" in caplog.text


def test_clip_uses_pyperclip_when_installed(master: Master, flows: Flows, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    copied: list[str] = []
    fake = types.ModuleType("pyperclip")
    fake.PyperclipException = RuntimeError  # type: ignore[attr-defined]
    fake.copy = copied.append  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pyperclip", fake)
    monkeypatch.setenv("PATH", "/nonexistent")  # no tool: pyperclip it is
    master.commands.execute("cut.clip '~m POST' request.method")
    assert copied == ["POST"]


# cut --------------------------------------------------------------------------------


def test_cut(master: Master, flows: Flows) -> None:
    cmds = master.commands
    rows = cmds.execute("cut ~http request.method,response.status_code,request.header[header],request.content")
    assert rows == [["GET", "200", "qvalue", b"content"], ["POST", "200", "qvalue", b"a=1"]]
    rows = cmds.execute("cut ~tcp server_conn.address.host,server_conn.address.port,client_conn.peername.port,request.method")
    assert rows == [["tcp.example", "7", "5000", ""]]
    assert cmds.execute("cut ~http client_conn.tls_established") == [["false"], ["false"]]
    with pytest.raises(CommandError, match="Can't access internal attribute _backup"):
        cmds.execute("cut @all _backup")
    with pytest.raises(CommandError, match="Invalid header spec: header\\[x"):
        cmds.execute("cut ~http request.header[x")
    ws = ws_flow()
    flows.flows.append(ws)
    assert cmds.execute(f"cut @{ws.id} response.content") == [
        [b"[OUTGOING] hello from client\n[INCOMING] \x00binary from server"]
    ]


def test_cut_save(master: Master, flows: Flows, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    cmds = master.commands
    post = flows.flows[1]
    post.response.content = b"\x00\xffbinary"
    one = tmp_path / "one.bin"
    cmds.execute(f"cut.save @{post.id} response.content {one}")
    assert one.read_bytes() == b"\x00\xffbinary"
    cmds.execute(f"cut.save @{post.id} request.method +{one}")
    assert one.read_bytes() == b"\x00\xffbinary\nPOST"
    table = tmp_path / "t.csv"
    cmds.execute(f"cut.save ~http request.method,response.content {table}")
    assert table.read_bytes() == b"GET,b'message'\r\nPOST,b'\\x00\\xffbinary'\r\n"
    cmds.execute(f"cut.save ~http request.method +{table}")
    assert table.read_bytes().endswith(b"\r\nGET\r\nPOST\r\n")
    with caplog.at_level(logging.ERROR):
        cmds.execute(f"cut.save @all request.method {tmp_path / 'no' / 'dir.csv'}")
    assert "No such file or directory" in caplog.text


# save.file, script.run ------------------------------------------------------------


def test_save_file(master: Master, flows: Flows, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "out.mitm"
    with caplog.at_level(logging.INFO):
        master.commands.execute(f"save.file ~http {path}")
    assert "Saved 2 flows." in caplog.text

    def read() -> list[Flow]:
        with open(path, "rb") as fp:
            return list(FlowReader(fp).stream())

    assert [f.id for f in read()] == [f.id for f in flows.flows[:2]]
    master.commands.execute(f"save.file ~tcp +{path}")
    assert [f.id for f in read()] == [f.id for f in flows.flows]
    master.commands.execute(f"save.file ~tcp {path}")
    assert [f.type for f in read()] == ["tcp"]
    with caplog.at_level(logging.INFO):
        master.commands.execute(f"save.file @all {tmp_path / 'x.har'}")
    assert "To save HAR files, use the `save.har` command." in caplog.text
    with pytest.raises(CommandError, match="No such file or directory"):
        master.commands.execute(f"save.file @all {tmp_path / 'no' / 'x.mitm'}")


def test_script_run(master: Master, flows: Flows, tmp_path: pathlib.Path, caplog: pytest.LogCaptureFixture) -> None:
    script = tmp_path / "tag.py"
    script.write_text(
        "seen = []\n"
        "def configure(updated):\n    seen.append('configure')\n"
        "def running():\n    seen.append('running')\n"
        "def request(flow):\n    flow.request.headers['x-tag'] = 'ran'\n"
        "def response(flow):\n    flow.comment = ','.join(seen)\n"
        "def tcp_message(flow):\n    flow.comment += flow.messages[-1].content.decode()\n"
    )
    master.commands.execute(f"script.run @all {script}")
    get, post, tcp = flows.flows
    assert get.request.headers["x-tag"] == post.request.headers["x-tag"] == "ran"
    assert get.comment == "configure,running"
    assert tcp.comment == "ping requestpong reply" and len(tcp.messages) == 2
    assert master.addons.get(f"scriptmanager:{script}") is None  # not kept
    with caplog.at_level(logging.ERROR):
        master.commands.execute(f"script.run @all {tmp_path / 'missing.py'}")
    assert "No such script" in caplog.text
    bad = tmp_path / "bad.py"
    bad.write_text("def request(flow):\n    raise ValueError('boom')\n")
    with caplog.at_level(logging.ERROR):
        master.commands.execute(f"script.run ~http {bad}")
    assert "boom" in caplog.text


def test_update_hook_fires_for_changed_flows(master: Master, flows: Flows) -> None:
    get = flows.flows[0]
    for line in (
        f"flow.set @{get.id} method PUT",
        f"flow.decode @{get.id} response",
        f"flow.comment @{get.id} hi",
        f"flow.mark.toggle @{get.id}",
    ):
        flows.updated.clear()
        master.commands.execute(line)
        assert flows.updated == [get], line


def test_flow_view_types_are_http_flows() -> None:
    assert types.handler(HTTPFlow).display == "flow"  # type: ignore[union-attr]
    assert types.typename(Sequence[HTTPFlow]) == "flow[]"
    with pytest.raises(CommandError, match="unsupported type: dict"):
        types.typename(dict)


def test_docs_example_runs(master: Master, tmp_path: pathlib.Path) -> None:
    doc = (pathlib.Path(__file__).parents[2] / "docs" / "commands.md").read_text()
    source = doc.split("```python\n", 1)[1].split("```", 1)[0].replace("/tmp/", f"{tmp_path}/")
    namespace: dict[str, Any] = {}
    exec(compile(source, "commands.md", "exec"), namespace)
    flow = http_flow(response=True)
    namespace["response"](flow)
    namespace["response"](flow)
    assert (tmp_path / "last-request.sh").read_text() == master.commands.call("export", "curl", flow)
    with open(tmp_path / "all.mitm", "rb") as fp:
        assert len(list(FlowReader(fp).stream())) == 2


# browser.start ------------------------------------------------------------------------


def fake_browser(tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, name: str) -> pathlib.Path:
    """A browser executable on PATH that records its arguments and its profile, then waits."""
    record = tmp_path / f"{name}.args"
    tool = tmp_path / "bin" / name
    tool.parent.mkdir(exist_ok=True)
    tool.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do echo "$a"; done > "{record}.tmp"\n'
        f'if [ "$1" = --profile ]; then cat "$2/prefs.js" >> "{record}.tmp"; fi\n'
        f'mv "{record}.tmp" "{record}"\n'
        "exec sleep 60\n"
    )
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{tool.parent}:/usr/bin:/bin")
    return record


def wait_for(path: pathlib.Path) -> str:
    import time

    deadline = time.monotonic() + 10
    while not path.exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    return path.read_text()


@pytest.mark.e2e
def test_browser_start(master: Master, tmp_path: pathlib.Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    chromium = fake_browser(tmp_path, monkeypatch, "chromium")
    firefox = fake_browser(tmp_path, monkeypatch, "firefox")
    master.options.update(listen_host="127.0.0.2", listen_port=9091)
    master.commands.execute("browser.start")
    args = wait_for(chromium).splitlines()
    assert "--proxy-server=127.0.0.2:9091" in args and args[-1] == "about:blank"
    profile = pathlib.Path(args[0].removeprefix("--user-data-dir="))
    assert profile.is_dir()
    with caplog.at_level(logging.INFO):
        master.commands.execute("browser.start firefox")
    assert "Starting additional browser" in caplog.text
    text = wait_for(firefox)
    assert 'user_pref("network.proxy.ssl", "127.0.0.2");' in text and 'user_pref("network.proxy.http_port", 9091);' in text
    browser = master.addons.get("browser")
    processes = list(browser.browsers)
    browser.done()
    assert all(p.poll() is not None for p in processes) and not profile.exists()
    with caplog.at_level(logging.INFO):
        master.commands.execute("browser.start netscape")
    assert "Invalid browser name." in caplog.text
    monkeypatch.setenv("PATH", "/nonexistent")
    with caplog.at_level(logging.INFO):
        master.commands.execute("browser.start chrome")
    assert "Could not find Chrome or Chromium" in caplog.text


def test_every_built_in_command_describes_itself() -> None:
    """proxycore's own commands are not checked when an addon is added (that cost every start
    ~3 ms): here each one, in every built-in addon module, is, as a script's command would be
    (known parameter and return types, readable annotations)."""
    import importlib
    import pkgutil

    import proxycore.addons

    manager = command.CommandManager(None)
    checked = []
    for info in pkgutil.iter_modules(proxycore.addons.__path__):
        module = importlib.import_module(f"proxycore.addons.{info.name}")
        for cls in [v for v in vars(module).values() if isinstance(v, type) and v.__module__ == module.__name__]:
            for attr, value in vars(cls).items():
                name = getattr(value, "command_name", None)
                if isinstance(name, str):
                    bound = value.__get__(object.__new__(cls))  # no __init__: only the signature is read
                    assert command.Command(manager, name, bound).signature_help().startswith(name), attr
                    checked.append(name)
    assert {"flow.mark", "export.file", "cut", "store.export", "view.flows.resolve", "save.file"} <= set(checked)

