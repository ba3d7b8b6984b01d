"""ShapesFSIS: the procedural few-shot instance segmentation set of `reft` (spec 4.1) [design choice].

Paper: Han, Zhang, Wang, Wang, Liu, Qi, Li, Yang, "Reference Twice: A Simple and Unified Baseline for Few-Shot
Instance Segmentation", arXiv 2301.01156 (spec ../shared/specs/reft.md, section 4.1).

A class is a (shape family, texture family) pair; the novel classes are combinations never seen in base training
although each shape and each texture is (`novel_classes`). Colour carries no class information (two random colours
per instance, luminance contrast >= 0.3); size, rotation and anisotropy are class-independent.

  SHAPES, TEXTURES       the 10 shape and 8 texture families of the spec
  ShapesPreset, PRESETS  generator sizes: "tiny" (tests), "quick" (CPU quick profile, 64 px), "cpu" (the spec's
                         128 px, 80 classes), "gpu" (320 px, 4x the images)
  novel_classes          the Latin-style base / novel selection: every shape in the same number of novel classes,
                         every texture in floor or ceil of the mean
  shape_mask, texture    one instance's support and two-colour pattern, in the instance's own (rotated) frame
  render_image           one image: background, instances in random z-order, occlusion, the visible-area rule,
                         an unlabelled distractor
  generate_split         a split (base_train / fewshot_pool / test) as a list of coco.Sample
Written to disk as COCO JSON with RLE masks by coco.write_shapes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from tenfold.core.errors import InputError

GENERATOR_VERSION = 1

SHAPES = ("disk", "ellipse", "rounded_square", "triangle", "pentagon", "hexagon", "star", "plus", "ring",
          "crescent")
TEXTURES = ("solid", "stripes", "checkerboard", "dots", "rings", "waves", "blobs", "grid")
SPLITS = ("base_train", "fewshot_pool", "test")


@dataclass(frozen=True)
class ShapesPreset:
    """Sizes of one ShapesFSIS build.

    Args:
        image_size: canvas side in px (spec: 128 CPU, 320 GPU; tiny and quick 64).
        shapes, textures: the families used; class id = 1 + shape index * len(textures) + texture index.
        num_novel: novel classes; a multiple of len(shapes) (every shape in the same number of novel classes).
        min_instances, max_instances: labelled instances per image (spec 1-6).
        min_extent, max_extent: an instance's largest extent in px before anisotropy (spec U(14, 56) at 128 px).
        period_min, period_max: texture period in px (spec 4-10), drawn per instance.
        p_distractor: chance of one unlabelled "unknown" object (spec 0.3).
        max_lines: thin background lines, 0..max_lines (spec 6).
        novel_leak: chance that a base_train instance is of a novel class, left unannotated (spec default 0.0).
        num_images: images per split (base_train, fewshot_pool, test).
    """

    image_size: int = 128
    shapes: tuple[str, ...] = SHAPES
    textures: tuple[str, ...] = TEXTURES
    num_novel: int = 20
    min_instances: int = 1
    max_instances: int = 6
    min_extent: float = 14.0
    max_extent: float = 56.0
    period_min: float = 4.0
    period_max: float = 10.0
    p_distractor: float = 0.3
    max_lines: int = 6
    novel_leak: float = 0.0
    num_images: dict[str, int] = field(default_factory=lambda: {"base_train": 6000, "fewshot_pool": 3000,
                                                                "test": 1000})

    def __post_init__(self) -> None:
        unknown = [s for s in self.shapes if s not in SHAPES] + [t for t in self.textures if t not in TEXTURES]
        if unknown or not self.shapes or not self.textures or len(set(self.shapes)) < len(self.shapes) \
                or len(set(self.textures)) < len(self.textures):
            raise InputError(f"shapes preset: shapes / textures {unknown or (self.shapes, self.textures)} not "
                             f"allowed; expected distinct names from {SHAPES} and {TEXTURES}")
        n_classes = len(self.shapes) * len(self.textures)
        if self.num_novel <= 0 or self.num_novel % len(self.shapes) or \
                self.num_novel > math.lcm(len(self.shapes), len(self.textures)) or self.num_novel >= n_classes:
            raise InputError(f"shapes preset: num_novel {self.num_novel} must be a positive multiple of "
                             f"{len(self.shapes)} (shapes), at most lcm(shapes, textures) and below {n_classes}")
        if not (1 <= self.min_instances <= self.max_instances):
            raise InputError("shapes preset: expected 1 <= min_instances <= max_instances")
        if not (4 <= self.min_extent <= self.max_extent <= self.image_size):
            raise InputError("shapes preset: expected 4 <= min_extent <= max_extent <= image_size")
        if not (0 <= self.p_distractor <= 1 and 0 <= self.novel_leak <= 1):
            raise InputError("shapes preset: p_distractor and novel_leak must lie in [0, 1]")
        if set(self.num_images) != set(SPLITS) or any(n < 1 for n in self.num_images.values()):
            raise InputError(f"shapes preset: num_images needs a positive count for each of {SPLITS}")

    @property
    def num_classes(self) -> int:
        return len(self.shapes) * len(self.textures)

    def class_of(self, cat_id: int) -> tuple[str, str]:
        i = cat_id - 1
        return self.shapes[i // len(self.textures)], self.textures[i % len(self.textures)]


# Design choice: "quick" keeps 5 shapes x 4 textures (20 classes, 5 novel) at 64 px so that base training and
# fine-tuning fit the 15-minute reproduce budget on 2 cores; the families kept are the most distinct at 64 px.
PRESETS = {
    "tiny": ShapesPreset(image_size=64, shapes=("disk", "triangle", "star", "ring"),
                         textures=("solid", "stripes", "checkerboard", "dots"), num_novel=4, max_instances=3,
                         min_extent=16.0, max_extent=32.0, max_lines=3,
                         num_images={"base_train": 32, "fewshot_pool": 64, "test": 16}),
    "quick": ShapesPreset(image_size=64, shapes=("disk", "triangle", "star", "ring", "plus"),
                          textures=("solid", "stripes", "checkerboard", "dots"), num_novel=5, max_instances=3,
                          min_extent=16.0, max_extent=36.0, max_lines=3,
                          num_images={"base_train": 2000, "fewshot_pool": 600, "test": 300}),
    "cpu": ShapesPreset(),
    "gpu": ShapesPreset(image_size=320, min_extent=35.0, max_extent=140.0, period_min=10.0, period_max=25.0,
                        num_images={"base_train": 24000, "fewshot_pool": 12000, "test": 4000}),
}


def novel_classes(preset: ShapesPreset, seed: int) -> tuple[int, ...]:
    """Novel class ids. Design choice: slot j gets shape pi[j mod S] and texture sigma[j mod T] (seeded
    permutations pi, sigma).

    Every shape lands in num_novel / S novel classes and every texture in floor or ceil of num_novel / T (spec:
    10 x 8 with 20 novel -> each shape twice, each texture 2 or 3); slots j < lcm(S, T) give distinct classes.
    """
    S, T = len(preset.shapes), len(preset.textures)
    rng = np.random.default_rng([seed, 7])
    pi, sigma = rng.permutation(S), rng.permutation(T)
    return tuple(sorted(1 + int(pi[j % S]) * T + int(sigma[j % T]) for j in range(preset.num_novel)))


# ----------------------------------------------------------------------------------------------------------
# One instance: support and texture in the instance frame (u, v): rotated, centred, unit = half the extent.


def shape_mask(name: str, u: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Boolean support of shape family `name` at instance-frame points (u, v); the shape fits the unit disk.

    Design choice: the constants the spec leaves open (rounded square, star, plus, crescent) are chosen here.
    """
    rho, theta = np.hypot(u, v), np.arctan2(v, u)
    if name == "disk":
        return rho <= 1
    if name == "ellipse":  # axis ratio 0.55 (spec)
        return u ** 2 + (v / 0.55) ** 2 <= 1
    if name == "rounded_square":  # half side 0.75, corner radius 0.25
        du, dv = np.maximum(np.abs(u) - 0.5, 0), np.maximum(np.abs(v) - 0.5, 0)
        return (np.abs(u) <= 0.75) & (np.abs(v) <= 0.75) & (np.hypot(du, dv) <= 0.25)
    if name in ("triangle", "pentagon", "hexagon"):
        n = {"triangle": 3, "pentagon": 5, "hexagon": 6}[name]
        return _inside_star(rho, theta, n, math.cos(math.pi / n))
    if name == "star":  # 5 points, inner radius 0.45
        return _inside_star(rho, theta, 5, 0.45)
    if name == "plus":  # arms of half width 0.3
        return ((np.abs(u) <= 0.3) & (np.abs(v) <= 1)) | ((np.abs(u) <= 1) & (np.abs(v) <= 0.3))
    if name == "ring":  # annulus, inner radius 0.5 (spec)
        return (rho <= 1) & (rho >= 0.5)
    if name == "crescent":  # unit disk minus a disk of radius 0.8 shifted by 0.45
        return (rho <= 1) & ((u - 0.45) ** 2 + v ** 2 > 0.8 ** 2)
    raise ValueError(f"unknown shape {name!r}")


