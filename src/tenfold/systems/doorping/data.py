"""Data of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197).

The offline sets of spec 4.1 (scikit-learn digits at 16x16, the procedural RGB `shapes10`), the real
formats of spec 4.2 (torchvision FashionMNIST / CIFAR-10 / SVHN / STL-10 from a local root, CIFAR-100 from
torchvision's on-disk pickles (`load_cifar100`, a restricted unpickler), an
ImageFolder tree, an .npz of arrays), and the trigger geometry of spec 2, components 1-2:
    trigger_mask   M = 1 on rows and columns [H - 1 - s, H - 1)
    stamp          x' = x * (1 - M) + tau * M
    poison_subset  P = a random floor(portion * N) of the training images
All images are held normalised (per-data-set mean and std), N x C x H x W float32.
"""

from __future__ import annotations

import functools
import math
import pickle
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from tenfold.core.errors import InputError

# Design choice: at most 1000 classes (ImageNet's count): a label of 10^9 in an .npz would otherwise size
# S, the per-class pools and the classifier head by it.
MAX_CLASSES = 1000

# Normalisation constants [code] (spec 2, component 2).
NORMALISATION: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "fashionmnist": ((0.2861,), (0.3530,)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),  # DC; STL10 reuses them
    "cifar10_dd": ((0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261)),
    "stl10": ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010)),
    "svhn": ((0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970)),
    "cifar100": ((0.5071, 0.4866, 0.4409), (0.2673, 0.2564, 0.2762)),
}


@dataclass
class ImageData:
    """A normalised train/test split. x: (N, C, H, W) float32 in normalised space; y: (N,) long."""

    name: str
    train_x: torch.Tensor
    train_y: torch.Tensor
    test_x: torch.Tensor
    test_y: torch.Tensor
    mean: torch.Tensor  # (C,)
    std: torch.Tensor  # (C,)
    num_classes: int

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.train_x.shape[1:])  # type: ignore[return-value]

    @property
    def device(self) -> torch.device:
        return self.train_x.device

    def to(self, device: torch.device | str) -> "ImageData":
        """A copy with every tensor on `device` (the same object when already there)."""
        device = torch.device(device)
        if self.device == device and self.mean.device == device:
            return self
        return ImageData(self.name, self.train_x.to(device), self.train_y.to(device), self.test_x.to(device),
                         self.test_y.to(device), self.mean.to(device), self.std.to(device), self.num_classes)

    def to_pixels(self, x: torch.Tensor) -> torch.Tensor:
        """Normalised -> pixel space [0, 1] (unclipped)."""
        return x * self.std.view(1, -1, 1, 1) + self.mean.view(1, -1, 1, 1)

    def from_pixels(self, p: torch.Tensor) -> torch.Tensor:
        return (p - self.mean.view(1, -1, 1, 1)) / self.std.view(1, -1, 1, 1)


def to_device(obj, device: torch.device | str):
    """Every tensor inside nested dicts / lists / tuples moved to `device` (others unchanged).

    Design choice: artefacts and checkpoints are saved through `to_device(obj, "cpu")`, so a run directory
    written on a GPU loads anywhere; on the CPU `.to` returns the tensor itself (results stay bit-identical).
    """
    if isinstance(obj, torch.Tensor):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(to_device(v, device) for v in obj)
    return obj


# ----------------------------------------------------------------------------- trigger geometry

def trigger_mask(height: int, width: int, size: int, channels: int = 1) -> torch.Tensor:
    """M (1, C, H, W): ones on rows and columns [H - 1 - s, H - 1) (one pixel in from the corner) [code]."""
    if size < 1 or size > min(height, width) - 1:
        raise InputError(f"attack.backdoor_size={size}: the trigger must fit one pixel in from the corner of "
                         f"a {height}x{width} image (1 <= size <= {min(height, width) - 1})")
    m = torch.zeros(1, channels, height, width)
    m[..., height - 1 - size:height - 1, width - 1 - size:width - 1] = 1.0
    return m


