"""The bad-input catalogue's one assertion: exit 2, a message naming the file, the run directory untouched.

Every system's `tests/systems/<key>/test_bad_inputs.py` writes its malformed files (empty, truncated, wrong
dtype, wrong shape, NaN/inf, wrong encoding, huge) and calls `assert_refused` for each through the real CLI.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from tenfold.cli import main


def tree_digest(folder: Path) -> dict[str, str] | None:
    """{relative path: sha256} of every file under `folder`; None when the folder does not exist."""
    folder = Path(folder)
    if not folder.exists():
        return None
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_refused(argv: list[str], names: str | list[str], run_dir: Path | None, capsys) -> str:
    """Run `tenfold argv`; assert exit 2, that stderr names each of `names` and has no traceback, and that
    `run_dir` is byte-for-byte as it was (absent stays absent). Returns the error message."""
    before = tree_digest(run_dir) if run_dir is not None else None
    capsys.readouterr()
    code = main(["--quiet", *argv])
    err = capsys.readouterr().err
    assert code == 2, f"exit {code}, expected 2, for {argv}; stderr:\n{err}"
    assert "Traceback" not in err, err
    for name in [names] if isinstance(names, str) else names:
        assert name in err, f"message does not name {name!r}: {err}"
    if run_dir is not None:
        assert tree_digest(run_dir) == before, f"{run_dir} changed although the input was refused"
    return err
