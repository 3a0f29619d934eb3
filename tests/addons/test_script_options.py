"""``proxydump -s script.py --set script_option=value``: the value waits for the script."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proxycore.exceptions import OptionsError
from proxycore.options import Options

# real sockets on 127.0.0.1 or a real process: see tests/e2e_guard.py
pytestmark = pytest.mark.e2e

SCRIPT = textwrap.dedent(
    """
    import logging
    from typing import Sequence

    from mitmproxy import ctx


    class Tag:
        def load(self, loader):
            loader.add_option("tag_value", str, "default", "x-tag value")
            loader.add_option("tag_count", int, 1, "how many")
            loader.add_option("tag_on", bool, False, "switch")
            loader.add_option("tag_list", Sequence[str], [], "items")

        def running(self):
            o = ctx.options
            logging.getLogger("tag").warning(f"TAG {o.tag_value!r} {o.tag_count!r} {o.tag_on!r} {o.tag_list!r}")
            ctx.master.shutdown()


    addons = [Tag()]
    """
)


def proxydump(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "tag.py"
    script.write_text(SCRIPT)
    return subprocess.run(
        [sys.executable, "-m", "proxycore", "-n", "-s", str(script), *args],
        capture_output=True, text=True, timeout=60,
    )


def test_set_applies_to_options_a_script_declares(tmp_path):
    r = proxydump(
        tmp_path, "--set", "tag_value=hello", "--set", "tag_count=3", "--set", "tag_on",
        "--set", "tag_list=a", "--set", "tag_list=b",
    )
    assert r.returncode == 0, r.stderr
    assert "TAG 'hello' 3 True ['a', 'b']" in r.stdout + r.stderr


def test_defaults_without_set(tmp_path):
    r = proxydump(tmp_path)
    assert r.returncode == 0, r.stderr
    assert "TAG 'default' 1 False []" in r.stdout + r.stderr


def test_bad_value_for_a_script_option_is_a_clean_error(tmp_path):
    r = proxydump(tmp_path, "--set", "tag_count=many")
    assert r.returncode == 1
    assert "tag_count" in r.stderr and "Traceback" not in r.stderr


def test_option_nobody_declares_is_still_unknown(tmp_path):
    r = proxydump(tmp_path, "--set", "tag_valeu=typo")
    assert r.returncode == 1
    assert "Unknown option: tag_valeu" in r.stderr


def test_deferred_set_keeps_every_item_of_a_sequence():
    from collections.abc import Sequence

    opts = Options()
    opts.set("later_list=a", "later_list=b", "later_flag", defer=True)
    assert opts.deferred_names() == ["later_flag", "later_list"]
    opts.add_option("later_list", Sequence[str], [], "")
    opts.add_option("later_flag", bool, False, "")
    assert (opts.later_list, opts.later_flag) == (["a", "b"], True)
    assert opts.deferred_names() == []


def test_deferred_bad_value_fails_when_declared():
    opts = Options()
    opts.set("later_int=x", defer=True)
    try:
        opts.add_option("later_int", int, 0, "")
    except OptionsError as e:
        assert "later_int" in str(e)
    else:
        raise AssertionError("a bad deferred value must be refused")


def test_config_yaml_in_confdir_is_read_and_the_command_line_wins(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yaml").write_text(
        "tag_value: from-file\ntag_count: 7\nweb_port: 9999  # another tool's option: ignored\n"
    )
    r = proxydump(tmp_path, "--set", f"confdir={conf}", "--set", "tag_count=8")
    assert r.returncode == 0, r.stderr
    assert "TAG 'from-file' 8 False []" in r.stdout + r.stderr


def test_broken_config_yaml_is_a_clean_error(tmp_path):
    conf = tmp_path / "conf"
    conf.mkdir()
    (conf / "config.yml").write_text("tag_value: [unclosed\n")
    r = proxydump(tmp_path, "--set", f"confdir={conf}")
    assert r.returncode == 1
    assert "config.yml" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.e2e
def test_script_reloads_when_its_file_changes(tmp_path):
    import os
    import time
    import urllib.request

    from tests.e2e_servers import start_http
    from tests.processes import Proxy

    script = tmp_path / "version.py"
    script.write_text("def response(flow):\n    flow.response.headers['x-version'] = '1'\n")
    origin, port = start_http()
    proxy = Proxy(["-s", str(script)], tmp_path)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": proxy.url}))

    def version() -> str | None:
        with opener.open(f"http://127.0.0.1:{port}/get", timeout=10) as response:
            return response.headers.get("x-version")

    try:
        assert version() == "1"
        script.write_text(
            "from mitmproxy import http\n\n"
            "def response(flow: http.HTTPFlow):\n    flow.response.headers['x-version'] = '2'\n"
        )
        stat = script.stat()
        os.utime(script, (stat.st_atime, stat.st_mtime + 5))  # a new mtime even on coarse clocks
        deadline = time.monotonic() + 15
        while version() != "2":
            assert time.monotonic() < deadline, proxy.stderr()
            time.sleep(0.2)
        assert "Reloading script" in proxy.stderr()
    finally:
        assert proxy.stop() == 0
        origin.shutdown()


def test_deferred_option_declared_while_the_same_update_runs():
    """A worker's first options carry ``scripts`` and the script's option together: the
    script declares it while that update is applied, and must find the value waiting."""
    opts = Options()
    opts.add_option("loads_script", bool, False, "declares script_opt when switched on")

    def declare(options: Options, updated: set[str]) -> None:
        options.add_option("script_opt", str, "default", "the script's own option")

    opts.subscribe(declare, ["loads_script"])
    opts.update_defer(loads_script=True, script_opt="from the primary")
    assert opts.script_opt == "from the primary"
    assert opts.deferred_names() == []
