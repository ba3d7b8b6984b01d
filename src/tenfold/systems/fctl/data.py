"""Data for FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware Context Fusion and
Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580): spec ../shared/specs/fctl.md section 4.

  make_synth_landcover(seed, size, patch)  4.1: SynthLandcover, classes only context separates, thin roads
  texture_oracle / patches_inside_cell     4.1 diagnostics
  deepglobe_colour_to_ids / ids_to_colour  4.2 / component 8: colour masks, channels binarised at 128
  read_image / read_rgb / read_deepglobe_pair / read_inria_pair   4.2 real formats, whole files decoded
  list_split / check_split_files / write_mask                     4.2 splits, checked before training
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tenfold.core import images as core_images
from tenfold.core.errors import InputError
from tenfold.core.images import check_min_size, read_pixels, to_rgb, to_unit

log = logging.getLogger("tenfold.fctl")

# Component 8 [code]: DeepGlobe ids and colours (channels binarised at 128).
CLASS_NAMES = ("unknown", "urban", "agriculture", "rangeland", "forest", "water", "barren")
DEEPGLOBE_COLOURS = np.array([(0, 0, 0), (0, 255, 255), (255, 255, 0), (255, 0, 255), (0, 255, 0),
                              (0, 0, 255), (255, 255, 255)], dtype=np.uint8)
# Spec 4.1: (texture, regime) -> id; regime 0 = L (spec: large cells), 1 = S (spec: small-cell district; here a
# farmstead within MARKER_RADIUS * p, see make_synth_landcover).
LABEL_TABLE = np.array([[3, 6], [2, 1], [5, 5], [4, 4], [1, 1]], dtype=np.uint8)  # [texture, regime]
ROAD_WIDTH_PX = 3
SPLIT_OFFSETS = {"train": 0, "val": 10_000, "test": 20_000}  # spec 4.1 seed ranges


@dataclass(frozen=True)
class SynthSample:
    image: np.ndarray  # (S, S, 3) float32 in [0, 1]
    label: np.ndarray  # (S, S) uint8 ids 0..6
    regime: np.ndarray  # (S, S) uint8, 0 = L, 1 = S
    texture: np.ndarray  # (S, S) uint8, 0..4
    cell: np.ndarray  # (S, S) int32 cell id
    road: np.ndarray  # (S, S) bool
    cloud: np.ndarray  # (S, S) bool
    farm: np.ndarray  # (S, S) bool, farmstead pixels (class 1)
    markers: np.ndarray  # (M, 2) float farmstead centres (y, x) in pixels


def poisson_disk(rng: np.random.Generator, size: int, spacing: float, inside=None, tries: int = 2000) -> np.ndarray:
    """Dart throwing: points (n, 2) at mutual distance >= spacing; `inside(pts) -> bool` restricts them."""
    cand = rng.uniform(0, size, (tries, 2))
    if inside is not None:
        cand = cand[inside(cand)]
    pts: list[tuple[float, float]] = []
    s2 = spacing * spacing
    for y, x in cand.tolist():
        if all((y - py) ** 2 + (x - px) ** 2 >= s2 for py, px in pts):
            pts.append((y, x))
    return np.asarray(pts, dtype=np.float64).reshape(-1, 2)


def _warped_coords(rng: np.random.Generator, size: int, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """Pixel coordinates displaced by a smooth field: N(0, 1) on an S/32 grid, bilinear up, amplitude 0.05 p."""
    g = max(2, size // 32)
    field = rng.normal(0, 1, (2, g, g))
    t = np.linspace(0, g - 1, size)
    i0 = np.clip(np.floor(t).astype(int), 0, g - 2)
    f = t - i0
    rows = field[:, i0] * (1 - f)[None, :, None] + field[:, i0 + 1] * f[None, :, None]  # (2, S, g)
    full = rows[:, :, i0] * (1 - f) + rows[:, :, i0 + 1] * f  # (2, S, S)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    return yy + 0.05 * patch * full[0], xx + 0.05 * patch * full[1]


def _nearest(seeds: np.ndarray, wy: np.ndarray, wx: np.ndarray) -> np.ndarray:
    d = (wy[None] - seeds[:, 0, None, None]) ** 2 + (wx[None] - seeds[:, 1, None, None]) ** 2  # (n, S, S)
    return d.argmin(0)


def _render_texture(rng: np.random.Generator, tex: int, mask: np.ndarray, img: np.ndarray) -> None:
    """Paint texture `tex` (spec 4.1 T0..T4) into img[mask] with a per-cell brightness x U(0.9, 1.1)."""
    yy, xx = np.nonzero(mask)
    n = yy.size
    if tex == 0:  # grass noise: green-olive + N(0, 0.06)
        rgb = np.array([0.42, 0.50, 0.24]) + rng.normal(0, 0.06, (n, 3))
    elif tex == 1:  # stripes: random angle, period 6-12 px, amplitude 0.08
        ang, period = rng.uniform(0, np.pi), rng.uniform(6, 12)
        s = 0.08 * np.sin(2 * np.pi * (xx * np.cos(ang) + yy * np.sin(ang)) / period)
        rgb = np.array([0.42, 0.50, 0.24]) + s[:, None]
    elif tex == 2:  # water: blue, sigma 0.02
        rgb = np.array([0.12, 0.24, 0.55]) + rng.normal(0, 0.02, (n, 3))
    elif tex == 3:  # forest: dark green, sparse bright speckles
        rgb = np.array([0.10, 0.28, 0.12]) + 0.35 * (rng.random(n) < 0.03)[:, None]
    else:  # buildings: grid of bright 3-6 px rectangles on grey
        pitch = 10
        hy, hx = rng.integers(3, 7, 2)
        on = ((yy % pitch) < hy) & ((xx % pitch) < hx)
        rgb = np.where(on[:, None], 0.85, 0.45) + np.zeros((n, 3))
    img[yy, xx] = rgb * rng.uniform(0.9, 1.1)


def _segment_distance(yy: np.ndarray, xx: np.ndarray, p0: np.ndarray, p1: np.ndarray) -> np.ndarray:
    d = p1 - p0
    t = np.clip(((yy - p0[0]) * d[0] + (xx - p0[1]) * d[1]) / max(float(d @ d), 1e-9), 0, 1)
    return np.hypot(yy - (p0[0] + t * d[0]), xx - (p0[1] + t * d[1]))


def draw_road(road: np.ndarray, points: np.ndarray, width: int = ROAD_WIDTH_PX) -> None:
    """Mark pixels within width/2 of the poly-line through `points` (k, 2) (pixel centres at integers)."""
    yy, xx = np.mgrid[0:road.shape[0], 0:road.shape[1]].astype(np.float64)
    for a, b in zip(points[:-1], points[1:]):
        road |= _segment_distance(yy, xx, a, b) <= width / 2


# Deviation (issue 17): spec 4.1 gives regime S smaller cells (spacing 0.8 p vs 3 p), so a p-patch reads the
# regime from its cell-border density alone and local-only models needed no context. A first redesign (one
# tessellation, districts with more building cells) removed that shortcut but left a cue too weak to change any
# decision at S = 4 p (README "Why the contexts stayed unused"). Now the regime is carried by sparse landmarks:
# Poisson "farmsteads" (MARKER_DENSITY per p^2, a red-roofed square MARKER_SIDE * p wide, class 1 urban) and a
# pixel is in regime S ("settled") when a farmstead centre lies within MARKER_RADIUS * p of it. One tessellation
# (seed spacing CELL_SPACING * p) and uniform textures (spec 4.1) in both regimes, so a patch on a T0 / T1 cell
# looks the same in both unless a farmstead falls inside it; the x2 window shows every farmstead that decides the
# patch centre's regime and the x3 window every one that decides any of its pixels (`context_cue_accuracy`:
# ideal reader of the window vs the constant).
CELL_SPACING = 1.5  # Poisson-disk seed spacing in units of p, both regimes
MARKER_DENSITY = 0.2  # farmsteads per p^2 (about 40 % of the pixels in regime S)
MARKER_RADIUS = 1.0  # regime S within this many p of a farmstead centre
# Design choice (dev seeds 0 / 1): p / 3 (21 px at p = 64, 7 px in a x3 context resized to p); at p / 6 the x3 branch
# did not pick the cue up within 10 epochs (dev seed 0: shuffled-context gap 0.00 points vs 7.7 at p / 3).
MARKER_SIDE = 1 / 3  # farmstead side in units of p
MARKER_RGB = (0.80, 0.18, 0.12)


def farmstead_regime(markers: np.ndarray, size: int, patch: int) -> np.ndarray:
    """(S, S) uint8: 1 where a farmstead centre (rows of `markers`, (y, x) pixels) is within MARKER_RADIUS * p."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    near = np.zeros((size, size), bool)
    for cy, cx in markers:
        near |= np.hypot(yy - cy, xx - cx) <= MARKER_RADIUS * patch
    return near.astype(np.uint8)


