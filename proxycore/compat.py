"""``import mitmproxy`` for mitmproxy users: their scripts and addon tests run unchanged.

A ``sys.meta_path`` finder answers every ``mitmproxy`` / ``mitmproxy.*`` import with
proxycore's module object itself (not a copy), so ``mitmproxy.http.HTTPFlow is
proxycore.http.HTTPFlow`` and isinstance checks in scripts hold.  Where the module lives
is decided by one table, :data:`ALIASES`; when modules move, only the table changes.

Also a pytest plugin: ``pytest -p proxycore.compat`` installs the alias before any
conftest.py is imported, so tests written with ``from mitmproxy.test import tflow`` run.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import sys
import types
from typing import TYPE_CHECKING, Any

# The finder and loader only implement the import protocols: importlib.abc (their base
# classes) imports importlib.resources, tempfile and more, ~1 MB that every start would pay.
if TYPE_CHECKING:
    from importlib.abc import Loader as _LoaderBase
    from importlib.abc import MetaPathFinder as _FinderBase
else:
    _LoaderBase = _FinderBase = object

logger = logging.getLogger("proxycore.compat")

#: mitmproxy module path -> proxycore module path.  The longest matching prefix wins, and the
#: rest of the name carries over (``mitmproxy.addons.block`` -> ``proxycore.addons.block``).
ALIASES: dict[str, str] = {
    "mitmproxy": "proxycore",
    # proxycore's module paths mirror mitmproxy's; the exceptions are listed here.
    # The design card keeps the layers at proxycore/layers (mitmproxy: proxy/layers).
    "mitmproxy.proxy.layers": "proxycore.layers",
    # mitmproxy's TLS wire helpers (SSL contexts) live in proxycore.net.tls_contexts.
    "mitmproxy.net.tls": "proxycore.net.tls_contexts",
}

ALIAS_ROOT = "mitmproxy"


def target_name(fullname: str) -> str:
    """The proxycore module that answers ``import fullname`` (a ``mitmproxy...`` name)."""
    parts = fullname.split(".")
    for cut in range(len(parts), 0, -1):
        prefix = ".".join(parts[:cut])
        if prefix in ALIASES:
            return ".".join([ALIASES[prefix], *parts[cut:]])
    raise ValueError(f"{fullname} is not a mitmproxy module name")


class _ExistingModule(_LoaderBase):
    """Hands the import system an already imported proxycore module."""

    def __init__(self, module: types.ModuleType) -> None:
        self.module = module

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> types.ModuleType:
        return self.module

    def exec_module(self, module: types.ModuleType) -> None:
        pass  # already executed under its proxycore name


class MitmproxyAlias(_FinderBase):
    """Resolves ``mitmproxy`` and ``mitmproxy.*`` through :data:`ALIASES`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        if fullname != ALIAS_ROOT and not fullname.startswith(ALIAS_ROOT + "."):
            return None
        name = target_name(fullname)
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
                raise  # proxycore's module exists but itself imports something missing
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: proxycore has no equivalent of it "
                f"(looked for {name}); see README, 'Switching from mitmproxy'",
                name=fullname,
            ) from None
        _bind_renamed_children(fullname, module)
        spec = importlib.machinery.ModuleSpec(
            fullname,
            _ExistingModule(module),
            is_package=hasattr(module, "__path__"),
        )
        if hasattr(module, "__path__"):
            spec.submodule_search_locations = list(module.__path__)
        return spec


def _bind_renamed_children(fullname: str, module: types.ModuleType) -> None:
    """Make ``from mitmproxy.utils import spec`` work where the child lives elsewhere.

    ``from package import name`` looks ``name`` up as an attribute, then imports
    ``<package's real name>.name``, which does not exist for a renamed child
    (proxycore.utils.spec); so such children are bound on the parent up front.
    """
    base = target_name(fullname)
    for alias, target in ALIASES.items():
        parent, _, child = alias.rpartition(".")
        if parent != fullname or target == f"{base}.{child}" or hasattr(module, child):
            continue
        try:
            setattr(module, child, importlib.import_module(target))
        except ImportError:  # reported when the child itself is imported
            pass


_installed = False


def install_mitmproxy_alias() -> None:
    """Make ``import mitmproxy...`` give proxycore's modules (idempotent).

    The finder goes first in ``sys.meta_path``, so it wins over a real mitmproxy installed
    next to proxycore; that case is logged once.  A real mitmproxy that was already imported
    stays what it is (its modules are in ``sys.modules``): that is logged as a warning.
    """
    global _installed
    if _installed:
        return
    real = importlib.machinery.PathFinder.find_spec(ALIAS_ROOT)
    already = sys.modules.get(ALIAS_ROOT)
    sys.meta_path.insert(0, MitmproxyAlias())
    _installed = True
    if already is not None and not already.__name__.startswith("proxycore"):
        logger.warning(
            "mitmproxy was imported before proxycore's alias was installed: "
            "code that already holds mitmproxy's modules keeps them"
        )
    elif real is not None:
        where = real.origin or (list(real.submodule_search_locations or []) or ["?"])[0]
        logger.info(f"mitmproxy is installed ({where}); scripts importing mitmproxy get proxycore's modules")


def uninstall_mitmproxy_alias() -> None:
    """Remove the finder and the ``mitmproxy`` entries it put in ``sys.modules``."""
    global _installed
    sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, MitmproxyAlias)]
    for name in [n for n in sys.modules if n == ALIAS_ROOT or n.startswith(ALIAS_ROOT + ".")]:
        if getattr(sys.modules[name], "__name__", "").startswith("proxycore"):
            del sys.modules[name]
    _installed = False


# pytest plugin (``pytest -p proxycore.compat``) ----------------------------------------------


def pytest_load_initial_conftests(early_config: Any, parser: Any, args: Any) -> None:
    """Before the first conftest.py: they import mitmproxy's test helpers at module level."""
    install_mitmproxy_alias()


def pytest_configure(config: Any) -> None:
    install_mitmproxy_alias()
