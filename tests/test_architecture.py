"""The layering rule (docs/architecture.md): import-linter's contracts in
pyproject.toml, and no module importing a private name from another."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "python" / "dockyard"


def test_import_contracts_hold():
    exe = shutil.which("lint-imports") or str(Path(sys.executable).parent / "lint-imports")
    r = subprocess.run([exe, "--config", str(ROOT / "pyproject.toml"), "--no-cache"],
                       cwd=ROOT, capture_output=True, text=True,
                       env={"PYTHONPATH": str(ROOT / "python"), "PATH": "/usr/bin:/bin"})
    assert r.returncode == 0, r.stdout[-6000:] + r.stderr[-2000:]


def _module_name(path: Path) -> list[str]:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return parts[:-1] if parts[-1] == "__init__" else parts


def _is_module(parts: list[str]) -> bool:
    p = PACKAGE.parent.joinpath(*parts)
    return p.with_suffix(".py").exists() or (p / "__init__.py").exists()


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _private_imports() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        me = _module_name(path)
        package = me if path.name == "__init__.py" else me[:-1]
        tree = ast.parse(path.read_text(), str(path))
        modules: dict[str, str] = {}  # local name -> a module of the package
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[:len(package) - node.level + 1] if node.level else []
            source = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                if _is_module(source + [alias.name]):
                    modules[alias.asname or alias.name] = ".".join(source + [alias.name])
        # `module._name`: the same private name, reached as an attribute
        for node in ast.walk(tree):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name)
                    and node.value.id in modules and _private(node.attr)
                    and node.attr != "_core"):
                found.append(f"{'.'.join(me)}:{node.lineno} uses {node.attr} of "
                             f"{modules[node.value.id]}")
        for node in ast.walk(tree):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = package[:len(package) - node.level + 1] if node.level else []
            source = base + (node.module.split(".") if node.module else [])
            for alias in node.names:
                name = alias.name
                # _core is the package's own compiled module, private to dockyard.*
                if name.startswith("_") and not name.startswith("__") and name != "_core":
                    found.append(f"{'.'.join(me)}:{node.lineno} imports {name} "
                                 f"from {'.'.join(source)}")
    return found


def test_no_private_names_imported_across_modules():
    assert _private_imports() == []