def make_synth_landcover(seed: int, size: int = 384, patch: int = 96) -> SynthSample:
    """SynthLandcover (spec 4.1, with the issue-17 farmstead regimes above): one S x S sample, deterministic."""
    rng = np.random.default_rng(seed)
    wy, wx = _warped_coords(rng, size, patch)
    seeds = poisson_disk(rng, size, CELL_SPACING * patch)
    cell = _nearest(seeds, wy, wx)
    n_cells = len(seeds)
    cell_tex = rng.integers(0, 5, n_cells).astype(np.uint8)  # spec 4.1: uniform over T0..T4
    texture = cell_tex[cell]
    img = np.zeros((size, size, 3))
    for c in range(n_cells):
        mask = cell == c
        if mask.any():
            _render_texture(rng, int(cell_tex[c]), mask, img)
    markers = rng.uniform(0, size, (rng.poisson(MARKER_DENSITY * (size / patch) ** 2), 2))
    regime = farmstead_regime(markers, size, patch)
    label = LABEL_TABLE[texture, regime].copy()
    side = max(2, int(round(MARKER_SIDE * patch)))
    farm = np.zeros((size, size), bool)
    for cy, cx in markers:  # the square centred on the marker, clipped to the image
        y0, x0 = int(round(cy - side / 2)), int(round(cx - side / 2))
        farm[max(0, y0):max(0, y0 + side), max(0, x0):max(0, x0 + side)] = True
    img[farm] = np.asarray(MARKER_RGB) * rng.uniform(0.9, 1.1)
    label[farm] = 1
    road = np.zeros((size, size), bool)
    for _ in range(rng.integers(1, 4)):  # 1-3 straight or poly-line roads, 3 px, class 1
        k = int(rng.integers(2, 4))
        draw_road(road, rng.uniform(0, size, (k, 2)))
    img[road] = 0.75 + rng.normal(0, 0.01, (int(road.sum()), 3))
    label[road] = 1
    cloud = np.zeros((size, size), bool)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    for _ in range(rng.integers(0, 3)):  # 0-2 smooth grey-white clouds, class 0
        cy, cx = rng.uniform(0, size, 2)
        ry, rx = rng.uniform(0.2, 0.5, 2) * patch
        r = np.hypot((yy - cy) / ry, (xx - cx) / rx)
        alpha = np.clip(1.5 - r, 0, 1)[..., None]  # opaque inside r < 0.5, soft edge to r = 1.5
        img = img * (1 - alpha) + 0.88 * alpha
        cloud |= alpha[..., 0] > 0.5
    label[cloud] = 0
    img = np.clip(img + rng.normal(0, 0.02, img.shape), 0, 1).astype(np.float32)
    return SynthSample(img, label, regime, texture, cell.astype(np.int32), road, cloud, farm, markers)


