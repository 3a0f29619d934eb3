"""One way for an addon to switch its hooks off: a ``hooks_active`` attribute (often a
property over its options), read by the AddonManager when it indexes handlers.  An addon
whose ``hooks_active`` is false gets only the lifecycle hooks.  No addon adds or removes
hook methods on itself (setattr, delattr, ``__dict__``): the index would not notice."""

from __future__ import annotations

import ast
import io
from pathlib import Path

from proxycore.addons.dumper import FLOW_HOOKS, Dumper
from proxycore.master import Master
from proxycore.options import Options

ROOT = Path(__file__).resolve().parents[2]


def handling(master: Master, hook: str) -> list[str]:
    return [type(a).__name__ for a, _ in master.addons.handlers(hook)]


def test_dumper_quiet_mode_leaves_every_flow_hook_through_hooks_active():
    master = Master(Options())
    master.addons.add(Dumper(io.StringIO()))
    for hook in FLOW_HOOKS:
        assert handling(master, hook) == ["Dumper"], hook
    master.options.update(flow_detail=0)
    for hook in FLOW_HOOKS:
        assert handling(master, hook) == [], hook
    assert handling(master, "configure") == ["Dumper"]  # lifecycle hooks still reach it
    master.options.update(flow_detail=2)
    assert handling(master, "response") == ["Dumper"]


def test_refresh_hooks_rereads_hooks_active_outside_configure():
    master = Master(Options())
    dumper = Dumper(io.StringIO())
    master.addons.add(dumper)
    assert handling(master, "response") == ["Dumper"]
    dumper.set_flow_detail(0)
    master.addons.refresh_hooks()
    assert handling(master, "response") == []


def self_patching(source: str) -> list[str]:
    """Calls by which an addon would change its own hook methods at run time."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("setattr", "delattr"):
            target = node.args[0] if node.args else None
            if isinstance(target, ast.Name) and target.id == "self":
                found.append(f"{node.lineno}: {node.func.id}")
        elif isinstance(node, ast.Attribute) and node.attr == "__dict__":
            if isinstance(node.value, ast.Name) and node.value.id == "self":
                found.append(f"{node.lineno}: __dict__")
    return found


def test_no_addon_patches_its_own_hooks():
    problems = []
    for path in sorted((ROOT / "addons").rglob("*.py")):
        problems += [f"{path.name}:{p}" for p in self_patching(path.read_text())]
    assert problems == []


def test_the_patching_check_sees_the_old_dumper_way():
    old = (
        "class D:\n"
        "    def switch(self, on):\n"
        "        if on:\n"
        "            setattr(self, 'response', self._on_response)\n"
        "        else:\n"
        "            self.__dict__.pop('response', None)\n"
    )
    assert sorted(self_patching(old)) == ["4: setattr", "6: __dict__"]
