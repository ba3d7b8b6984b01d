"""Issue 18: data folders whose images differ in size (crops for training, each image scored at its own size)."""

from __future__ import annotations

import json

import numpy as np
import torch
from PIL import Image

from tenfold.cli import main
from tenfold.systems.harmonize.data import load_pairs_folder, make_el_cells, random_crops, save_pairs_folder
from tenfold.systems.harmonize.scoring import predict_logits


def _pair(folder, name, img, mask):
    (folder / "images").mkdir(parents=True, exist_ok=True)
    (folder / "masks").mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(folder / "images" / f"{name}.png")
    Image.fromarray(mask).save(folder / "masks" / f"{name}.png")


def test_mixed_sizes_are_padded_and_their_sizes_kept(tmp_path):
    _pair(tmp_path, "a", np.full((8, 12), 255, np.uint8), np.zeros((8, 12), np.uint8))
    _pair(tmp_path, "b", np.full((16, 4), 255, np.uint8), np.full((16, 4), 255, np.uint8))
    data = load_pairs_folder(tmp_path, multiple=4)
    assert data.sizes == ((8, 12), (16, 4)) and data.images.shape == (2, 1, 16, 12)
    assert float(data.images[0].sum()) == 8 * 12 and float(data.images[1].sum()) == 16 * 4  # zero padding
    assert float(data.masks[1].sum()) == 16 * 4
    same = tmp_path / "same"
    _pair(same, "a", np.zeros((8, 8), np.uint8), np.zeros((8, 8), np.uint8))
    assert load_pairs_folder(same).sizes == ()


def test_crops_stay_inside_each_images_own_extent():
    images = torch.zeros(3, 1, 20, 20)
    for i, (h, w) in enumerate(((8, 20), (20, 6), (20, 20))):
        images[i, 0, :h, :w] = 1.0
    gen = torch.Generator().manual_seed(0)
    ext = torch.tensor([[8, 20], [20, 6], [20, 20]])
    for _ in range(50):
        crops, _ = random_crops(images, images.clone(), 6, gen, ext)
        assert bool((crops == 1).all())  # never a padded pixel


class Scale(torch.nn.Module):
    """logit = 10 * (x - mean over the input): depends on the input size, like the model's GroupNorm."""

    def __init__(self) -> None:
        super().__init__()
        self.p = torch.nn.Parameter(torch.ones(()))

    def forward(self, x):
        return 10 * self.p * (x - x.mean(dim=(-2, -1), keepdim=True))


def test_each_image_is_scored_alone_at_its_own_size_and_padding_is_never_foreground():
    images = torch.zeros(2, 1, 8, 8)
    images[0, 0, :4, :6] = torch.rand(4, 6)
    images[1] = torch.rand(1, 8, 8)
    z = predict_logits(Scale(), images, torch.device("cpu"), sizes=((4, 6), (8, 8)))
    torch.testing.assert_close(z[0, 0, :4, :6], Scale()(images[0:1, :, :4, :6])[0, 0].detach())
    assert bool(torch.isneginf(z[0, 0, 4:]).all()) and bool(torch.isneginf(z[0, 0, :, 6:]).all())
    torch.testing.assert_close(z[1], Scale()(images[1:2])[0].detach())


def test_train_and_eval_on_a_folder_of_mixed_sizes(tmp_path, capsys):
    root = tmp_path / "data"
    for split, seed in (("train", 0), ("val", 1), ("test", 2)):
        save_pairs_folder(make_el_cells(3, 32, (3, 4), 0.6, seed=seed), root / split)
        save_pairs_folder(make_el_cells(2, 48, (3, 4), 0.6, seed=seed + 10), root / split / "big")
        for kind in ("images", "masks"):
            for f in (root / split / "big" / kind).iterdir():
                f.rename(root / split / kind / f"big_{f.name}")
    out = tmp_path / "run"
    assert main(["--quiet", "train", "harmonize", "--profile", "smoke", "--set", f"data.root={root}", "--set",
                 "data.train_crop=24", "--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert np.isfinite(summary["val_logit_threshold"]) and 0.0 <= summary["iou"] <= 1.0
    assert main(["--quiet", "eval", "--run", str(out)]) == 0
    ev = json.loads((out / "eval.json").read_text())
    fg = sum(float((np.asarray(Image.open(f)) > 0).sum()) for f in (root / "test" / "masks").iterdir())
    assert ev["tp"] + ev["fn"] == summary["tp"] + summary["fn"] == fg  # every foreground pixel, no padding
