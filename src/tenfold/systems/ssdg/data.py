"""Data of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): the StyleDigits-4 generator (spec 4.1), the real-format readers (spec 4.2), the per-sample
record with an explicit labeled flag (spec component 11) and the task assembly shared by train.py and
evaluate.py (they import this module, never each other).

  make_style_digits(n, seed, styles, web)   StyleDigits-4 (+ web domain W), only files inside installed wheels
  tasks(domains)                            the 12 "L2T" tasks (L, [U1, U2], T)
  DomainSet                                 images + visible labels + is_labeled flag (+ hidden truth kept apart)
  load_task(cfg)                            labeled train / val, unlabeled sets (labels -1), target, hidden truth
  read_folders / read_list                  DomainBed ImageFolder trees; "relative_path label" list files
  to_input / augment / predict_probs        preprocessing and batched inference
"""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from tenfold.core.errors import InputError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff")
STYLES = "PMCT"
# spec 4.1: about 16 of matplotlib's TTF fonts (DejaVu, STIX, Computer Modern).
FONT_FILES = ("DejaVuSans.ttf", "DejaVuSans-Bold.ttf", "DejaVuSans-Oblique.ttf", "DejaVuSans-BoldOblique.ttf",
              "DejaVuSerif.ttf", "DejaVuSerif-Bold.ttf", "DejaVuSerif-Italic.ttf", "DejaVuSansMono.ttf",
              "DejaVuSansMono-Bold.ttf", "STIXGeneral.ttf", "STIXGeneralBol.ttf", "STIXGeneralItalic.ttf",
              "cmr10.ttf", "cmss10.ttf", "cmtt10.ttf", "cmb10.ttf")


# ------------------------------------------------------------------------------------------ the record

@dataclass
class DomainSet:
    """One domain's samples: the record of spec component 11.

    `labels[i]` is the visible label (true for a truly labeled sample, -1 for an unlabeled one until the method
    pseudo-labels it); `is_labeled[i]` is the explicit flag that tells T from Q (never the path or domain name).
    An unlabeled domain's ground truth is NOT stored here: it lives in `Task.hidden_truth`, handed only to
    reporting code and to the oracle row.
    """

    name: str
    images: np.ndarray  # uint8 [N, H, W, 3]
    labels: np.ndarray  # int64 [N]
    is_labeled: np.ndarray  # bool [N]
    domain_id: int = 0
    paths: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, idx: np.ndarray) -> "DomainSet":
        return DomainSet(self.name, self.images[idx], self.labels[idx], self.is_labeled[idx], self.domain_id,
                         [self.paths[i] for i in idx] if self.paths else [])


def labeled_set(name: str, images: np.ndarray, labels: np.ndarray, domain_id: int, paths=()) -> DomainSet:
    return DomainSet(name, images, labels.astype(np.int64), np.ones(len(labels), bool), domain_id, list(paths))


def unlabeled_set(name: str, images: np.ndarray, domain_id: int, paths=()) -> DomainSet:
    n = len(images)
    return DomainSet(name, images, np.full(n, -1, np.int64), np.zeros(n, bool), domain_id, list(paths))


def union(sets: Sequence[DomainSet], name: str = "union") -> DomainSet:
    """Concatenate records; the flag travels with each sample."""
    return DomainSet(name, np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]),
                     np.concatenate([s.is_labeled for s in sets]), -1, sum((s.paths for s in sets), []))


def released_path_split(paths: Sequence[str], labeled_domain: str) -> np.ndarray:
    """The released code's T/Q test (Bug 2, spec component 11): a sample counts as truly labeled when its path
    contains the labeled domain's name. Kept only to show the bug in a regression test; never used to train."""
    return np.array([labeled_domain in p for p in paths], bool)


