"""The ``mitmproxy`` import alias (proxycore.compat) and the pytest plugin.

The alias changes interpreter-wide state (sys.meta_path, sys.modules), so every check runs
in a fresh interpreter.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from proxycore.compat import ALIASES, target_name


def run_python(code: str, cwd: Path | None = None, env_path: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = None
    if env_path is not None:
        import os

        env = {**os.environ, "PYTHONPATH": str(env_path)}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=60, cwd=cwd, env=env,
    )


def test_target_name_longest_prefix_wins():
    assert target_name("mitmproxy") == "proxycore"
    assert target_name("mitmproxy.http") == "proxycore.http"
    assert target_name("mitmproxy.proxy.layers.http") == "proxycore.layers.http"
    assert target_name("mitmproxy.addons.block") == "proxycore.addons.block"
    assert target_name("mitmproxy.utils.spec") == "proxycore.utils.spec"
    with pytest.raises(ValueError):
        target_name("mitmproxyx")


def test_every_alias_target_exists():
    import importlib

    for name, target in ALIASES.items():
        assert importlib.import_module(target), name


@pytest.mark.e2e
def test_imports_give_proxycore_module_objects():
    result = run_python(
        """
        from proxycore.compat import install_mitmproxy_alias
        install_mitmproxy_alias()
        install_mitmproxy_alias()  # idempotent
        import sys
        import mitmproxy.http
        from mitmproxy import http, ctx, flowfilter
        from mitmproxy.proxy.layers import http as layers_http
        from mitmproxy.proxy import commands, events, context, layer, server_hooks
        from mitmproxy.addons import block
        from mitmproxy.test import tflow, taddons, tutils
        from mitmproxy.utils import strutils, human, emoji, spec
        import proxycore.http, proxycore.layers.http, proxycore.addons.block, proxycore.ctx
        assert mitmproxy.http is proxycore.http is http
        assert layers_http is proxycore.layers.http
        assert block is proxycore.addons.block
        assert ctx is proxycore.ctx
        assert spec is sys.modules["proxycore.utils.spec"]
        assert isinstance(tflow.tflow(resp=True), proxycore.http.HTTPFlow)
        assert http.HTTPFlow is proxycore.http.HTTPFlow
        assert sum(1 for f in sys.meta_path if type(f).__name__ == "MitmproxyAlias") == 1
        print("ok")
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


@pytest.mark.e2e
def test_unknown_module_names_what_is_missing():
    result = run_python(
        """
        from proxycore.compat import install_mitmproxy_alias
        install_mitmproxy_alias()
        try:
            import mitmproxy.nosuchthing.deeper
        except ModuleNotFoundError as e:
            print(e.name, "|", e)
        """
    )
    assert result.returncode == 0, result.stderr
    name, _, message = result.stdout.partition("|")
    assert name.strip() == "mitmproxy.nosuchthing"
    assert "mitmproxy.nosuchthing" in message and "proxycore has no equivalent" in message


@pytest.mark.e2e
def test_without_the_alias_mitmproxy_is_not_importable():
    """Guards the other tests: the venv must not hold the real mitmproxy."""
    result = run_python("import mitmproxy")
    assert result.returncode != 0
    assert "No module named 'mitmproxy'" in result.stderr


