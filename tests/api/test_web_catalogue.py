"""What the web API lists, asked over HTTP, against what mitmweb 12.3.1 served on loopback
(``tests/data/mitmweb-12.3.1-catalogue.json``): the content views of ``GET /state``, the
keys of ``GET /options`` and the names of ``GET /commands``.  Every difference is one of
the deliberate ones docs/web.md lists ("Against mitmweb 12.3.1's lists")."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.addons.test_protocol_options import EXTRA_COMMANDS, EXTRA_OPTIONS, MISSING_OPTIONS
from tests.processes import ProxyWeb
from tests.webapi import request

pytestmark = pytest.mark.e2e  # proxyweb as a process

PASSWORD = "catalogue"

CATALOGUE = json.loads((Path(__file__).parents[1] / "data" / "mitmweb-12.3.1-catalogue.json").read_text())
DOCS = (Path(__file__).parents[2] / "docs" / "web.md").read_text()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyWeb]:
    """The proxyweb command: a process of its own, so that no view or option another test
    registered in this one is listed."""
    proxy = ProxyWeb(tmp_path_factory.mktemp("catalogue"), "--set", f"web_password={PASSWORD}")
    yield proxy
    assert proxy.stop() == 0


def get_json(server: ProxyWeb, path: str) -> object:
    r = request(server.web_port, "GET", path, headers={"Authorization": f"Bearer {PASSWORD}"}, auth=False)
    assert r.status == 200, r
    return r.json()


def test_state_lists_mitmwebs_content_views_in_its_order(server: ProxyWeb) -> None:
    state = get_json(server, "/state")
    assert isinstance(state, dict)
    assert state["contentViews"] == CATALOGUE["contentViews"]


def test_options_are_mitmwebs_but_for_the_documented_ones(server: ProxyWeb) -> None:
    options = get_json(server, "/options")
    assert isinstance(options, dict)
    ours, theirs = set(options), set(CATALOGUE["options"])
    assert theirs - ours == set(MISSING_OPTIONS)
    assert ours - theirs == EXTRA_OPTIONS
    for name in MISSING_OPTIONS:
        assert f"`{name}`" in DOCS, name
    for name in EXTRA_OPTIONS:
        assert f"`{name}`" in DOCS, name


def test_commands_are_mitmwebs_but_for_the_documented_ones(server: ProxyWeb) -> None:
    commands = get_json(server, "/commands")
    assert isinstance(commands, dict)
    ours, theirs = set(commands), set(CATALOGUE["commands"])
    assert theirs - ours == set()
    assert ours - theirs == EXTRA_COMMANDS
    for name in EXTRA_COMMANDS:
        assert f"`{name}`" in DOCS, name
