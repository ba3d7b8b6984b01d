"""Readers shared by the systems' file formats: every malformed file becomes an InputError naming it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tenfold.core.errors import InputError


def load_npz(path: Path, expected: str, label: str | None = None) -> dict[str, Any]:
    """The arrays of an .npz file as {name: array}; pickled objects are refused (allow_pickle=False).

    Args:
        path: the file.
        expected: the expected form, said in the error message (e.g. "fields 'rho' (2^n, 2^n)").
        label: how the message names the file (default: its path), e.g. "model.control_file x.npz".
    """
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except Exception as err:  # np.load raises several types for non-npz content
        raise InputError(f"{label or path}: not a readable .npz file ({type(err).__name__}); expected {expected}") from None
