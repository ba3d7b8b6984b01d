"""Baselines of `ssdg` (spec component 13; the paper's "strong baselines" are not available, so these are
[design choice]): every arm shares the backbone, data, augmentation, optimizer, epochs and the source-validation
model selection of the method (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate
Domain", arXiv 2111.10221).

  train_network   ERM on D_L (mixstyle=False), ERM + MixStyle, and NaivePL (ERM's argmax on D_U as labels, then
                  one MixStyle network on the union)
  train_fixmatch  FixMatch-style consistency: CE on D_L + mask(max p_weak >= 0.95) * CE(strong, argmax weak)
"""

from __future__ import annotations

import copy
from typing import Any, Iterator

import numpy as np
import torch
import torch.nn.functional as F

from tenfold.systems.ssdg.data import (DomainSet, accuracy, augment, make_optimizer, predict_probs,
                                       shuffled_batches, to_input, union)
from tenfold.systems.ssdg.model import Classifier


class Selector:
    """DomainBed-style model selection on the held-out D_L split: keep the best validation epoch (ties -> the
    later epoch) [design choice]. The target domain is never read."""

    def __init__(self, val: DomainSet, device: torch.device | str = "cpu") -> None:
        self.val, self.device = val, device
        self.best, self.state, self.curve = -1.0, None, []

    def update(self, model: torch.nn.Module) -> float:
        acc = accuracy(predict_probs(model, self.val.images, device=self.device), self.val.labels)
        self.curve.append(acc)
        if acc >= self.best:
            self.best, self.state = acc, copy.deepcopy({k: v.cpu() for k, v in model.state_dict().items()})
        return acc


def matched_budget(t: Any, task: Any) -> tuple[int, int]:
    """(optimizer steps, validation evaluations) of every baseline's network: those of the cyclic method's
    peer a, i.e. num_cycles x dg_epochs epochs over D_L u D_U1 u D_U2 in batches of t.batch_size, validated once
    per DG epoch. `t.baseline_epochs` > 0 overrides the epoch count.

    Design choice (the project's fairness rule: same steps and evaluations for every arm): ERM sees its smaller
    D_L for more epochs, not fewer steps. Image passes (the real cost) are recorded per arm; the cyclic method
    also pays for its MCD models.
    """
    evals = t.final_epochs
    return evals * union_batches(t, task), evals


