"""Run directories, atomic checkpoints, summaries, seeding and devices (core/runs.py, core/runtime.py)."""

from __future__ import annotations

import json
from dataclasses import dataclass

import pytest
import torch

from tenfold.core import runs as runs_mod
from tenfold.core.runs import RunDir, atomic_dir, atomic_write_bytes
from tenfold.core.runtime import seed_everything, select_device


@dataclass(frozen=True)
class Cfg:
    seed: int = 0
    lr: float = 0.1


def test_checkpoint_round_trip_and_no_temp_files(tmp_path):
    run = RunDir(tmp_path / "run")
    assert run.load_checkpoint() is None
    state = {"step": 3, "w": torch.arange(4.0)}
    run.save_checkpoint(state)
    back = run.load_checkpoint()
    assert back["step"] == 3
    torch.testing.assert_close(back["w"], torch.arange(4.0))
    assert [p.name for p in run.checkpoint_path.parent.iterdir()] == ["last.pt"]


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(runs_mod.os, "replace", boom)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.bin"]  # the temp file was removed


def test_metrics_truncate_on_resume_and_torn_lines(tmp_path):
    run = RunDir(tmp_path)
    for step in range(1, 6):
        run.log_metrics({"step": step, "loss": 1.0 / step})
    with open(run.metrics_path, "a") as f:
        f.write('{"step": 6, "lo')  # a kill mid-write
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4, 5]
    run.truncate_metrics(3)
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3]


def test_summary_holds_metrics_and_runtime_facts(tmp_path):
    run = RunDir(tmp_path)
    run.write_summary({"f1": 0.5, "vec": torch.tensor([1.0, 2.0])}, wall_time_s=1.25, device="cpu")
    s = json.loads(run.summary_path.read_text())
    assert s["f1"] == 0.5 and s["vec"] == [1.0, 2.0]
    for key in ("tenfold", "python", "torch", "numpy", "device", "threads", "git_commit", "wall_time_s"):
        assert key in s["runtime"]
    assert s["runtime"]["wall_time_s"] == 1.25
    with pytest.raises(ValueError, match="reserved"):
        run.write_summary({"runtime": 1}, 0.0, "cpu")


def test_config_mismatch_on_resume_is_an_error(tmp_path):
    run = RunDir(tmp_path)
    run.write_config(Cfg())
    run.save_checkpoint({"step": 1})
    run.write_config(Cfg())  # same config: fine (resume)
    with pytest.raises(ValueError, match="different config"):
        run.write_config(Cfg(lr=0.2))
    assert run.read_config(Cfg) == Cfg()


def test_seed_everything_repeats_every_source():
    g = seed_everything(5)
    a = (torch.rand(3), torch.rand(3, generator=g))
    g = seed_everything(5)
    b = (torch.rand(3), torch.rand(3, generator=g))
    torch.testing.assert_close(a, b)
    g = seed_everything(6)
    assert not torch.equal(a[1], torch.rand(3, generator=g))


def test_select_device():
    assert select_device("cpu").type == "cpu"
    assert select_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device must be"):
        select_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            select_device("cuda")


def test_atomic_dir_replaces_only_on_success(tmp_path):
    final = tmp_path / "out"
    final.mkdir()
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("killed mid-write")
    assert [p.name for p in final.iterdir()] == ["old.txt"]  # untouched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out"]  # no temporary folder left behind
    with atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
