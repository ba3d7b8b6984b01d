"""The Mask R-CNN baseline of `reft` (Han et al., "Reference Twice: A Simple and Unified Baseline for Few-Shot
Instance Segmentation", arXiv 2301.01156): spec component 11, "MRCN + ft-full" of the paper's FSIS table
(segm nAP 1.9 at 10 shots against Mask2Former + ft-full's 16.7).

  TinyResNetFPN .............. our TinyResNet (the RefT / Mask2Former backbone, model.py) + torchvision's FPN
                               (P2-P5 at strides 4-32 + a max-pooled P6), `out_channels` = model.hidden_dim
  MaskRCNNBaseline ........... torchvision's MaskRCNN on TinyResNetFPN, random init, label 0 = background
  MaskRCNNBaseline.resize_class_head  base classes -> base + novel classes (base rows copied, novel rows fresh)
  to_target .................. Sample -> torchvision target {boxes (xyxy), labels, masks}
  fit_maskrcnn ............... AdamW steps on the sum of torchvision's five losses (our optimiser and schedule)
  base_train_maskrcnn / finetune_maskrcnn  stage 1 (base classes) / stage 2 (K-shot set of every class, ft-full)
  to_prediction / predict_maskrcnn  eval-mode detections (label - 1 -> COCO id, mask probability > 0.5) -> the
                               prediction dicts of `metrics.nap_bap` (the pycocotools path RefT is evaluated by)

Design choice (budget parity, spec pitfall 7): the same data, steps, batch sizes, learning rates, backbone lr
multiplier, weight decay, gradient clip and schedule (cosine in base training, constant in fine-tuning, backbone
frozen for K <= train.freeze_backbone_max_shots) as RefT's `train.base_train` / `train.finetune`, not torchvision's
SGD recipe. The architectures share no checkpoint, so the baseline has its own base training from random init.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any, Callable

import numpy as np
import torch
from torch import nn
from torchvision.models.detection import MaskRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
from torchvision.ops import FeaturePyramidNetwork
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from tenfold.core.errors import RunFailed
from tenfold.core.runtime import seed_everything
from tenfold.systems.reft.coco import Sample
from tenfold.systems.reft.config import Config, ModelConfig
from tenfold.systems.reft.data import FSISData
from tenfold.systems.reft.model import TinyResNet
from tenfold.systems.reft.train import make_optimizer, optimizer_step

# Design choice: RPN / RoI sampling sized for ShapesFSIS (1-6 instances per image, ~1,000 anchors on a 64 px
# image) instead of torchvision's COCO values (2,000 proposals, 512 RoIs per image); torchvision's IoU thresholds,
# NMS and positive fractions are kept.
RPN_PROPOSALS_TRAIN = 300
RPN_PROPOSALS_TEST = 300
ROIS_PER_IMAGE = 64
MASK_THRESHOLD = 0.5  # [literature: torchvision / detectron2] pasted mask probability -> binary mask


class TinyResNetFPN(nn.Module):
    """TinyResNet (model.py, the RefT backbone) -> torchvision FPN: {"0": P2 (1/4), "1": P3, "2": P4, "3": P5
    (1/32), "pool": P6 (1/64)}, each [B, out_channels, h, w]. Design choice: FPN width = model.hidden_dim, the
    width of RefT's FPN pixel decoder."""

    def __init__(self, widths: tuple[int, ...], out_channels: int) -> None:
        super().__init__()
        self.body = TinyResNet(widths)
        self.fpn = FeaturePyramidNetwork(list(widths), out_channels, extra_blocks=LastLevelMaxPool())
        self.out_channels = out_channels  # read by torchvision's MaskRCNN

    def forward(self, x: torch.Tensor) -> OrderedDict[str, torch.Tensor]:
        return self.fpn(OrderedDict((str(i), f) for i, f in enumerate(self.body(x))))


def anchor_sizes(image_size: int) -> tuple[tuple[int, ...], ...]:
    """One anchor size per FPN level (strides 4-64), S/8 * 2^i: (8, 16, 32, 64, 128) at 64 px. Design choice:
    torchvision's (32, ..., 512) fits 800 px COCO images; ShapesFSIS instances span 14-56 px at 64-128 px."""
    base = max(1, round(image_size / 8))
    return tuple((base * 2 ** i,) for i in range(5))


