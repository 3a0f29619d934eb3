"""No look-alike module names inside one package: no ``X.py`` next to ``Xs.py``, ``X/`` or
``Xs/`` (the old ``command.py``/``commands.py`` and ``layer.py``/``layers/`` pairs made a
reader open the wrong file), and no short name that abbreviates a longer one beside it
(the old ``ctx.py``/``context.py``).

Pairs in *different* packages are fine when they mirror mitmproxy's layout, where a
mitmproxy user looks for them: ``proxycore/command.py`` (the command manager) and
``proxycore/proxy/commands.py`` (layer commands), ``proxycore/ctx.py`` and
``proxycore/proxy/context.py``, ``proxycore/tls.py`` (hook data) and
``proxycore/layers/tls.py``, ``proxycore/http.py`` and ``proxycore/net/http/``.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ["proxycore", "addons", "api", "tools"]

#: (package, name, look-alike) pairs allowed in one package, each with the reason.
ALLOWED: dict[tuple[str, str, str], str] = {
    ("proxycore", "tls", "tools"): "mitmproxy's own mitmproxy/tls.py and mitmproxy/tools/; unrelated words",
}


def abbreviates(short: str, long: str) -> bool:
    """``ctx`` for ``context``: a short name whose letters appear in order in a longer one
    beside it, with the same first letter, and not just its prefix (``dns``/``dns_view``)."""
    if not 2 < len(short) <= 4 or len(short) >= len(long) or short[0] != long[0] or long.startswith(short):
        return False
    rest = iter(long)
    return all(letter in rest for letter in short)


def look_alikes(package: Path) -> list[tuple[str, str]]:
    """(name, look-alike) pairs among the modules and subpackages directly in ``package``."""
    modules = {p.stem for p in package.glob("*.py")} - {"__init__", "__main__"}
    folders = {p.name for p in package.iterdir() if p.is_dir() and p.name != "__pycache__"}
    pairs = []
    for short in sorted(modules | folders):
        for long in sorted(modules | folders):
            if abbreviates(short, long):
                pairs.append((short, long))
    for name in sorted(modules):
        if name + "s" in modules:
            pairs.append((f"{name}.py", f"{name}s.py"))
        for folder in (name, name + "s"):
            if folder in folders:
                pairs.append((f"{name}.py", f"{folder}/"))
        if name.endswith("s") and name[:-1] in folders:
            pairs.append((f"{name}.py", f"{name[:-1]}/"))
    return pairs


def packages() -> list[Path]:
    found = []
    for top in PACKAGES:
        base = ROOT / top
        found.append(base)
        found += sorted(p for p in base.rglob("*") if p.is_dir() and "__pycache__" not in p.parts)
    return found


def test_no_look_alike_modules_in_one_package() -> None:
    problems = []
    seen = set()
    for package in packages():
        where = package.relative_to(ROOT).as_posix()
        for name, other in look_alikes(package):
            key = (where, name.removesuffix(".py"), other.removesuffix(".py").rstrip("/"))
            seen.add(key)
            if key not in ALLOWED:
                problems.append(f"{where}: {name} and {other}")
    assert problems == []
    assert set(ALLOWED) <= seen, "an allowed pair no longer exists: drop it from ALLOWED"


def test_the_rule_sees_the_old_pairs(tmp_path: Path) -> None:
    for name in ("command.py", "commands.py", "layer.py", "flow.py", "tests.py", "ctx.py", "context.py", "dns.py"):
        (tmp_path / name).write_text("")
    (tmp_path / "layers").mkdir()
    (tmp_path / "flows").mkdir()
    (tmp_path / "test").mkdir()
    (tmp_path / "dns_view").mkdir()
    assert sorted(look_alikes(tmp_path)) == [
        ("command.py", "commands.py"),
        ("ctx", "context"),
        ("flow.py", "flows/"),
        ("layer.py", "layers/"),
        ("tests.py", "test/"),
    ]
