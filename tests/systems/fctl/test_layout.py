"""House rule: train.py and evaluate.py do not import each other; what both use lives in stages.py."""

import ast
from pathlib import Path

import pytest

import tenfold.systems.fctl as fctl

PKG = "tenfold.systems.fctl"
FORBIDDEN = {"train.py": "evaluate", "evaluate.py": "train"}


def imported_modules(tree: ast.AST) -> set[str]:
    """Every module an `import` / `from` statement at any depth names (from-imports also as pkg.name)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative import inside the package
                base = ".".join([PKG, base]) if base else PKG
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


@pytest.mark.parametrize("name", sorted(FORBIDDEN))
def test_train_and_evaluate_do_not_import_each_other(name):
    path = Path(fctl.__file__).with_name(name)
    mods = imported_modules(ast.parse(path.read_text(), filename=str(path)))
    other = f"{PKG}.{FORBIDDEN[name]}"
    assert not {m for m in mods if m == other or m.startswith(other + ".")}, f"{name} imports {other}"
