"""JSON shapes of the web API that the corpus comparison does not reach."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

from proxycore.api.serialize import (
    command_to_json,
    marker_char,
    options_to_json,
    to_jsonable,
    type_name,
)
from proxycore.flow import Flow
from proxycore.options import Options
from tests.flows import http_flow


def test_markers() -> None:
    assert marker_char("") == ""
    assert marker_char(":red_circle:") == "\U0001f534"
    assert marker_char(":large_blue_circle:") == "\U0001f535"
    assert marker_char(":default:") == "\u25cf"
    assert marker_char("x") == "x" and marker_char("7") == "7"  # letters and digits mark as themselves
    assert marker_char(":no_such_emoji:") == "\U0001f534" and marker_char("!") == "\U0001f534"


def test_type_names() -> None:
    assert [type_name(t) for t in (str, int, bool, bytes, pathlib.Path, Flow)] == [
        "str", "int", "bool", "bytes", "path", "flow"
    ]
    assert type_name(Sequence[Flow]) == "flow[]" and type_name(Sequence[str]) == "str[]"
    assert type_name(Sequence[Sequence[str]]) == "data[][]"
    assert type_name(dict) == "unknown"


def test_command_json() -> None:
    def cmd(self_flows: Sequence[Flow], part: str, *rest: str) -> Sequence[str]:
        """A long help text that is wrapped at seventy characters, like mitmproxy's catalogue."""
        return []

    info = command_to_json("x.y", cmd)
    assert info == {
        "help": "A long help text that is wrapped at seventy characters, like\nmitmproxy's catalogue.",
        "parameters": [
            {"name": "self_flows", "type": "flow[]", "kind": "POSITIONAL_OR_KEYWORD"},
            {"name": "part", "type": "str", "kind": "POSITIONAL_OR_KEYWORD"},
            {"name": "rest", "type": "str", "kind": "VAR_POSITIONAL"},
        ],
        "return_type": "str[]",
        "signature_help": "x.y self_flows part *rest -> str[]",
    }

    def bare() -> None:
        pass

    assert command_to_json("z", bare) == {"help": None, "parameters": [], "return_type": None, "signature_help": "z "}


def test_options_json_subset_and_types() -> None:
    options = Options()
    dumped = options_to_json(options, {"listen_port", "ignore_hosts", "nope"})
    assert list(dumped) == ["ignore_hosts", "listen_port"]
    assert dumped["listen_port"] == {
        "type": "optional int", "default": None, "value": None,
        "help": options.help("listen_port"), "choices": None,
    }
    assert dumped["ignore_hosts"]["type"] == "sequence of str"
    assert options_to_json(options, {"connection_strategy"})["connection_strategy"]["choices"] == ["eager", "lazy"]


def test_command_results_become_json() -> None:
    flow = http_flow()
    assert to_jsonable([flow])[0]["id"] == flow.id
    assert to_jsonable((b"\xff", pathlib.Path("/x"), {1: {2}})) == ["\ufffd", "/x", {"1": [2]}]
    assert to_jsonable(object()).startswith("<object")
