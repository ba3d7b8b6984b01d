"""`tenfold predict harmonize` (issue 18): tiled inference on any image size, the validation threshold."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from torch import nn

from tenfold.cli import main
from tenfold.systems.harmonize.predict import _starts, tiled_logits
from tests.badinput import assert_refused


class Pointwise(nn.Module):
    """A 'model' whose logit at a pixel depends on that pixel only: tiling must reproduce it exactly."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.tensor(3.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.w * x - 1


class WindowMean(nn.Module):
    """Logit = pixel - the window's mean: depends on the window (like GroupNorm), so tiles are visible."""

    def __init__(self) -> None:
        super().__init__()
        self.p = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x - x.mean(dim=(-2, -1), keepdim=True) + self.p


def test_window_starts_hand_values():
    assert _starts(100, 40, 24) == [0, 24, 48, 60]
    assert _starts(40, 40, 24) == [0]
    assert _starts(30, 40, 24) == [0]


@pytest.mark.parametrize("shape", [(37, 53), (64, 64), (20, 90), (130, 41)])
def test_tiled_logits_equal_the_pointwise_model_on_any_size(shape):
    img = torch.rand(shape)
    z = tiled_logits(Pointwise(), img, window=32, multiple=8, margin=4)
    assert z.shape == shape
    torch.testing.assert_close(z, 3 * img - 1)


def test_tiled_logits_take_each_pixel_from_one_window_centre():
    """With a window-dependent model, every output pixel equals the value of the window the stitching rule names:
    window starts 0, 24, 32 on a 64-px side with window 32 and margin 4 (step 24)."""
    img = torch.rand(64, 64)
    z = tiled_logits(WindowMean(), img, window=32, multiple=8, margin=4)
    starts = [0, 24, 32]
    owner = np.zeros(64, dtype=int)  # which window start writes each row / column last
    for k, s in enumerate(starts):
        owner[s + (0 if s == 0 else 4):s + 32] = k
    for y in (0, 27, 28, 40, 63):
        for x in (0, 10, 29, 50):
            sy, sx = starts[owner[y]], starts[owner[x]]
            win = img[sy:sy + 32, sx:sx + 32]
            assert float(z[y, x]) == pytest.approx(float(img[y, x] - win.mean()), abs=1e-6)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("harm-predict") / "run"
    assert main(["--quiet", "train", "harmonize", "--profile", "smoke", "--out", str(out)]) == 0
    return out


def test_predict_writes_masks_of_each_image_size_at_the_validation_threshold(run, tmp_path, capsys):
    summary = json.loads((run / "summary.json").read_text())
    assert np.isfinite(summary["val_logit_threshold"])
    folder = tmp_path / "imgs"
    folder.mkdir()
    rng = np.random.default_rng(0)
    sizes = {"a": (40, 72), "b": (97, 33), "c": (32, 32)}
    for name, (h, w) in sizes.items():
        Image.fromarray((rng.random((h, w)) * 255).astype(np.uint8)).save(folder / f"{name}.png")
    out = tmp_path / "masks"
    capsys.readouterr()
    assert main(["--quiet", "predict", "harmonize", "--run", str(run), "--input", str(folder), "--output",
                 str(out)]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["threshold"]["validation_logit"] == summary["val_logit_threshold"]
    for name, shape in sizes.items():
        mask = np.asarray(Image.open(out / f"{name}_mask.png"))
        assert mask.shape == shape and set(np.unique(mask).tolist()) <= {0, 255}
    assert report["foreground_pixels"]["at_validation_threshold"] == sum(
        int((np.asarray(Image.open(out / f"{n}_mask.png")) > 0).sum()) for n in sizes)


@pytest.mark.parametrize("case", ["truncated", "not_png_output", "no_threshold"])
def test_predict_refuses_bad_inputs_before_writing(run, tmp_path, capsys, case):
    folder = tmp_path / "imgs"
    folder.mkdir()
    Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "a.png")
    out = tmp_path / "masks"
    argv = ["predict", "harmonize", "--run", str(run), "--input", str(folder), "--output", str(out)]
    if case == "truncated":
        data = (folder / "a.png").read_bytes()
        Image.fromarray(np.zeros((40, 40), np.uint8)).save(folder / "b.png")
        (folder / "z.png").write_bytes(data[: len(data) // 2])
        names = [str(folder / "z.png")]
    elif case == "not_png_output":
        out = tmp_path / "mask.jpg"
        argv[-3:] = [str(folder / "a.png"), "--output", str(out)]
        names = [str(out), ".png"]
    else:
        import shutil

        old = tmp_path / "old"
        shutil.copytree(run, old)
        s = json.loads((old / "summary.json").read_text())
        del s["val_logit_threshold"]
        (old / "summary.json").write_text(json.dumps(s))
        argv[3] = str(old)
        names = [str(old / "summary.json"), "val_logit_threshold"]
    assert_refused(argv, names, out, capsys)
