"""doorping training: run directory, resume after a kill, CLI errors, and the quick profile (slow)."""

from __future__ import annotations

import json

import pytest
import torch

from tenfold.cli import main
from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.doorping.config import PROFILES, Config
from tenfold.systems.doorping.train import train


def _cfg(**kw) -> Config:
    base = {"distill.iterations": 4, "victim.epochs": 5, "defense.use_defenses": False}
    return make_config(Config, PROFILES, "smoke", {**base, **kw})


def test_resume_after_kill_continues(tmp_path, monkeypatch):
    straight = train(_cfg(), tmp_path / "straight")
    real_log = RunDir.log_metrics

    def killed_at_step_3(self, record):
        if record.get("step") == 3:
            raise KeyboardInterrupt  # killed after the checkpoint of iteration 2
        real_log(self, record)

    monkeypatch.setattr(RunDir, "log_metrics", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "killed")
    monkeypatch.setattr(RunDir, "log_metrics", real_log)
    run = RunDir(tmp_path / "killed")
    assert run.load_checkpoint()["iter"] == 2
    assert not run.summary_path.exists()
    resumed = train(_cfg(), tmp_path / "killed")
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]  # continued, not restarted
    # The RNG streams, S, its optimiser and the trigger were restored: the same result as without the kill.
    s1 = torch.load(tmp_path / "straight" / "synset.pt")["images"]
    s2 = torch.load(tmp_path / "killed" / "synset.pt")["images"]
    torch.testing.assert_close(s1, s2)
    assert resumed["trigger/cta"] == straight["trigger/cta"]


def test_run_directory_artefacts(tmp_path):
    train(_cfg(**{"distill.iterations": 1}), tmp_path)
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "synset.pt", "trigger.pt",
                 "synset.png", "trigger.png"):
        assert (tmp_path / name).exists(), name
    syn = torch.load(tmp_path / "synset.pt")
    assert syn["images"].shape == (20, 1, 16, 16) and syn["labels"].tolist() == [c for c in range(10) for _ in "ab"]
    trig = torch.load(tmp_path / "trigger.pt")
    assert trig["tau"].shape == trig["mask"].shape == (1, 1, 16, 16)
    record = json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])
    assert record["trigger_updates"] == 1 and "trigger_steps_mean" in record


@pytest.mark.parametrize("sets,needle", [
    (["attack.trigger_label=10"], "attack.trigger_label=10 is not a class"),
    (["attack.backdoor_size=16"], "backdoor_size=16"),
    (["distill.ipc=3", "distill.outer_loop=0"], "distill.ipc=3 has no (outer, inner) loop"),
    (["data.dataset=npz"], "data.root is required"),
])
def test_bad_input_exits_2_and_writes_nothing(tmp_path, capsys, sets, needle):
    out = tmp_path / "run"
    argv = ["--quiet", "train", "doorping", "--profile", "smoke", "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    assert needle in capsys.readouterr().err
    assert not (out / "config.json").exists()


def test_labels_out_of_range_in_a_user_file(tmp_path, capsys):
    import numpy as np

    path = tmp_path / "bad.npz"
    np.savez(path, train_x=np.zeros((4, 1, 16, 16)), train_y=np.array([0, 1, 2, -1]),
             test_x=np.zeros((2, 1, 16, 16)), test_y=np.array([0, 1]))
    argv = ["--quiet", "train", "doorping", "--profile", "smoke", "--out", str(tmp_path / "r"), "--set",
            "data.dataset=npz", "--set", f"data.root={path}"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "field train_y" in err and "[-1, 2]" in err


@pytest.mark.slow
def test_quick_profile_runs_every_arm_and_defense(tmp_path):
    # The quick profile on dev seed 0 (~4 min): four synthetic sets, every row finite, the check holds.
    # Issue 21: the headline no longer holds on every seed at this budget (README "What the numbers say": on
    # two of three claim seeds the faithful trigger never moved), so no verdict is asserted here.
    import math

    from tenfold.systems.doorping.reproduce import ARMS, reproduce

    rows = reproduce("quick", 0, tmp_path)
    assert all((tmp_path / arm / "synset.pt").exists() for arm in ARMS)
    assert all(math.isfinite(r.method_value) and math.isfinite(r.baseline_value) for r in rows)
    assert [r.verdict for r in rows if r.kind == "check"] == ["holds"]
    assert sum("fine-pruning" in r.claim for r in rows) == 3
    assert len(list(tmp_path.glob("*.png"))) >= 2


@pytest.mark.parametrize("method,attack", [("dm", "doorping"), ("dsa", "naive"), ("dd", "doorping"),
                                           ("dc", "invisible")])
def test_other_distillers_and_attacks_run(tmp_path, method, attack):
    cfg = _cfg(**{"distill.method": method, "attack.attack": attack, "distill.iterations": 1, "victim.epochs": 2,
                  "victim.dsa_epochs": 2})
    metrics = train(cfg, tmp_path)
    assert 0 <= metrics["trigger/cta"] <= 1 and 0 <= metrics["trigger/asr_nontarget"] <= 1
    losses = [r["loss_match"] for r in RunDir(tmp_path).read_metrics()]
    assert losses and all(l == l for l in losses)  # finite loss_match


@pytest.mark.parametrize("transfer", ["convnet_mini,alexnet",
                                      pytest.param("resnet18", marks=pytest.mark.slow)])  # ResNet18: ~25 s
def test_dd_on_alexcifarnet_with_transfer_victims(tmp_path, transfer):
    # Issue 21 model zoo, wired end to end: DD distils on AlexCifarNet (Xavier init under model.init = auto) and
    # the set is also scored on fresh victims of every `model.eval_arch` (eval_mode M).
    cfg = _cfg(**{"distill.method": "dd", "model.arch": "alexcifarnet", "model.eval_arch": transfer,
                  "attack.attack": "naive", "distill.iterations": 1, "victim.epochs": 1})
    metrics = train(cfg, tmp_path)
    for arch in transfer.split(","):
        assert 0 <= metrics[f"transfer_{arch}/trigger/cta"] <= 1
        assert 0 <= metrics[f"transfer_{arch}/trigger/asr_nontarget"] <= 1
    assert json.loads((tmp_path / "config.json").read_text())["model"]["arch"] == "alexcifarnet"