def synth_split(split: str, count: int, size: int, patch: int, seed: int = 0) -> list[SynthSample]:
    """Spec 4.1 splits by seed range (train 0+, val 10 000+, test 20 000+), shifted by 1000 * seed.

    # Design choice: the run seed also shifts the data, so a held-out seed means held-out images too.
    """
    base = SPLIT_OFFSETS[split] + 1000 * seed
    return [make_synth_landcover(base + i, size, patch) for i in range(count)]


def texture_oracle(samples: list[SynthSample]) -> list[np.ndarray]:
    """Spec 4.1 (a): predictions of a model that knows texture, farmsteads, roads and clouds but not the regime.

    It predicts, for each texture, the class of the regime that is more frequent (in pixels) over `samples`.
    """
    reg = np.concatenate([s.regime[~(s.road | s.cloud)] for s in samples])
    tex = np.concatenate([s.texture[~(s.road | s.cloud)] for s in samples])
    guess = np.array([int(np.mean(reg[tex == t]) > 0.5) if np.any(tex == t) else 0 for t in range(5)])
    preds = []
    for s in samples:
        p = LABEL_TABLE[s.texture, guess[s.texture]].copy()
        p[s.farm], p[s.road], p[s.cloud] = 1, 1, 0
        preds.append(p)
    return preds