def _inside_star(rho: np.ndarray, theta: np.ndarray, n: int, r_inner: float) -> np.ndarray:
    """Inside the star polygon: n outer vertices at radius 1 (angles 2pi k / n), inner ones at r_inner between.

    Within one sector, fold the angle to a in [0, pi/n] from the outer vertex A = (1, 0); the edge runs to the inner
    vertex B = r_inner (cos pi/n, sin pi/n); a point P is inside iff it lies on the origin's side of line AB.
    """
    sector = 2 * math.pi / n
    a = np.abs(((theta + sector / 2) % sector) - sector / 2)  # angle to the nearest outer vertex
    bx, by = r_inner * math.cos(math.pi / n) - 1.0, r_inner * math.sin(math.pi / n)
    px, py = rho * np.cos(a) - 1.0, rho * np.sin(a)
    side = bx * py - by * px  # cross(B - A, P - A); for P = O: cross = bx * 0 - by * (-1) = by > 0
    return side >= 0


def _value_noise(rng: np.random.Generator, h: int, w: int, cell: float, channels: int = 1) -> np.ndarray:
    """Bilinearly interpolated uniform noise on a lattice of spacing `cell` px -> (channels, h, w) in [0, 1]."""
    gh, gw = int(math.ceil(h / cell)) + 2, int(math.ceil(w / cell)) + 2
    grid = rng.random((channels, gh, gw))
    y, x = np.arange(h) / cell, np.arange(w) / cell
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = (y - y0)[:, None], (x - x0)[None, :]
    g00, g01 = grid[:, y0][:, :, x0], grid[:, y0][:, :, x0 + 1]
    g10, g11 = grid[:, y0 + 1][:, :, x0], grid[:, y0 + 1][:, :, x0 + 1]
    return (g00 * (1 - fy) * (1 - fx) + g01 * (1 - fy) * fx + g10 * fy * (1 - fx) + g11 * fy * fx)


