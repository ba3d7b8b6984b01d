"""Equal budgets and the shared initial backbone of `ssdg` (arXiv 2111.10221; project fairness rule)."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config
from tenfold.systems.ssdg import baselines as B
from tenfold.systems.ssdg.config import PROFILES, Config
from tenfold.systems.ssdg.data import AUX_CHARS, labeled_set, load_task, make_aux_glyphs
from tenfold.systems.ssdg.model import build_classifier, pretrained_backbone
from tenfold.systems.ssdg.train import CyclicSSDG


class _Sized:
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n


def test_matched_budget_hand_computed():
    # D_L train 80 + two unlabeled domains of 100 = 280 images; batch 32 -> ceil(280 / 32) = 9 steps per DG epoch;
    # 3 cycles x 2 DG epochs = 6 epochs -> 54 steps, 6 validations.
    t = SimpleNamespace(num_cycles=3, dg_epochs=2, batch_size=32, baseline_epochs=0, final_epochs=6)
    task = SimpleNamespace(train=_Sized(80), unlabeled=[_Sized(100), _Sized(100)])
    assert B.matched_budget(t, task) == (54, 6)


def test_eval_steps_evenly_spaced_and_last():
    assert B.eval_steps(54, 6) == {9, 18, 27, 36, 45, 54}
    assert B.eval_steps(10, 3) == {3, 7, 10}  # round(3.33), round(6.67), 10


def test_train_network_takes_exactly_the_budget():
    # 40 images in batches of 16: epochs of 16, 16, 8. Seven steps = 16+16+8 + 16+16+8 + 16 = 96 image passes.
    cfg = make_config(Config, PROFILES, "smoke", {})
    rng = np.random.default_rng(0)
    data = labeled_set("P", rng.integers(0, 255, (40, 32, 32, 3), dtype=np.uint8), np.arange(40) % 10, 0)
    val = labeled_set("P", rng.integers(0, 255, (10, 32, 32, 3), dtype=np.uint8), np.arange(10) % 10, 0)
    t = SimpleNamespace(**{**cfg.train.__dict__, "batch_size": 16})
    out = B.train_network(build_classifier(cfg, 10, False), data, val, 7, 2, t, cfg.data, rng)
    assert out["image_passes"] == 96 and out["steps"] == 7 and len(out["val_curve"]) == 2


def test_aux_glyphs_letters_only_balanced_and_deterministic():
    x, y, c = make_aux_glyphs(64, seed=3)
    assert x.shape == (64, 32, 32, 3) and x.dtype == np.uint8 and c == 16 == len(AUX_CHARS)
    assert np.bincount(y, minlength=16).tolist() == [4] * 16  # 64 = 16 classes x 4
    assert not set(AUX_CHARS) & set("0123456789ABCDEFGHIJ")  # no digit class, no web out-of-class letter
    x2, y2, _ = make_aux_glyphs(64, seed=3)
    assert np.array_equal(x, x2) and np.array_equal(y, y2)


def test_pretrained_backbone_shared_by_every_network():
    cfg = make_config(Config, PROFILES, "smoke", {"model.init": "glyphs", "model.pretrain_images": 32,
                                                  "model.pretrain_epochs": 1, "seed": 5})
    assert pretrained_backbone(make_config(Config, PROFILES, "smoke", {})) is None  # scratch: random init
    init = pretrained_backbone(cfg)
    again = pretrained_backbone(make_config(Config, PROFILES, "smoke", {"model.init": "glyphs",
                                                                        "model.pretrain_images": 32,
                                                                        "model.pretrain_epochs": 1, "seed": 5}))
    assert all(torch.equal(init[k], again[k]) for k in init)
    torch.manual_seed(0)
    fresh = build_classifier(cfg, 10, False).backbone.state_dict()
    assert not all(torch.equal(init[k], fresh[k]) for k in init)
    task = load_task(cfg)
    tr = CyclicSSDG(cfg, task.train, task.unlabeled, task.val, 10)
    for net in [m.net.F for m in tr.mcd] + [tr.dg.a.backbone, tr.dg.b.backbone]:
        assert all(torch.equal(v, init[k]) for k, v in net.state_dict().items())


@pytest.mark.parametrize("bad", [{"model.init": "imagenet"}, {"model.pretrain_images": 4}])
def test_init_config_refused(bad):
    from tenfold.core.config import ConfigError

    with pytest.raises(ConfigError):
        make_config(Config, PROFILES, "smoke", bad)


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("arm", ["oracle", "no_inter"])
def test_branch_after_cycle_0_equals_a_from_scratch_run(arm):
    # spec 7: the oracle branch (and the no-intermediate-domain branch) copied after cycle 0 must equal a run
    # that used that criterion / ratio from the start, since I^0 is empty and cycle 0 is the same.
    import dataclasses

    from tenfold.core.runtime import seed_everything
    from tenfold.systems.ssdg.reproduce import run_cycles

    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 40, "seed": 4})
    task = load_task(cfg)
    states = {}
    out = run_cycles(cfg, task, "cpu", lambda a, state, *rest: states.__setitem__(a, state))
    seed_everything(cfg.seed)
    tr = CyclicSSDG(cfg, task.train, task.unlabeled, task.val, task.num_classes)
    if arm == "oracle":
        tr.criterion, tr.oracle_labels = "oracle", [task.hidden_truth[n] for n in task.unlabeled_names]
    else:
        tr.t = dataclasses.replace(tr.t, selection_ratio=0.0)
    for _ in range(cfg.train.num_cycles):
        rec = tr.train_cycle()
        tr.select()
    assert _states_equal(rec["state"], states[arm])
    sizes = {a: [h["inter_size"] for h in out["history"][a]] for a in ("cyclic", arm)}
    assert sizes["cyclic"][0] > 0  # the method's intermediate domain is not empty ...
    if arm == "no_inter":
        assert sizes[arm][1:] == [0] * (cfg.train.num_cycles - 1)  # ... the ablation's is, after cycle 0


def test_cyclic_run_resumes_after_a_kill(tmp_path, monkeypatch):
    from tenfold.systems.ssdg import train as T

    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 40, "seed": 6})
    T.train(cfg, tmp_path / "whole")
    whole = torch.load(tmp_path / "whole" / "checkpoints" / "last.pt", weights_only=False)
    real = T.CyclicSSDG.train_cycle
    calls = []

    def killed_in_cycle_1(self):
        calls.append(self.cycle)
        if self.cycle == 1:
            raise KeyboardInterrupt("killed")
        return real(self)

    monkeypatch.setattr(T.CyclicSSDG, "train_cycle", killed_in_cycle_1)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path / "killed")
    monkeypatch.setattr(T.CyclicSSDG, "train_cycle", real)
    T.train(cfg, tmp_path / "killed")  # resumes at cycle 1 from the checkpoint written after cycle 0
    resumed = torch.load(tmp_path / "killed" / "checkpoints" / "last.pt", weights_only=False)
    assert calls == [0, 1] and resumed["done"]
    assert _states_equal(whole["final_model"], resumed["final_model"])
    strip = [[{k: v for k, v in h.items() if k != "wall_s"} for h in run["summary"]["history"]]
             for run in (whole, resumed)]
    assert strip[0] == strip[1] and len(strip[0]) == cfg.train.num_cycles