def patches_inside_cell(samples: list[SynthSample], patch: int, min_overlap: float) -> float:
    """Spec 4.1 (b): fraction of grid patches lying wholly inside one cell."""
    from tenfold.systems.fctl.patching import patch_boxes

    inside = total = 0
    for s in samples:
        for y, x in patch_boxes(*s.cell.shape, patch, min_overlap):
            window = s.cell[y:y + patch, x:x + patch]
            inside += int((window == window.flat[0]).all())
            total += 1
    return inside / max(total, 1)


def context_cue_accuracy(samples: list[SynthSample], patch: int, min_overlap: float,
                         factor: float) -> tuple[float, float]:
    """Issue-17 diagnostic: how well can the x`factor` window of a grid patch tell its ambiguous pixels' regime?

    The ideal reader of the window: a pixel is regime S iff a farmstead centre inside the (factor p)^2 window
    centred on the patch lies within MARKER_RADIUS * p of it (factor 1 = the patch alone). Scored on the ambiguous
    pixels (T0 / T1, not road, cloud or farmstead) of every grid patch. Returns (ideal reader, constant majority
    regime) accuracies; a context can raise the mIoU only where the first exceeds the second.
    """
    from tenfold.systems.fctl.patching import patch_boxes

    hit = regime_s = total = 0
    for s in samples:
        size = s.texture.shape[0]
        for y, x in patch_boxes(*s.texture.shape, patch, min_overlap):
            sl = np.s_[y:y + patch, x:x + patch]
            amb = (s.texture[sl] <= 1) & ~s.road[sl] & ~s.cloud[sl] & ~s.farm[sl]
            if not amb.any():
                continue
            half = (factor * patch - patch) / 2
            m = s.markers
            seen = m[(m[:, 0] >= y - half) & (m[:, 0] < y + patch + half) & (m[:, 1] >= x - half)
                     & (m[:, 1] < x + patch + half)]
            guess = farmstead_regime(seen, size, patch)[sl][amb]
            truth = s.regime[sl][amb]
            hit += int((guess == truth).sum())
            regime_s += int(truth.sum())
            total += int(amb.sum())
    return hit / max(total, 1), max(regime_s, total - regime_s) / max(total, 1)


# ---------------------------------------------------------------- real data (spec 4.2)
def deepglobe_colour_to_ids(mask: np.ndarray, path: str | Path = "<array>") -> np.ndarray:
    """(H, W, 3) colour mask -> (H, W) uint8 ids: binarise each channel at 128, then the component-8 table."""
    if mask.ndim != 3 or mask.shape[-1] < 3:
        raise InputError(f"{path}: expected an RGB colour mask (H, W, 3), got shape {mask.shape}")
    bits = (mask[..., :3] >= 128).astype(np.int64)
    code = bits[..., 0] * 4 + bits[..., 1] * 2 + bits[..., 2]  # r g b -> 0..7
    lut = np.full(8, 255, dtype=np.uint8)
    for i, (r, g, b) in enumerate(DEEPGLOBE_COLOURS // 255):
        lut[r * 4 + g * 2 + b] = i
    ids = lut[code]
    if (ids == 255).any():
        n = int((ids == 255).sum())
        raise InputError(f"{path}: {n} mask pixels are red (255, 0, 0) after binarisation at 128, which is no "
                         f"DeepGlobe class; expected colours {DEEPGLOBE_COLOURS.tolist()}")
    return ids


def ids_to_colour(ids: np.ndarray) -> np.ndarray:
    """(H, W) ids 0..6 -> (H, W, 3) uint8 DeepGlobe colours."""
    return DEEPGLOBE_COLOURS[ids]


def read_image(path: str | Path) -> np.ndarray:
    """A whole image file -> array in its own dtype (uint8, uint16, bool, float32): PNG / JPEG through
    `tenfold.core.images.read_pixels`, TIFF / GeoTIFF through tifffile (rasterio when installed).

    Truncated or unreadable files, more than MAX_IMAGE_PIXELS pixels (checked from the header, before
    the pixels are decoded) and empty images raise InputError naming the file.
    """
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff"):
        return read_pixels(path)
    if not path.is_file():
        raise InputError(f"{path}: image file not found")
    try:
        arr = _read_tiff(path)
    except InputError:
        raise
    except Exception as err:  # truncated strips, bad tags, not a TIFF at all
        raise InputError(f"{path}: cannot be read as a TIFF image ({type(err).__name__}: {err}); expected a "
                         "(Geo)TIFF file") from None
    if arr.size == 0:
        raise InputError(f"{path}: empty image ({arr.shape})")
    if arr.dtype == np.float64:
        arr = arr.astype(np.float32)
    if arr.dtype not in (np.uint8, np.uint16, np.bool_, np.float32):
        raise InputError(f"{path}: pixel type {arr.dtype} is not supported; expected 8- or 16-bit unsigned "
                         "integers or floats in [0, 1]")
    return arr


def _check_pixel_count(path: Path, width: int, height: int) -> None:
    if width * height > core_images.MAX_IMAGE_PIXELS:  # read at call time: tests lower the limit
        raise InputError(f"{path}: {width}x{height} pixels is over the limit of {core_images.MAX_IMAGE_PIXELS} "
                         "(tenfold.core.images.MAX_IMAGE_PIXELS); tile the image first")


def _read_tiff(path: Path) -> np.ndarray:
    """First page (band) of a TIFF -> (H, W) or (H, W, bands); the page shape is checked before decoding."""
    try:
        import rasterio  # optional: keeps the geo-referencing readers of the field
    except ImportError:
        rasterio = None
    if rasterio is not None:
        with rasterio.open(path) as src:
            _check_pixel_count(path, src.width, src.height)
            arr = src.read()  # (bands, H, W)
        return arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)  # (bands, H, W) -> (H, W, bands)
    import tifffile

    with tifffile.TiffFile(path) as tif:
        page = tif.pages[0]
        _check_pixel_count(path, int(page.imagewidth), int(page.imagelength))
        arr = page.asarray()
        if arr.ndim == 3 and page.axes.startswith("S"):  # planar (bands, H, W) -> (H, W, bands)
            arr = np.moveaxis(arr, 0, -1)
    return arr


