"""Training pipeline of harmonize (arXiv 2211.05295): smoke run, resume, loss decrease, CLI, real data."""

import json

import pytest
import torch

from tenfold.cli import main
from tenfold.core.config import make_config
from tenfold.systems.harmonize import SPEC
from tenfold.systems.harmonize import train as T
from tenfold.systems.harmonize.data import make_el_cells, save_pairs_folder
from tenfold.systems.harmonize.loss import build_criterion
from tenfold.systems.harmonize.model import TinyUNet

TINY = {"data.image_size": 32, "data.crack_len_min": 3, "data.crack_len_max": 4, "data.num_train": 8,
        "data.num_val": 4, "data.num_test": 4, "model.widths": (4, 8)}


def test_loss_drops_on_one_fixed_batch():
    torch.manual_seed(0)
    data = make_el_cells(4, 32, (3, 4), 1.0, seed=0, contrast=(0.5, 0.6))  # an easy, visible crack
    model = TinyUNet(1, (4, 8))
    crit = build_criterion("harmonize")
    crit.set_fn_weight(0.9)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(60):
        terms = crit(model(data.images), data.masks)
        opt.zero_grad()
        terms["loss"].backward()
        opt.step()
        losses.append(float(terms["loss"].detach()))
    assert losses[-1] < 0.8 * losses[0]


@pytest.mark.parametrize("selector", ["bisection", "online"])
def test_resume_continues_after_a_kill(tmp_path, monkeypatch, selector):
    over = {**TINY, "train.epochs": 4, "selector.selector": selector, "selector.warmup_epochs": 1,
            "selector.round_epochs": 1, "selector.max_rounds": 2, "selector.final": "continue",
            "selector.final_epochs": 2}
    cfg = make_config(SPEC.config_cls, SPEC.profiles, "smoke", over)
    real = T.train_one_epoch
    calls = {"n": 0}

    def dies_after_two(*args, **kwargs):
        if calls["n"] == 2:
            raise KeyboardInterrupt  # kill-equivalent after two finished epochs
        calls["n"] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(T, "train_one_epoch", dies_after_two)
    with pytest.raises(KeyboardInterrupt):
        T.train(cfg, tmp_path)
    first = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in first] == [1, 2]
    calls["n"] = -100  # let it run to the end
    metrics = T.train(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert records[:2] == first  # not restarted
    assert [r["step"] for r in records] == list(range(1, len(records) + 1))
    assert calls["n"] == -100 + len(records) - 2  # only the remaining epochs were trained
    assert len(records) == 4 and metrics["epochs_trained"] == 4


def test_cli_train_eval_on_real_folders(tmp_path, capsys):
    root = tmp_path / "data"
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        save_pairs_folder(make_el_cells(4, 32, (3, 4), 0.6, seed=seed), root / split)
    out = tmp_path / "run"
    argv = ["--quiet", "train", "harmonize", "--profile", "smoke", "--out", str(out), "--set", f"data.root={root}",
            "--set", "model.widths=4,8"]
    assert main(argv) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["test_fg_ratio"] > 0 and -1 <= trained["oi"] <= 1
    assert main(["--quiet", "eval", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["f1"] == pytest.approx(trained["f1"]) and evaluated["oi"] == pytest.approx(trained["oi"])
    (root / "val" / "masks" / "cell_00000.png").write_bytes(b"junk")
    assert main(["--quiet", "train", "harmonize", "--profile", "smoke", "--out", str(tmp_path / "r2"), "--set",
                 f"data.root={root}"]) == 2
    assert "cell_00000.png" in capsys.readouterr().err


def test_config_validation_names_the_field():
    from tenfold.core.config import ConfigError

    with pytest.raises(ConfigError, match="selector.lo"):
        make_config(SPEC.config_cls, SPEC.profiles, "smoke", {"selector.init": 0.99})
    with pytest.raises(ConfigError, match="loss.tversky_fn"):
        make_config(SPEC.config_cls, SPEC.profiles, "smoke", {"loss.tversky_fn": 1.5})