def stamp(x: torch.Tensor, tau: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """x' = x * (1 - M) + tau * M; x (N, C, H, W), tau and M broadcast (1, C, H, W)."""
    return x * (1 - mask) + tau * mask


def naive_trigger(data: ImageData, size: int, svhn_stripe: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """NAIVEATTACK's white patch (pixel value 255) in normalised space: tau = (1 - mu_c) / sigma_c on M.

    `svhn_stripe` reproduces the official SVHN indexing quirk (spec 2, component 3): channels 0-1 of rows
    [H - 1 - s, H - 1) across the full width.
    """
    c, h, w = data.shape
    tau = ((1 - data.mean) / data.std).view(1, c, 1, 1).expand(1, c, h, w).clone()
    if svhn_stripe:
        trigger_mask(h, w, size)  # same size validation
        mask = torch.zeros(1, c, h, w)
        mask[:, : min(2, c), h - 1 - size:h - 1, :] = 1.0  # quirk [code]: R and G, full width
    else:
        mask = trigger_mask(h, w, size, c)
    return tau, mask.to(tau.device)


def poison_subset(num_train: int, portion: float, generator: torch.Generator) -> torch.Tensor:
    """P: a random floor(portion * N) of range(N) (spec 2, component 1)."""
    count = int(math.floor(portion * num_train + 1e-9))
    return torch.randperm(num_train, generator=generator)[:count]


def keep_fraction(num_train: int, ori: float, generator: torch.Generator) -> torch.Tensor:
    """The attacker's share of the training set (`ori` [code]): a random floor(ori * N) indices."""
    return torch.randperm(num_train, generator=generator)[: int(math.floor(ori * num_train + 1e-9))]


def render_uint8(data: ImageData, x: torch.Tensor) -> torch.Tensor:
    """A normalised tensor as an 8-bit image would carry it: clamp to [0, 1] and quantise to 1/255."""
    pix = torch.round(data.to_pixels(x).clamp(0, 1) * 255) / 255
    return data.from_pixels(pix)


# ----------------------------------------------------------------------------- validation

def validate(data: ImageData, trigger_label: int, source: str) -> ImageData:
    """Shapes, finite values, label range and the target class; errors name the file and field."""
    for split, x, y in (("train", data.train_x, data.train_y), ("test", data.test_x, data.test_y)):
        if len(x) == 0:
            raise InputError(f"{source}: the {split} split has no images; expected at least one")
        if x.dim() != 4 or x.shape[1] not in (1, 3):
            raise InputError(f"{source}: {split} images must be N x C x H x W with C in (1, 3), got "
                             f"shape {tuple(x.shape)}")
        if x.shape[1:] != data.train_x.shape[1:]:
            raise InputError(f"{source}: {split} images have shape {tuple(x.shape[1:])}, train images "
                             f"{tuple(data.train_x.shape[1:])}")
        if y.shape != (x.shape[0],):
            raise InputError(f"{source}: {split} labels must be ({x.shape[0]},), got {tuple(y.shape)}")
        if len(y) and (int(y.min()) < 0 or int(y.max()) >= data.num_classes):
            raise InputError(f"{source}: {split} labels must be integers in [0, {data.num_classes - 1}], got "
                             f"range [{int(y.min())}, {int(y.max())}]")
        if not torch.isfinite(x).all():
            raise InputError(f"{source}: {split} images contain NaN or inf")
    missing = sorted(set(range(data.num_classes)) - set(data.train_y.tolist()))
    if missing:
        raise InputError(f"{source}: train labels have no image of classes {missing[:10]}; expected every class "
                         f"0..{data.num_classes - 1} to have at least one training image")
    if not 0 <= trigger_label < data.num_classes:
        raise InputError(f"attack.trigger_label={trigger_label} is not a class of {source} "
                         f"(classes 0..{data.num_classes - 1})")
    return data


def _normalise(name: str, train_pix: torch.Tensor, train_y, test_pix, test_y, num_classes: int,
               mean=None, std=None, source: str | None = None) -> ImageData:
    """Pixel tensors in [0, 1] -> ImageData; mean/std default to the per-channel train statistics.

    A split without images or a train channel of one constant value is refused (InputError naming `source`):
    both would otherwise become NaN / inf after normalisation.
    """
    source = source or name
    for split, pix in (("train", train_pix), ("test", test_pix)):
        if len(pix) == 0:
            raise InputError(f"{source}: the {split} split has no images; expected at least one")
    c = train_pix.shape[1]
    m = torch.tensor(mean) if mean is not None else train_pix.transpose(0, 1).reshape(c, -1).mean(1)
    s = torch.tensor(std) if std is not None else train_pix.transpose(0, 1).reshape(c, -1).std(1)
    if mean is None and (not torch.isfinite(s).all() or float(s.min()) == 0):
        raise InputError(f"{source}: train images have one constant value in some channel (std {s.tolist()}); "
                         "expected images with varying pixels")
    d = ImageData(name, train_pix, torch.as_tensor(train_y).long(), test_pix, torch.as_tensor(test_y).long(),
                  m.float(), s.float(), num_classes)
    d.train_x, d.test_x = d.from_pixels(train_pix).float(), d.from_pixels(test_pix).float()
    return d


def _stratified(y: np.ndarray, fraction_test: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    train, test = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.nonzero(y == c)[0])
        n_test = int(round(len(idx) * fraction_test))
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))


