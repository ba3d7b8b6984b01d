"""Readers shared by the systems' file formats: every malformed file becomes an InputError naming it.

Array files are checked from their headers before anything is loaded: a file that declares a huge array is
refused without allocating it.
"""

from __future__ import annotations

import math
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

from tenfold.core.errors import InputError

# Design choice: the default ceiling on the arrays one .npz may declare (CIFAR-10 as float32 is 0.7 GiB).
MAX_NPZ_BYTES = 4 * 2**30
NUMERIC_KINDS = "biufc"  # bool, signed / unsigned int, float, complex


def npy_header(f: BinaryIO, label: str, expected: str, max_bytes: int,
               check: Any = None) -> tuple[tuple[int, ...], Any]:
    """(shape, dtype) from the header of an .npy stream without reading its data.

    Refuses (InputError naming `label`) a malformed header, a non-numeric, object or record dtype, and an array
    declared larger than `max_bytes`. `check(shape, dtype, label)` (optional) runs before the size test, so a
    format-specific message (e.g. too many qubits) comes first.
    """
    import numpy as np

    try:
        version = np.lib.format.read_magic(f)
        if version == (1, 0):
            shape, _, dtype = np.lib.format.read_array_header_1_0(f)
        elif version == (2, 0):
            shape, _, dtype = np.lib.format.read_array_header_2_0(f)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except Exception as err:  # bad magic, malformed header dict, truncated stream, bad zip member
        raise InputError(f"{label}: not a readable .npy array ({type(err).__name__}); expected {expected}") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.hasobject or dtype.fields is not None:
        raise InputError(f"{label}: dtype {dtype.str!r} is not numeric; expected {expected}")
    if check is not None:
        check(tuple(shape), dtype, label)
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > max_bytes:
        raise InputError(f"{label}: array of shape {tuple(shape)} ({nbytes} bytes) exceeds the limit of "
                         f"{max_bytes} bytes; expected {expected}")
    return tuple(shape), dtype


def npz_headers(path: Path, label: str, expected: str, max_bytes: int = MAX_NPZ_BYTES,
                check: Any = None) -> dict[str, tuple[tuple[int, ...], Any]]:
    """{field: (shape, dtype)} of an .npz from its members' headers only; the arrays together at most `max_bytes`.

    `check(field, shape, dtype, label)` (optional) runs on each header before its size is tested.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{label}: file not found; expected {expected}")
    headers, total = {}, 0
    try:
        with zipfile.ZipFile(path) as z:
            for info in z.infolist():
                name = info.filename.removesuffix(".npy")
                member_check = None if check is None else (lambda shape, dtype, lab, n=name: check(n, shape, dtype, lab))
                with z.open(info) as f:
                    headers[name] = npy_header(f, f"{label}: field {name!r}", expected, max_bytes, member_check)
                total += math.prod(headers[name][0]) * headers[name][1].itemsize
                if total > max_bytes:  # many arrays, each under the limit
                    raise InputError(f"{label}: arrays of {total} bytes in all exceed the limit of {max_bytes} "
                                     f"bytes; expected {expected}")
    except InputError:
        raise
    except (zipfile.BadZipFile, OSError, EOFError, RuntimeError, NotImplementedError, ValueError) as err:
        raise InputError(f"{label}: not a readable .npz file ({type(err).__name__}); expected {expected}") from None
    return headers


def load_npz(path: Path, expected: str, label: str | None = None, max_bytes: int = MAX_NPZ_BYTES) -> dict[str, Any]:
    """The arrays of an .npz file as {name: array}, after `npz_headers` checked every member's header.

    Pickled objects are refused (allow_pickle=False), and so are non-numeric dtypes and arrays declared larger
    than `max_bytes` in all, before any array is loaded.

    Args:
        path: the file.
        expected: the expected form, said in the error message (e.g. "fields 'rho' (2^n, 2^n)").
        label: how the message names the file (default: its path), e.g. "model.control_file x.npz".
    """
    import numpy as np

    name = label or str(path)
    npz_headers(Path(path), name, expected, max_bytes)
    try:
        with np.load(path, allow_pickle=False) as f:
            return {key: f[key] for key in f.files}
    except Exception as err:  # np.load raises several types for non-npz content
        raise InputError(f"{name}: not a readable .npz file ({type(err).__name__}); expected {expected}") from None
