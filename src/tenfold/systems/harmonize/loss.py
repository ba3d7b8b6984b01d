"""Losses of `harmonize` (Harmonizing output imbalance for semantic segmentation on extremely-imbalanced
input data, arXiv 2211.05295), spec section 2 components 3-5.

Binary segmentation, logits z (B, 1, H, W), p = sigmoid(z), mask g; soft counts pooled over the whole batch
(imbalance.confusion_counts). Parameters are named fp_weight (a) / fn_weight (b), never alpha/beta (pitfall 2).
  CE              -(1/N) sum [g log p + (1 - g) log(1 - p)] ....................... `cross_entropy`
  wCE(w)          -(1/N) sum [w g log p + (1 - w)(1 - g) log(1 - p)] .............. `weighted_ce`
  Focal           -(1/N) sum [al g (1-p)^ga log p + (1-al)(1-g) p^ga log(1-p)] .... `focal`
  Dice            1 - (2TP + s) / (2TP + FP + FN + s) ............................. `dice`
  Tversky         1 - (TP + s) / (TP + a FP + b FN + s) ........................... `tversky`
  Focal Tversky   (1 - T)^k ........................................................ `focal_tversky`
  Combo           c wCE(beta) - (1 - c) DiceCoef ................................... `combo`
  Unified Focal   lam L_mF + (1 - lam) L_mFT (Yeung et al. 2022) ................... `unified_focal`
  distribution-based generalisation: wCE with w = b; operating point p* = w q / (w q + (1-w)(1-q))
                  ................................................................... `weighted_ce_operating_point`
  HarmonizedCompoundLoss  lam wCE(w = b*) + (1 - lam) FT(a = 1 - b*, b = b*, k) .... `HarmonizedCompoundLoss`
`build_criterion(name, ...)` returns a module whose forward gives the dict of named terms plus "loss".
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError
from tenfold.systems.harmonize.imbalance import confusion_counts

EPS = 1e-7  # pitfall 8: clamp denominators; keeps (1 - T)^k differentiable at T = 1 for k < 1

LOSS_NAMES = ("ce", "wce", "wce_inverse", "focal", "dice", "tversky", "focal_tversky", "combo", "unified_focal",
              "harmonize")


# Losses with a pixel-wise CE term: the validation search of `tenfold reproduce` (issue 18) tries each of them
# with and without the focal modulation (gamma = 2) of that term; the others have no such term.
FOCAL_CE_LOSSES = ("ce", "wce", "wce_inverse", "combo", "unified_focal", "harmonize")


def cross_entropy(logits: torch.Tensor, target: torch.Tensor, gamma: float = 0.0) -> torch.Tensor:
    """BCE-with-logits; with gamma > 0 the focal modulation of both terms (2 wCE(0.5, gamma), unbalanced focal)."""
    if gamma > 0:
        return 2 * weighted_ce(logits, target, 0.5, gamma)
    return F.binary_cross_entropy_with_logits(logits, target.float())


def weighted_ce(logits: torch.Tensor, target: torch.Tensor, w: float, gamma: float = 0.0) -> torch.Tensor:
    """wCE(w); with gamma > 0 the focal modulation (alpha-balanced focal loss with alpha = w)."""
    g = target.float()
    log_p, log_not_p = F.logsigmoid(logits), F.logsigmoid(-logits)  # log p, log(1 - p), stable
    pos, neg = w * g * log_p, (1 - w) * (1 - g) * log_not_p
    if gamma > 0:
        p = torch.sigmoid(logits)
        pos, neg = pos * (1 - p) ** gamma, neg * p**gamma
    return -(pos + neg).mean()


def weighted_ce_operating_point(q: float, w: float) -> float:
    """Minimiser of E[wCE(w)] when the true posterior is q: p* = w q / (w q + (1 - w)(1 - q)) (component 4).

    p* >= 0.5 <=> q >= 1 - w: the weight w sets the decision threshold on q, hence the FP/FN balance.
    """
    return w * q / (w * q + (1 - w) * (1 - q))


def inverse_frequency_weight(foreground_ratio: float) -> float:
    """w with w / (1 - w) = 1 / IR, i.e. w = 1 / (1 + IR) (the aggressive reweighting baseline)."""
    return 1.0 / (1.0 + foreground_ratio)


def focal(logits: torch.Tensor, target: torch.Tensor, alpha: float = 0.25, gamma: float = 2.0) -> torch.Tensor:
    """Lin et al. 2017 (alpha on the foreground), mean over pixels."""
    return weighted_ce(logits, target, alpha, gamma)


def tversky_index(logits: torch.Tensor, target: torch.Tensor, fp_weight: float, fn_weight: float,
                  smooth: float = 1.0) -> torch.Tensor:
    """T = (TP + s) / (TP + a FP + b FN + s) on batch-pooled soft counts; the FP term stays on empty batches."""
    tp, fp, fn, _ = confusion_counts(logits, target)
    return (tp + smooth) / (tp + fp_weight * fp + fn_weight * fn + smooth).clamp_min(EPS)


def tversky(logits: torch.Tensor, target: torch.Tensor, fp_weight: float = 0.3, fn_weight: float = 0.7,
            smooth: float = 1.0) -> torch.Tensor:
    return 1 - tversky_index(logits, target, fp_weight, fn_weight, smooth)


def dice(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    return 1 - dice_coefficient(logits, target, smooth)


def dice_coefficient(logits: torch.Tensor, target: torch.Tensor, smooth: float = 1.0) -> torch.Tensor:
    tp, fp, fn, _ = confusion_counts(logits, target)
    return (2 * tp + smooth) / (2 * tp + fp + fn + smooth).clamp_min(EPS)


def focal_tversky(logits: torch.Tensor, target: torch.Tensor, fp_weight: float = 0.3, fn_weight: float = 0.7,
                  exponent: float = 0.75, smooth: float = 1.0) -> torch.Tensor:
    """(1 - T)^k (Abraham & Khan 2019: exponent 1/gamma with gamma = 4/3, i.e. k = 0.75; 0.7 on FN)."""
    return (tversky(logits, target, fp_weight, fn_weight, smooth) + EPS) ** exponent


def combo(logits: torch.Tensor, target: torch.Tensor, c: float = 0.5, beta: float = 0.5,
          smooth: float = 1.0, gamma: float = 0.0) -> torch.Tensor:
    """Taghanaki et al. 2019: c wCE(beta) - (1 - c) Dice coefficient; beta > 0.5 penalises FN more.
    gamma > 0: focal modulation of the wCE term (issue 18 search option)."""
    return c * weighted_ce(logits, target, beta, gamma) - (1 - c) * dice_coefficient(logits, target, smooth)


def unified_focal(logits: torch.Tensor, target: torch.Tensor, lam: float = 0.5, delta: float = 0.6,
                  gamma: float = 0.5, smooth: float = 1.0, bg_gamma: float | None = None) -> torch.Tensor:
    """Yeung et al. 2022, binary form of the spec (flagged there as unverified recollection):

    L_mF  = -(1/N) [delta sum_{g=1} log p + (1 - delta) sum_{g=0} p^gamma log(1 - p)]  (suppression on bg only)
    mTI_c = (TP_c + s) / (TP_c + delta FN_c + (1 - delta) FP_c + s)
    L_mFT = (1 - mTI_bg) + (1 - mTI_fg)^(1 - gamma)                                      (enhancement on fg)

    bg_gamma: exponent of the background suppression p^. in L_mF (default gamma). Design choice (issue 18):
    the "focal-modulated CE term" search option sets it to the focal gamma 2; the foreground term stays
    unmodulated, keeping the loss's asymmetry.
    """
    g = target.float()
    p = torch.sigmoid(logits)
    bg_gamma = gamma if bg_gamma is None else bg_gamma
    l_mf = -(delta * g * F.logsigmoid(logits) + (1 - delta) * (1 - g) * p**bg_gamma * F.logsigmoid(-logits)).mean()
    tp, fp, fn, tn = confusion_counts(logits, target)
    # Background class: its TP is TN, its FN is the foreground FP and its FP the foreground FN.
    mti_bg = (tn + smooth) / (tn + delta * fp + (1 - delta) * fn + smooth).clamp_min(EPS)
    mti_fg = (tp + smooth) / (tp + delta * fn + (1 - delta) * fp + smooth).clamp_min(EPS)
    l_mft = (1 - mti_bg) + (1 - mti_fg + EPS) ** (1 - gamma)
    return lam * l_mf + (1 - lam) * l_mft


class HarmonizedCompoundLoss(nn.Module):
    """L = lam wCE(w = b) + (1 - lam) FT(a = 1 - b, b, k): one shared output-imbalance hyperparameter b.

    Design choice (spec component 5): both terms encode the same FP/FN exchange rate, so the operating point
    selected by OI at t = 0.5 is the one trained for (training-inference consistency, no threshold tuning).

    Args:
        fn_weight: b in (0, 1), the FN weight (set by the adaptive selector; 0.5 = Dice-like start).
        weight_wce: lam = 0.5; weight_focal_tversky = 1 - lam.
        exponent: focal-Tversky k = 0.75.
        use_focal_ce: ablation, focal modulation (gamma) of the CE term.
    """

    def __init__(self, fn_weight: float = 0.5, weight_wce: float = 0.5, exponent: float = 0.75,
                 use_focal_ce: bool = False, focal_gamma: float = 2.0, smooth: float = 1.0) -> None:
        super().__init__()
        self.fn_weight = fn_weight
        self.weights = {"loss_wce": weight_wce, "loss_focal_tversky": 1 - weight_wce}
        self.exponent, self.smooth = exponent, smooth
        self.gamma = focal_gamma if use_focal_ce else 0.0

    def set_fn_weight(self, fn_weight: float) -> None:
        if not 0 < fn_weight < 1:
            raise ValueError(f"fn_weight must be in (0, 1), got {fn_weight}")
        self.fn_weight = float(fn_weight)

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        b = self.fn_weight
        terms = {"loss_wce": weighted_ce(logits, target, b, self.gamma),
                 "loss_focal_tversky": focal_tversky(logits, target, 1 - b, b, self.exponent, self.smooth)}
        terms["loss"] = sum(self.weights[k] * v for k, v in terms.items())
        return terms


class BaselineLoss(nn.Module):
    """One fixed baseline loss as a single named term `loss_<name>` (weight 1)."""

    def __init__(self, name: str, fn, **kwargs) -> None:
        super().__init__()
        self.name, self.fn, self.kwargs = name, fn, kwargs
        self.weights = {f"loss_{name}": 1.0}

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
        value = self.fn(logits, target, **self.kwargs)
        return {f"loss_{self.name}": value, "loss": value}


def build_criterion(name: str, foreground_ratio: float = 1e-3, wce_weight: float = 0.5, tversky_fp: float = 0.3,
                    tversky_fn: float = 0.7, ft_exponent: float = 0.75, combo_c: float = 0.5,
                    combo_beta: float = 0.5, uf_lambda: float = 0.5, uf_delta: float = 0.6, uf_gamma: float = 0.5,
                    focal_alpha: float = 0.25, focal_gamma: float = 2.0, harmonize_lambda: float = 0.5,
                    use_focal_ce: bool = False, smooth: float = 1.0) -> nn.Module:
    """The loss of spec section 6's grid by name; `foreground_ratio` (IR of the training set) sets wce_inverse.

    use_focal_ce: focal modulation (focal_gamma) of the pixel-wise CE term of every loss in FOCAL_CE_LOSSES
    (issue 18: the same option for every loss that has such a term); no effect on the others.
    """
    g = focal_gamma if use_focal_ce else 0.0
    if name == "ce":
        return BaselineLoss("ce", cross_entropy, gamma=g)
    if name == "wce":
        return BaselineLoss("wce", weighted_ce, w=wce_weight, gamma=g)
    if name == "wce_inverse":
        return BaselineLoss("wce", weighted_ce, w=inverse_frequency_weight(foreground_ratio), gamma=g)
    if name == "focal":
        return BaselineLoss("focal", focal, alpha=focal_alpha, gamma=focal_gamma)
    if name == "dice":
        return BaselineLoss("dice", dice, smooth=smooth)
    if name == "tversky":
        return BaselineLoss("tversky", tversky, fp_weight=tversky_fp, fn_weight=tversky_fn, smooth=smooth)
    if name == "focal_tversky":
        return BaselineLoss("focal_tversky", focal_tversky, fp_weight=tversky_fp, fn_weight=tversky_fn,
                            exponent=ft_exponent, smooth=smooth)
    if name == "combo":
        return BaselineLoss("combo", combo, c=combo_c, beta=combo_beta, smooth=smooth, gamma=g)
    if name == "unified_focal":
        return BaselineLoss("unified_focal", unified_focal, lam=uf_lambda, delta=uf_delta, gamma=uf_gamma,
                            smooth=smooth, bg_gamma=focal_gamma if use_focal_ce else None)
    if name == "harmonize":
        return HarmonizedCompoundLoss(0.5, harmonize_lambda, ft_exponent, use_focal_ce, focal_gamma, smooth)
    raise InputError(f"loss must be one of {LOSS_NAMES}, got {name!r}")


def is_finite_terms(terms: dict[str, torch.Tensor]) -> bool:
    return all(math.isfinite(float(v)) for v in terms.values())