@functools.lru_cache(maxsize=4)
def load_digits(image_size: int = 16, seed: int = 0) -> ImageData:
    """scikit-learn digits: 1,797 8x8 images / 16, bilinear to `image_size`, stratified 1,437 / 360 (spec 4.1)."""
    from sklearn.datasets import load_digits as sk_digits

    bunch = sk_digits()
    x = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0  # (1797, 1, 8, 8)
    x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    y = np.asarray(bunch.target)
    from sklearn.model_selection import train_test_split

    tr, te = train_test_split(np.arange(len(y)), test_size=360, stratify=y, random_state=seed)  # 1,437 / 360
    tr, te = np.sort(tr), np.sort(te)
    return _normalise("digits", x[tr], y[tr], x[te], y[te], 10)


def subsample(data: ImageData, num_train: int, generator: torch.Generator) -> ImageData:
    """A class-stratified subset of `num_train` training images (and as many test images, at most)."""
    def pick(y: torch.Tensor, n: int) -> torch.Tensor:
        per = max(1, n // data.num_classes)
        idx = [torch.nonzero(y == c).flatten() for c in range(data.num_classes)]
        return torch.cat([i[torch.randperm(len(i), generator=generator)[:per]] for i in idx])

    tr, te = pick(data.train_y, num_train), pick(data.test_y, num_train)
    return ImageData(data.name, data.train_x[tr], data.train_y[tr], data.test_x[te], data.test_y[te],
                     data.mean, data.std, data.num_classes)


# ----------------------------------------------------------------------------- shapes10 (spec 4.1)

SHAPES10 = ("disk", "ring", "square", "hollow_square", "triangle", "cross", "horizontal_bars", "vertical_bars",
            "diagonal_stripes", "checkerboard")


def _shape_mask(kind: int, u: np.ndarray, v: np.ndarray, s: float) -> np.ndarray:
    """Foreground of class `kind` in object coordinates (u, v) (H, W), scale s pixels."""
    r, box = np.hypot(u, v), np.maximum(np.abs(u), np.abs(v))
    inside = box < s
    period = s / 2
    if kind == 0:
        return r < s
    if kind == 1:
        return (r < s) & (r > 0.6 * s)
    if kind == 2:
        return box < 0.8 * s
    if kind == 3:
        return (box < 0.8 * s) & (box > 0.5 * s)
    if kind == 4:  # equilateral triangle pointing up in the object frame
        return (v > -0.5 * s) & (v < s - np.sqrt(3) * np.abs(u))
    if kind == 5:
        return ((np.abs(u) < 0.25 * s) & (np.abs(v) < s)) | ((np.abs(v) < 0.25 * s) & (np.abs(u) < s))
    if kind == 6:
        return inside & (np.cos(2 * np.pi * v / period) > 0)
    if kind == 7:
        return inside & (np.cos(2 * np.pi * u / period) > 0)
    if kind == 8:
        return inside & (np.cos(2 * np.pi * (u + v) / (np.sqrt(2) * period)) > 0)
    return inside & (np.cos(np.pi * u / (s / 3)) * np.cos(np.pi * v / (s / 3)) > 0)


def make_shapes10(num_per_class: int, seed: int, size: int = 32) -> tuple[np.ndarray, np.ndarray]:
    """`num_per_class` images of each class: (N, 3, size, size) float32 in [0, 1] and labels (N,)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    images, labels = [], []
    for kind in range(10):
        for _ in range(num_per_class):
            bg = rng.uniform(0, 1, 3) * 0.5
            fg = rng.uniform(0, 1, 3)
            while np.linalg.norm(fg - bg) < 0.4:
                fg = rng.uniform(0, 1, 3)
            cx, cy = rng.uniform(10, 22, 2) * size / 32
            s = rng.uniform(6, 12) * size / 32
            # Design choice: horizontal / vertical bars keep their orientation (a rotation would merge the classes).
            theta = 0.0 if kind in (6, 7) else rng.uniform(0, np.pi)
            du, dv = xx - cx, yy - cy
            u = np.cos(theta) * du + np.sin(theta) * dv
            v = -np.sin(theta) * du + np.cos(theta) * dv
            m = _shape_mask(kind, u, v, s)
            m[-4:, -4:] = False  # spec 4.1: the trigger corner carries no class information
            img = np.where(m[None], fg[:, None, None], bg[:, None, None]) + rng.normal(0, 0.05, (3, size, size))
            images.append(np.clip(img, 0, 1).astype(np.float32))
            labels.append(kind)
    return np.stack(images), np.asarray(labels)


@functools.lru_cache(maxsize=2)
def load_shapes10(seed: int = 0, image_size: int = 32) -> ImageData:
    """500 train and 100 test images per class (fixed seeds; train and test from disjoint streams)."""
    xtr, ytr = make_shapes10(500, seed, image_size)
    xte, yte = make_shapes10(100, seed + 10_000, image_size)
    return _normalise("shapes10", torch.from_numpy(xtr), ytr, torch.from_numpy(xte), yte, 10)


# ----------------------------------------------------------------------------- real formats (spec 4.2)

def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """(N, C, h, w) in [0, 1] -> (N, C, size, size), bilinear with antialiasing (as PIL's resize)."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    return F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False).clamp(0, 1)


def _uint8_to_pixels(arr: np.ndarray | torch.Tensor, channels_last: bool) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(arr))
    if t.dim() == 3:  # (N, H, W) grey
        t = t.unsqueeze(1)
    elif channels_last:
        t = t.permute(0, 3, 1, 2)  # (N, H, W, C) -> (N, C, H, W)
    return t.float() / 255.0


def load_torchvision(name: str, root: str, image_size: int = 32) -> ImageData:
    """FashionMNIST / CIFAR-10 / SVHN / STL-10 from a local root (no download), resized to `image_size`."""
    import torchvision.datasets as tvd

    def build(train: bool):
        if name == "fashionmnist":
            return tvd.FashionMNIST(root, train=train, download=False)
        if name == "cifar10":
            return tvd.CIFAR10(root, train=train, download=False)
        if name == "svhn":
            return tvd.SVHN(root, split="train" if train else "test", download=False)
        return tvd.STL10(root, split="train" if train else "test", download=False)

    try:
        tr, te = build(True), build(False)
    except Exception as err:  # RuntimeError (missing / md5), OSError, AssertionError (bad idx magic), ...
        raise InputError(f"data.root={root!r}: no readable {name} files there ({err}); place the standard "
                         f"torchvision files under it (tenfold never downloads)") from None
    labels = {"svhn": "labels", "stl10": "labels"}.get(name, "targets")
    channels_last = name == "cifar10"
    xs = [_resize(_uint8_to_pixels(d.data, channels_last), image_size) for d in (tr, te)]
    ys = [np.asarray(getattr(d, labels)) for d in (tr, te)]
    mean, std = NORMALISATION[name]
    return _normalise(name, xs[0], ys[0], xs[1], ys[1], 10, mean, std)


CIFAR100_FORM = ("torchvision's CIFAR-100 layout: <data.root>/cifar-100-python/{train,test} (or data.root itself "
                 "holding train and test), each a pickled dict with 'data' (N, 3072) uint8 (3 x 32 x 32, "
                 "channel-major) and 'fine_labels' (N integers in [0, 100))")
MAX_CIFAR100_BYTES = 1 << 30  # Design choice: the real train file is 155 MB
# The only globals a CIFAR-100 pickle needs (numpy's array reconstruction, numpy 1.x and 2.x module names).
_CIFAR100_GLOBALS = {("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
                     ("numpy", "ndarray"), ("numpy", "dtype"), ("numpy.core.numeric", "_frombuffer"),
                     ("numpy._core.numeric", "_frombuffer"), ("_codecs", "encode")}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: any other global (a crafted file's os.system) is refused
    before it is called."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _CIFAR100_GLOBALS:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed (only numpy arrays)")
        return super().find_class(module, name)


def _cifar100_split(path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """One CIFAR-100 file -> pixels (N, 3, 32, 32) in [0, 1] and fine labels (N,); errors name file and field."""
    if not path.is_file():
        raise InputError(f"{path}: missing; expected {CIFAR100_FORM} (tenfold never downloads)")
    if path.stat().st_size > MAX_CIFAR100_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes, over {MAX_CIFAR100_BYTES}; expected {CIFAR100_FORM}")
    try:
        with open(path, "rb") as f:
            obj = _ArrayUnpickler(f, encoding="latin1").load()  # latin1: the files were pickled by Python 2
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError,
            ImportError, UnicodeError, OverflowError, MemoryError) as err:
        raise InputError(f"{path}: not a readable CIFAR-100 pickle ({type(err).__name__}: {str(err)[:200]}); "
                         f"expected {CIFAR100_FORM}") from None
    if not isinstance(obj, dict):
        raise InputError(f"{path}: expected a pickled dict, got {type(obj).__name__}; expected {CIFAR100_FORM}")
    obj = {k.decode("latin1") if isinstance(k, bytes) else k: v for k, v in obj.items()}
    data = obj.get("data")
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3072:
        got = (f"{data.dtype} array of shape {data.shape}" if isinstance(data, np.ndarray)
               else type(data).__name__)
        raise InputError(f"{path}: field 'data' must be an (N, 3072) uint8 array, got {got}")
    try:
        labels = np.asarray(obj.get("fine_labels"))
    except (ValueError, TypeError):
        labels = np.asarray(None)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer) or len(labels) != len(data):
        raise InputError(f"{path}: field 'fine_labels' must be {len(data)} integers (one per image), got "
                         f"{labels.dtype} of shape {labels.shape}")
    if len(labels) and (labels.min() < 0 or labels.max() >= 100):
        raise InputError(f"{path}: field 'fine_labels' must be in [0, 99], got range [{labels.min()}, "
                         f"{labels.max()}]")
    return torch.from_numpy(data.reshape(-1, 3, 32, 32).copy()).float() / 255.0, labels.astype(np.int64)


def load_cifar100(root: str, image_size: int = 32) -> ImageData:
    """CIFAR-100 (fine labels, 100 classes) from torchvision's on-disk pickles, read without torchvision.

    Design choice: torchvision's CIFAR100 md5-checks the files and unpickles them unrestricted; here a
    restricted unpickler reads them (numpy arrays only) and every field is checked, so a crafted or truncated
    file is an InputError naming it; the md5 is not checked.
    """
    base = Path(root)
    folder = base / "cifar-100-python" if (base / "cifar-100-python").is_dir() else base
    (tr_x, tr_y), (te_x, te_y) = _cifar100_split(folder / "train"), _cifar100_split(folder / "test")
    mean, std = NORMALISATION["cifar100"]
    return _normalise("cifar100", _resize(tr_x, image_size), tr_y, _resize(te_x, image_size), te_y, 100, mean, std)


def read_image(path: Path, image_size: int) -> torch.Tensor:
    """One ImageFolder image -> (3, image_size, image_size) float32 in [0, 1], scaled by its bit depth.

    Read through `tenfold.core.images` (never Pillow's `convert("RGB")`, which clips 16-bit samples to 255):
    8- and 16-bit grey, grey + alpha, palette, RGB and RGBA are accepted; truncated, unreadable and
    over-MAX_IMAGE_PIXELS files, float images outside [0, 1] or non-finite are InputErrors naming the file.
    """
    from tenfold.core.images import read_pixels, to_rgb, to_unit

    label = str(path)
    rgb = to_unit(to_rgb(read_pixels(path, label), label), label)  # (H, W, 3) float32 in [0, 1]
    x = torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)  # (H, W, 3) -> (3, H, W)
    return _resize(x[None], image_size)[0]


