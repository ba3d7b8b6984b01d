"""Configs of `maskfocal` (Mask Focal Loss for dense crowd counting, arXiv 2212.11542).

The paper body is not available (spec ../shared/specs/maskfocal.md, "Status"): every default names its source:
[paper], [literature] (CenterNet / FCOS / RetinaNet recipes) or [design choice] values of the spec.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from tenfold.core.config import ConfigError


def _positive(section: str, obj: object, names: tuple[str, ...]) -> None:
    for name in names:
        if not getattr(obj, name) > 0:
            raise ConfigError(f"{section}.{name} must be > 0, got {getattr(obj, name)!r}")


@dataclass(frozen=True)
class DataConfig:
    # Design choice (spec 4.1): procedural SynthCrowd stands in for GTA_Head (no download location known);
    # "files" reads the user's COCO JSON (boxes) or points CSV/JSON through the same reader.
    source: Literal["synth", "files"] = "synth"
    train_file: str | None = None
    val_file: str | None = None
    test_file: str | None = None
    image_root: str | None = None  # folder of the image files; default = the annotation file's folder
    # "points" drops the boxes and trains on pseudo-boxes (spec 2.2): the point-GT variant.
    annotation_type: Literal["boxes", "points"] = "boxes"
    pseudo_box: Literal["knn", "nn", "fixed"] = "knn"  # spec 2.2: geometry-adaptive knn by default
    image_size: int = 256  # spec 4.1: 256^2 SynthCrowd (quick 192^2 or 256^2)
    num_train_images: int = 1500  # spec 4.1 quick sizes: 1,500 / 200 / 300
    num_val_images: int = 200
    num_test_images: int = 300
    frames_per_sequence: int = 15  # spec 4.1: sequences of 10-20 frames, split by sequence
    min_heads: int = 50  # spec 4.1: N log-uniform in [50, 800] at 256^2
    max_heads: int = 800
    visibility_threshold: float = 0.2  # spec 4.1 count policy: heads with visibility >= 0.2 count
    head_scale: float = 1.0  # Design choice: multiplies the spec's head sizes (s_near ~ U(14, 30) px at 256^2)

    def __post_init__(self) -> None:
        if self.source == "files" and not (self.train_file and self.val_file and self.test_file):
            raise ConfigError("data.source='files' needs data.train_file, data.val_file and data.test_file")
        _positive("data", self, ("image_size", "num_train_images", "num_val_images", "num_test_images",
                                 "frames_per_sequence", "min_heads", "head_scale"))
        if self.image_size % 32:
            raise ConfigError(f"data.image_size must be a multiple of 32, got {self.image_size}")
        if self.max_heads < self.min_heads:
            raise ConfigError(f"data.max_heads must be >= data.min_heads, got {self.max_heads} < {self.min_heads}")
        if not 0 <= self.visibility_threshold <= 1:
            raise ConfigError(f"data.visibility_threshold must be in [0, 1], got {self.visibility_threshold}")


@dataclass(frozen=True)
class ModelConfig:
    detector: Literal["centernet", "fcos"] = "centernet"  # spec 2.6: CenterNetLite and FCOSLite
    widths: tuple[int, ...] = (16, 32, 64, 128)  # spec 2.6: stage widths 16/32/64/128
    fpn_channels: int = 64  # Design choice
    output_stride: Literal[2, 4] = 4  # spec 2.6: CenterNet output stride 4 (option 2 for dense knots)
    fcos_strides: tuple[int, ...] = (4, 8)  # spec 2.6: FCOSLite, 2 FPN levels
    # Design choice: a head goes to stride 8 when max(w, h) > fcos_size_split px (FCOS's per-level ranges
    # assign by the LTRB extent; here by head size, so t and Y of a level see the same heads).
    fcos_size_split: float = 32.0
    center_sampling_radius: float = 1.5  # FCOS centre sampling (spec 2.3): 1.5 strides
    min_overlap: float = 0.7  # spec 2.1: CenterNet's gaussian_radius IoU target
    min_radius: int = 1  # spec 2.1 / pitfall 4: r_min = 1 on the output grid

    def __post_init__(self) -> None:
        if len(self.widths) != 4 or min(self.widths) < 4:
            raise ConfigError(f"model.widths must be 4 stage widths >= 4, got {self.widths}")
        if self.detector not in ("centernet", "fcos"):
            raise ConfigError(f"model.detector must be 'centernet' or 'fcos', got {self.detector!r}")
        if tuple(sorted(self.fcos_strides)) != self.fcos_strides or not set(self.fcos_strides) <= {4, 8, 16}:
            raise ConfigError(f"model.fcos_strides must be increasing values from (4, 8, 16), got {self.fcos_strides}")
        _positive("model", self, ("fpn_channels", "fcos_size_split", "center_sampling_radius", "min_overlap"))
        if self.min_radius < 0:
            raise ConfigError(f"model.min_radius must be >= 0, got {self.min_radius}")


@dataclass(frozen=True)
class LossConfig:
    cls_loss: Literal["native", "mfl"] = "mfl"  # the one switch: the detector's own loss or Mask Focal Loss
    mask_mode: Literal["box", "radius", "threshold"] = "box"  # spec 2.5 / 6: MFL(box) is the default
    variant: Literal["weighted", "unweighted", "soft"] = "weighted"  # spec 2.5
    delta: float = 1.0  # spec 2.5: Y^delta, delta = 1
    a: float = 2.0  # spec 2.4/2.5: CenterNet's a = 2, b = 4
    b: float = 4.0
    # spec 2.5: N = sum_u M_u Y_u^delta; "native" = the host loss's own N (pitfall 6: matched normalisers)
    norm: Literal["mask_weight", "heads", "native"] = "mask_weight"
    alpha: float = 0.25  # spec 2.3: RetinaNet/FCOS focal alpha = 0.25, gamma = 2
    gamma: float = 2.0
    weight_cls: float = 1.0
    weight_size: float = 0.1  # spec 2.4: CenterNet size L1 weight 0.1 (unverified recollection)
    weight_offset: float = 1.0  # spec 2.4: offset L1 weight 1
    weight_centerness: float = 1.0  # FCOS: centre-ness BCE and GIoU weights 1
    weight_box: float = 1.0

    def __post_init__(self) -> None:
        if self.cls_loss not in ("native", "mfl"):
            raise ConfigError(f"loss.cls_loss must be 'native' or 'mfl', got {self.cls_loss!r}")
        _positive("loss", self, ("delta", "a", "b", "gamma"))
        if self.norm not in ("mask_weight", "heads", "native"):
            raise ConfigError(f"loss.norm must be 'mask_weight', 'heads' or 'native', got {self.norm!r}")
        for name in ("weight_cls", "weight_size", "weight_offset", "weight_centerness", "weight_box"):
            if getattr(self, name) < 0:
                raise ConfigError(f"loss.{name} must be >= 0, got {getattr(self, name)}")


@dataclass(frozen=True)
class TrainConfig:
    epochs: int = 15  # spec 3 CPU schedule: Adam 1e-3, cosine to 0, 15 epochs, batch 8
    batch_size: int = 8  # global batch; each DDP rank takes batch_size / world_size
    lr: float = 1e-3
    weight_decay: float = 0.0
    checkpoint_every: int = 50  # steps between checkpoints (and at every epoch end)
    log_every: int = 10

    def __post_init__(self) -> None:
        _positive("train", self, ("epochs", "batch_size", "lr", "checkpoint_every", "log_every"))
        if self.weight_decay < 0:
            raise ConfigError(f"train.weight_decay must be >= 0, got {self.weight_decay}")


@dataclass(frozen=True)
class EvalConfig:
    top_k: int = 1000  # Design choice: peaks / boxes kept before thresholding (>= the densest image)
    min_score: float = 0.01  # Design choice: detections below this never count, whatever tau
    nms_iou: float = 0.5  # Design choice: NMS IoU for FCOS boxes
    # Design choice (spec 2.8): density buckets N < 100, 100-300, > 300 heads per image.
    bucket_edges: tuple[float, float] = (100.0, 300.0)
    max_dets: int = 1000  # pycocotools maxDets for AP@0.5 (dense crowds exceed COCO's 100)

    def __post_init__(self) -> None:
        _positive("eval", self, ("top_k", "nms_iou", "max_dets"))
        if not 0 <= self.min_score < 1:
            raise ConfigError(f"eval.min_score must be in [0, 1), got {self.min_score}")
        if not 0 < self.bucket_edges[0] < self.bucket_edges[1]:
            raise ConfigError(f"eval.bucket_edges must be increasing positive counts, got {self.bucket_edges}")


@dataclass(frozen=True)
class ReproduceConfig:
    detectors: tuple[str, ...] = ("centernet", "fcos")  # spec 6: CenterNetLite and FCOSLite rows
    use_point_variant: bool = True  # spec 6: the point-GT (pseudo-box) row
    use_mask_variants: bool = False  # spec 6: MFL(radius), MFL(soft) beside MFL(box) (CenterNetLite)
    # issue 19: FCOS native without alpha-balancing and MFL with unweighted masks (which part of MFL helps)
    use_fcos_ablations: bool = False

    def __post_init__(self) -> None:
        if not self.detectors or not set(self.detectors) <= {"centernet", "fcos"}:
            raise ConfigError(f"reproduce.detectors must be a non-empty subset of (centernet, fcos), "
                              f"got {self.detectors}")


@dataclass(frozen=True)
class Config:
    seed: int = 0
    device: str = "auto"  # auto = cuda when available; DDP uses cuda:LOCAL_RANK / nccl there, else gloo
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    reproduce: ReproduceConfig = field(default_factory=ReproduceConfig)

    def __post_init__(self) -> None:
        if self.model.detector == "centernet" and self.data.image_size % (8 * self.model.output_stride):
            raise ConfigError("data.image_size must be a multiple of 8 * model.output_stride")


# Every seed looked at while developing (seed 0 while building, 7 reported as held-out before issue 11). The
# default claim seeds of `tenfold reproduce` (1000, 1001, 1002) are disjoint from them; a run on one of these is
# flagged in the report.
DEV_SEEDS: tuple[int, ...] = (0, 7)

# Each profile: the command, expected time on 2 CPU cores, expected result.
PROFILES: dict[str, dict[str, object]] = {
    # tenfold train maskfocal --profile smoke   (~10 s; loss decreases, counts correlate with GT)
    "smoke": {
        "device": "cpu",
        "data.image_size": 64, "data.num_train_images": 16, "data.num_val_images": 8, "data.num_test_images": 8,
        "data.frames_per_sequence": 4, "data.min_heads": 5, "data.max_heads": 60,
        "model.widths": (8, 16, 32, 64), "model.fpn_channels": 16, "model.fcos_size_split": 8.0,
        "train.epochs": 2, "train.batch_size": 4, "train.checkpoint_every": 2, "train.log_every": 1,
        "eval.bucket_edges": (15.0, 30.0),
        "reproduce.use_point_variant": True,
    },
    # tenfold reproduce maskfocal   (quick: <= 5 min per seed on 2 CPU cores, 15 min for the 3 claim seeds;
    # spec section 6 rows + the FCOS decomposition, MFL(radius) and MFL(soft))
    "quick": {
        "device": "cpu",
        # Deviation (issue budget 15 min for 3 seeds x 10 runs vs the spec's 40-60 min per comparison): 128^2
        # images, 300 / 60 / 150 images, a half-width trunk with a 16-channel FPN, 5 epochs at batch 4 (375 steps).
        # Design choice (issue 19): a scale where MFL differs from CenterNet's loss. At stride 4 with the spec's
        # head sizes every head had the floor radius r = 1 and 81 % of MFL's positive weight sat on the peak
        # cells; at output stride 2 with heads x3 (s_near 21-45 px at 128^2) a box spans ~35 cells and ~40 %
        # of the weight is on the peaks (README "Scale"). Bigger heads leave room for 10-100 per image.
        "data.image_size": 128, "data.num_train_images": 300, "data.num_val_images": 60,
        "data.num_test_images": 150, "data.min_heads": 10, "data.max_heads": 100, "data.head_scale": 3.0,
        # Design choice (issue 19): sequences of 5 frames (30 test sequences, counts stratified per split), so
        # that every density bucket has test images on every seed.
        "data.frames_per_sequence": 5,
        "model.widths": (8, 16, 32, 64), "model.fpn_channels": 16, "model.output_stride": 2,
        "model.fcos_size_split": 32.0,
        # Design choice (pitfall 6): MFL divides by the host loss's own normaliser (#heads for CenterNet, #positive
        # locations for FCOS), so both losses of a comparison have the same N and the same lr.
        "loss.norm": "native",
        "train.epochs": 5, "train.batch_size": 4,
        # Deviation: the spec's buckets (100, 300) are for 256^2+; scaled to this image size and count range.
        "eval.bucket_edges": (20.0, 45.0),
        "reproduce.use_mask_variants": True, "reproduce.use_fcos_ablations": True,
    },
    # Deviation: GTA_Head has no known download location; full = SynthCrowd at 512^2 unless data.source=files.
    # tenfold reproduce maskfocal --profile full   (GPU; SynthCrowd at 512^2 with the spec's quick sizes and the
    # full trunk, all mask variants; real data via data.source=files. Hours on CPU, minutes on a GPU.)
    "full": {
        "data.image_size": 512, "data.min_heads": 200, "data.max_heads": 3200,
        "model.fcos_size_split": 64.0, "eval.bucket_edges": (400.0, 1200.0), "eval.top_k": 4000,
        "eval.max_dets": 4000, "reproduce.use_mask_variants": True, "reproduce.use_fcos_ablations": True,
    },
}
