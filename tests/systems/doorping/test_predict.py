"""`tenfold predict doorping`: scanning a data set with the defenses (issue 21), and its refused inputs."""

from __future__ import annotations

import json

import torch

from tenfold.cli import main
from tenfold.core.config import make_config, save_config
from tenfold.systems.doorping.config import PROFILES, Config
from tests.badinput import assert_refused


def _run(path):
    """A run directory with the smoke config (digits, 1 x 16 x 16, 10 classes); predict needs only config.json."""
    cfg = make_config(Config, PROFILES, "smoke", {"victim.epochs": 3, "defense.nc_steps": 2,
                                                  "defense.strip_overlays": 2})
    path.mkdir(parents=True)
    save_config(cfg, path / "config.json")
    (path / "run.json").write_text(json.dumps({"system": "doorping", "profile": "smoke"}) + "\n")
    return path


def test_predict_reports_every_class(tmp_path, capsys):
    run = _run(tmp_path / "run")
    g = torch.Generator().manual_seed(0)
    torch.save({"images": torch.randn(40, 1, 16, 16, generator=g), "labels": torch.arange(10).repeat(4)},
               tmp_path / "set.pt")
    out = tmp_path / "scan.json"
    assert main(["--quiet", "predict", "doorping", "--run", str(run), "--input", str(tmp_path / "set.pt"),
                 "--output", str(out)]) == 0
    scan = json.loads(out.read_text())
    assert [c["class"] for c in scan["classes"]] == list(range(10))
    assert all(c["count"] == 4 for c in scan["classes"])
    keys = {"nc_mask_l1", "nc_anomaly_index", "nc_flag_score", "strip_entropy", "ac_smaller_size", "ss_ratio"}
    assert keys <= set(scan["classes"][0])
    assert set(scan["flagged"]) == {"neural_cleanse", "activation_clustering", "spectral_signatures"}


def test_predict_refuses_bad_inputs(tmp_path, capsys):
    run = _run(tmp_path / "run")
    cases = {  # file name: (content, text in the message)
        "wrong_shape.pt": ({"images": torch.zeros(4, 3, 16, 16), "labels": torch.zeros(4, dtype=torch.long)},
                           "field 'images' is (4, 3, 16, 16)"),
        "nan.pt": ({"images": torch.full((4, 1, 16, 16), float("nan")), "labels": torch.zeros(4, dtype=torch.long)},
                   "finite floats"),
        "labels.pt": ({"images": torch.zeros(4, 1, 16, 16), "labels": torch.arange(4) + 8}, "[0, 9]"),
        "float_labels.pt": ({"images": torch.zeros(4, 1, 16, 16), "labels": torch.zeros(4)}, "dtype torch.float32"),
    }
    for name, (obj, text) in cases.items():
        torch.save(obj, tmp_path / name)
        assert_refused(["predict", "doorping", "--run", str(run), "--input", str(tmp_path / name), "--output",
                        str(tmp_path / "scan.json")], [name, text], run, capsys)
        assert not (tmp_path / "scan.json").exists()
    (tmp_path / "trunc.pt").write_bytes(b"PK\x03\x04 truncated")
    assert_refused(["predict", "doorping", "--run", str(run), "--input", str(tmp_path / "trunc.pt"), "--output",
                    str(tmp_path / "scan.json")], "trunc.pt", run, capsys)
    (tmp_path / "set.npy").write_bytes(b"x")
    assert_refused(["predict", "doorping", "--run", str(run), "--input", str(tmp_path / "set.npy"), "--output",
                    str(tmp_path / "scan.json")], ["set.npy", ".pt file"], run, capsys)
    torch.save({"images": torch.zeros(4, 1, 16, 16), "labels": torch.zeros(4, dtype=torch.long)}, tmp_path / "ok.pt")
    assert_refused(["predict", "doorping", "--run", str(run), "--input", str(tmp_path / "ok.pt"), "--output",
                    str(tmp_path / "scan.txt")], ["scan.txt", ".json"], run, capsys)