def load_imagefolder(root: str, image_size: int = 32, seed: int = 0) -> ImageData:
    """An ImageFolder tree: `root/train/<class>/*` and `root/test/<class>/*`, or one tree split 80/20."""
    import torchvision.datasets as tvd

    base = Path(root)
    if not base.is_dir():
        raise InputError(f"data.root={root!r}: not a folder (expected an ImageFolder tree of class folders)")

    def read(folder: Path):
        try:
            # Only the file list and classes come from torchvision; its PIL loader is never called.
            ds = tvd.ImageFolder(str(folder))
        except (FileNotFoundError, RuntimeError, OSError) as err:
            raise InputError(f"data.root={str(folder)!r}: not an ImageFolder tree ({err}); expected "
                             "<class>/<image> files, every class folder holding at least one image") from None
        x = torch.stack([read_image(Path(path), image_size) for path, _ in ds.samples])  # (N, 3, S, S)
        return x, np.asarray(ds.targets), ds.classes

    if (base / "train").is_dir() and (base / "test").is_dir():
        (xtr, ytr, ctr), (xte, yte, cte) = read(base / "train"), read(base / "test")
        if ctr != cte:
            raise InputError(f"data.root={root!r}: train classes {ctr} differ from test classes {cte}")
    else:
        x, y, ctr = read(base)
        tr, te = _stratified(y, 0.2, np.random.default_rng(seed))
        xtr, ytr, xte, yte = x[tr], y[tr], x[te], y[te]
    if len(ctr) > MAX_CLASSES:
        raise InputError(f"data.root={root!r}: {len(ctr)} class folders; expected at most {MAX_CLASSES}")
    return _normalise(f"imagefolder:{base.name}", xtr, ytr, xte, yte, len(ctr), source=f"data.root={root!r}")


