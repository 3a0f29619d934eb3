"""What a start imports (issue 15: start to first proxied answer).  Each module below costs
instructions at every start (1-10 M each under cachegrind, `bench/cgstart.py`) although a
default start never uses it; it is imported where first needed instead.  Checked in a fresh
interpreter, by module names, so the check does not depend on the machine's speed.
(`tests/speed/test_e2e_lazy_imports.py` checks a running proxy that has answered requests.)"""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.e2e  # a fresh interpreter per check

# Never imported by building and configuring proxydump's addon chain with default options.
LAZY_AT_START = (
    "proxycore.flowfilter",  # the filter language: only for a filter option or command
    "proxycore.utils.saferegex",
    "proxycore.store",  # flow stores: only with --set store=... (proxydump)
    "proxycore.utils.htpasswd",  # proxyauth @file
    "proxycore.layers.udp",  # next_layer's first datagram
    "proxycore.net.clienthello",  # next_layer's first ClientHello with host rules
    "hashlib",  # OpenSSL digests: proxyauth, WebSocket replay, stores
    "hmac",
    "csv",  # cut commands
    "shlex",  # export commands
    "mimetypes",  # map_local's first file
    "json",  # Message.json(), the marker table
    "http",  # the HTTPStatus enum: reason phrases at first use
    "gzip",  # the first gzip body
)

BUILD = """
import sys
from proxycore.addons.termlog import TermLog
from proxycore.options import Options
from proxycore.tools import dump
from proxycore.tools.errorcheck import StartupErrorCheck

opts = Options()
master = dump.make_master(opts, TermLog(), StartupErrorCheck())
opts.update(listen_port=0, termlog_verbosity="error", flow_detail=0)
assert "flow.mark" in master.commands.commands and "store.export" in master.commands.commands
print(" ".join(sys.modules))
"""


def loaded_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    return set(out.stdout.splitlines()[-1].split())


def test_proxydump_addon_chain_loads_no_feature_module_at_start() -> None:
    loaded = loaded_after(BUILD)
    assert "proxycore.addons.store" in loaded and "proxycore.addons.proxyauth" in loaded  # it ran
    assert sorted(set(LAZY_AT_START) & loaded) == []


def test_each_lazy_module_is_loaded_once_its_feature_is_used() -> None:
    """The same chain with a filter, a store, credentials and an export: the modules come."""
    code = BUILD.replace(
        'opts.update(listen_port=0, termlog_verbosity="error", flow_detail=0)',
        'opts.update(listen_port=0, dumper_filter="~q", store="memory", proxyauth="a:b")\n'
        "master.addons.get('proxyauth').validator('a', 'b')\n"
        "from proxycore.addons.export import _quote; _quote('x y')",
    )
    loaded = loaded_after(code)
    for name in ("proxycore.flowfilter", "hmac", "shlex"):
        assert name in loaded, name


def test_the_proxydump_module_alone_loads_no_engine() -> None:
    """``proxydump --help`` and ``--version`` answer before the engine is imported."""
    loaded = loaded_after('import sys\nimport proxycore.tools.dump\nprint(" ".join(sys.modules))')
    assert {"asyncio", "dataclasses", "proxycore.http", "proxycore.master", "proxycore.layers"}.isdisjoint(loaded)


def test_a_script_importing_mitmproxy_net_tls_leaves_the_tls_layers_parser_in_place() -> None:
    """``import mitmproxy.net.tls`` binds proxycore.net.tls_contexts as the ``tls`` attribute of
    the package both names share; no proxycore module is called ``proxycore.net.tls``, so the TLS
    layer, imported later, still gets its ClientHello parser."""
    code = BUILD.replace(
        'print(" ".join(sys.modules))',
        "from proxycore.compat import install_mitmproxy_alias\n"
        "install_mitmproxy_alias()\n"
        "import mitmproxy.net.tls\n"
        "from mitmproxy.net import server_spec\n"
        "import proxycore.layers.tls\n"
        'assert mitmproxy.net.tls is sys.modules["proxycore.net.tls_contexts"]\n'
        'assert proxycore.layers.tls.tls_parse is sys.modules["proxycore.net.clienthello"]\n'
        'print(" ".join(sys.modules))',
    )
    assert "proxycore.layers.tls" in loaded_after(code)