def read_rgb(path: str | Path) -> np.ndarray:
    """An input image -> (H, W, 3) in its own dtype; grey / grey + alpha / RGBA are made RGB.

    # Design choice: 16-bit satellite images are read, not refused: `SegImages.image` scales them by
    65535 (tenfold.core.images.to_unit), 8-bit ones by 255; float TIFFs must be finite and in [0, 1].
    """
    arr = read_image(path)
    if arr.dtype.kind == "f":
        to_unit(arr, str(path))  # refuses NaN / inf and values outside [0, 1]
    return to_rgb(arr, str(path))


def _read_mask(path: Path, form: str) -> np.ndarray:
    arr = read_image(path)
    if arr.dtype != np.uint8:
        raise InputError(f"{path}: mask pixel type {arr.dtype}; expected {form}")
    return arr


def _check_pair(img: np.ndarray, lbl: np.ndarray, img_path: Path, lbl_path: Path) -> None:
    if img.shape[:2] != lbl.shape[:2]:
        raise InputError(f"{lbl_path}: mask size {lbl.shape[:2]} does not match image {img_path} size {img.shape[:2]}")


def mask_path(source: str, image: str | Path) -> Path:
    """The label file of an image: DeepGlobe `<id>_mask.png` beside `<id>_sat.jpg`, Inria `../gt/<name>`."""
    image = Path(image)
    if source == "deepglobe":
        return image.with_name(image.name.replace("_sat.jpg", "_mask.png"))
    return image.parent.parent / "gt" / image.name