class MaskRCNNBaseline(MaskRCNN):
    """torchvision's MaskRCNN on TinyResNetFPN, random init (no weights can be downloaded).

    Args:
        cfg: RefT's model config; backbone_widths and hidden_dim (FPN width) are shared with RefT.
        num_classes: foreground classes; label 0 is the background, class index i has label i + 1.
        image_size: min_size = max_size = the data's image size, so a square image is not rescaled.
    Design choice: the heads keep torchvision's shapes with widths scaled from its 256-channel FPN to D =
    hidden_dim: box MLP 4 D (torchvision 1,024), mask head 4 convs of D channels (torchvision 256).
    """

    def __init__(self, cfg: ModelConfig, num_classes: int, image_size: int) -> None:
        d = cfg.hidden_dim  # num_classes reaches torchvision through the two predictors (+ 1: background)
        sizes = anchor_sizes(image_size)
        super().__init__(
            TinyResNetFPN(cfg.backbone_widths, d), None, min_size=image_size, max_size=image_size,
            image_mean=[0.5] * 3, image_std=[0.5] * 3,  # images in [0, 1] -> 2x - 1, as RefT.encode
            rpn_anchor_generator=AnchorGenerator(sizes, ((0.5, 1.0, 2.0),) * len(sizes)),
            rpn_pre_nms_top_n_train=RPN_PROPOSALS_TRAIN, rpn_post_nms_top_n_train=RPN_PROPOSALS_TRAIN,
            rpn_pre_nms_top_n_test=RPN_PROPOSALS_TEST, rpn_post_nms_top_n_test=RPN_PROPOSALS_TEST,
            box_head=TwoMLPHead(d * 7 * 7, 4 * d), box_predictor=FastRCNNPredictor(4 * d, num_classes + 1),
            # Design choice: score threshold 0 (torchvision: 0.05), so that, as RefT's top-100 inference, up
            # to COCO's 100 detections per image reach the evaluation
            box_score_thresh=0.0, box_detections_per_img=100, box_batch_size_per_image=ROIS_PER_IMAGE,
            mask_head=MaskRCNNHeads(d, (d,) * 4, 1), mask_predictor=MaskRCNNPredictor(d, d, num_classes + 1))

    @torch.no_grad()
    def resize_class_head(self, keep: torch.Tensor, num_classes: int) -> None:
        """Base-trained head -> a head over `num_classes` foreground classes. Old label j + 1 (j-th base class)
        moves to label keep[j] + 1; the background row stays at 0. Design choice (TFA-style "randinit"): the new
        rows (novel classes) keep the fresh torchvision init of a new predictor; rows = class scores, the class's
        4 box deltas, and the class's mask logits channel."""
        old_box, old_mask = self.roi_heads.box_predictor, self.roi_heads.mask_predictor.mask_fcn_logits
        rows = torch.cat([torch.zeros(1, dtype=torch.long), keep.long() + 1])  # old label -> new label
        box = FastRCNNPredictor(old_box.cls_score.in_features, num_classes + 1)
        mask = MaskRCNNPredictor(old_mask.in_channels, old_mask.in_channels, num_classes + 1).mask_fcn_logits
        box.cls_score.weight[rows] = old_box.cls_score.weight
        box.cls_score.bias[rows] = old_box.cls_score.bias
        deltas = (rows[:, None] * 4 + torch.arange(4)).flatten()  # the 4 (dx, dy, dw, dh) rows of each class
        box.bbox_pred.weight[deltas] = old_box.bbox_pred.weight
        box.bbox_pred.bias[deltas] = old_box.bbox_pred.bias
        mask.weight[rows] = old_mask.weight
        mask.bias[rows] = old_mask.bias
        self.roi_heads.box_predictor = box.to(old_box.cls_score.weight.device)
        self.roi_heads.mask_predictor.mask_fcn_logits = mask.to(old_mask.weight.device)


def num_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def to_target(sample: Sample, label_of: dict[int, int]) -> dict[str, torch.Tensor]:
    """Sample -> torchvision target: boxes [M, 4] float xyxy in pixel-edge coordinates (x2 = last column + 1,
    COCO's tight box), labels [M] int64 (label_of[COCO id]), masks [M, H, W] uint8. Instances with an empty mask
    are left out (torchvision refuses degenerate boxes)."""
    masks = sample.masks.bool()
    keep = masks.flatten(1).any(1)
    masks = masks[keep]
    rows, cols = masks.any(2), masks.any(1)  # [M, H], [M, W]
    idx_h = torch.arange(masks.shape[1])
    idx_w = torch.arange(masks.shape[2])
    y1 = torch.where(rows, idx_h, masks.shape[1]).amin(1)
    y2 = torch.where(rows, idx_h, -1).amax(1) + 1
    x1 = torch.where(cols, idx_w, masks.shape[2]).amin(1)
    x2 = torch.where(cols, idx_w, -1).amax(1) + 1
    labels = torch.tensor([label_of[int(c)] for c in sample.category_ids[keep]], dtype=torch.long)
    return {"boxes": torch.stack([x1, y1, x2, y2], 1).float(), "labels": labels, "masks": masks.to(torch.uint8)}


def label_map(ids: tuple[int, ...]) -> dict[int, int]:
    """COCO id -> torchvision label: 1 + its index in `ids` (0 = background)."""
    return {int(c): i + 1 for i, c in enumerate(ids)}


def image_size_of(data: FSISData) -> int:
    """The longest image side of the data (ShapesFSIS: the preset's square size)."""
    return max(max(s.image.shape[-2:]) for s in data.test)


