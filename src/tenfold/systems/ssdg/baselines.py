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
from typing import Any

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


def train_network(model: Classifier, data: DomainSet, val: DomainSet, epochs: int, t: Any, aug: Any,
                  rng: np.random.Generator, device: torch.device | str = "cpu") -> dict[str, Any]:
    """Plain CE training of one network on `data` (labels used as given); returns the selection record."""
    model.to(device).train()
    opt = make_optimizer(model.parameters(), t)
    sel, passes, losses = Selector(val, device), 0, []
    for _ in range(epochs):
        model.train()
        for idx in shuffled_batches(len(data), t.batch_size, rng):
            x = to_input(augment(data.images[idx], rng, aug.use_invert_aug, aug.use_gray_aug)).to(device)
            loss = F.cross_entropy(model(x), torch.as_tensor(data.labels[idx]).to(device))
            if not torch.isfinite(loss):
                raise FloatingPointError("non-finite CE loss")
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            passes += len(idx)
            losses.append(float(loss.item()))
        sel.update(model)
    return {"state": sel.state, "val_curve": sel.curve, "best_val": sel.best, "image_passes": passes,
            "epochs": epochs, "loss_ce": float(np.mean(losses[-10:])) if losses else float("nan")}


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


def train_fixmatch(model: Classifier, labeled: DomainSet, unlabeled: list[DomainSet], val: DomainSet, epochs: int,
                   t: Any, aug: Any, rng: np.random.Generator, device: torch.device | str = "cpu") -> dict[str, Any]:
    """FixMatch-style consistency (threshold t.fixmatch_threshold 0.95); one epoch = #labeled batches, each
    with an unlabeled batch of the same size drawn from D_U1 u D_U2."""
    model.to(device).train()
    opt = make_optimizer(model.parameters(), t)
    pool = union(unlabeled)
    sel, passes, masked = Selector(val, device), 0, []
    for _ in range(epochs):
        model.train()
        for idx in shuffled_batches(len(labeled), t.batch_size, rng):
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
        sel.update(model)
    return {"state": sel.state, "val_curve": sel.curve, "best_val": sel.best, "image_passes": passes,
            "epochs": epochs, "mask_rate": float(np.mean(masked)) if masked else float("nan")}
