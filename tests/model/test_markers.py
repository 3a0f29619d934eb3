"""The one marker table (proxycore/utils/markers.json, read by proxycore.utils.emoji):
every marker the web UI offers and every one a command accepts shows as its own
character in the web API, the console and ``flow.mark``; unknown ones show as mitmweb
shows them (a red circle).  tools/make_markers.py's conversion is checked on a few
entries shaped like GitHub's list (the script itself is never run by the tests)."""

from __future__ import annotations

import importlib.util
import string
from pathlib import Path

import pytest

from proxycore import types
from proxycore.tools.console.common import render_marker
from proxycore.utils.emoji import MARKERS, UNKNOWN_MARKER, emoji, marker_char

ROOT = Path(__file__).resolve().parents[2]

# The Mark menu of mitmproxy's web front end (the names it sends to flow.mark), and
# the marker the "m" key and `flow.mark` without an argument set.
UI_MARKERS = {
    ":red_circle:": "\U0001f534",
    ":orange_circle:": "\U0001f7e0",
    ":yellow_circle:": "\U0001f7e1",
    ":green_circle:": "\U0001f7e2",
    ":large_blue_circle:": "\U0001f535",
    ":purple_circle:": "\U0001f7e3",
    ":brown_circle:": "\U0001f7e4",
    ":default:": "\u25cf",
}


@pytest.mark.parametrize("name", sorted(UI_MARKERS))
def test_every_marker_the_ui_offers_resolves(name: str) -> None:
    from api.serialize import marker_char as web_marker

    assert web_marker(name) == marker_char(name) == UI_MARKERS[name]
    assert render_marker(name) == UI_MARKERS[name][0]
    assert name in types.ALL_MARKERS


@pytest.mark.parametrize("name", sorted(UI_MARKERS))
def test_flow_mark_accepts_every_ui_marker(name: str) -> None:
    from proxycore.addons import default_addons
    from proxycore.master import Master
    from tests.model.test_flowfilter import http_flow

    master = Master()
    master.addons.add(*default_addons())
    flow = http_flow(response=True)
    master.commands.call("flow.mark", [flow], name)
    assert flow.marked == name


def test_the_table_is_the_whole_list() -> None:
    assert MARKERS is emoji
    assert len(MARKERS) > 1800  # GitHub's emoji, not a hand-picked few
    for char in string.ascii_letters + string.digits:
        assert marker_char(char) == char
    assert marker_char("") == ""
    assert marker_char(":no_such_emoji:") == UNKNOWN_MARKER == "\U0001f534"
    # A name the old web-only table had and GitHub's list does not: shown as unknown,
    # exactly as mitmweb shows it.
    assert ":blue_circle:" not in MARKERS and marker_char(":blue_circle:") == UNKNOWN_MARKER


def test_every_name_resolves_to_visible_text() -> None:
    for name, char in MARKERS.items():
        assert char and char.isprintable() or "\u200d" in char, name


def test_one_table_in_the_tree() -> None:
    """No second copy of the table in the web API or elsewhere."""
    for path in [*(ROOT / "api").rglob("*.py"), *(ROOT / "proxycore").rglob("*.py"), *(ROOT / "addons").rglob("*.py")]:
        text = path.read_text(encoding="utf-8")
        assert text.count('":red_circle:"') + text.count("':red_circle:'") <= 1, path


def load_tool():
    spec = importlib.util.spec_from_file_location("make_markers", ROOT / "tools" / "make_markers.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_generator_converts_githubs_list() -> None:
    tool = load_tool()
    base = "https://github.githubassets.com/images/icons/emoji/"
    table = tool.build(
        {
            "+1": base + "unicode/1f44d.png?v8",
            "afghanistan": base + "unicode/1f1e6-1f1eb.png?v8",
            "octocat": base + "octocat.png?v8",
        }
    )
    assert table[":+1:"] == "\U0001f44d" == MARKERS[":+1:"]
    assert table[":afghanistan:"] == "\U0001f1e6\u200d\U0001f1eb" == MARKERS[":afghanistan:"]
    assert ":octocat:" not in table
    assert table[":default:"] == "\u25cf" and table["a"] == "a" and table["9"] == "9"
    assert list(table)[-62:] == list(string.ascii_letters + string.digits)
