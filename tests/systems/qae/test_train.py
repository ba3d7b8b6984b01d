"""qae training loop: run directory, resume after a kill, and the quick-profile bands (slow)."""

from __future__ import annotations

import json

import pytest

from tenfold.core.claims import Claim
from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.qae.config import PROFILES, Config
from tenfold.systems.qae.train import train


def _cfg(**overrides) -> Config:
    base = {"train.iters": 20, "train.checkpoint_every": 5}
    return make_config(Config, PROFILES, "smoke", {**base, **overrides})


def test_resume_after_kill_continues_the_same_trajectory(tmp_path, monkeypatch):
    straight = train(_cfg(), tmp_path / "straight")

    real_log = RunDir.log_metrics

    def killed_at_step_13(self, record):
        if record.get("step") == 13:
            raise KeyboardInterrupt  # a kill between the checkpoint at step 10 and the next one
        real_log(self, record)

    monkeypatch.setattr(RunDir, "log_metrics", killed_at_step_13)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "killed")
    monkeypatch.setattr(RunDir, "log_metrics", real_log)
    run = RunDir(tmp_path / "killed")
    assert run.load_checkpoint()["iter"] == 10
    assert not run.summary_path.exists()  # nothing half-written

    resumed = train(_cfg(), tmp_path / "killed")
    steps = [r["step"] for r in run.read_metrics() if "step" in r]
    assert steps == list(range(1, 21))  # steps 11, 12 logged before the kill were dropped and redone once
    # Adam state and controls were restored, so the trajectory is the uninterrupted one.
    assert resumed["encoding_fidelity"] == pytest.approx(straight["encoding_fidelity"], abs=1e-10)
    assert resumed["evaluations"] == straight["evaluations"]


def test_rerun_of_a_finished_run_does_not_retrain(tmp_path):
    first = train(_cfg(), tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text()
    again = train(_cfg(), tmp_path)
    assert again["encoding_fidelity"] == first["encoding_fidelity"]
    assert (tmp_path / "metrics.jsonl").read_text() == lines


@pytest.mark.parametrize("learner,encoder", [("de", "control"), ("unitary_ascent", "control"),
                                             ("grape_adam", "unitary"), ("grape_adam", "circuit")])
def test_other_learners_and_encoders_train(tmp_path, learner, encoder):
    cfg = _cfg(**{"train.learner": learner, "model.encoder": encoder, "train.max_evaluations": 200,
                  "train.ascent_steps": 50})
    metrics = train(cfg, tmp_path)
    assert metrics["encoding_fidelity"] <= metrics["bound"] + 1e-9
    assert metrics["max_history_minus_bound"] <= 1e-9
    assert json.loads((tmp_path / "summary.json").read_text())["learner"] == metrics["learner"]


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 42])
def test_quick_profile_acceptance_rows_hold(tmp_path, seed):
    # Spec section 6 acceptance on the quick profile (seed 0 = development, 42 = held out): the bound rows, the
    # Adam-GRAPE-reaches-the-bound rows, the lossless row and GRAPE >= DE at an equal budget hold on every case.
    # (The SPSA rows are reported, not required: on seed 42 SPSA stays below GRAPE; see the README.)
    from tenfold.systems.qae.reproduce import reproduce

    rows = reproduce("quick", seed, tmp_path)
    assert all(isinstance(r, Claim) for r in rows) and len(rows) >= 30
    acceptance = [r for r in rows if r.claim.startswith(("F_enc never exceeds", "Exact-gradient learning control",
                                                         "Lossless compression"))
                  or (r.claim.startswith("Exact-gradient control beats") and r.baseline == "de")]
    assert len(acceptance) == 7 + 6 + 1 + 2
    failing = [(r.claim, r.metric, r.method_value, r.baseline_value) for r in acceptance if r.verdict != "holds"]
    assert not failing