NPZ_EXPECTED = ("arrays train_x, test_x of shape (N, C, S, S), C in (1, 3), float pixels in [0, 1] (or uint8 / "
                f"uint16), and train_y, test_y of shape (N,), integer labels in [0, {MAX_CLASSES})")


def _npz_images(arr: np.ndarray, p: Path, key: str) -> torch.Tensor:
    """One image array of the .npz -> (N, C, S, S) float32 pixels in [0, 1]."""
    from tenfold.core.images import to_unit

    where = f"{p}: field {key}"
    if arr.ndim != 4 or arr.shape[1] not in (1, 3) or arr.shape[2] != arr.shape[3]:
        raise InputError(f"{where} must be N x C x H x W with C in (1, 3) and H = W, got {arr.shape}; "
                         f"expected {NPZ_EXPECTED}")
    if arr.shape[0] == 0 or arr.shape[2] < 2:
        raise InputError(f"{where} has shape {arr.shape}: no images or sides under 2 pixels; expected at least "
                         "one image of at least 2 x 2")
    if not (np.issubdtype(arr.dtype, np.floating) or arr.dtype in (np.uint8, np.uint16, np.bool_)):
        raise InputError(f"{where} has dtype {arr.dtype}; expected float pixels in [0, 1] (or uint8 / uint16)")
    # Design choice: uint8 / uint16 arrays are scaled by their bit depth, as image files are (core.images).
    return torch.from_numpy(to_unit(arr, where))