def texture(name: str, x: np.ndarray, y: np.ndarray, period: float, noise: np.ndarray | None = None,
            phase: tuple[float, float] = (0.0, 0.0)) -> np.ndarray:
    """Which of the two colours each point takes (bool), at instance-frame pixel offsets (x, y) from the centre.

    Design choice: the parameters of each pattern (dot radius, wave amplitude, line width, blob lattice).
    The pattern turns with the instance (rotation-robust: the class never depends on the angle); `phase` shifts
    the lattice of the periodic textures (not the concentric rings). `noise` is the "blobs" field at the points.
    """
    p = period
    if name == "rings":  # concentric about the object centre
        return (np.hypot(x, y) / p) % 1.0 < 0.5
    x, y = x + phase[0], y + phase[1]
    if name == "solid":
        return np.zeros(x.shape, bool)
    if name == "stripes":
        return (x / p) % 1.0 < 0.5
    if name == "checkerboard":
        return (np.floor(2 * x / p) + np.floor(2 * y / p)) % 2 == 1
    if name == "dots":  # dots of radius 0.3 p on a lattice of spacing p
        dx, dy = (x / p) % 1.0 - 0.5, (y / p) % 1.0 - 0.5
        return np.hypot(dx, dy) < 0.3
    if name == "waves":  # sinusoidal stripes, amplitude 0.35 p, wavelength 2 p
        return ((y + 0.35 * p * np.sin(math.pi * x / p)) / p) % 1.0 < 0.5
    if name == "blobs":
        return noise > 0.5
    if name == "grid":  # lines of width 0.25 p
        return np.minimum(x % p, y % p) < 0.25 * p
    raise ValueError(f"unknown texture {name!r}")