def read_deepglobe_pair(sat: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`<id>_sat.jpg` and its `<id>_mask.png` -> (H, W, 3) image (uint8 or uint16), (H, W) uint8 ids."""
    sat = Path(sat)
    mask = mask_path("deepglobe", sat)
    if mask == sat or not mask.exists():
        raise InputError(f"{sat}: no mask {mask.name} beside it (expected <id>_sat.jpg + <id>_mask.png)")
    img = read_rgb(sat)
    colour = _read_mask(mask, "an 8-bit RGB colour PNG in the DeepGlobe palette")
    _check_pair(img, colour, sat, mask)
    return img, deepglobe_colour_to_ids(colour, mask)


def read_inria_pair(image: str | Path) -> tuple[np.ndarray, np.ndarray]:
    """`<split>/images/<city><k>.tif` + `<split>/gt/<city><k>.tif` (single band 0/255) -> image, ids 0/1."""
    image = Path(image)
    gt = mask_path("inria", image)
    if not gt.exists():
        raise InputError(f"{image}: no ground truth {gt} (expected images/ and gt/ folders side by side)")
    img = read_rgb(image)
    g = _read_mask(gt, "an 8-bit single-band TIFF of 0 and 255")
    if g.ndim == 3:
        g = g[..., 0]
    _check_pair(img, g, image, gt)
    bad = ~np.isin(g, (0, 255))
    if bad.any():
        raise InputError(f"{gt}: Inria ground truth must be 0/255, found values {np.unique(g[bad])[:5].tolist()}")
    return img, (g // 255).astype(np.uint8)


# Design choice: one folder per split, named as in the official code (DeepGlobe) or images/ + gt/ (Inria).
SPLIT_FOLDERS = {"deepglobe": {"train": "train", "val": "crossvali", "test": "offical_crossvali"},
                 "inria": {"train": "train", "val": "val", "test": "test"}}


def list_split(source: str, root: str | Path, split: str) -> list[Path]:
    """Image files of one split: DeepGlobe `<root>/<folder>/*_sat.jpg`, Inria `<root>/<split>/images/*.tif`."""
    folder = Path(root) / SPLIT_FOLDERS[source][split]
    files = sorted(folder.glob("*_sat.jpg")) if source == "deepglobe" else sorted((folder / "images").glob("*.tif"))
    if not files:
        pattern = "*_sat.jpg" if source == "deepglobe" else "images/*.tif"
        raise InputError(f"{folder}: no {pattern} files for the {split} split of {source}")
    return files


def read_pair(source: str, path: Path) -> tuple[np.ndarray, np.ndarray]:
    return read_deepglobe_pair(path) if source == "deepglobe" else read_inria_pair(path)


def check_split_files(source: str, files: list[Path], min_side: int, num_classes: int) -> None:
    """Decode every image and mask of a split once, before training: a bad file fails now, not after hours.

    Checks what `read_pair` checks (readable, pair sizes, palette / 0-255 values), the smallest side the
    patching needs (`min_side`) and that every label id is below `num_classes`.
    """
    for f in files:
        img, ids = read_pair(source, f)
        check_min_size(img, min_side, f"{f} (data.patch_size={min_side})")
        top = int(ids.max())
        if top >= num_classes:
            raise InputError(f"{mask_path(source, f)}: label id {top} is not below data.num_classes={num_classes}; "
                             f"expected ids 0..{num_classes - 1} (DeepGlobe needs 7 classes, Inria 2)")


# ModelPixelScale, ModelTiepoint, ModelTransformation, GeoKeyDirectory, GeoDoubleParams, GeoAsciiParams, GDAL nodata
GEOTIFF_TAGS = (33550, 33922, 34264, 34735, 34736, 34737, 42113)


def geotiff_tags(path: str | Path) -> list[tuple]:
    """The GeoTIFF tags of a TIFF's first page as tifffile `extratags` (code, dtype, count, value, writeonce)."""
    path = Path(path)
    if path.suffix.lower() not in (".tif", ".tiff") or not path.is_file():
        return []
    import tifffile

    out = []
    with tifffile.TiffFile(path) as tif:
        for tag in tif.pages[0].tags.values():
            if tag.code in GEOTIFF_TAGS:
                value = tag.value
                count = len(value) if isinstance(value, (tuple, list)) else (len(value) + 1 if isinstance(value, str)
                                                                             else 1)
                out.append((tag.code, int(tag.dtype), count, value, True))
    return out


def write_mask(path: str | Path, labels: np.ndarray, like: str | Path | None = None, colour: bool = False) -> Path:
    """Write (H, W) ids in the input's format: TIFF -> TIFF (tifffile), PNG/JPEG -> PNG.

    # Design choice: a JPEG input gets a PNG mask (JPEG would corrupt label ids). `colour` writes
    DeepGlobe colours. The file is written to a temporary name and renamed, so nothing is half-written.
    A TIFF mask of a GeoTIFF `like` carries its GeoTIFF tags (GEOTIFF_TAGS): the georeference is kept.
    """
    path = Path(path)
    suffix = Path(like).suffix.lower() if like else path.suffix.lower()
    if suffix in (".jpg", ".jpeg"):
        path = path.with_suffix(".png")
    arr = ids_to_colour(labels) if colour else labels.astype(np.uint8)
    tmp = path.with_name(f".{path.name}.tmp{path.suffix}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if suffix in (".tif", ".tiff"):
        import tifffile

        tifffile.imwrite(tmp, arr, extratags=geotiff_tags(like) if like else ())
    else:
        from PIL import Image

        Image.fromarray(arr).save(tmp, format="PNG")
    tmp.replace(path)
    return path
