"""Bad-input catalogue of cmt (issue 15): every reader refuses a malformed input with exit 2, a message naming the
file, and the run directory / output untouched.

Readers: a nuScenes root (`tenfold predict cmt --input ROOT`: version folder, sweeps, calibration entries, point
files, image sizes) and a SynthDrive folder (`tenfold train cmt --set data.root=DIR` and predict). The nuScenes
annotation reader's catalogue (`tenfold train cmt --set data.source=nuscenes`: annotation tables, tokens,
rotations, sizes, splits, data.root) is in test_nuscenes_annotations.py.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tenfold.cli import main
from tenfold.systems.cmt.config import PROFILES, Config
from tenfold.core.config import make_config
from tenfold.systems.cmt.data import synth_config
from tenfold.systems.cmt.synthdrive import write_split
from tests.badinput import assert_refused
from tests.systems.cmt.nuscenes_tiny import VERSION, edit_table, write_tiny_nuscenes


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    run = tmp_path_factory.mktemp("cmt") / "run"
    assert main(["--quiet", "train", "cmt", "--profile", "smoke", "--out", str(run)]) == 0
    return run


def _predict(run: Path, inp: Path, out: Path) -> list[str]:
    return ["predict", "cmt", "--run", str(run), "--input", str(inp), "--output", str(out)]


def _refused_predict(run_dir, root, names, tmp_path, capsys):
    out = tmp_path / "det.json"
    assert_refused(_predict(run_dir, root, out), names, run_dir, capsys)
    assert not out.exists()


def test_nuscenes_missing_version_folder(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    shutil.rmtree(root / VERSION)
    _refused_predict(run_dir, root, [VERSION, "version folder"], tmp_path, capsys)


def test_nuscenes_missing_sweeps(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    shutil.rmtree(root / "sweeps")
    _refused_predict(run_dir, root, ["sweeps", "num_sweeps"], tmp_path, capsys)


def test_nuscenes_missing_calibration_entry(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    edit_table(root, "calibrated_sensor", lambda rows: [r for r in rows if r["token"] != "cal_CAM_BACK"])
    _refused_predict(run_dir, root, ["calibrated_sensor.json", "cal_CAM_BACK"], tmp_path, capsys)


def test_nuscenes_empty_point_file(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    (root / "samples/LIDAR_TOP/key.pcd.bin").write_bytes(b"")
    _refused_predict(run_dir, root, ["key.pcd.bin", "empty point file"], tmp_path, capsys)


def test_nuscenes_point_file_not_whole_points(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    (root / "samples/LIDAR_TOP/key.pcd.bin").write_bytes(b"\x00" * 30)
    _refused_predict(run_dir, root, ["key.pcd.bin", "float32 (N, 5)"], tmp_path, capsys)


def test_nuscenes_wrong_image_size(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    Image.fromarray(np.zeros((20, 32, 3), np.uint8)).save(root / "samples/CAM_FRONT/img.jpg")
    _refused_predict(run_dir, root, ["CAM_FRONT/img.jpg", "20 x 32", "16 x 32"], tmp_path, capsys)


def test_nuscenes_bad_calibration_matrix(run_dir, tmp_path, capsys):
    root = write_tiny_nuscenes(tmp_path / "ns")
    edit_table(root, "calibrated_sensor", lambda rows: [
        {**r, "camera_intrinsic": [[1, 0], [0, 1]]} if r["token"] == "cal_CAM_FRONT" else r for r in rows])
    _refused_predict(run_dir, root, ["cal_CAM_FRONT", "camera_intrinsic", "3x3"], tmp_path, capsys)


def _synth_folder(tmp_path: Path) -> Path:
    cfg = make_config(Config, PROFILES, "smoke")
    folder = tmp_path / "synth"
    write_split(folder, 5, "train", 2, synth_config(cfg))
    write_split(folder, 5, "val", 1, synth_config(cfg))
    return folder


def _train_argv(folder: Path, run: Path) -> list[str]:
    return ["train", "cmt", "--profile", "smoke", "--out", str(run), "--set", f"data.root={folder}"]


def test_synthdrive_empty_point_file_refused_before_training(tmp_path, capsys):
    folder = _synth_folder(tmp_path)
    rec = json.loads((folder / "infos_train.json").read_text())[1]
    np.save(folder / rec["lidar_path"], np.zeros((0, 5), np.float32))
    assert_refused(_train_argv(folder, tmp_path / "run"), [rec["lidar_path"], "empty point file"], tmp_path / "run",
                   capsys)


def test_synthdrive_wrong_image_size_refused(tmp_path, capsys):
    folder = _synth_folder(tmp_path)
    rec = json.loads((folder / "infos_val.json").read_text())[0]
    path = rec["cams"]["CAM_BACK"]["data_path"]
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(folder / path)
    assert_refused(_train_argv(folder, tmp_path / "run"), [path, "8 x 8", "data.image_hw"], tmp_path / "run", capsys)


def test_synthdrive_infos_not_json(tmp_path, capsys):
    folder = _synth_folder(tmp_path)
    (folder / "infos_train.json").write_text("{not json")
    assert_refused(_train_argv(folder, tmp_path / "run"), ["infos_train.json", "not valid JSON"], tmp_path / "run",
                   capsys)


def test_synthdrive_points_of_wrong_shape_in_predict(run_dir, tmp_path, capsys):
    folder = _synth_folder(tmp_path)
    rec = json.loads((folder / "infos_val.json").read_text())[0]
    np.save(folder / rec["lidar_path"], np.zeros((4, 3), np.float32))
    _refused_predict(run_dir, folder, [rec["lidar_path"], "(N, >= 5)"], tmp_path, capsys)