@pytest.mark.e2e
def test_real_mitmproxy_installed_is_shadowed_and_logged_once(tmp_path):
    fake = tmp_path / "site" / "mitmproxy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("REAL = True\n")
    (fake / "http.py").write_text("REAL = True\n")
    result = run_python(
        """
        import logging
        logging.basicConfig(level=logging.INFO, format="%(name)s %(message)s")
        from proxycore.compat import install_mitmproxy_alias
        install_mitmproxy_alias()
        install_mitmproxy_alias()
        import mitmproxy, mitmproxy.http
        assert not hasattr(mitmproxy, "REAL") and not hasattr(mitmproxy.http, "REAL")
        assert mitmproxy.http.__name__ == "proxycore.http"
        print("ok")
        """,
        env_path=tmp_path / "site",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"
    lines = [line for line in result.stderr.splitlines() if "mitmproxy is installed" in line]
    assert len(lines) == 1, result.stderr
    assert str(fake) in lines[0]


USER_ADDON_TEST = '''
import asyncio

from mitmproxy import ctx, http
from mitmproxy.test import taddons, tflow, tutils


class AddHeader:
    def load(self, loader):
        loader.add_option("header_value", str, "default", "value of x-added")

    def response(self, flow: http.HTTPFlow) -> None:
        flow.response.headers["x-added"] = ctx.options.header_value


class Counter:
    def __init__(self):
        self.seen = []

    def request(self, flow):
        self.seen.append("request")

    def tcp_message(self, flow):
        self.seen.append(flow.messages[-1].content)

    def websocket_message(self, flow):
        self.seen.append(flow.websocket.messages[-1].content)


def test_configure_and_cycle():
    async def check():
        addon = AddHeader()
        with taddons.context(addon) as tctx:
            tctx.configure(addon, header_value="yes")
            f = tflow.tflow(resp=True)
            await tctx.cycle(addon, f)
            assert f.response.headers["x-added"] == "yes"
            assert isinstance(f, http.HTTPFlow)
            assert addon in tctx.master.addons

    asyncio.run(check())


def test_cycle_tcp_and_websocket():
    async def check():
        counter = Counter()
        with taddons.context(counter) as tctx:
            await tctx.cycle(counter, tflow.ttcpflow())
            await tctx.cycle(counter, tflow.twebsocketflow())
        assert counter.seen == [b"hello", b"it's me", "request", b"hello binary", b"hello text", b"it's me"]

    asyncio.run(check())


def test_helpers():
    assert tutils.treq().method == "GET"
    assert tutils.tresp(status_code=404).status_code == 404
    assert tflow.tclient_conn().peername == ("127.0.0.1", 22)
    assert tflow.tserver_conn().address == ("address", 22)
    assert tflow.tflow(err=True).error.msg == "error"
'''


@pytest.mark.e2e
def test_user_addon_test_runs_with_the_pytest_plugin(tmp_path):
    (tmp_path / "test_user_addon.py").write_text(USER_ADDON_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "proxycore.compat", "-p", "no:cacheprovider",
         "test_user_addon.py"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 passed" in result.stdout


@pytest.mark.e2e
def test_user_addon_test_fails_without_the_plugin(tmp_path):
    (tmp_path / "test_user_addon.py").write_text(USER_ADDON_TEST)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "test_user_addon.py"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "No module named 'mitmproxy'" in result.stdout


def test_console_marker_rendering_and_console_options_load_without_a_console():
    from proxycore.addons.view import View
    from proxycore.test import taddons
    from proxycore.tools.console.common import SYMBOL_MARK, render_marker
    from proxycore.tools.console.consoleaddons import ConsoleAddon

    assert render_marker(":grapes:") == "\N{GRAPES}"
    assert render_marker(":no such marker:") == SYMBOL_MARK == render_marker(":default:")
    view = View()
    with taddons.context(view) as tctx:
        console = ConsoleAddon(tctx.master)
        tctx.master.addons.add(console)
        tctx.configure(console, console_layout="vertical", console_focus_follow=True)
        assert tctx.options.console_layout == "vertical" and tctx.options.console_focus_follow


@pytest.mark.e2e
def test_mitmproxy_http1_and_console_paths_resolve():
    result = run_python(
        "from proxycore.compat import install_mitmproxy_alias; install_mitmproxy_alias()\n"
        "from mitmproxy.net.http.http1.read import read_request_head\n"
        "from mitmproxy.net.http.http1 import assemble_request\n"
        "from mitmproxy.tools.console import consoleaddons\n"
        "print(read_request_head([b'GET / HTTP/1.1']).method, consoleaddons.__name__)\n"
    )
    assert result.stdout.split() == ["GET", "proxycore.tools.console.consoleaddons"], result.stderr