@dataclass
class Task:
    labeled: str
    unlabeled_names: list[str]
    target_name: str
    train: DomainSet  # D_L minus validation
    val: DomainSet  # held-out D_L: the only model-selection data
    unlabeled: list[DomainSet]  # labels -1, is_labeled False
    target: DomainSet  # evaluation only (labels are its ground truth)
    hidden_truth: dict[str, np.ndarray]  # unlabeled domains' ground truth: reporting and oracle only
    num_classes: int
    # Web (open-set) variant: the crawl-keyword labels of the web domain. Legitimately available noisy labels
    # (spec component 14), visible to the method; its ground truth (-1 = out of class) stays in hidden_truth.
    web_labels: dict[str, np.ndarray] = field(default_factory=dict)


def tasks(domains: Sequence[str]) -> list[tuple[str, list[str], str]]:
    """All (L, [U...], T) with L != T and U the remaining domains: 4 x 3 = 12 for 4 domains (spec 1)."""
    return [(l, [d for d in domains if d not in (l, t)], t) for l in domains for t in domains if t != l]


def parse_task(task: str, domains: Sequence[str]) -> tuple[str, list[str], str]:
    """"P2T" -> ("P", ["M", "C"], "T"); names longer than one letter work too ("art_painting2cartoon")."""
    lab, _, tgt = task.partition("2")
    for d in (lab, tgt):
        if d not in domains:
            raise InputError(f"data.task {task!r}: unknown domain {d!r}; known domains: {', '.join(domains)}")
    if lab == tgt:
        raise InputError(f"data.task {task!r}: labeled and target domain must differ")
    return lab, [d for d in domains if d not in (lab, tgt)], tgt


# ------------------------------------------------------------------------------- StyleDigits-4 generator

def _wheel_sources() -> tuple[np.ndarray, np.ndarray, list[np.ndarray], list[str]]:
    """sklearn's digits.csv.gz (8x8, 0..16) and sample photos; matplotlib's fonts. No network."""
    import matplotlib
    import sklearn
    from PIL import Image

    base = Path(sklearn.__file__).parent / "datasets"
    with gzip.open(base / "data" / "digits.csv.gz", "rt") as f:
        raw = np.loadtxt(f, delimiter=",")
    hw_images, hw_labels = raw[:, :64].reshape(-1, 8, 8) / 16.0, raw[:, 64].astype(np.int64)
    photos = [np.asarray(Image.open(base / "images" / n).convert("RGB")) for n in ("china.jpg", "flower.jpg")]
    font_dir = Path(matplotlib.get_data_path()) / "fonts" / "ttf"
    fonts = [str(font_dir / f) for f in FONT_FILES if (font_dir / f).exists()]
    return hw_images, hw_labels, photos, fonts


class _Glyphs:
    def __init__(self, fonts: list[str]) -> None:
        self.fonts, self.cache = fonts, {}

    def font(self, path: str, size: int):
        from PIL import ImageFont

        if (path, size) not in self.cache:
            self.cache[(path, size)] = ImageFont.truetype(path, size)
        return self.cache[(path, size)]

    def font_glyph(self, rng: np.random.Generator, char: str) -> np.ndarray:
        from PIL import Image, ImageDraw

        font = self.font(self.fonts[rng.integers(len(self.fonts))], int(rng.integers(18, 28)))
        canvas = Image.new("L", (48, 48), 0)
        draw = ImageDraw.Draw(canvas)
        l, t, r, b = draw.textbbox((0, 0), char, font=font)
        jx, jy = rng.integers(-2, 3, size=2)
        draw.text((24 - (l + r) / 2 + jx, 24 - (t + b) / 2 + jy), char, fill=255, font=font)
        canvas = canvas.rotate(float(rng.uniform(-15, 15)), resample=Image.BILINEAR)
        return np.asarray(canvas, np.float32)[8:40, 8:40] / 255.0

    @staticmethod
    def hand_glyph(rng: np.random.Generator, img8: np.ndarray) -> np.ndarray:
        from PIL import Image

        g = Image.fromarray((img8 * 255).astype(np.uint8)).resize((22, 22), Image.BILINEAR)
        g = g.rotate(float(rng.uniform(-10, 10)), resample=Image.BILINEAR)
        out = np.zeros((32, 32), np.float32)
        oy, ox = rng.integers(0, 11, size=2)
        out[oy:oy + 22, ox:ox + 22] = np.asarray(g, np.float32) / 255.0
        return out


