"""cmt loaders, predict and run directories: nuScenes geometry by hand, submission format, the masked-modal path
for a missing modality, resume after a kill equals an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.cli import main
from tenfold.core.config import make_config
from tenfold.systems.cmt import data
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.systems.cmt.synthdrive import camera_calibration, write_split
from tests.systems.cmt.nuscenes_tiny import write_tiny_nuscenes


def smoke(**over) -> Config:
    return make_config(Config, PROFILES, "smoke", over)


def test_nuscenes_reader_geometry_by_hand(tmp_path):
    """Identity ego poses and LiDAR calibration: lidar2img = K4 @ inv(cam2ego) = the SynthDrive lidar2img of the
    same rig; a point 10 m ahead at camera height (10, 0, -0.3) projects to the principal point (16, 8) of
    CAM_FRONT (16 x 32 image). The sweep's time-lag channel is (500000 - 250000) us = 0.25 s."""
    root = write_tiny_nuscenes(tmp_path / "ns")
    (s,) = data.read_nuscenes(root, smoke())
    np.testing.assert_allclose(s["lidar2img"][0].double().numpy(), camera_calibration(0.0, (16, 32))["lidar2img"],
                               atol=1e-5)
    p = s["lidar2img"][0].double().numpy() @ np.array([10.0, 0.0, -0.3, 1.0])
    np.testing.assert_allclose(p[:2] / p[2], [16.0, 8.0], atol=1e-4)
    assert s["missing"] == "" and s["images"].shape == (6, 3, 16, 32)
    raw = np.fromfile(root / "samples/LIDAR_TOP/key.pcd.bin", dtype=np.float32).reshape(-1, 5)
    both = np.concatenate([raw, raw])
    both[:200, 4], both[200:, 4] = 0.0, 0.25
    torch.testing.assert_close(s["grid"].float(), data.points_to_grid(both, smoke().model).half().float())


def test_quaternion_to_matrix_by_hand():
    # 90 deg about z: (w, x, y, z) = (cos 45, 0, 0, sin 45) -> [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    c = np.sqrt(0.5)
    np.testing.assert_allclose(data.quat_to_matrix([c, 0, 0, c]), [[0, -1, 0], [1, 0, 0], [0, 0, 1]], atol=1e-12)


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cmt") / "run"
    assert main(["--quiet", "train", "cmt", "--profile", "smoke", "--out", str(run)]) == 0
    return run


def test_predict_writes_the_nuscenes_submission_format(run_dir, tmp_path):
    root = write_tiny_nuscenes(tmp_path / "ns")
    out = tmp_path / "det.json"
    assert main(["--quiet", "predict", "cmt", "--run", str(run_dir), "--input", str(root), "--output", str(out)]) == 0
    sub = json.loads(out.read_text())
    assert sub["meta"]["use_lidar"] and sub["meta"]["use_camera"] and list(sub["results"]) == ["s1"]
    recs = sub["results"]["s1"]
    assert 0 < len(recs) <= 20  # smoke max_num
    r = recs[0]
    assert set(r) == {"sample_token", "translation", "size", "rotation", "velocity", "detection_name",
                      "detection_score", "attribute_name"}
    assert len(r["translation"]) == 3 and len(r["size"]) == 3 and len(r["rotation"]) == 4 and len(r["velocity"]) == 2
    assert abs(np.linalg.norm(r["rotation"]) - 1) < 1e-6 and r["detection_name"] in smoke().data.classes


def test_missing_lidar_runs_the_masked_path(run_dir, tmp_path):
    """A record without lidar_path: points zeroed (ModalMask3D test mode), meta says LiDAR was not used, and the
    boxes equal those of the same scene with its point file replaced by zeros (the masked path, not a drop)."""
    cfg = smoke()
    folder = tmp_path / "synth"
    write_split(folder, 5, "val", 1, data.synth_config(cfg))
    infos = json.loads((folder / "infos_val.json").read_text())
    zeroed = tmp_path / "zeroed"
    write_split(zeroed, 5, "val", 1, data.synth_config(cfg))
    np.save(zeroed / infos[0]["lidar_path"], np.zeros((7, 5), np.float32))
    del infos[0]["lidar_path"]
    (folder / "infos_val.json").write_text(json.dumps(infos))
    outs = []
    for inp in (folder, zeroed):
        out = tmp_path / f"{inp.name}.json"
        assert main(["--quiet", "predict", "cmt", "--run", str(run_dir), "--input", str(inp), "--output",
                     str(out)]) == 0
        outs.append(json.loads(out.read_text()))
    assert outs[0]["meta"]["use_lidar"] is False and outs[1]["meta"]["use_lidar"] is True
    assert outs[0]["results"] == outs[1]["results"]


def test_resume_after_a_kill_equals_an_uninterrupted_run(tmp_path, monkeypatch):
    """Kill during update 3 of 4 (checkpoint at 2), train again: the final weights equal an uninterrupted run's."""
    from tenfold.systems.cmt import train as train_mod

    cfg = smoke(**{"train.steps": 4, "train.checkpoint_every": 2, "model.dropout": 0.0})
    samples, val = data.synthdrive_samples(cfg, "train"), data.synthdrive_samples(cfg, "val")
    train_mod.train(cfg, tmp_path / "a", samples, val)
    real = train_mod.data.collate
    calls = {"n": 0}

    def dying(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(train_mod.data, "collate", dying)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg, tmp_path / "b", samples, val)
    monkeypatch.setattr(train_mod.data, "collate", real)
    assert torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=True)["step"] == 2
    train_mod.train(cfg, tmp_path / "b", samples, val)
    a = torch.load(tmp_path / "a/checkpoints/last.pt", weights_only=True)["model"]
    b = torch.load(tmp_path / "b/checkpoints/last.pt", weights_only=True)["model"]
    for k in a:
        torch.testing.assert_close(a[k], b[k], msg=k)
    steps = [json.loads(line)["step"] for line in (tmp_path / "b/metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2, 3, 4]


def test_train_reads_a_synthdrive_folder(tmp_path):
    cfg = smoke()
    folder = tmp_path / "synth"
    write_split(folder, 5, "train", 2, data.synth_config(cfg))
    write_split(folder, 5, "val", 1, data.synth_config(cfg))
    from tenfold.core.config import override

    samples = data.training_samples(override(cfg, {"data.root": str(folder)}), "train")
    generated = data.synthdrive_samples(override(cfg, {"seed": 5}), "train", 2)
    assert [s["token"] for s in samples] == [s["token"] for s in generated]
    torch.testing.assert_close(samples[1]["gt_boxes"], generated[1]["gt_boxes"])
    assert torch.equal(samples[0]["images"], generated[0]["images"])  # PNG is lossless