# ----------------------------------------------------------------------------------------------------------
# One image.


@dataclass
class _Layer:
    full: np.ndarray  # (H, W) bool, the instance's whole support
    visible: np.ndarray  # (H, W) bool, minus the layers drawn above it
    rgb: np.ndarray  # (H, W, 3) float, its colours (used where `full`)
    cat_id: int  # 0 for the distractor
    labelled: bool


def _two_colours(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Two uniform RGB colours whose luma (ITU-R 601) differs by at least 0.3 (spec: contrast >= 0.3)."""
    luma = np.array([0.299, 0.587, 0.114])
    while True:
        c1, c2 = rng.random(3), rng.random(3)
        if abs(float(luma @ c1 - luma @ c2)) >= 0.3:
            return c1, c2


def _frame(rng: np.random.Generator, preset: ShapesPreset) -> tuple:
    """A random pose -> instance-frame coordinates on the instance's canvas window `box`: (u, v) in units of half
    the extent with outline jitter, and (x, y) in px, both rotated with the instance."""
    H = W = preset.image_size
    half = rng.uniform(preset.min_extent, preset.max_extent) / 2
    aniso = rng.uniform(0.8, 1.25)  # spec: anisotropic scale U(0.8, 1.25), on the instance's u axis
    angle = rng.uniform(0, 2 * math.pi)  # spec: rotation U(0, 2 pi)
    reach = half * max(aniso, 1.0)
    # Design choice: centres keep the whole instance on the canvas (no border truncation).
    cx, cy = rng.uniform(reach, W - reach), rng.uniform(reach, H - reach)
    r = reach * 1.2 + 1  # the outline jitter stays well inside 1.2 x the reach
    box = (slice(max(int(cy - r), 0), min(int(cy + r) + 2, H)), slice(max(int(cx - r), 0), min(int(cx + r) + 2, W)))
    yy, xx = np.mgrid[box] + 0.5  # only the instance's window of the canvas is evaluated
    dx, dy = xx - cx, yy - cy
    x = math.cos(angle) * dx + math.sin(angle) * dy  # (H, W) px along the instance's axes
    y = -math.sin(angle) * dx + math.cos(angle) * dy
    u, v = x / (half * aniso), y / half
    # spec: "slight elastic jitter of the outline": radius scaled by 1 + sum_k a_k cos(k theta + phi_k), k = 2..4
    theta = np.arctan2(v, u)
    wobble = 1 + sum(rng.normal(0, 0.03) * np.cos(k * theta + rng.uniform(0, 2 * math.pi)) for k in (2, 3, 4))
    return u / wobble, v / wobble, x, y, box


def _instance(rng: np.random.Generator, preset: ShapesPreset, cat_id: int) -> tuple[np.ndarray, np.ndarray]:
    """(full mask (H, W) bool, colours (H, W, 3)) of one instance of class `cat_id`; 0 draws the distractor."""
    H = W = preset.image_size
    u, v, x, y, box = _frame(rng, preset)
    h, w = u.shape
    c1, c2 = _two_colours(rng)
    if cat_id == 0:
        # Design choice: the "unknown" object is a random star-shaped blob (7 radii U(0.4, 1), linearly
        # interpolated in angle) with a per-pixel speckle texture: neither is one of the families.
        radii = rng.uniform(0.4, 1.0, 7)
        t = (np.arctan2(v, u) % (2 * math.pi)) / (2 * math.pi) * 7
        i0 = np.floor(t).astype(int) % 7
        r = radii[i0] * (1 - (t - np.floor(t))) + radii[(i0 + 1) % 7] * (t - np.floor(t))
        mask, pick = np.hypot(u, v) <= r, rng.random((h, w)) < 0.5
    else:
        shape, tex = preset.class_of(cat_id)
        period = rng.uniform(preset.period_min, preset.period_max)
        noise = _value_noise(rng, h, w, period)[0] if tex == "blobs" else None
        mask = shape_mask(shape, u, v)
        pick = texture(tex, x, y, period, noise, phase=tuple(rng.uniform(0, period, 2)))
    full, rgb = np.zeros((H, W), bool), np.zeros((H, W, 3))
    full[box], rgb[box] = mask, np.where(pick[..., None], c2, c1)
    return full, rgb


def _background(rng: np.random.Generator, preset: ShapesPreset) -> np.ndarray:
    """Low-frequency coloured noise (lattice of H / 4 px) plus 0..max_lines thin straight lines -> (H, W, 3).

    Design choice: lattice, value range [0.15, 0.85] and line width 1.2 px (the spec names the ingredients only).
    """
    H = W = preset.image_size
    img = 0.15 + 0.7 * _value_noise(rng, H, W, H / 4, channels=3).transpose(1, 2, 0)
    yy, xx = np.mgrid[0:H, 0:W] + 0.5
    for _ in range(int(rng.integers(0, preset.max_lines + 1))):
        a = rng.uniform(0, math.pi)
        x0, y0 = rng.uniform(0, W), rng.uniform(0, H)
        line = np.abs(-math.sin(a) * (xx - x0) + math.cos(a) * (yy - y0)) < 0.6  # width 1.2 px
        img[line] = rng.random(3)
    return img


def _place(layers: list[_Layer], full: np.ndarray, min_visible: int = 20, min_fraction: float = 0.4) -> bool:
    """Put `full` on top if every labelled layer below keeps >= min_fraction of its area and >= min_visible px
    (spec: drop instances whose visible area is < 40 % of the full area or < 20 px); False if it would not."""
    if full.sum() < min_visible:
        return False
    for layer in layers:
        if layer.labelled:
            left = int((layer.visible & ~full).sum())
            if left < min_visible or left < min_fraction * layer.full.sum():
                return False
    for layer in layers:
        layer.visible &= ~full
    return True


def render_image(rng: np.random.Generator, preset: ShapesPreset, labelled: list[int], unlabelled: list[int],
                 tries: int = 20) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One image -> (uint8 (H, W, 3), visible masks (N, H, W) bool, category ids (N,)) of the labelled instances.

    `labelled` and `unlabelled` are class ids (0 = the distractor); they are drawn in a random z-order. Design
    choice: an instance that would hide too much of one below it is redrawn in a new pose up to `tries` times,
    then left out, so every labelled instance obeys the visible-area rule and none is drawn unannotated.
    """
    items = [(c, True) for c in labelled] + [(c, False) for c in unlabelled]
    order = rng.permutation(len(items))  # spec: random z-order
    img, layers = _background(rng, preset), []
    for k in order:
        cat_id, is_labelled = items[k]
        for _ in range(tries):
            full, rgb = _instance(rng, preset, cat_id)
            if _place(layers, full):
                layers.append(_Layer(full, full.copy(), rgb, cat_id, is_labelled))
                break
    for layer in layers:
        img[layer.full] = layer.rgb[layer.full]
    img = img + rng.normal(0, 0.02, img.shape)  # Design choice: mild pixel noise
    img = np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)
    kept = [layer for layer in layers if layer.labelled]
    H = W = preset.image_size
    masks = np.stack([layer.visible for layer in kept]) if kept else np.zeros((0, H, W), bool)
    return img, masks, np.array([layer.cat_id for layer in kept], dtype=np.int64)