def render(style: str, m: np.ndarray, rng: np.random.Generator, photos: list[np.ndarray]) -> np.ndarray:
    """Glyph mask m in [0, 1]^{32x32} -> uint8 32x32x3 in style P / M / C / T (spec 4.1)."""
    from scipy.ndimage import gaussian_filter

    m3 = m[..., None]
    if style == "P":  # white glyph on black (MNIST-like)
        out = 255.0 * np.repeat(m3, 3, axis=2)
    elif style == "M":  # |photo crop - 255 m| (MNIST-M recipe)
        ph = photos[rng.integers(len(photos))]
        y, x = rng.integers(0, ph.shape[0] - 32), rng.integers(0, ph.shape[1] - 32)
        out = np.abs(ph[y:y + 32, x:x + 32].astype(np.float32) - 255.0 * m3)
    elif style == "C":  # colour glyph on colour background, blurred, noisy (SVHN/SYN-like)
        while True:
            bg, fg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
            if np.abs(bg - fg).mean() >= 70:
                break
        mb = gaussian_filter(m, float(rng.uniform(0.3, 1.0)))[..., None]
        out = bg + (fg - bg) * mb + rng.normal(0, 10, (32, 32, 3))
    elif style == "T":  # dark glyph on a light texture (polarity inverted vs P)
        base = rng.uniform(170, 230, 3)
        yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
        amp = rng.uniform(15, 40)
        if rng.random() < 0.5:
            ang, freq = rng.uniform(0, np.pi), rng.uniform(0.08, 0.35)
            tex = amp * np.sin(2 * np.pi * freq * (xx * np.cos(ang) + yy * np.sin(ang)))
        else:
            cell = int(rng.integers(2, 6))
            tex = amp * (2.0 * (((yy // cell) + (xx // cell)) % 2) - 1.0)
        bgimg = base + tex[..., None]
        fg = rng.uniform(0, 90, 3)
        out = bgimg * (1 - m3) + fg * m3
    else:
        raise ValueError(f"unknown style {style!r}")
    return np.clip(np.rint(out), 0, 255).astype(np.uint8)


def make_style_digits(n_per_domain: int, seed: int, styles: str = STYLES,
                      web: bool = False) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """{domain: (uint8 [N, 32, 32, 3], int64 [N])}; the web domain "W" (when `web`) also carries open-set
    letters with random digit labels (truth -1) and 30 % symmetric label noise; its third array is the truth.

    Handwritten indices are split disjointly across domains; classes are balanced (i % 10, shuffled).
    """
    hw_images, hw_labels, photos, fonts = _wheel_sources()
    glyphs = _Glyphs(fonts)
    names = list(styles) + (["W"] if web else [])
    perm = np.random.default_rng([seed, 99]).permutation(len(hw_labels))
    hw_split = np.array_split(perm, len(names))  # disjoint handwritten indices per domain
    out: dict[str, Any] = {}
    for d_idx, name in enumerate(names):
        rng = np.random.default_rng([seed, d_idx])
        labels = rng.permutation(np.arange(n_per_domain) % 10).astype(np.int64)
        pool = {c: hw_split[d_idx][hw_labels[hw_split[d_idx]] == c] for c in range(10)}
        images = np.empty((n_per_domain, 32, 32, 3), np.uint8)
        truth = labels.copy()
        for i, y in enumerate(labels):
            style = STYLES[rng.integers(4)] if name == "W" else name
            if name == "W" and rng.random() < 0.2:  # out-of-class glyph carrying a random digit label
                m, truth[i] = glyphs.font_glyph(rng, "ABCDEFGHIJ"[rng.integers(10)]), -1
            elif rng.random() < 0.5 and len(pool[int(y)]):
                m = glyphs.hand_glyph(rng, hw_images[pool[int(y)][rng.integers(len(pool[int(y)]))]])
            else:
                m = glyphs.font_glyph(rng, str(int(y)))
            images[i] = render(style, m, rng, photos)
            if name == "W" and truth[i] >= 0 and rng.random() < 0.3:  # wrong "crawl" label
                labels[i] = (y + rng.integers(1, 10)) % 10
        out[name] = (images, labels, truth) if name == "W" else (images, labels)
    return out


AUX_CHARS = "KLMNOPQRSTUVWXYZ"  # letters only: disjoint from the digit classes and from W's out-of-class A-J


def make_aux_glyphs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, int]:
    """The auxiliary pre-training set: (uint8 [n, 32, 32, 3], int64 [n] in 0..15, 16 classes).

    Design choice (spec 6 calibration lever, the stand-in for ImageNet initialisation): font letters K-Z (no
    digit, no handwriting, so no sample of any StyleDigits domain) on a two-colour linear-gradient background,
    a random foreground colour, blur sigma U(0, 1) and Gaussian noise sigma U(0, 20). It teaches generic
    stroke features under varied colours, never the digit classes or the four domains' renderers.
    """
    from scipy.ndimage import gaussian_filter

    _, _, _, fonts = _wheel_sources()
    glyphs = _Glyphs(fonts)
    rng = np.random.default_rng([seed, 555])
    labels = rng.permutation(np.arange(n) % len(AUX_CHARS)).astype(np.int64)
    images = np.empty((n, 32, 32, 3), np.uint8)
    yy, xx = np.mgrid[0:32, 0:32].astype(np.float32)
    for i, c in enumerate(labels):
        m = gaussian_filter(glyphs.font_glyph(rng, AUX_CHARS[c]), float(rng.uniform(0.0, 1.0)))[..., None]
        bg0, bg1, fg = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
        ang = rng.uniform(0, 2 * np.pi)
        ramp = ((xx * np.cos(ang) + yy * np.sin(ang)) / 45.0 + 0.5)[..., None]  # [32, 32, 1]
        out = (bg0 * (1 - ramp) + bg1 * ramp) * (1 - m) + fg * m + rng.normal(0, rng.uniform(0, 20), (32, 32, 3))
        images[i] = np.clip(np.rint(out), 0, 255).astype(np.uint8)
    return images, labels, len(AUX_CHARS)


# ------------------------------------------------------------------------------------------ real readers

def _class_name(folder: str) -> str:
    """Office-Home folders appear as "000_Alarm_Clock" and "Alarm_Clock": both map to "Alarm_Clock"."""
    return re.sub(r"^\d+_", "", folder)


def _load_image(path: Path, size: int, label: str) -> np.ndarray:
    from PIL import Image

    from tenfold.core.images import read_pixels, to_rgb, to_unit

    arr = to_rgb(read_pixels(path, label), label)
    if arr.dtype != np.uint8:
        arr = np.rint(to_unit(arr, label) * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(np.ascontiguousarray(arr)).resize((size, size), Image.BILINEAR))


def read_folders(root: Path, domain: str, size: int, num_classes: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """DomainBed layout root/<domain>/<class>/<image>; classes sorted by name (prefix "000_" ignored)."""
    folder = root / domain
    if not folder.is_dir():
        known = sorted(p.name for p in root.iterdir() if p.is_dir()) if root.is_dir() else []
        raise InputError(f"{folder}: unknown domain {domain!r} (no such folder); domains under {root}: "
                         f"{', '.join(known) or 'none'}")
    classes = sorted({_class_name(p.name) for p in folder.iterdir() if p.is_dir()})
    if len(classes) > num_classes:
        raise InputError(f"{folder}: {len(classes)} class folders, but data.num_classes = {num_classes}")
    images, labels, paths = [], [], []
    for cdir in sorted(p for p in folder.iterdir() if p.is_dir()):
        for f in sorted(cdir.iterdir()):
            if f.suffix.lower() in IMAGE_SUFFIXES:
                images.append(_load_image(f, size, str(f)))
                labels.append(classes.index(_class_name(cdir.name)))
                paths.append(str(f.relative_to(root)))
    if not images:
        raise InputError(f"{folder}: empty domain folder; expected <class>/<image> files ({', '.join(IMAGE_SUFFIXES)})")
    return np.stack(images), np.array(labels, np.int64), paths


def read_list(list_file: Path, root: Path, size: int, num_classes: int, label_base: int,
              encoding: str = "utf-8") -> tuple[np.ndarray, np.ndarray, list[str]]:
    """A split list "relative_path label" per line (PACS *_train_kfold.txt 1-based; Dassl / web 0-based)."""
    if not list_file.is_file():
        raise InputError(f"{list_file}: list file not found; expected lines 'relative_path label'")
    try:
        lines = list_file.read_bytes().decode(encoding).splitlines()
    except (UnicodeDecodeError, LookupError) as err:
        raise InputError(f"{list_file}: cannot be decoded as {encoding} ({err}); set data.list_encoding") from None
    entries = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        parts = line.rsplit(maxsplit=1)
        if len(parts) != 2 or not re.fullmatch(r"-?\d+", parts[1]):
            raise InputError(f"{list_file}:{n}: expected 'relative_path label' (label an integer), got {line!r}")
        y = int(parts[1]) - label_base
        if not 0 <= y < num_classes:
            raise InputError(f"{list_file}:{n}: label {parts[1]} out of range; expected {label_base}.."
                             f"{num_classes - 1 + label_base} (data.label_base = {label_base})")
        path = root / parts[0]
        if not path.is_file():
            raise InputError(f"{list_file}:{n}: image {parts[0]} not found under {root}")
        entries.append((path, y, parts[0]))
    if not entries:
        raise InputError(f"{list_file}: no entries; expected lines 'relative_path label'")
    images = [_load_image(p, size, f"{p} (listed in {list_file})") for p, _, _ in entries]
    return np.stack(images), np.array([y for _, y, _ in entries], np.int64), [r for _, _, r in entries]


def read_domain(cfg: Any, domain: str) -> tuple[np.ndarray, np.ndarray, list[str]]:
    d = cfg.data
    if d.root is None:
        raise InputError(f"data.root must be set for data.source={d.source!r}")
    root = Path(d.root)
    if d.source == "folders":
        return read_folders(root, domain, d.image_size, d.num_classes)
    encoding = "gbk" if d.source == "web" and d.list_encoding == "utf-8" else d.list_encoding
    return read_list(root / d.list_dir / f"{domain}_{d.split_suffix}", root, d.image_size, d.num_classes,
                     d.label_base, encoding)


# ---------------------------------------------------------------------------------------- task assembly

def load_task(cfg: Any) -> Task:
    """Labeled train / val (DomainBed-style source validation), unlabeled sets without labels, target.

    With `data.web` the web domain `data.web_domain` replaces the unlabeled domains (spec component 14): its
    crawl labels go to `Task.web_labels`, its ground truth (-1 for an out-of-class image) to `hidden_truth`.
    Every file is read and checked here, before a run writes anything.
    """
    d = cfg.data
    lab, unl, tgt = parse_task(d.task, [x for x in d.domains if not (d.web and x == d.web_domain)])
    if d.web:
        unl = [d.web_domain]
    if d.source == "synth":
        raw = make_style_digits(d.n_per_domain, cfg.seed, "".join(x for x in d.domains if x != "W"), web=d.web)
        num_classes = 10
    else:
        raw = {name: read_domain(cfg, name) for name in [lab, *unl, tgt]}
        num_classes = d.num_classes

    def arrays(name):
        paths = raw[name][2] if len(raw[name]) > 2 and not isinstance(raw[name][2], np.ndarray) else []
        return raw[name][0], raw[name][1], paths
    ids = {name: i for i, name in enumerate(d.domains)}
    x, y, paths = arrays(lab)
    order = np.random.default_rng([cfg.seed, 7]).permutation(len(y))
    n_val = max(1, int(round(d.val_fraction * len(y))))
    full = labeled_set(lab, x, y, ids[lab], paths)
    train, val = full.subset(order[n_val:]), full.subset(order[:n_val])
    unlabeled, truth, web = [], {}, {}
    for name in unl:
        xu, yu, pu = arrays(name)
        unlabeled.append(unlabeled_set(name, xu, ids.get(name, len(ids)), pu))
        truth[name] = yu
        if d.web:
            web[name] = yu.copy()  # the crawl labels as listed
            if d.source == "synth":
                truth[name] = raw[name][2]  # the generator's truth: -1 = out-of-class glyph
    xt, yt, pt = arrays(tgt)
    return Task(lab, unl, tgt, train, val, unlabeled, labeled_set(tgt, xt, yt, ids[tgt], pt), truth, num_classes,
                web)


# ------------------------------------------------------------------------------- preprocessing, inference

def to_input(images: np.ndarray | torch.Tensor) -> torch.Tensor:
    """uint8 [B, H, W, 3] -> float [B, 3, H, W], standardised per image and channel.

    Design choice (spec 4.1 calibration): per-image per-channel standardisation removes global colour and
    brightness, the cheapest part of the style gap, for every method alike.
    """
    x = torch.as_tensor(images).permute(0, 3, 1, 2).float() / 255.0  # [B, H, W, 3] -> [B, 3, H, W]
    mu = x.mean(dim=(2, 3), keepdim=True)
    sd = x.std(dim=(2, 3), keepdim=True)
    return (x - mu) / (sd + 0.05)


def augment(images: np.ndarray, rng: np.random.Generator, invert: bool, gray: bool) -> np.ndarray:
    """Design choice (spec 6 calibration lever): random invert (p 0.5) and random grayscale (p 0.2), shared by
    every method; random translation by up to 2 px (the digits analogue of Random2DTranslation)."""
    x = images.copy()
    b = len(x)
    if invert:
        flip = rng.random(b) < 0.5
        x[flip] = 255 - x[flip]
    if gray:
        g = rng.random(b) < 0.2
        x[g] = np.repeat(x[g].mean(axis=3, keepdims=True).astype(np.uint8), 3, axis=3)
    pad = np.pad(x, ((0, 0), (2, 2), (2, 2), (0, 0)), mode="edge")
    dy, dx = rng.integers(0, 5, size=(2, b))
    h, w = x.shape[1:3]
    for i in range(b):
        x[i] = pad[i, dy[i]:dy[i] + h, dx[i]:dx[i] + w]
    return x


@torch.no_grad()
def predict_probs(model: torch.nn.Module, images: np.ndarray, batch: int = 256,
                  device: torch.device | str = "cpu") -> torch.Tensor:
    """Softmax of `model` (eval mode, test transform) over `images` in batches -> [N, C] on the CPU."""
    was = model.training
    model.eval()
    out = [torch.softmax(model(to_input(images[i:i + batch]).to(device)), dim=1).cpu()
           for i in range(0, len(images), batch)]
    model.train(was)
    return torch.cat(out) if out else torch.zeros(0)


def accuracy(probs: torch.Tensor, labels: np.ndarray) -> float:
    """Top-1 accuracy in %."""
    if len(labels) == 0:
        return float("nan")
    return float((probs.argmax(1).numpy() == labels).mean() * 100.0)


def shuffled_batches(n: int, batch: int, rng: np.random.Generator) -> list[np.ndarray]:
    """A random permutation of range(n) cut into batches (the last one may be short, never empty)."""
    order = rng.permutation(n)
    return [order[i:i + batch] for i in range(0, n, batch)]


def make_optimizer(params, t: Any) -> torch.optim.Optimizer:
    """SGD(lr, momentum 0.9, wd 5e-4) [code]; Adam on the CPU profiles [design choice, spec 3]."""
    if t.optimizer == "sgd":
        return torch.optim.SGD(params, lr=t.lr, momentum=t.momentum, weight_decay=t.weight_decay)
    return torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay)


def set_lr(optimizers, lr: float) -> None:
    for opt in optimizers:
        for g in opt.param_groups:
            g["lr"] = lr
