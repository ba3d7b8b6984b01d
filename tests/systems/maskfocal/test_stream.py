"""Streaming of maskfocal's images and targets (issue 19, large images; Mask Focal Loss, arXiv 2212.11542).

A split holds annotations only: images are decoded per batch (data.HeadSet.batch), padded to the batch's largest,
and targets are built per batch (train.batch_targets). Checked here: the streamed batches equal the old eager
construction (one zero-padded tensor of the whole split, targets built up front), kept below as the reference;
the smoke runs reproduce the losses and metrics the eager code printed before the change; images of mixed sizes
on disk stream through train -> evaluate, re-read from disk when the caches are off.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tenfold.core import distributed as D
from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.maskfocal import data as mf_data
from tenfold.systems.maskfocal import scoring
from tenfold.systems.maskfocal import train as mf_train
from tenfold.systems.maskfocal.config import PROFILES, Config
from tenfold.systems.maskfocal.data import load_split, prepare_synth
from tenfold.systems.maskfocal.evaluate import evaluate
from tenfold.systems.maskfocal.heatmap import centernet_targets, fcos_targets
from tenfold.systems.maskfocal.train import batch_targets, collate, epoch_batches, train


def _cfg(**overrides) -> Config:
    return make_config(Config, PROFILES, "smoke", overrides)


def _eager_split(path: Path, cfg: Config) -> tuple[torch.Tensor, list[dict]]:
    """The pre-streaming construction (reference): every image of the split decoded with PIL into one tensor
    zero-padded to the split's largest size (a multiple of 32), targets built for every image on that size."""
    coco = json.loads(path.read_text())
    arrays = [np.asarray(Image.open(path.parent / im["file_name"]).convert("RGB")) for im in coco["images"]]
    Hm = math.ceil(max(a.shape[0] for a in arrays) / 32) * 32
    Wm = math.ceil(max(a.shape[1] for a in arrays) / 32) * 32
    images = torch.zeros(len(arrays), 3, Hm, Wm, dtype=torch.uint8)
    for i, a in enumerate(arrays):
        images[i, :, : a.shape[0], : a.shape[1]] = torch.from_numpy(a).permute(2, 0, 1)
    boxes = [np.zeros((0, 4)) for _ in arrays]
    for ann in coco["annotations"]:
        if not ann["iscrowd"]:
            x, y, w, h = ann["bbox"]
            boxes[ann["image_id"] - 1] = np.vstack([boxes[ann["image_id"] - 1], [[x, y, x + w, y + h]]])
    m = cfg.model
    if m.detector == "centernet":
        targets = [centernet_targets(b, (Hm, Wm), m.output_stride, m.min_overlap, m.min_radius) for b in boxes]
    else:
        targets = [fcos_targets(b, (Hm, Wm), m.fcos_strides, m.fcos_size_split, m.center_sampling_radius,
                                m.min_overlap, m.min_radius) for b in boxes]
    return images, targets


@pytest.fixture(scope="module")
def smoke_files(tmp_path_factory) -> dict:
    cfg = _cfg()
    return prepare_synth(cfg.data, cfg.seed, tmp_path_factory.mktemp("mf-stream") / "data")


@pytest.mark.parametrize("detector", ["centernet", "fcos"])
def test_streamed_batches_equal_the_eager_split(smoke_files, detector):
    """Every batch of two epochs: the same uint8 pixels and the same collated targets, bit for bit."""
    cfg = _cfg(**{"model.detector": detector})
    path = smoke_files["train"]["boxes"]
    ds = load_split(path)
    eager_images, eager_targets = _eager_split(path, cfg)
    cpu = torch.device("cpu")
    ctx = D.DistContext(rank=0, world_size=1, device=cpu)
    for epoch in range(cfg.train.epochs):
        for idx in epoch_batches(cfg, len(ds), epoch, ctx):
            images = ds.batch(idx)
            assert torch.equal(images, eager_images[idx])
            streamed = collate(cfg, batch_targets(cfg, ds, idx, tuple(images.shape[-2:])), cpu)
            eager = collate(cfg, [eager_targets[i] for i in idx], cpu)
            assert streamed.keys() == eager.keys()
            for k, v in eager.items():
                if isinstance(v, torch.Tensor):
                    assert torch.equal(streamed[k], v), k
                else:
                    assert streamed[k] == v, k


