"""Output-imbalance measures of `harmonize` (Harmonizing output imbalance for semantic segmentation on
extremely-imbalanced input data, arXiv 2211.05295), spec section 2 components 1-2.

The paper's exact equations are not available; these are the spec's reconstructions [design choice]:
  confusion counts  TP = sum p g, FP = sum p (1 - g), FN = sum (1 - p) g (soft), or with 1[p >= t] (hard),
                    pooled over the whole batch (B, H, W) ............................ `confusion_counts`
  explicit measure  OI = (FN - FP) / (FN + FP) in [-1, 1]; > 0 under-, < 0 over-segmentation
                    ................................................................. `output_imbalance`
                    R = (TP + FP) / (TP + FN) = recall / precision; OI = 0 <=> R = 1 .... `area_ratio`
  implicit 1        Tversky exchange rate r = b / a (one FN costs as much as r FPs) ...... `exchange_rate`
  implicit 2        per-pixel Tversky gradients, D = TP + a FP + b FN:
                    background dT/dp = -a TP / D^2, foreground (a FP + b N_fg) / D^2 ..... `tversky_pixel_gradients`
                    total fg / total bg gradient N_fg (a FP + b N_fg) / (N_bg a TP) ...... `gradient_balance`
  selection signal  the signed measure the adaptive selector drives to 0 .............. `signed_imbalance`
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

from tenfold.core.errors import InputError

SELECTION_MEASURES = ("oi", "area_ratio")
ALL_MEASURES = ("oi", "area_ratio", "exchange_rate", "grad_balance")


class Counts(NamedTuple):
    tp: torch.Tensor
    fp: torch.Tensor
    fn: torch.Tensor
    tn: torch.Tensor


def _check_shapes(logits: torch.Tensor, target: torch.Tensor) -> None:
    if logits.shape != target.shape:
        raise InputError(f"logits {tuple(logits.shape)} and target {tuple(target.shape)} must have the same shape "
                         "(B, 1, H, W)")


def confusion_counts(logits: torch.Tensor, target: torch.Tensor, threshold: float | None = None) -> Counts:
    """Dataset-level (micro) counts over all pixels of the batch (spec component 1).

    Args:
        logits: (B, 1, H, W) raw scores z; p = sigmoid(z).
        target: (B, 1, H, W) binary mask g.
        threshold: None -> soft counts with p; t -> hard counts with 1[p >= t] (t = 0.5 at inference).
    """
    _check_shapes(logits, target)
    p = torch.sigmoid(logits.float())
    if threshold is not None:
        p = (p >= threshold).float()
    g = target.float()
    tp = (p * g).sum()
    fp = (p * (1 - g)).sum()
    fn = ((1 - p) * g).sum()
    tn = ((1 - p) * (1 - g)).sum()
    return Counts(tp, fp, fn, tn)


def output_imbalance(fp: float, fn: float) -> float:
    """OI = (FN - FP) / (FN + FP); 0 when there is no error at all (perfectly harmonised)."""
    total = float(fp) + float(fn)
    return 0.0 if total == 0 else (float(fn) - float(fp)) / total


def area_ratio(tp: float, fp: float, fn: float) -> float:
    """R = (TP + FP) / (TP + FN): predicted over true foreground area (= recall / precision)."""
    true_area = float(tp) + float(fn)
    return float("inf") if true_area == 0 else (float(tp) + float(fp)) / true_area


def exchange_rate(fp_weight: float, fn_weight: float) -> float:
    """r = b / a: how many false positives the Tversky loss trades for one false negative at fixed TP."""
    return float(fn_weight) / float(fp_weight)


def tversky_pixel_gradients(tp: float, fp: float, fn: float, fp_weight: float,
                            fn_weight: float) -> tuple[float, float]:
    """(dT/dp of a background pixel, dT/dp of a foreground pixel) for T = TP / (TP + a FP + b FN)."""
    d = tp + fp_weight * fp + fn_weight * fn
    n_fg = tp + fn
    return -fp_weight * tp / d**2, (fp_weight * fp + fn_weight * n_fg) / d**2


def gradient_balance(tp: float, fp: float, fn: float, num_fg: float, num_bg: float, fp_weight: float,
                     fn_weight: float) -> float:
    """Total foreground over total background |gradient|: N_fg (a FP + b N_fg) / (N_bg a TP) (implicit 2).

    No N_bg inside the per-pixel terms: region losses are insensitive to the input imbalance.
    """
    if tp <= 0 or num_bg <= 0:
        return float("inf")
    return num_fg * (fp_weight * fp + fn_weight * num_fg) / (num_bg * fp_weight * tp)


def signed_imbalance(tp: float, fp: float, fn: float, measure: str = "oi") -> float:
    """The selection signal, > 0 under-segmentation, < 0 over-segmentation, 0 harmonised.

    "oi": OI itself; "area_ratio": -log R clipped to [-1, 1] by tanh (a log-area version of the same sign).
    The implicit measures are properties of the loss (b / a) or training-time gauges, not of the outputs,
    so they cannot be driven to 0 on validation predictions.
    """
    if measure == "oi":
        return output_imbalance(fp, fn)
    if measure == "area_ratio":
        r = area_ratio(tp, fp, fn)
        if r == 0:
            return 1.0
        return -math.tanh(math.log(r)) if math.isfinite(r) else -1.0
    raise InputError(f"selection measure must be one of {SELECTION_MEASURES}, got {measure!r} "
                     f"(exchange_rate / grad_balance are logged gauges, not selection targets)")