def union_batches(t: Any, task: Any) -> int:
    """Batches in one epoch over D_L u D_U1 u D_U2: the optimizer steps of one DG epoch of the peers."""
    n_union = len(task.train) + sum(len(u) for u in task.unlabeled)
    return -(-n_union // t.batch_size)


def step_batches(n: int, batch: int, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """Batches of successive random permutations of range(n), without end (one permutation = one epoch)."""
    while True:
        yield from shuffled_batches(n, batch, rng)


def eval_steps(steps: int, evals: int) -> set[int]:
    """The steps after which the network is validated: `evals` evenly spaced, the last one at `steps`."""
    return {round(steps * (i + 1) / evals) for i in range(evals)}


def train_network(model: Classifier, data: DomainSet, val: DomainSet, steps: int, evals: int, t: Any, aug: Any,
                  rng: np.random.Generator, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Plain CE training of one network on `data` (labels used as given) for `steps` optimizer steps,
    validated `evals` times; returns the selection record."""
    model.to(device).train()
    opt = make_optimizer(model.parameters(), t)
    sel, passes, losses, checks = Selector(val, device), 0, [], eval_steps(steps, evals)
    batches = step_batches(len(data), t.batch_size, rng)
    for s in range(1, steps + 1):
        idx = next(batches)
        x = to_input(augment(data.images[idx], rng, aug.use_invert_aug, aug.use_gray_aug)).to(device)
        loss = F.cross_entropy(model(x), torch.as_tensor(data.labels[idx]).to(device))
        if not torch.isfinite(loss):
            raise FloatingPointError("non-finite CE loss")
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        passes += len(idx)
        losses.append(float(loss.item()))
        if s in checks:
            sel.update(model)
            model.train()
    return {"state": sel.state, "val_curve": sel.curve, "best_val": sel.best, "image_passes": passes,
            "steps": steps, "evals": evals, "loss_ce": float(np.mean(losses[-10:])) if losses else float("nan")}


def naive_pl_data(erm_model: torch.nn.Module, labeled: DomainSet, unlabeled: list[DomainSet],
                  device: torch.device | str = "cpu") -> tuple[DomainSet, list[np.ndarray]]:
    """D_L u {(x, argmax ERM(x)) : x in D_U1 u D_U2}: one-shot pseudo labels, no threshold, no filter."""
    parts, pls = [labeled], []
    for u in unlabeled:
        pl = predict_probs(erm_model, u.images, device=device).argmax(1).numpy().astype(np.int64)
        pls.append(pl)
        parts.append(DomainSet(u.name, u.images, pl, np.zeros(len(u), bool), u.domain_id, u.paths))
    return union(parts), pls


def strong_augment(images: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A RandAugment-like strong view on uint8 images: random contrast / brightness, channel shuffle, noise and an
    8x8 cutout [design choice: the spec names only 'RandAugment-like']."""
    x = images.astype(np.float32)
    b = len(x)
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    x = (x - mean) * rng.uniform(0.5, 1.5, (b, 1, 1, 1)) + mean + rng.uniform(-40, 40, (b, 1, 1, 1))
    for i in range(b):
        x[i] = x[i][..., rng.permutation(3)]
        cy, cx = rng.integers(0, x.shape[1] - 8), rng.integers(0, x.shape[2] - 8)
        x[i, cy:cy + 8, cx:cx + 8] = 127.0
    x += rng.normal(0, 8, x.shape)
    return np.clip(x, 0, 255).astype(np.uint8)


def train_fixmatch(model: Classifier, labeled: DomainSet, unlabeled: list[DomainSet], val: DomainSet, steps: int,
                   evals: int, t: Any, aug: Any, rng: np.random.Generator,
                   device: torch.device | str = "cpu") -> dict[str, Any]:
    """FixMatch-style consistency (threshold t.fixmatch_threshold 0.95) for `steps` steps, validated `evals`
    times; each step takes a labeled batch and an unlabeled batch of the same size from D_U1 u D_U2."""
    model.to(device).train()
    opt = make_optimizer(model.parameters(), t)
    pool = union(unlabeled)
    sel, passes, masked, checks = Selector(val, device), 0, [], eval_steps(steps, evals)
    batches = step_batches(len(labeled), t.batch_size, rng)
    for s in range(1, steps + 1):
        idx = next(batches)
        iu = rng.integers(0, len(pool), len(idx))
        weak_u = augment(pool.images[iu], rng, aug.use_invert_aug, aug.use_gray_aug)
        x = to_input(augment(labeled.images[idx], rng, aug.use_invert_aug, aug.use_gray_aug)).to(device)
        loss = F.cross_entropy(model(x), torch.as_tensor(labeled.labels[idx]).to(device))
        with torch.no_grad():
            pw = torch.softmax(model(to_input(weak_u).to(device)), 1)
        conf, pseudo = pw.max(1)
        mask = (conf >= t.fixmatch_threshold).float()
        ls = F.cross_entropy(model(to_input(strong_augment(weak_u, rng)).to(device)), pseudo, reduction="none")
        loss = loss + (mask * ls).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        passes += 2 * len(idx) + len(iu)
        masked.append(float(mask.mean().item()))
        if s in checks:
            sel.update(model)
            model.train()
    return {"state": sel.state, "val_curve": sel.curve, "best_val": sel.best, "image_passes": passes,
            "steps": steps, "evals": evals, "mask_rate": float(np.mean(masked)) if masked else float("nan")}