# Printed by the eager (pre-streaming) code on the smoke profile before the change, on this machine
# (/tmp/mf-stream/ref.py: train() then the run's metrics.jsonl): per-step loss, test counts, tau, MAE.
EAGER_SMOKE = {
    "centernet-mfl": {},
    "fcos-native": {"model.detector": "fcos", "loss.cls_loss": "native"},
    "fcos-mfl": {"model.detector": "fcos"},
    "points-centernet-native": {"loss.cls_loss": "native", "data.annotation_type": "points"},
}
# name: (loss per step, loss_cls per step, test pred_counts, gt_counts, tau, MAE, point-F1, AP@0.5)
EAGER_VALUES = {
    "centernet-mfl": (
        [3.163458824157715, 2.8067941665649414, 2.5960774421691895, 2.3346686363220215, 2.2478556632995605,
         2.0847487449645996, 2.0113515853881836, 1.988016128540039],
        [1.6074427366256714, 1.4984618425369263, 1.3383560180664062, 1.2976820468902588, 1.3093053102493286,
         1.1595348119735718, 1.1383763551712036, 1.0608701705932617],
        [10, 9, 13, 14, 7, 6, 9, 8], [57, 57, 57, 57, 6, 6, 6, 6], 0.01, 23.5, 0.04878048780487805,
        0.0),
    "fcos-native": (
        [1.9505629539489746, 1.7676860094070435, 1.7249888181686401, 1.6889212131500244, 1.5368833541870117,
         1.6092156171798706, 1.6092417240142822, 1.590116262435913],
        [0.46812188625335693, 0.39831069111824036, 0.37885016202926636, 0.3591226637363434, 0.34260597825050354,
         0.33829614520072937, 0.32239025831222534, 0.3194132447242737],
        [10, 6, 5, 5, 3, 4, 5, 2], [57, 57, 57, 57, 6, 6, 6, 6], 0.26, 26.5, 0.02054794520547945,
        0.0005653100243172026),
    "fcos-mfl": (
        [3.251192808151245, 2.8172266483306885, 2.6592650413513184, 2.580811023712158, 2.339545726776123,
         2.3628592491149902, 2.37274169921875, 2.2766997814178467],
        [1.768751621246338, 1.4013479948043823, 1.2734004259109497, 1.2144204378128052, 1.0686753988265991,
         1.0634642839431763, 1.0612568855285645, 0.9829826951026917],
        [19, 17, 16, 17, 19, 20, 20, 21], [57, 57, 57, 57, 6, 6, 6, 6], 0.26, 26.875, 0.014962593516209476,
        0.00016312196471911366),
    "points-centernet-native": (
        [3.096748113632202, 2.7292771339416504, 2.548147201538086, 2.2980804443359375, 2.3172316551208496,
         2.0815658569335938, 1.976921796798706, 1.9403748512268066],
        [1.486806035041809, 1.3854055404663086, 1.296568751335144, 1.2667111158370972, 1.315332055091858,
         1.1368443965911865, 1.1035877466201782, 1.0146163702011108],
        [10, 11, 12, 12, 9, 7, 8, 6], [57, 57, 57, 57, 6, 6, 6, 6], 0.01, 23.625, 0.01834862385321101,
        None),
}


@pytest.mark.parametrize("name", [
    "centernet-mfl", "fcos-native",
    pytest.param("fcos-mfl", marks=pytest.mark.slow),
    pytest.param("points-centernet-native", marks=pytest.mark.slow),
])
def test_streamed_smoke_run_reproduces_the_eager_values(tmp_path, name):
    losses, loss_cls, pred, gt, tau, mae, f1, ap = EAGER_VALUES[name]
    metrics = train(_cfg(**EAGER_SMOKE[name]), tmp_path)
    logged = RunDir(tmp_path).read_metrics()
    # float64 tensors: the logged values are float32 losses printed as Python floats; rtol 1e-5 leaves room
    # for another CPU's kernels, the counts below must then still agree exactly
    torch.testing.assert_close(torch.tensor([r["loss"] for r in logged], dtype=torch.float64),
                               torch.tensor(losses, dtype=torch.float64), rtol=1e-5, atol=0)
    torch.testing.assert_close(torch.tensor([r["loss_cls"] for r in logged], dtype=torch.float64),
                               torch.tensor(loss_cls, dtype=torch.float64), rtol=1e-5, atol=0)
    assert metrics["pred_counts"] == pred and metrics["gt_counts"] == gt
    assert metrics["tau"] == tau and metrics["mae"] == pytest.approx(mae, abs=1e-12)
    assert metrics["point_f1"] == pytest.approx(f1, abs=1e-12)
    assert (metrics["ap50"] is None) == (ap is None)
    if ap is not None:
        assert metrics["ap50"] == pytest.approx(ap, abs=1e-9)


# ---------------------------------------------------------------------------------------------------------------
# Images of mixed sizes on disk: (width, height) per split; only one training image is large.
SIZES = {"train": [(64, 64)] * 6 + [(96, 64), (160, 128)], "val": [(64, 64), (64, 64), (96, 64), (70, 50)],
         "test": [(70, 50), (64, 64), (160, 128), (64, 64)]}


def _mixed(root: Path) -> dict[str, Path]:
    rng = np.random.default_rng(3)
    files = {}
    for split, sizes in SIZES.items():
        images, anns = [], []
        for i, (w, h) in enumerate(sizes):
            name = f"images/{split}{i}.png"
            (root / "images").mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8)).save(root / name)
            images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
            for k in range(1 + i % 3):  # 1-3 heads per image, inside it
                x, y = 4 + 13 * k, 6 + 9 * k
                anns.append({"id": len(anns) + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0,
                             "bbox": [float(x), float(y), 8.0, 8.0]})
        files[split] = root / f"{split}.json"
        files[split].write_text(json.dumps({"images": images, "annotations": anns,
                                            "categories": [{"id": 1, "name": "head"}]}))
    return files


