"""qae training loop: run directory, resume after a kill, and the quick-profile bands (slow)."""

from __future__ import annotations

import json

import pytest

from tenfold.core.claims import Measurement
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
    # Spec section 6 acceptance on the quick profile, one development seed at a time (0 = development, 42 = held
    # out in the first pass; both in config.DEV_SEEDS): every check holds (K1-K6: F_enc <= B_k for every learner,
    # the F_enc / F_dec sandwich, k = 1 below B_2, lossless iff rank <= 2^k, ascent at the bound, controllability),
    # Adam-GRAPE reaches every bound (L1), and Adam-GRAPE >= DE at an equal number of hardware evaluations on both
    # 2-qubit random ensembles. A `Measurement.verdict` is this seed's plain relation. (The COBYLA / SPSA rows are
    # reported, not required: at hardware cost COBYLA beats GRAPE on the development seeds; see the README.)
    from tenfold.systems.qae.reproduce import reproduce

    rows = reproduce("quick", seed, tmp_path)
    assert all(isinstance(r, Measurement) and r.seed == seed for r in rows) and len(rows) >= 50
    checks = [r for r in rows if r.kind == "check"]
    reach = [r for r in rows if r.claim == "Exact-gradient learning control reaches the bound"]
    vs_de = [r for r in rows if r.claim.startswith("At an equal number of hardware") and r.method == "grape_adam"
             and r.baseline == "de"]
    assert (len(checks), len(reach), len(vs_de)) == (13, 6, 2)
    failing = [(r.claim, r.metric, r.method, r.method_value, r.baseline_value) for r in checks + reach + vs_de
               if r.verdict != "holds"]
    assert not failing
    assert {p.name for p in tmp_path.glob("*.png")} == {"training_curves.png", "training_curves_simulation.png",
                                                         "bound_vs_learned.png"}
