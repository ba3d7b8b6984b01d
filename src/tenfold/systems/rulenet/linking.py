"""Gradient linking between the discrete rules and the data assessing model (spec component 7).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693:
"a gradient linking search module carries gradient information from the rule model back to the assessing model".
The paper body is unavailable; the modes are reconstructions (design choice):
    none    GNN frozen after warm-up (two-stage baseline)
    ste     y = hard + (soft - soft.detach())                                     -> straight_through
    graft   forward = hard output, backward: dL/dy_hard injected into y_soft      -> GradientGraft (RRL-style)
    search  for wrongly classified items: d = -dL_soft/dk; smallest eta = eta0 2^j (j <= J) whose hard rule
            output at k + eta d is right; k* = k + eta* d; pi* = argmin_{pi in simplex} ||O^T pi - k*||^2;
            L_link = KL(pi* || pi)                                                -> GradientLinkingSearch
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor


# Design choice: `ste` is applied per atom (then the soft conjunction / noisy-OR with continuous w, g);
# `graft` at the class probability P (hard rules with binarised w, g, as in RRL's grafting at the output).
def straight_through(hard: Tensor, soft: Tensor) -> Tensor:
    """Forward value = hard (exactly); backward = the soft Jacobian."""
    return hard + (soft - soft.detach())


class GradientGraft(torch.autograd.Function):
    """RRL-style gradient grafting: returns `hard`; the upstream gradient goes to `soft`, none to `hard`."""

    @staticmethod
    def forward(ctx, hard: Tensor, soft: Tensor) -> Tensor:  # type: ignore[override]
        return hard.clone()

    @staticmethod
    def backward(ctx, grad: Tensor) -> tuple[None, Tensor]:  # type: ignore[override]
        return None, grad


def graft(hard: Tensor, soft: Tensor) -> Tensor:
    return GradientGraft.apply(hard, soft)


def project_simplex(v: Tensor, mask: Tensor) -> Tensor:
    """Euclidean projection of each row of v (B, M) onto the probability simplex over its valid entries."""
    big = torch.where(mask, v, torch.full_like(v, -1e9))
    u, _ = big.sort(dim=-1, descending=True)  # (B, M)
    css = u.cumsum(-1) - 1
    j = torch.arange(1, v.shape[-1] + 1, device=v.device, dtype=v.dtype)
    cond = u - css / j > 0  # true on a prefix of the sorted entries; padded entries (-1e9) never
    rho = (cond.sum(-1, keepdim=True) - 1).clamp_min(0)  # last index where the condition holds, (B, 1)
    theta = css.gather(1, rho) / (rho + 1).to(v.dtype)
    return torch.clamp(v - theta, min=0) * mask


def simplex_target(obs: Tensor, mask: Tensor, k_target: Tensor, pi0: Tensor, steps: int = 50) -> Tensor:
    """pi* = argmin over the simplex of ||sum_m pi_m o_m - k*||^2 by projected gradient from pi0.

    obs (B, M, d), mask (B, M), k_target (B, d), pi0 (B, M) -> (B, M).
    Step 1 / L with L = 2 ||O||_F^2 >= 2 lambda_max(O O^T), the gradient's Lipschitz constant.
    """
    o = obs * mask[..., None]
    lip = 2 * o.pow(2).sum((1, 2)).clamp_min(1e-12)  # (B,)
    pi = pi0
    for _ in range(steps):
        resid = torch.einsum("bm,bmd->bd", pi, o) - k_target  # (B, d)
        grad = 2 * torch.einsum("bmd,bd->bm", o, resid)  # (B, M)
        pi = project_simplex(pi - grad / lip[:, None], mask)
    return pi


def line_search(k: Tensor, d: Tensor, correct_fn: Callable[[Tensor], Tensor], eta0: float = 0.05,
                num_doublings: int = 6) -> tuple[Tensor, Tensor]:
    """Smallest eta in {eta0 2^j, j = 0..J} with a correct hard output at k + eta d; else the largest.

    k, d (B, d); correct_fn maps key features (B, d) -> (B,) bool. Returns eta (B,) and found (B,) bool.
    """
    etas = eta0 * 2.0 ** torch.arange(num_doublings + 1, dtype=k.dtype, device=k.device)  # (J+1,)
    eta = torch.full(k.shape[:1], float(etas[-1]), dtype=k.dtype, device=k.device)
    found = torch.zeros(k.shape[0], dtype=torch.bool, device=k.device)
    for e in etas.flip(0):  # from the largest down, so the smallest correct one is kept last
        ok = correct_fn(k + e * d)
        eta = torch.where(ok, e, eta)
        found |= ok
    return eta, found


def kl_link(pi_target: Tensor, pi: Tensor, mask: Tensor) -> Tensor:
    """KL(pi* || pi) per item, (B, M) x (B, M) -> (B,); padded entries contribute 0."""
    t = pi_target * mask
    logp = torch.log(pi.clamp_min(1e-12))
    return (torch.xlogy(t, t) - t * logp).sum(-1)


class GradientLinkingSearch:
    """The `search` link: builds the target assessment pi* for wrongly classified items (spec component 7)."""

    def __init__(self, eta0: float = 0.05, num_doublings: int = 6, projection_steps: int = 50,
                 found_only: bool = True) -> None:
        self.eta0, self.num_doublings, self.projection_steps = eta0, num_doublings, projection_steps
        self.found_only = found_only

    def targets(self, k: Tensor, soft_loss_fn: Callable[[Tensor], Tensor], correct_fn: Callable[[Tensor], Tensor],
                obs: Tensor, mask: Tensor, pi: Tensor) -> tuple[Tensor, Tensor]:
        """For items with wrong hard output: (pi* (B_w, M), found (B_w,) bool). k (B_w, d) detached.

        soft_loss_fn(k) -> (B_w,) per-item soft rule loss; correct_fn(k) -> (B_w,) bool.
        """
        kk = k.detach().clone().requires_grad_(True)
        (grad,) = torch.autograd.grad(soft_loss_fn(kk).sum(), kk)
        d = -grad / grad.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # unit descent direction (B_w, d)
        with torch.no_grad():
            eta, found = line_search(k.detach(), d, correct_fn, self.eta0, self.num_doublings)
            k_star = k.detach() + eta[:, None] * d
            pi_star = simplex_target(obs, mask, k_star, pi.detach(), self.projection_steps)
        return pi_star, found
