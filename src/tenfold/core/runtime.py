"""Seeding, device selection and progress bars."""

from __future__ import annotations

import contextlib
import logging
import random
from typing import Iterable, Iterator, TypeVar

import numpy as np
import torch

from tenfold.core.errors import InputError

T = TypeVar("T")
LOGGER_NAME = "tenfold"


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; return a CPU torch.Generator seeded with `seed`.

    Library code takes explicit generators where it can; the global seeds cover the rest
    (weight init of torch modules, DataLoader shuffling).
    """
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
    g = torch.Generator()
    g.manual_seed(seed)
    return g


def select_device(name: str = "auto") -> torch.device:
    """"auto" -> cuda when available, else cpu; "cuda" without a GPU is a clear error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"device {name!r} requested but CUDA is not available; use --device cpu")
    if name not in ("cpu",) and not name.startswith("cuda"):
        raise InputError(f"device must be 'auto', 'cpu' or 'cuda[:N]', got {name!r}")
    return torch.device(name)


@contextlib.contextmanager
def torch_threads(num_threads: int) -> Iterator[None]:
    """Temporarily set torch's intra-op threads (restored on exit).

    Systems whose tensors are tiny (qae: 4x4 to 16x16 matrices) run faster and steadier on one
    thread: on a loaded 2-core machine intra-op threading slowed `matrix_exp` ~25x.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(num_threads)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def progress_enabled() -> bool:
    """Progress bars show while the `tenfold` logger is at INFO or lower (`--quiet` raises it)."""
    return logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)


def progress(iterable: Iterable[T], desc: str, total: int | None = None, leave: bool = False) -> Iterator[T]:
    """A tqdm bar on stderr, hidden under `--quiet`."""
    from tqdm.auto import tqdm

    return iter(tqdm(iterable, desc=desc, total=total, leave=leave, disable=not progress_enabled(),
                     dynamic_ncols=True))


def progress_bar(total: int, desc: str):
    """A manual tqdm bar (`.update(n)`, `.set_postfix(...)`, `.close()`), hidden under `--quiet`."""
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, leave=False, disable=not progress_enabled(), dynamic_ncols=True)