# ----------------------------------------------------------------------------------------------------------
# Splits.


def category_split(preset: ShapesPreset, seed: int):
    """The CategorySplit of a build: names "shape_texture", novel ids from `novel_classes`."""
    from tenfold.systems.reft.coco import CategorySplit

    novel = novel_classes(preset, seed)
    ids = range(1, preset.num_classes + 1)
    return CategorySplit(base_ids=tuple(i for i in ids if i not in novel), novel_ids=novel,
                         names={i: "_".join(preset.class_of(i)) for i in ids})


# Design choice: image ids offset per split, so a test image can never pass for a support.
IMAGE_ID_OFFSET = {"base_train": 0, "fewshot_pool": 10_000_000, "test": 20_000_000}


def generate_split(preset: ShapesPreset, split: str, seed: int, num_images: int | None = None) -> list:
    """ShapesFSIS split -> list[coco.Sample] (images as uint8 / 255, exactly what the written PNG reads back as).

    base_train annotates base classes only (with `novel_leak`, a novel instance is drawn unannotated);
    fewshot_pool and test annotate every class. Image ids are unique across splits; each image has its own
    generator stream (seed, version, split, index), so a prefix of a split does not depend on `num_images`.
    Design choice: the labelled classes follow a class-balanced stream (concatenated seeded permutations of the
    split's classes), so every class has about the same number of instances and small pools still hold K of each.
    """
    import torch

    from tenfold.systems.reft.coco import Sample

    if split not in SPLITS:
        raise InputError(f"shapes split {split!r}; expected one of {SPLITS}")
    cats = category_split(preset, seed)
    labelled_ids = np.array(cats.base_ids if split == "base_train" else cats.all_ids)
    novel = np.array(cats.novel_ids)
    stream_rng = np.random.default_rng([seed, GENERATOR_VERSION, SPLITS.index(split), 2**32 - 1])
    stream: list[int] = []
    n = preset.num_images[split] if num_images is None else num_images
    samples = []
    for i in range(n):
        rng = np.random.default_rng([seed, GENERATOR_VERSION, SPLITS.index(split), i])
        count = int(rng.integers(preset.min_instances, preset.max_instances + 1))
        labelled, unlabelled = [], []
        for _ in range(count):
            if split == "base_train" and rng.random() < preset.novel_leak:
                unlabelled.append(int(rng.choice(novel)))
                continue
            if not stream:
                stream = [int(c) for c in stream_rng.permutation(labelled_ids)][::-1]
            labelled.append(stream.pop())
        if rng.random() < preset.p_distractor:
            unlabelled.append(0)
        img, masks, cat_ids = render_image(rng, preset, labelled, unlabelled)
        samples.append(Sample(
            image_id=IMAGE_ID_OFFSET[split] + i + 1,
            # the same float32 arithmetic as tenfold.core.images.to_unit, so a written PNG reads back equal
            image=torch.from_numpy(np.ascontiguousarray((img.astype(np.float32) / 255.0).transpose(2, 0, 1))),
            masks=torch.from_numpy(masks), category_ids=torch.from_numpy(cat_ids),
            file_name=f"{split}/{i:06d}.png"))
    return samples


def with_preset(name: str, **changes) -> ShapesPreset:
    """PRESETS[name] with fields replaced (validated again)."""
    if name not in PRESETS:
        raise InputError(f"shapes preset {name!r}; expected one of {sorted(PRESETS)}")
    return replace(PRESETS[name], **changes)
