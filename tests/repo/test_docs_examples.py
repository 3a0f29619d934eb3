"""Every Python example in docs/addons.md loads as a script without errors."""

from __future__ import annotations

import logging
import pathlib
import re

import pytest

from proxycore.addons.script import ScriptLoader
from proxycore.master import Master

DOC = pathlib.Path(__file__).parents[2] / "docs" / "addons.md"
EXAMPLES = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)


def test_the_guide_has_examples():
    assert len(EXAMPLES) >= 6


@pytest.mark.parametrize("source", EXAMPLES, ids=[f"example{i}" for i in range(len(EXAMPLES))])
def test_example_loads_as_a_script(source, tmp_path, caplog):
    script = tmp_path / "example.py"
    script.write_text(source)
    master = Master()
    master.addons.add(ScriptLoader())
    with caplog.at_level(logging.ERROR):
        master.options.update(scripts=[str(script)])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR], caplog.text
    assert len(master.addons.get("scriptloader").addons[0].addons) == 1


def test_command_example_runs():
    source = next(e for e in EXAMPLES if "greeter.greet" in e)
    namespace: dict = {}
    exec(compile(source, "example", "exec"), namespace)
    master = Master()
    master.addons.add(*namespace["addons"])
    assert master.commands.execute("greeter.greet you 2") == "hello you hello you"


def test_changing_flows_example_does_what_it_says():
    import gzip

    from proxycore.connection import Client, Server
    from proxycore.http import HTTPFlow, Request, Response

    source = next(e for e in EXAMPLES if "def request" in e and "Proxied" in e)
    namespace: dict = {}
    exec(compile(source, "example", "exec"), namespace)

    flow = HTTPFlow(Client(peername=("127.0.0.1", 5000)), Server(address=None))
    flow.request = Request.make("GET", "http://example.com/a?x=1")
    namespace["request"](flow)
    assert flow.request.host == "127.0.0.1" and flow.request.path == "/a?x=1&via=proxycore"
    assert flow.response is None

    blocked = HTTPFlow(Client(peername=("127.0.0.1", 5000)), Server(address=None))
    blocked.request = Request.make("GET", "http://other.test/blocked")
    namespace["request"](blocked)
    assert blocked.response.status_code == 403

    # As in mitmproxy, make() stores content through .content: encoded per Content-Encoding.
    flow.response = Response.make(
        200, b"<h1>Example</h1>", {"content-type": "text/html", "content-encoding": "gzip"}
    )
    assert gzip.decompress(flow.response.raw_content) == b"<h1>Example</h1>"
    namespace["response"](flow)
    assert gzip.decompress(flow.response.raw_content) == b"<h1>Proxied</h1>"
