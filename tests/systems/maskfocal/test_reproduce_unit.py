"""`tenfold reproduce maskfocal` unit folders (Mask Focal Loss, arXiv 2212.11542): a killed unit of the same code
resumes; a forced re-run, a code or profile change and a folder of unknown origin start clean (issue 19:
`--force` did not clear the run folders after a killed run). Through the core's run_unit, with the training
replaced by a recorder, so that no detector is trained."""

from __future__ import annotations

import json

import pytest

from tenfold.core.reproduction import CACHE_NAME, code_digest, run_unit, seed_dir
from tenfold.systems.maskfocal import reproduce as mf_reproduce

SEED = 5  # a development-style seed; nothing is trained


@pytest.fixture
def fake_runs(monkeypatch):
    """Replace training and the plots: run_all records what it found in <unit>/runs, then writes a checkpoint
    (or raises KeyboardInterrupt when `kill` is set, as a killed unit would stop half-way)."""
    seen: list[dict] = []
    state = {"kill": False}

    def run_all(cfg, out_dir):
        ckpt = out_dir / "runs" / "centernet-mfl" / "checkpoints" / "last.pt"
        seen.append({"checkpoint_before": ckpt.exists(), "data_before": (out_dir / "data" / "x").exists()})
        ckpt.parent.mkdir(parents=True, exist_ok=True)
        ckpt.write_bytes(b"step 4")
        (out_dir / "data").mkdir(exist_ok=True)
        (out_dir / "data" / "x").write_text("generated")
        if state["kill"]:
            raise KeyboardInterrupt
        return {}, {}

    monkeypatch.setattr(mf_reproduce, "run_all", run_all)
    monkeypatch.setattr(mf_reproduce, "claim_rows", lambda *a, **k: [])
    monkeypatch.setattr(mf_reproduce, "scale_stats", lambda *a, **k: {})
    monkeypatch.setattr(mf_reproduce, "plot_count_scatter", lambda *a, **k: None)
    monkeypatch.setattr(mf_reproduce, "plot_dense_detections", lambda *a, **k: None)
    return seen, state


def _unit(out, force):
    return run_unit("maskfocal", "smoke", SEED, str(out), force)


def test_killed_unit_resumes_and_forced_unit_starts_clean(tmp_path, fake_runs):
    seen, state = fake_runs
    state["kill"] = True
    with pytest.raises(KeyboardInterrupt):
        _unit(tmp_path, force=False)  # killed: runs/ keeps a checkpoint, no rows.json
    unit = seed_dir(tmp_path, "maskfocal", SEED)
    assert json.loads((unit / "unit.json").read_text())["code"] == code_digest("maskfocal")
    state["kill"] = False
    _unit(tmp_path, force=False)  # same code, profile, seed: resumed from the killed unit's checkpoint
    assert seen[-1] == {"checkpoint_before": True, "data_before": True}
    assert (unit / CACHE_NAME).exists()
    rows, _, cached = _unit(tmp_path, force=False)  # finished: the core returns the cache, nothing runs
    assert cached and len(seen) == 2
    _unit(tmp_path, force=True)  # forced after a finished unit: clean (the old code re-evaluated old weights)
    assert seen[-1] == {"checkpoint_before": False, "data_before": False}
    state["kill"] = True
    with pytest.raises(KeyboardInterrupt):
        _unit(tmp_path, force=True)  # a forced run killed half-way ...
    state["kill"] = False
    _unit(tmp_path, force=True)  # ... and forced again: clean, not resumed
    assert seen[-1] == {"checkpoint_before": False, "data_before": False}


@pytest.mark.parametrize("marker", [None, {"profile": "quick"}, {"code": "0123456789abcdef"}, {"seed": SEED + 1},
                                    "not json"])
def test_unit_of_other_code_profile_or_unknown_origin_starts_clean(tmp_path, fake_runs, marker):
    """A killed unit left by other code (or profile, or seed), or a folder without a readable unit.json (as
    every folder written before this change), never resumes: its checkpoints may not fit the current code."""
    seen, _ = fake_runs
    unit = seed_dir(tmp_path, "maskfocal", SEED)
    ckpt = unit / "runs" / "centernet-mfl" / "checkpoints" / "last.pt"
    ckpt.parent.mkdir(parents=True)
    ckpt.write_bytes(b"old")
    (unit / "data").mkdir()
    (unit / "data" / "x").write_text("old data")
    (unit / "target_stats.json").write_text("{}")
    if marker is not None:
        me = {"profile": "smoke", "seed": SEED, "code": code_digest("maskfocal")}
        (unit / "unit.json").write_text(marker if isinstance(marker, str) else json.dumps({**me, **marker}))
    _unit(tmp_path, force=False)
    assert seen == [{"checkpoint_before": False, "data_before": False}]
    assert not (unit / "target_stats.json").exists()


def test_start_unit_keeps_a_matching_unit(tmp_path):
    """The resume case on its own: marker of this code, profile and seed, no valid rows.json -> nothing removed."""
    unit = tmp_path / "seed-3"
    assert mf_reproduce.start_unit("smoke", 3, unit) is True  # new folder: clean start, marker written
    (unit / "runs").mkdir()
    (unit / CACHE_NAME).write_text(json.dumps({"profile": "quick", "seed": 3, "code": code_digest("maskfocal")}))
    assert mf_reproduce.start_unit("smoke", 3, unit) is False  # rows.json of another profile: not a forced run
    assert (unit / "runs").is_dir()