def _padded(sizes: list[tuple[int, int]]) -> tuple[int, int]:
    return math.ceil(max(h for _, h in sizes) / 32) * 32, math.ceil(max(w for w, _ in sizes) / 32) * 32


@pytest.mark.parametrize("detector", ["centernet", "fcos"])
def test_mixed_size_images_stream_through_train_and_evaluate(tmp_path, monkeypatch, detector):
    files = _mixed(tmp_path / "d")
    cfg = _cfg(**{"data.source": "files", "model.detector": detector,
                  **{f"data.{s}_file": str(p) for s, p in files.items()}})
    # caches off: every batch must read its images from disk and build its targets again
    monkeypatch.setattr(mf_data, "IMAGE_CACHE_BYTES", 0)
    monkeypatch.setattr(mf_train, "TARGET_CACHE_BYTES", 0)
    reads, batches = [], []
    real_load, real_batch = mf_data._load_image, mf_data.HeadSet.batch
    monkeypatch.setattr(mf_data, "_load_image",
                        lambda root, name, *a: reads.append(name) or real_load(root, name, *a))

    def spy_batch(self, idx):
        out = real_batch(self, idx)
        batches.append((Path(self.source).stem, list(idx), tuple(out.shape)))
        return out

    monkeypatch.setattr(mf_data.HeadSet, "batch", spy_batch)
    metrics = train(cfg, tmp_path / "run")
    steps = cfg.train.epochs * (len(SIZES["train"]) // cfg.train.batch_size)
    assert metrics["steps"] == steps and math.isfinite(metrics["mae"]) and len(metrics["pred_counts"]) == 4
    # each batch is padded to its own largest image (never to the split's), a multiple of 32
    for split, idx, shape in batches:
        assert shape == (len(idx), 3, *_padded([SIZES[split][i] for i in idx])), (split, idx, shape)
    train_shapes = {shape[-2:] for split, _, shape in batches if split == "train"}
    assert (128, 160) in train_shapes and len(train_shapes) > 1  # some batches never held the large image
    # evaluation: runs of consecutive images with the same padded size (val: 64x64 x2, 64x96 x2)
    assert [idx for split, idx, _ in batches if split == "val"] == [[0, 1], [2, 3]]
    assert [idx for split, idx, _ in batches if split == "test"] == [[0], [1], [2], [3]]
    # reads: every image once to validate (3 splits), then steps x batch for training, val + test to evaluate
    n = {s: len(v) for s, v in SIZES.items()}
    assert len(reads) == n["train"] + n["val"] + n["test"] + steps * cfg.train.batch_size + n["val"] + n["test"]
    again = evaluate(cfg, tmp_path / "run")
    assert again["pred_counts"] == metrics["pred_counts"] and again["tau"] == metrics["tau"]


def test_a_batch_over_the_pixel_limit_is_refused_and_evaluation_splits_its_batches(tmp_path, monkeypatch):
    files = _mixed(tmp_path / "d")
    ds = load_split(files["val"])
    monkeypatch.setattr(mf_data, "MAX_BATCH_PIXELS", 2 * 64 * 64)  # two 64x64 images, not one 64x96 and more
    assert ds.batch([0, 1]).shape == (2, 3, 64, 64)
    with pytest.raises(mf_data.InputError, match=r"val.json: a batch of 2 images padded to 96x64 exceeds"):
        ds.batch([1, 2])
    seen = []
    monkeypatch.setattr(scoring, "predict", lambda model, images, cfg, batch_size: seen.append(tuple(images.shape))
                        or [{}] * len(images))
    monkeypatch.setattr(mf_data, "MAX_BATCH_PIXELS", 64 * 64 + 64 * 64 - 1)  # eval: one 64x64 image per batch
    assert len(scoring.predict_set(None, ds, None)) == 4
    assert seen == [(1, 3, 64, 64), (1, 3, 64, 64), (1, 3, 64, 96), (1, 3, 64, 96)]


def test_bounded_cache_keeps_items_only_while_they_fit():
    cache = mf_data.BoundedCache(max_bytes=10)
    made = []
    make = lambda n: (lambda: made.append(n) or np.zeros(n, dtype=np.uint8))  # noqa: E731
    assert len(cache.get("a", make(6))) == 6 and len(cache.get("b", make(6))) == 6  # b does not fit: not kept
    assert len(cache.get("c", make(4))) == 4  # 6 + 4 = 10 fits
    cache.get("a", make(6)), cache.get("b", make(6)), cache.get("c", make(4))
    assert made == [6, 6, 4, 6] and cache.used == 10  # only b was made twice
