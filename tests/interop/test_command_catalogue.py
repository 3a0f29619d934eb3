"""Our commands' signatures against real mitmweb's catalogue (``GET /commands``).

``tests/data/corpus-all.webextra.json`` holds what mitmweb served; for every command
proxycore has, the parameter names, types and kinds, the return type and the
signature line must be the same, so the web UI's command bar and scripts see
the commands they know.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from proxycore.addons import default_addons
from proxycore.command import Command, typename
from proxycore.master import Master

CATALOGUE = json.loads((Path(__file__).parents[1] / "data" / "corpus-all.webextra.json").read_text())["GET /commands"]

# Commands other parts provide: the web UI's view, history and event store (proxyweb),
# save.har (HAR export).
ELSEWHERE = ("view.", "commands.history.", "eventstore.", "save.har")


def ours() -> dict[str, Command]:
    master = Master()
    master.addons.add(*default_addons())
    return {name: master.commands.get_command(name) for name in master.commands.commands}


COMMANDS = ours()


def describe(cmd: Command) -> dict[str, object]:
    return {
        "parameters": [{"name": p.name, "type": typename(p.type), "kind": p.kind.name} for p in cmd.parameters],
        "return_type": typename(cmd.return_type) if cmd.return_type is not None else None,
        "signature_help": cmd.signature_help(),
    }


def test_every_mitmweb_command_is_here_or_elsewhere() -> None:
    missing = sorted(n for n in CATALOGUE if n not in COMMANDS and not n.startswith(ELSEWHERE))
    assert missing == []
    extra = sorted(n for n in COMMANDS if n not in CATALOGUE)
    assert extra == ["proxyserver.active_connections"]  # mitmproxy has it too, mitmweb 11 did not list it


@pytest.mark.parametrize("name", sorted(n for n in CATALOGUE if n in COMMANDS))
def test_signature_matches_mitmweb(name: str) -> None:
    expected = {k: v for k, v in CATALOGUE[name].items() if k != "help"}
    assert describe(COMMANDS[name]) == expected


def test_every_command_has_help() -> None:
    assert [n for n, c in COMMANDS.items() if not c.help] == []