def fit_maskrcnn(model: MaskRCNNBaseline, cfg: Config, samples: list[Sample], label_of: dict[int, int], steps: int,
                 lr: float, batch_size: int, rng: np.random.Generator, *, cosine_schedule: bool = False,
                 on_log: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, float]]:
    """`steps` AdamW steps on loss_classifier + loss_box_reg + loss_mask + loss_objectness + loss_rpn_box_reg
    [literature: torchvision, unit weights], batches drawn at random from `samples` as `train.fit` does."""
    t = cfg.train
    opt = make_optimizer(model, lr, cfg, backbone_prefix="backbone.body.")  # FPN at lr, like RefT's decoder
    params = [p for p in model.parameters() if p.requires_grad]
    history = []
    for step in range(steps):
        model.train()
        pick = rng.choice(len(samples), size=batch_size, replace=len(samples) < batch_size)
        batch = [samples[int(i)] for i in pick]
        losses = model([s.image for s in batch], [to_target(s, label_of) for s in batch])
        total = sum(losses.values())
        rec = optimizer_step(opt, params, losses, total, step, steps, cosine_schedule, t.grad_clip, "reft maskrcnn")
        history.append(rec)
        if on_log is not None and (step % t.log_every == 0 or step == steps - 1):
            on_log(rec)
    return history


def base_train_maskrcnn(cfg: Config, data: FSISData, seed: int,
                        on_log: Callable[[dict[str, Any]], None] | None = None) -> tuple[dict[str, torch.Tensor], list]:
    """Stage 1: a head over the base classes only, trained on base_train for train.base_steps (cosine decay)."""
    base = data.split.base_ids
    if any(int(c) not in set(base) for s in data.base_train for c in s.category_ids):
        raise RunFailed("reft maskrcnn: base training data holds a novel annotation (leak)")
    seed_everything(seed)
    model = MaskRCNNBaseline(cfg.model, len(base), image_size_of(data))
    rng = np.random.default_rng([seed, 1])
    hist = fit_maskrcnn(model, cfg, data.base_train, label_map(base), cfg.train.base_steps, cfg.train.lr,
                        cfg.train.batch_size, rng, cosine_schedule=True, on_log=on_log)
    return model.state_dict(), hist


def finetune_maskrcnn(cfg: Config, base_state: dict[str, torch.Tensor], data: FSISData, kshot: list[Sample],
                      seed: int, on_log: Callable[[dict[str, Any]], None] | None = None
                      ) -> tuple[MaskRCNNBaseline, list]:
    """Stage 2, "MRCN + ft-full": the head resized to every class, then train.ft_steps on the K-shot set of every
    class, all parameters (backbone.body frozen for data.num_shots <= train.freeze_backbone_max_shots, as RefT)."""
    seed_everything(seed)
    model = MaskRCNNBaseline(cfg.model, len(data.split.base_ids), image_size_of(data))
    model.load_state_dict(base_state)
    model.resize_class_head(data.index_of(data.split.base_ids), len(data.split.all_ids))
    if cfg.data.num_shots <= cfg.train.freeze_backbone_max_shots:
        for p in model.backbone.body.parameters():
            p.requires_grad_(False)
    rng = np.random.default_rng([seed, 2])
    hist = fit_maskrcnn(model, cfg, kshot, label_map(data.split.all_ids), cfg.train.ft_steps, cfg.train.ft_lr,
                        cfg.train.ft_batch_size, rng, on_log=on_log)
    return model, hist


def to_prediction(det: dict[str, torch.Tensor], image_id: int, class_ids: torch.Tensor) -> dict[str, Any]:
    """One image's eval-mode torchvision output {"labels" [M], "scores" [M], "masks" [M, 1, H, W] pasted
    probabilities} -> the prediction dict of `metrics.nap_bap`: {"image_id", "masks" Bool [M, H, W] (probability
    > 0.5), "category_ids" (COCO ids = class_ids[label - 1]), "scores"}."""
    return {"image_id": image_id, "masks": det["masks"][:, 0] > MASK_THRESHOLD,
            "category_ids": class_ids[det["labels"] - 1], "scores": det["scores"]}


@torch.no_grad()
def predict_maskrcnn(model: MaskRCNNBaseline, samples: list[Sample], class_ids: torch.Tensor,
                     batch_size: int = 16) -> list[dict[str, Any]]:
    """Eval-mode Mask R-CNN on `samples` (one pass per image, every class ranked) -> prediction dicts."""
    model.eval()
    out = []
    for i in range(0, len(samples), batch_size):
        chunk = samples[i:i + batch_size]
        out += [to_prediction(det, s.image_id, class_ids) for s, det in zip(chunk, model([s.image for s in chunk]))]
    return out


def evaluate_maskrcnn(model: MaskRCNNBaseline, data: FSISData) -> dict[str, Any]:
    """nAP / bAP / AP (segm and bbox) on the test split through the same pycocotools path as RefT."""
    from tenfold.systems.reft.metrics import nap_bap

    return nap_bap(data.test_json, predict_maskrcnn(model, data.test, data.class_ids), data.split)
