"""The loading code that `train.py`, `evaluate.py` and `predict.py` share for `reft` (Han et al., "Reference
Twice", arXiv 2301.01156): the data set of a config, the K-shot set of a protocol, batching, and the
EpisodicSupportSampler (spec component 8). The generator and the COCO reader live in `shapes.py` / `coco.py`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tenfold.core.errors import InputError
from tenfold.systems.reft.coco import CategorySplit, Sample, kshot_sample
from tenfold.systems.reft.config import Config
from tenfold.systems.reft.model import SupportSet


@dataclass
class FSISData:
    """A loaded data set. `class_ids` [C] = the COCO id of each contiguous class index (sorted ids)."""

    split: CategorySplit
    base_train: list[Sample]
    pool: list[Sample]
    test: list[Sample]
    test_json: Path

    @property
    def class_ids(self) -> torch.Tensor:
        return torch.tensor(self.split.all_ids, dtype=torch.long)

    def index_of(self, ids: torch.Tensor | tuple[int, ...]) -> torch.Tensor:
        """COCO ids -> contiguous indices."""
        lookup = {c: i for i, c in enumerate(self.split.all_ids)}
        return torch.tensor([lookup[int(c)] for c in ids], dtype=torch.long)


def shapes_preset(cfg: Config):
    from tenfold.systems.reft import shapes

    d = cfg.data
    sizes = dict(shapes.PRESETS[d.preset].num_images)
    for name, n in (("base_train", d.num_base_train), ("fewshot_pool", d.num_pool), ("test", d.num_test)):
        sizes[name] = n or sizes[name]
    return shapes.with_preset(d.preset, num_images=sizes)


def load_data(cfg: Config, cache_dir: Path) -> FSISData:
    """shapes: generate the three splits in memory (fixed generator seed) and write test.json + its PNGs under
    cache_dir (pycocotools reads the ground truth from a file); coco: read data.root/{base_train, fewshot_pool,
    test}.json with data.root/images (the layout `coco.write_shapes` writes)."""
    from tenfold.systems.reft import coco, shapes

    if cfg.data.source == "shapes":
        preset, seed = shapes_preset(cfg), cfg.data.generator_seed
        split = shapes.category_split(preset, seed)
        parts = [shapes.generate_split(preset, name, seed) for name in shapes.SPLITS]
        test_json = Path(cache_dir) / "data" / "test.json"
        if not test_json.exists():
            coco.write_coco(parts[2], split, test_json, test_json.parent / "images")
        return FSISData(split, *parts, test_json)
    root = Path(cfg.data.root)
    files = {n: root / f"{n}.json" for n in ("base_train", "fewshot_pool", "test")}
    for name, path in files.items():
        if not path.is_file():
            raise InputError(f"{path}: not found; data.root must hold base_train.json, fewshot_pool.json and "
                             f"test.json (COCO instances) and an images/ folder")
    split = coco.load_category_split(files["test"])
    parts = [coco.load_split(files[n], root / "images") for n in ("base_train", "fewshot_pool", "test")]
    return FSISData(split, *parts, files["test"])


def kshot_set(data: FSISData, protocol: str, k: int, seed: int) -> list[Sample]:
    """The K-shot fine-tuning set (TFA rule): every class for FSIS / gFSIS; novel classes only for iFSIS, whose
    fine-tuning never sees a base annotation (spec pitfall 3)."""
    ids = data.split.novel_ids if protocol == "ifsis" else data.split.all_ids
    return kshot_sample(data.pool, ids, k, seed)


def batch_images(samples: list[Sample], stride: int = 32) -> torch.Tensor:
    """Images [B, 3, H', W'], zero-padded at the bottom / right to a common size divisible by `stride`."""
    h = max(s.image.shape[1] for s in samples)
    w = max(s.image.shape[2] for s in samples)
    h, w = -(-h // stride) * stride, -(-w // stride) * stride
    return torch.stack([F.pad(s.image, (0, w - s.image.shape[2], 0, h - s.image.shape[1])) for s in samples])


def batch_targets(samples: list[Sample], data: FSISData, size: tuple[int, int]) -> list[dict[str, torch.Tensor]]:
    """Per image {"labels" [M] contiguous indices, "masks" [M, H', W'] bool (padded like the images)}."""
    out = []
    for s in samples:
        m = s.masks
        m = F.pad(m, (0, size[1] - m.shape[2], 0, size[0] - m.shape[1]))
        out.append({"labels": data.index_of(s.category_ids), "masks": m})
    return out


def support_set(entries: list[tuple[Sample, int]], data: FSISData) -> SupportSet:
    """(sample, annotation index) pairs -> SupportSet (each image encoded once)."""
    order: dict[int, int] = {}
    images: list[Sample] = []
    for s, _ in entries:
        if s.image_id not in order:
            order[s.image_id] = len(images)
            images.append(s)
    batch = batch_images(images)
    size = batch.shape[-2:]
    masks = [F.pad(s.masks[j], (0, size[1] - s.masks.shape[2], 0, size[0] - s.masks.shape[1])).float()
             for s, j in entries]
    return SupportSet(batch, torch.tensor([order[s.image_id] for s, _ in entries]), torch.stack(masks),
                      data.index_of([int(s.category_ids[j]) for s, j in entries]))


def all_instances(samples: list[Sample]) -> list[tuple[Sample, int]]:
    """Every annotation of a K-shot set: the supports at test time (spec 8: computed once for all classes)."""
    return [(s, j) for s in samples for j in range(len(s.category_ids))]


class EpisodicSupportSampler:
    """Spec component 8 [design choice]: an episode = `shots` instances per class present in `samples`, drawn at
    random; the batches of the episode then come from the other images (the query image is never its own
    support), or from all images when every image holds a support."""

    def __init__(self, samples: list[Sample], shots: int, rng: np.random.Generator) -> None:
        self.samples, self.shots, self.rng = samples, shots, rng
        self.by_class: dict[int, list[tuple[int, int]]] = {}
        for i, s in enumerate(samples):
            for j, c in enumerate(s.category_ids.tolist()):
                self.by_class.setdefault(int(c), []).append((i, j))

    def episode(self) -> tuple[list[tuple[Sample, int]], list[int]]:
        """-> (support entries, indices of the images left for query batches)."""
        entries, used = [], set()
        for c in sorted(self.by_class):
            pool = self.by_class[c]
            for p in self.rng.choice(len(pool), size=min(self.shots, len(pool)), replace=False):
                i, j = pool[int(p)]
                entries.append((self.samples[i], j))
                used.add(i)
        rest = [i for i in range(len(self.samples)) if i not in used]
        return entries, rest or list(range(len(self.samples)))
