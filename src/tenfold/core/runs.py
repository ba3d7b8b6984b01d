"""Run directories: config.json, metrics.jsonl, atomic checkpoints, summary.json.

Layout of a run directory written by `train`:
    config.json          the resolved config (eval rebuilds from it)
    metrics.jsonl        one JSON object per logged step
    checkpoints/last.pt  the latest checkpoint, written atomically (write-then-rename)
    summary.json         final metrics + runtime facts (versions, device, threads, git commit, wall time)
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import torch

from tenfold.core.config import load_config, save_config, to_dict
from tenfold.core.errors import InputError

CHECKPOINT_NAME = "last.pt"


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename over `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_dir(final: Path):
    """Yields a temporary sibling folder that replaces `final` only when the block succeeds (nothing half-written:
    on an error the temporary folder is removed and `final` is left as it was)."""
    final = Path(final)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=final.parent, prefix=f".{final.name}."))
    try:
        yield tmp
        if final.exists():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, torch.Tensor):
        return _jsonable(x.detach().cpu().tolist())
    if hasattr(x, "item") and hasattr(x, "dtype"):  # numpy scalar
        return _jsonable(x.item())
    if hasattr(x, "tolist"):  # numpy array
        return _jsonable(x.tolist())
    if isinstance(x, float) and not math.isfinite(x):
        return None  # JSON has no NaN / inf
    return x


_PLAIN = (bool, int, float, str, type(None), torch.Tensor, torch.dtype, torch.device, torch.Size)


def _checkpoint_safe(x: Any, where: str) -> Any:
    """Tensors, plain containers and scalars as they are; numpy arrays -> tensors, numpy scalars -> Python.

    Anything else (a class instance, a function) raises TypeError: it would need pickle to load back.
    """
    import numpy as np

    if isinstance(x, np.ndarray):
        return torch.from_numpy(np.ascontiguousarray(x).copy())
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, dict):
        return {k: _checkpoint_safe(v, f"{where}[{k!r}]") for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return type(x)(_checkpoint_safe(v, f"{where}[{i}]") for i, v in enumerate(x))
    if isinstance(x, _PLAIN):
        return x
    raise TypeError(f"checkpoint {where}: {type(x).__name__} cannot be stored; use tensors and plain containers")


def load_tensors(path: Path, expected: str = "a file written by `tenfold train`") -> Any:
    """`torch.load(weights_only=True)` of a file tenfold wrote: a crafted pickle cannot run code.

    Raises InputError (exit 2) naming the file when it is missing, truncated, not a torch file, or holds
    anything but tensors and plain containers.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: not found; expected {expected}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # UnpicklingError, RuntimeError (bad zip), EOFError, ...
        text = str(err).strip()
        first = text.splitlines()[0][:200] if text else ""
        raise InputError(f"{path}: not a file tenfold can load safely ({type(err).__name__}: {first}); expected "
                         f"{expected} (tensors and plain containers only, read with weights_only=True)") from None


class RunDir:
    """A training run's folder. Creating it does not touch the disk until something is written."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    @property
    def config_path(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def summary_path(self) -> Path:
        return self.path / "summary.json"

    @property
    def checkpoint_path(self) -> Path:
        return self.path / "checkpoints" / CHECKPOINT_NAME

    def write_config(self, cfg: Any) -> None:
        """Write config.json; on resume the existing file must describe the same config.

        Call it only after the inputs are validated: it is the first write to the run directory. It also
        deletes the temporary files a killed write left behind.
        """
        self.path.mkdir(parents=True, exist_ok=True)
        self.clean_temporaries()
        if self.config_path.exists() and self.checkpoint_path.exists():
            try:
                old = json.loads(self.config_path.read_text(encoding="utf-8"))
            except (json.JSONDecodeError, UnicodeDecodeError) as err:
                raise InputError(f"{self.config_path}: not valid JSON ({type(err).__name__}); the run directory "
                                 "is damaged: use a new --out directory") from None
            if old != to_dict(cfg):
                raise InputError(f"{self.config_path}: the run directory holds a checkpoint of a "
                                 "different config; use a new --out directory")
            return
        tmp = self.path / ".config.json.tmp"
        save_config(cfg, tmp)
        os.replace(tmp, self.config_path)

    def read_config(self, cls: type) -> Any:
        return load_config(cls, self.config_path)

    def log_metrics(self, record: dict[str, Any]) -> None:
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.metrics_path, "a") as f:
            f.write(json.dumps(_jsonable(record)) + "\n")

    def read_metrics(self) -> list[dict[str, Any]]:
        if not self.metrics_path.exists():
            return []
        lines = self.metrics_path.read_text().splitlines()
        out = []
        for line in lines:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line torn by a kill mid-write
                continue
        return out

    def truncate_metrics(self, keep_until_step: int) -> None:
        """On resume, drop records logged after the checkpoint so steps are not duplicated."""
        kept = [r for r in self.read_metrics() if r.get("step", -1) <= keep_until_step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r) + "\n" for r in kept))

    def save_checkpoint(self, state: dict[str, Any]) -> None:
        """Write `state` atomically. It must hold only tensors and plain containers (numpy arrays become
        tensors), so that `load_checkpoint` can read it with `weights_only=True`."""
        import io

        buf = io.BytesIO()
        torch.save(_checkpoint_safe(state, "state"), buf)
        atomic_write_bytes(self.checkpoint_path, buf.getvalue())

    def load_checkpoint(self) -> dict[str, Any] | None:
        """The checkpoint, read with `weights_only=True`: a crafted pickle cannot run code, it is refused.

        Raises InputError (exit 2) naming the file when it is truncated, not a checkpoint, or holds anything
        but tensors and plain containers.
        """
        if not self.checkpoint_path.exists():
            return None
        state = load_tensors(self.checkpoint_path)
        if not isinstance(state, dict):
            raise InputError(f"{self.checkpoint_path}: expected a dict of training state, got {type(state).__name__}")
        return state

    def clean_temporaries(self) -> list[Path]:
        """Delete the `.*.tmp` files a killed write left behind (atomic writes rename them otherwise)."""
        removed = []
        for folder in (self.path, self.path / "checkpoints"):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
                    removed.append(tmp)
        return removed

    def write_summary(self, metrics: dict[str, Any], wall_time_s: float, device: str) -> dict[str, Any]:
        if "runtime" in metrics:
            raise ValueError("'runtime' is reserved in summary.json for the runtime facts")
        summary = {**_jsonable(metrics), "runtime": runtime_facts(device, wall_time_s)}
        atomic_write_text(self.summary_path, json.dumps(summary, indent=2) + "\n")
        return summary


def git_commit() -> str | None:
    """The commit of the checkout this package was imported from, or None outside git."""
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                             text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None if out.returncode == 0 else None


def runtime_facts(device: str, wall_time_s: float) -> dict[str, Any]:
    import numpy

    import tenfold

    facts: dict[str, Any] = {
        "tenfold": tenfold.__version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "device": device,
        "threads": torch.get_num_threads(),
        "git_commit": git_commit(),
        "wall_time_s": round(float(wall_time_s), 3),
    }
    if device.startswith("cuda") and torch.cuda.is_available():
        facts["cuda_device"] = torch.cuda.get_device_name(0)
    return facts
