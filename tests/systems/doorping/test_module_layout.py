"""Module layout of doorping (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197): train.py and
evaluate.py never import each other; what both need (data loading, streams, victims and their metrics) lives
in victims.py."""

from __future__ import annotations

import ast
from pathlib import Path

import tenfold.systems.doorping as D

PKG = "tenfold.systems.doorping"
HERE = Path(D.__file__).parent


def imported_modules(tree: ast.AST, package: str) -> set[str]:
    """Every module an `import` / `from ... import` names, at any depth (functions, branches), relative resolved;
    `from pkg import name` also yields `pkg.name` (it may import a submodule)."""
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out.update(f"{mod}.{alias.name}" for alias in node.names)
    return out


def test_train_and_evaluate_do_not_import_each_other():
    probe = ("def f():\n    if True:\n        from tenfold.systems.doorping.train import load_for_config\n"
             "def g():\n    from . import evaluate\n")
    assert {f"{PKG}.train", f"{PKG}.evaluate"} <= imported_modules(ast.parse(probe), PKG)  # the scanner sees depth
    for src, other in (("train", "evaluate"), ("evaluate", "train")):
        tree = ast.parse((HERE / f"{src}.py").read_text(), filename=f"{src}.py")
        target = f"{PKG}.{other}"
        bad = sorted(m for m in imported_modules(tree, PKG) if m == target or m.startswith(target + "."))
        assert not bad, f"{src}.py imports {bad}; move what both need into victims.py"