def _npz_labels(arr: np.ndarray, p: Path, key: str, num_images: int) -> np.ndarray:
    """One label array of the .npz -> (N,) int64, checked against the image count and MAX_CLASSES."""
    where = f"{p}: field {key}"
    if not np.issubdtype(arr.dtype, np.integer):
        raise InputError(f"{where} has dtype {arr.dtype}; expected integer class labels")
    if arr.shape != (num_images,):
        raise InputError(f"{where} has shape {arr.shape}; expected ({num_images},), one label per image")
    if arr.min() < 0 or arr.max() >= MAX_CLASSES:
        raise InputError(f"{where} has labels in [{arr.min()}, {arr.max()}]; expected integers in "
                         f"[0, {MAX_CLASSES}) (tenfold.systems.doorping.data.MAX_CLASSES)")
    return arr.astype(np.int64)


def load_npz(path: str) -> ImageData:
    """An .npz with `train_x`, `train_y`, `test_x`, `test_y` (NPZ_EXPECTED); no pickled objects."""
    from tenfold.core.files import load_npz as read_npz

    p = Path(path)
    z = read_npz(p, NPZ_EXPECTED, f"data.root {p}")
    for key in ("train_x", "train_y", "test_x", "test_y"):
        if key not in z:
            raise InputError(f"{p}: missing array {key!r}; expected {NPZ_EXPECTED}")
    xs = [_npz_images(z[k], p, k) for k in ("train_x", "test_x")]
    if xs[0].shape[1:] != xs[1].shape[1:]:
        raise InputError(f"{p}: field test_x has images of shape {tuple(xs[1].shape[1:])}, train_x "
                         f"{tuple(xs[0].shape[1:])}; expected the same C x H x W")
    ys = [_npz_labels(z[k], p, k, len(x)) for k, x in zip(("train_y", "test_y"), xs)]
    num_classes = int(max(ys[0].max(), ys[1].max())) + 1
    return _normalise(f"npz:{p.name}", xs[0], ys[0], xs[1], ys[1], num_classes, source=str(p))


def load_data(dataset: str, root: str, image_size: int, seed: int, trigger_label: int) -> ImageData:
    """Dispatch on `data.dataset`; the result is validated (shapes, labels, target class)."""
    if dataset in ("imagefolder", "npz", "fashionmnist", "cifar10", "cifar100", "svhn", "stl10") and not root:
        raise InputError(f"data.root is required for data.dataset={dataset!r} (a local folder or file; "
                         "tenfold never downloads)")
    if dataset == "digits":
        data, source = load_digits(image_size, seed), "digits"
    elif dataset == "shapes10":
        data, source = load_shapes10(seed, image_size), "shapes10"
    elif dataset == "imagefolder":
        data, source = load_imagefolder(root, image_size, seed), root
    elif dataset == "npz":
        data, source = load_npz(root), root
    elif dataset == "cifar100":
        data, source = load_cifar100(root, image_size), f"cifar100 at {root!r}"
    else:
        data, source = load_torchvision(dataset, root, image_size), f"{dataset} at {root!r}"
    return validate(data, trigger_label, source)
