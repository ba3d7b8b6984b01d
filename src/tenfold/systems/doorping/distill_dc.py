"""DatasetCondensation (DC / DSA) and distribution matching (DM) for `doorping`.

Paper: Backdoor Attacks Against Dataset Distillation (Liu et al., NDSS 2023, arXiv 2301.01197); the DC
back-end is Zhao et al., "Dataset Condensation with Gradient Matching" (ICLR 2021, arXiv 2006.05929), DSA is
Zhao & Bilen (ICML 2021, arXiv 2102.08259), DM is Zhao & Bilen (WACV 2023, arXiv 2110.04181; our addition,
not in the official code). Spec 2, component 8, per iteration:
  1. a fresh randomly initialised net, SGD(lr_net) for its own training;
  2. for ol in range(outer_loop):
       (ii)  L = sum_c D(grad CE(net(S_c)), grad CE(net(B_c^real)))     [`dc_match_loss`, vectorised over c]
       (iii) SGD step on S (lr_img, momentum 0.5)
       (iv)  if not the last outer step: train the net `inner_loop` epochs on S
       (v)   DOORPING / INVISIBLE trigger update against the net, then re-stamp every poisoned real image
DM: L = sum_c || mean phi(B_c^real) - mean phi(S_c) ||^2 with a fresh net each iteration (no inner loop).
The per-class loops (`dc_match_loss_loop`, `dm_loss_loop`) are the official code's structure, kept as the
reference for the tests and the benchmark.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Callable

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call, grad, vmap

from tenfold.systems.doorping.loss import distribution_match, gradient_match_distance

log = logging.getLogger("tenfold.doorping")


# ----------------------------------------------------------------------------- DSA (spec 2.8, "--method DSA")

def dsa_colour(x: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """DSA's colour operation on (C, n, ch, H, W) with per-class parameters r (C, 3) in [0, 1):
    brightness x + (r0 - 0.5) (DSA brightness 1.0), saturation (x - mean_ch) * 2 r1 + mean_ch (saturation 2.0),
    contrast (x - mean) * (r2 + 0.5) + mean over (ch, H, W) per image (contrast 0.5)."""
    r = r.to(x)[:, None, :, None, None, None]  # (C, 1, 3, 1, 1, 1): broadcast over n, ch, H, W
    x = x + (r[:, :, 0] - 0.5)
    m = x.mean(2, keepdim=True)
    x = (x - m) * (2.0 * r[:, :, 1]) + m
    m = x.mean((2, 3, 4), keepdim=True)
    return (x - m) * (r[:, :, 2] + 0.5) + m


def dsa_cutout(x: torch.Tensor, u: torch.Tensor, ratio: float = 0.5) -> torch.Tensor:
    """DSA's cutout on (C, n, ch, H, W): a square of side int(H * ratio + 0.5) zeroed around the centre
    (floor(u0 * (H + 1 - side % 2)), floor(u1 * (W + 1 - side % 2))), clipped to the image; u (C, 2) per class."""
    h, w = x.shape[-2:]
    side = int(h * ratio + 0.5)
    cy = (u[:, 0] * (h + 1 - side % 2)).floor().long() - side // 2  # (C,) top row of the square
    cx = (u[:, 1] * (w + 1 - side % 2)).floor().long() - side // 2
    rows, cols = torch.arange(h)[None], torch.arange(w)[None]  # (1, H), (1, W)
    in_r = (rows >= cy[:, None]) & (rows < cy[:, None] + side)  # (C, H)
    in_c = (cols >= cx[:, None]) & (cols < cx[:, None] + side)  # (C, W)
    keep = ~(in_r[:, :, None] & in_c[:, None, :])  # (C, H, W)
    return x * keep.to(x)[:, None, None]  # (C, 1, 1, H, W)


def dsa_augment(x: torch.Tensor, seed: int) -> torch.Tensor:
    """Differentiable Siamese augmentation of a class-batched tensor x (C, n, ch, H, W).

    One operation (scale, rotate, flip, translate, colour or cutout: DSA's `color_crop_cutout_flip_scale_rotate`)
    and one parameter per class, drawn from `seed`, so calling it on the real and the synthetic batch with the same
    seed applies the same transform to both.
    Design choice: per-class parameters rather than DSA's per-sample ones (the batches differ in size).
    """
    c, n = x.shape[:2]
    g = torch.Generator().manual_seed(seed)
    op = int(torch.randint(0, 6, (1,), generator=g))
    u = torch.rand(c, 3, generator=g)
    if op == 4:
        return dsa_colour(x, u)
    if op == 5:
        return dsa_cutout(x, u[:, :2])
    u = u[:, :2]
    theta = torch.zeros(c, 2, 3)
    theta[:, 0, 0] = theta[:, 1, 1] = 1.0
    if op == 0:  # scale in [0.8, 1.2] per axis (DSA ratio_scale 1.2)
        theta[:, 0, 0], theta[:, 1, 1] = 0.8 + 0.4 * u[:, 0], 0.8 + 0.4 * u[:, 1]
    elif op == 1:  # rotate in [-15, 15] degrees (DSA ratio_rotate 15)
        a = (u[:, 0] - 0.5) * 2 * torch.pi / 12
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = a.cos(), -a.sin(), a.sin(), a.cos()
    elif op == 2:  # horizontal flip with probability 0.5
        theta[:, 0, 0] = torch.where(u[:, 0] < 0.5, -1.0, 1.0)
    else:  # translate by up to 1/8 of the side (DSA ratio_crop_pad 0.125)
        theta[:, :, 2] = (u - 0.5) * 0.5
    flat = x.reshape(c * n, *x.shape[2:])  # (C, n, ch, H, W) -> (C*n, ch, H, W)
    theta = theta.to(x).repeat_interleave(n, 0)  # (C*n, 2, 3)
    grid = F.affine_grid(theta, list(flat.shape), align_corners=True)
    return F.grid_sample(flat, grid, align_corners=True).reshape(x.shape)


def dsa_augment_samples(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """DSA outside the matching step (the inner loop on S and the victims [code]): a flat batch (N, ch, H, W),
    one operation per call and one parameter per *sample* (DSA's non-Siamese mode), the seed drawn from
    `generator`."""
    seed = int(torch.randint(0, 2**31, (1,), generator=generator))
    return dsa_augment(x[:, None], seed)[:, 0]  # (N, 1, ch, H, W): every sample is its own "class"


# ----------------------------------------------------------------------------- matching losses

def _ce(net: nn.Module, params: dict, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(functional_call(net, params, (x,)), y)


def class_gradients(net: nn.Module, x: torch.Tensor, y: torch.Tensor) -> list[torch.Tensor]:
    """Per-class parameter gradients of CE, x (C, n, ch, H, W), y (C, n) -> [(C, *param_shape)] (vmap)."""
    params = {k: v.detach() for k, v in net.named_parameters()}
    grads = vmap(grad(lambda p, xb, yb: _ce(net, p, xb, yb)), in_dims=(None, 0, 0))(params, x, y)
    return [grads[k] for k in params]


def dc_match_loss(net: nn.Module, real_x: torch.Tensor, real_y: torch.Tensor, syn_x: torch.Tensor,
                  syn_y: torch.Tensor, metric: str = "ours") -> torch.Tensor:
    """sum_c D(g_syn_c, g_real_c), vectorised over classes; real (C, n, ...), syn (C, ipc, ...).

    g_real is detached; g_syn keeps its graph back to the synthetic images (second-order, as create_graph).
    """
    g_real = [g.detach() for g in class_gradients(net, real_x, real_y)]
    g_syn = class_gradients(net, syn_x, syn_y)
    return gradient_match_distance(g_syn, g_real, metric, batch_dims=1).sum()


def dc_match_loss_loop(net: nn.Module, real_x: torch.Tensor, real_y: torch.Tensor, syn_x: torch.Tensor,
                       syn_y: torch.Tensor, metric: str = "ours") -> torch.Tensor:
    """The official per-class loop (reference): autograd.grad per class, create_graph for the synthetic side."""
    params = list(net.parameters())
    loss = syn_x.new_zeros(())
    for c in range(real_x.shape[0]):
        g_real = [g.detach() for g in torch.autograd.grad(F.cross_entropy(net(real_x[c]), real_y[c]), params)]
        g_syn = torch.autograd.grad(F.cross_entropy(net(syn_x[c]), syn_y[c]), params, create_graph=True)
        loss = loss + gradient_match_distance(g_syn, g_real, metric)
    return loss


def dm_loss(net: nn.Module, real_x: torch.Tensor, syn_x: torch.Tensor) -> torch.Tensor:
    """DM, vectorised: one forward over all classes; real (C, n, ...), syn (C, ipc, ...)."""
    c, n, ipc = real_x.shape[0], real_x.shape[1], syn_x.shape[1]
    emb = net.embed(torch.cat([real_x.flatten(0, 1), syn_x.flatten(0, 1)]))  # (C*n + C*ipc, D)
    return distribution_match(emb[: c * n].reshape(c, n, -1), emb[c * n:].reshape(c, ipc, -1)).sum()


def dm_loss_loop(net: nn.Module, real_x: torch.Tensor, syn_x: torch.Tensor) -> torch.Tensor:
    """DM's per-class loop (reference): two forwards per class."""
    loss = syn_x.new_zeros(())
    for c in range(real_x.shape[0]):
        loss = loss + ((net.embed(real_x[c]).mean(0) - net.embed(syn_x[c]).mean(0)) ** 2).sum()
    return loss


# ----------------------------------------------------------------------------- the real pool and S

@dataclass
class RealPool:
    """The attacker's (possibly poisoned) training images, indexed per class after relabelling (spec 2.1)."""

    images: torch.Tensor  # (N, C, H, W) normalised; poisoned rows carry the current trigger
    labels: torch.Tensor  # (N,) with the poisoned rows relabelled to the target
    num_classes: int
    indices_class: list[torch.Tensor] = field(init=False)

    def __post_init__(self) -> None:
        self.indices_class = [torch.nonzero(self.labels == c).flatten() for c in range(self.num_classes)]
        empty = [c for c, idx in enumerate(self.indices_class) if len(idx) == 0]
        if empty:
            from tenfold.core.errors import InputError

            raise InputError(f"training set: classes {empty} have no images (labels must cover 0..{self.num_classes - 1})")

    def batch(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """n random images of every class, (C, n, ...), (C, n); n is capped by the smallest class pool.

        Design choice: equal per-class batch sizes so the classes stack for vmap.
        """
        n = min(n, min(len(i) for i in self.indices_class))
        idx = torch.stack([i[torch.randperm(len(i), generator=generator)[:n].to(i.device)]
                           for i in self.indices_class])
        return self.images[idx], self.labels[idx]  # (C, n, ch, H, W), (C, n)


def init_synthetic(pool: RealPool, ipc: int, init: str, generator: torch.Generator) -> torch.Tensor:
    """S (C*ipc, ch, H, W): N(0, 1) noise (the code's default) or random real images of each class."""
    shape = (pool.num_classes * ipc, *pool.images.shape[1:])
    if init == "noise":
        return torch.randn(shape, generator=generator).to(pool.images.device)  # drawn on the CPU stream
    return pool.batch(ipc, generator)[0].reshape(shape).clone()  # (C, ipc, ...) -> (C*ipc, ...)


def train_net_on(net: nn.Module, opt: torch.optim.Optimizer, x: torch.Tensor, y: torch.Tensor, epochs: int,
                 batch: int, generator: torch.Generator, augment: bool = False) -> float:
    """`epochs` shuffled passes of SGD on (x, y), each batch DSA-augmented when `augment`; the last batch loss."""
    loss = torch.tensor(0.0)
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), batch):
            idx = perm[start:start + batch]
            xb = dsa_augment_samples(x[idx], generator) if augment else x[idx]
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return float(loss.detach())


# ----------------------------------------------------------------------------- one distillation iteration

TriggerHook = Callable[[nn.Module], dict]


def dc_iteration(net: nn.Module, pool: RealPool, syn: torch.Tensor, syn_y: torch.Tensor,
                 opt_img: torch.optim.Optimizer, cfg, generator: torch.Generator,
                 trigger_hook: TriggerHook | None = None, dsa_seed: int | None = None) -> dict:
    """One DC / DSA iteration (spec 2.8) on a fresh `net`; `syn` (C*ipc, ...) is updated in place.

    Returns the log: mean `loss_match` over outer steps and the trigger updates' records.
    """
    d = cfg.distill
    outer, inner = d.loops()
    num_classes, ipc = pool.num_classes, d.ipc
    opt_net = torch.optim.SGD(net.parameters(), lr=d.lr_net)
    net.train()
    losses, updates = [], []
    for ol in range(outer):
        real_x, real_y = pool.batch(d.batch_real, generator)
        syn_x = syn.reshape(num_classes, ipc, *syn.shape[1:])  # (C*ipc, ...) -> (C, ipc, ...)
        if dsa_seed is not None:  # DSA: the same transform for the real and the synthetic batch of a class
            seed = dsa_seed * 1000 + ol
            real_x, syn_x = dsa_augment(real_x, seed), dsa_augment(syn_x, seed)
        loss = d.weight_match * dc_match_loss(net, real_x, real_y, syn_x, syn_y.reshape(num_classes, ipc),
                                              d.dis_metric)
        opt_img.zero_grad(set_to_none=True)
        loss.backward()
        opt_img.step()
        losses.append(float(loss.detach()))
        if ol == outer - 1:
            break  # [code]: at ipc 1 (outer 1) neither the net nor the trigger is ever updated
        # [code] with DSA the inner training on S is DSA-augmented too (per-sample parameters)
        train_net_on(net, opt_net, syn.detach(), syn_y, inner, d.batch_train, generator, augment=dsa_seed is not None)
        if trigger_hook is not None:
            updates.append(trigger_hook(net))
    if trigger_hook is not None and outer == 1 and cfg.attack.update_at_ipc1:
        updates.append(trigger_hook(net))  # Deviation switch (pitfall 2): one update per iteration
    return {"loss_match": sum(losses) / len(losses), "trigger_updates": updates}


def dm_iteration(net: nn.Module, pool: RealPool, syn: torch.Tensor, opt_img: torch.optim.Optimizer, cfg,
                 generator: torch.Generator, trigger_hook: TriggerHook | None = None) -> dict:
    """One DM iteration: a fresh net, one matching step on S; the trigger (if any) is updated once against
    that net (Design choice: DM has no inner loop, so the update follows the image step)."""
    d = cfg.distill
    real_x, _ = pool.batch(d.batch_real, generator)
    syn_x = syn.reshape(pool.num_classes, d.ipc, *syn.shape[1:])  # (C*ipc, ...) -> (C, ipc, ...)
    net.train()
    for p in net.parameters():
        p.requires_grad_(False)
    loss = d.weight_match * dm_loss(net, real_x, syn_x)
    opt_img.zero_grad(set_to_none=True)
    loss.backward()
    opt_img.step()
    for p in net.parameters():
        p.requires_grad_(True)
    updates = [trigger_hook(net)] if trigger_hook is not None else []
    return {"loss_match": float(loss.detach()), "trigger_updates": updates}
