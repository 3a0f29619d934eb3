"""Addons and the web API use the driver (proxycore/proxy/server.py) only through its public
names: a replay handler subclasses ConnectionHandler and uses ``run_detached``,
``watched_hooks``/``hook_finished`` and ``log_as``, never ``_hook_task`` or ``_client_done``.

Read from the source with ``ast``: a private name of the driver (a ``_method`` or a
``self._attribute`` of its classes) must not appear in addons/ or api/ as an attribute,
neither on a driver object nor on ``self`` inside a subclass of a driver class.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DRIVER = ROOT / "proxycore" / "proxy" / "server.py"
USERS = [ROOT / "addons", ROOT / "api"]


def driver_private_names(source: str) -> tuple[set[str], set[str]]:
    """(private names, class names) defined by the driver's classes."""
    tree = ast.parse(source)
    names: set[str] = set()
    classes: set[str] = set()
    for node in tree.body:
        if not isinstance(node, ast.ClassDef):
            continue
        classes.add(node.name)
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef) and _private(inner.name):
                names.add(inner.name)
            elif (
                isinstance(inner, ast.Attribute)
                and isinstance(inner.value, ast.Name)
                and inner.value.id == "self"
                and _private(inner.attr)
            ):
                names.add(inner.attr)
    return names, classes


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def violations(source: str, private: set[str], driver_classes: set[str]) -> list[str]:
    """Where ``source`` touches a private driver name: "line: name" entries."""
    found: list[str] = []
    tree = ast.parse(source)
    subclass_bodies: list[ast.ClassDef] = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.ClassDef)
        and any(_base_name(base) in driver_classes for base in node.bases)
    ]
    inside_subclass = {id(n) for cls in subclass_bodies for n in ast.walk(cls)}
    for cls in subclass_bodies:
        for node in ast.walk(cls):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name in private:
                found.append(f"{node.lineno}: overrides {node.name}")
    for node in ast.walk(tree):
        if not isinstance(node, ast.Attribute) or node.attr not in private:
            continue
        on_self = isinstance(node.value, ast.Name) and node.value.id == "self"
        if on_self and id(node) not in inside_subclass:
            continue  # an addon's own attribute that happens to share the name
        found.append(f"{node.lineno}: {node.attr}")
    return sorted(found, key=lambda entry: int(entry.split(":")[0]))


def _base_name(base: ast.expr) -> str:
    if isinstance(base, ast.Attribute):
        return base.attr
    return base.id if isinstance(base, ast.Name) else ""


def test_the_driver_has_private_names_to_protect():
    private, classes = driver_private_names(DRIVER.read_text())
    assert {"_hook_task", "_hook_is_trivial", "_client_done", "_tasks", "_watchdog"} <= private
    assert "ConnectionHandler" in classes


def test_addons_and_api_use_only_the_public_driver_seam():
    private, classes = driver_private_names(DRIVER.read_text())
    problems = []
    for folder in USERS:
        for path in sorted(folder.rglob("*.py")):
            for problem in violations(path.read_text(), private, classes):
                problems.append(f"{path.relative_to(ROOT)}:{problem}")
    assert problems == []


def test_the_check_catches_an_override_and_a_private_read():
    private, classes = driver_private_names(DRIVER.read_text())
    bad = (
        "from proxycore.proxy.server import ConnectionHandler\n"
        "class Replay(ConnectionHandler):\n"
        "    async def _hook_task(self, hook):\n"
        "        await self._client_done.wait()\n"
        "def peek(handler):\n"
        "    return handler._tasks\n"
        "class Unrelated:\n"
        "    def __init__(self):\n"
        "        self._tasks = set()\n"
    )
    assert violations(bad, private, classes) == ["3: overrides _hook_task", "4: _client_done", "6: _tasks"]
