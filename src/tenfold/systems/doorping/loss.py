"""Losses of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197).

    gradient_match_distance  DC's "ours" distance (spec 2.7): D = sum_layers sum_rows (1 - cos(g_row, g'_row))
                             with the 1e-6 epsilon of the code; "mse" and "cos" over the flattened concatenation
    distribution_match       DM (Zhao & Bilen, WACV'23): || mean phi(real_c) - mean phi(syn_c) ||^2 per class
    loss_dict                the named terms "loss_<term>" with weights "weight_<term>" (house style)
"""

from __future__ import annotations

from typing import Sequence

import torch


def layer_distance(gs: torch.Tensor, gr: torch.Tensor, batch_dims: int = 0) -> torch.Tensor:
    """sum_rows (1 - <g, g'> / (|g| |g'| + 1e-6)) for one parameter; 0 for 1-D parameters (biases).

    gs, gr: (*B, *param_shape) with `batch_dims` leading batch dimensions B (e.g. classes). Returns (*B,).
    """
    pdim = gs.dim() - batch_dims
    if pdim == 1:  # biases and norm affine contribute 0 [code]
        return gs.new_zeros(gs.shape[:batch_dims])
    lead = gs.shape[: batch_dims + 1]
    a, b = gs.reshape(*lead, -1), gr.reshape(*lead, -1)  # (*B, out, in*k*k)
    cos = (a * b).sum(-1) / (a.norm(dim=-1) * b.norm(dim=-1) + 1e-6)  # (*B, out)
    return (1 - cos).sum(-1)


def gradient_match_distance(g_syn: Sequence[torch.Tensor], g_real: Sequence[torch.Tensor], metric: str = "ours",
                            batch_dims: int = 0) -> torch.Tensor:
    """D(g_syn, g_real) over lists of per-parameter gradients (spec 2.7); (*B,) with `batch_dims` leading dims."""
    if metric == "ours":
        return sum(layer_distance(s, r, batch_dims) for s, r in zip(g_syn, g_real))
    flat_s = torch.cat([s.reshape(*s.shape[:batch_dims], -1) for s in g_syn], -1)
    flat_r = torch.cat([r.reshape(*r.shape[:batch_dims], -1) for r in g_real], -1)
    if metric == "mse":
        return ((flat_s - flat_r) ** 2).sum(-1)
    if metric == "cos":
        return 1 - (flat_s * flat_r).sum(-1) / (flat_s.norm(dim=-1) * flat_r.norm(dim=-1) + 1e-6)
    raise ValueError(f"unknown dis_metric {metric!r}; expected ours, mse or cos")


def distribution_match(emb_real: torch.Tensor, emb_syn: torch.Tensor) -> torch.Tensor:
    """DM per class: emb_real (C, n_real, D), emb_syn (C, ipc, D) -> (C,) squared distance of the means."""
    return ((emb_real.mean(1) - emb_syn.mean(1)) ** 2).sum(-1)


def loss_dict(match: torch.Tensor, weight_match: float = 1.0) -> dict[str, torch.Tensor]:
    """{"loss_match": ..., "loss": weighted total}; the weights are "weight_<term>" in DistillConfig."""
    return {"loss_match": match, "loss": weight_match * match}
