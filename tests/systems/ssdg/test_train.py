"""Smoke train -> eval of ssdg through the CLI; the run directory; baselines through the same harness."""

import json

import pytest

from tenfold.cli import main
from tenfold.core.config import make_config
from tenfold.systems.ssdg.config import PROFILES, Config
from tenfold.systems.ssdg.train import train



def test_cli_train_eval_and_run_directory(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--quiet", "train", "ssdg", "--profile", "smoke", "--out", str(run)]) == 0
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "run.json"):
        assert (run / name).exists(), name
    summary = json.loads((run / "summary.json").read_text())
    assert len(summary["history"]) == 2  # smoke: 2 cycles
    assert summary["history"][0]["inter_size"] > 0  # the intermediate domain is non-empty
    assert summary["final_epochs"] == 4 and summary["image_passes"] > 0
    capsys.readouterr()
    assert main(["--quiet", "eval", "--run", str(run)]) == 0
    out = json.loads(capsys.readouterr().out)
    assert 0 <= out["target_acc"] <= 100 and len(out["acc_per_cycle"]) == 2 and out["chance_acc"] == 10.0


@pytest.mark.parametrize("method", ["erm", "erm_mixstyle", "naive_pl", "fixmatch"])
def test_baselines_share_the_harness(method, tmp_path):
    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 30, "train.method": method,
                                                  "train.baseline_epochs": 1})
    m = train(cfg, tmp_path)
    assert m["method"] == method and m["final_epochs"] == 1 and m["image_passes"] > 0
    assert (tmp_path / "checkpoints" / "last.pt").exists()


def test_finished_run_is_not_retrained(tmp_path):
    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 30, "train.method": "erm",
                                                  "train.baseline_epochs": 1})
    first = train(cfg, tmp_path)
    stamp = (tmp_path / "checkpoints" / "last.pt").stat().st_mtime_ns
    assert train(cfg, tmp_path) == first
    assert (tmp_path / "checkpoints" / "last.pt").stat().st_mtime_ns == stamp
