"""The direction of imports (docs/architecture.md) holds: import-linter's contracts are kept, no
module takes part in an import cycle, and no module reaches into another's private names.

grimp reads every import statement, those inside functions included: a lazy import that dodges a
cycle at import time is still a cycle for a reader following the code."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "serving", "finetune", "datasets_app", "accounts", "common", "workers")
SOURCE_DIRS = [ROOT / "platform", ROOT / "finetune", ROOT / "serving", ROOT / "workers"]


def project_files() -> list[Path]:
    return [
        path
        for folder in SOURCE_DIRS
        for path in folder.rglob("*.py")
        if "migrations" not in path.parts and "__pycache__" not in path.parts
    ]


def module_name(path: Path) -> str:
    relative = path.relative_to(ROOT / "platform" if path.is_relative_to(ROOT / "platform") else ROOT)
    parts = list(relative.with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def test_import_linter_keeps_every_contract():
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports), "--no-cache"],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT}:{ROOT / 'platform'}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.split("Contracts:")[-1].lower() or " 0 broken" in result.stdout


def test_no_module_takes_part_in_an_import_cycle():
    sys.path[:0] = [str(ROOT), str(ROOT / "platform")]
    graph = grimp.build_graph(*APPS)
    cycles = set()
    for module in sorted(graph.modules):
        for imported in graph.find_modules_directly_imported_by(module):
            if imported == module or not imported.startswith(APPS):
                continue
            back = graph.find_shortest_chain(importer=imported, imported=module)
            if back:
                cycles.add(" -> ".join((module, *back)))
    assert not cycles, "import cycles:\n" + "\n".join(sorted(cycles))


def private_uses(source: str, this: str, own_modules: set[str]) -> list[str]:
    """`from x import _name` and `x._name` in module `this`, where x is another project module."""
    tree = ast.parse(source)
    aliases: dict[str, str] = {}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if not node.module.startswith(APPS) or node.module == this:
                continue
            for alias in node.names:
                target = f"{node.module}.{alias.name}"
                if target in own_modules:
                    aliases[alias.asname or alias.name] = target
                elif alias.name.startswith("_") and not alias.name.startswith("__"):
                    found.append(f"{this}: from {node.module} import {alias.name} (line {node.lineno})")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith(APPS) and alias.asname:
                    aliases[alias.asname] = alias.name
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id in aliases
            and aliases[node.value.id] != this
            and node.attr.startswith("_")
            and not node.attr.startswith("__")
        ):
            found.append(f"{this}: {aliases[node.value.id]}.{node.attr} (line {node.lineno})")
    return found


def test_no_module_uses_another_modules_private_names():
    files = project_files()
    modules = {module_name(path) for path in files}
    found = [use for path in files for use in private_uses(path.read_text(), module_name(path), modules)]
    assert not found, "private names used outside their module:\n" + "\n".join(found)


def test_the_private_name_check_sees_both_forms_of_reaching_in():
    source = "from finetune.services import _fail\nfrom finetune import runner\nrunner._claim()\n"
    found = private_uses(source, "serving.probe", {"finetune.services", "finetune.runner"})
    assert found == [
        "serving.probe: from finetune.services import _fail (line 1)",
        "serving.probe: finetune.runner._claim (line 3)",
    ]


def test_every_project_module_imports():
    # grimp ignores an import of a module that does not exist (a rename missed somewhere):
    # importing each module for real catches it.
    import importlib

    broken = []
    for path in project_files():
        name = module_name(path)
        if name.startswith("config.settings") or name.endswith(("__main__", ".wsgi", ".asgi")):
            continue
        try:
            importlib.import_module(name)
        except Exception as exc:  # noqa: BLE001 - every failure is reported, with its module
            broken.append(f"{name}: {type(exc).__name__}: {exc}")
    assert not broken, "modules that do not import:\n" + "\n".join(broken)
