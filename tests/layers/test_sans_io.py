"""Layers must stay sans-io: no module under proxycore/layers may import I/O machinery."""

import ast
import pathlib

import proxycore.layers

FORBIDDEN = {"asyncio", "socket", "selectors", "ssl", "threading"}


def imported_modules(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def test_no_layer_module_imports_io():
    root = pathlib.Path(proxycore.layers.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert files, "no layer modules found"
    offenders = {str(f.relative_to(root)): imported_modules(f) & FORBIDDEN for f in files}
    assert {k: v for k, v in offenders.items() if v} == {}


def test_kernel_modules_are_sans_io_too():
    root = pathlib.Path(proxycore.layers.__file__).parent.parent
    for name in ("proxy/layer.py", "proxy/events.py", "proxy/commands.py", "proxy/context.py", "testing.py", "net/http1.py"):
        assert not imported_modules(root / name) & FORBIDDEN, name


def full_imports(path: pathlib.Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return names


def test_layers_do_not_reach_addons_the_api_or_the_driver():
    """Layers get what they need through events, commands and the context, never from the
    addons, the web API, the driver or the global ctx (a lazy import inside a function counts)."""
    root = pathlib.Path(proxycore.layers.__file__).parent
    outside = ("proxycore.addons", "proxycore.api", "proxycore.proxy.server", "proxycore.ctx")
    offenders = {
        str(f.relative_to(root)): sorted(
            m for m in full_imports(f) if m in outside or m.startswith(tuple(o + "." for o in outside))
        )
        for f in sorted(root.rglob("*.py"))
    }
    assert {k: v for k, v in offenders.items() if v} == {}
