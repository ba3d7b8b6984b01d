"""Module layout of maskfocal (arXiv 2212.11542): train.py and evaluate.py never import each other; what both
need (split loading and input normalisation in data.py, decoding / counting / metrics in scoring.py) lives in
modules they both import."""

import ast
from pathlib import Path

import pytest

import tenfold.systems.maskfocal as pkg

PKG = "tenfold.systems.maskfocal"
HERE = Path(pkg.__file__).parent


def _imported(path: Path) -> set[str]:
    """Every module named by an `import` / `from` anywhere in the file (any depth, relative ones resolved)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = PKG.split(".")[: len(PKG.split(".")) - (node.level - 1)]
                base = ".".join(parts + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("src, other", [("train", "evaluate"), ("evaluate", "train")])
def test_train_and_evaluate_do_not_import_each_other(src, other):
    names = _imported(HERE / f"{src}.py")
    bad = sorted(n for n in names if n == f"{PKG}.{other}" or n.startswith(f"{PKG}.{other}."))
    assert not bad, f"{src}.py imports {bad}"
