"""Phase 1 of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): the MCD pseudo-labeler, the v1 abstract's "domain confusion" (spec component 5).

One per unlabeled domain k: F_k, C_k1, C_k2, one optimizer per sub-module. Each iteration draws (x, y) from the
labeled pool S_k^r = D_L u I_k^r and x_u from the whole of D_Uk:
  Step A  min over F, C1, C2 of  CE_mix(C1(F(x~))) + CE_mix(C2(F(x~)))
  Step B  F frozen; min over C1, C2 of  [the same CE_mix terms] - d(x_u)
  Step C  num_steps_f times, min over F of  d(x_u)
One epoch = min(#labeled batches, #unlabeled batches). Pseudo labels: argmax C1(F(x)) for every x in D_Uk, test
transform, no threshold. The models and their optimizers persist across cycles.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from tenfold.systems.ssdg.data import (DomainSet, augment, make_optimizer, predict_probs, set_lr, shuffled_batches,
                                       to_input)
from tenfold.systems.ssdg.loss import classifier_discrepancy, input_mixup, mixup_cross_entropy
from tenfold.systems.ssdg.model import MCDNet


class MCDPseudoLabeler:
    """Args: net (F + C1 + C2), t (TrainConfig: num_steps_f 4, mixup_alpha 1, discrepancy "mean", batch_size),
    aug (data config: invert / gray flags), device."""

    def __init__(self, net: MCDNet, t: Any, aug: Any, device: torch.device | str = "cpu") -> None:
        self.net, self.t, self.aug, self.device = net.to(device), t, aug, device
        self.opt_f = make_optimizer(net.F.parameters(), t)
        self.opt_c1 = make_optimizer(net.C1.parameters(), t)
        self.opt_c2 = make_optimizer(net.C2.parameters(), t)
        self.image_passes = 0  # backbone forward + backward image passes (the budget)

    @property
    def optimizers(self) -> list[torch.optim.Optimizer]:
        return [self.opt_f, self.opt_c1, self.opt_c2]

    def _inputs(self, ds: DomainSet, idx: np.ndarray, rng: np.random.Generator) -> torch.Tensor:
        x = augment(ds.images[idx], rng, self.aug.use_invert_aug, self.aug.use_gray_aug)
        return to_input(x).to(self.device)

    def step(self, x: torch.Tensor, y: torch.Tensor, xu: torch.Tensor) -> dict[str, float]:
        """Steps A, B and C on one labeled batch (x, y) and one unlabeled batch xu."""
        net, t = self.net, self.t
        xm, ya, yb, lam = input_mixup(x, y, t.mixup_alpha)
        # Step A: CE_mix on both heads, over F, C1, C2.
        f = net.F(xm)
        loss_a = mixup_cross_entropy(net.C1(f), ya, yb, lam) + mixup_cross_entropy(net.C2(f), ya, yb, lam)
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        loss_a.backward()
        for opt in self.optimizers:
            opt.step()
        # Step B: F frozen (no graph through it); maximise the discrepancy on x_u while staying accurate.
        with torch.no_grad():
            f, fu = net.F(xm), net.F(xu)
        ce = mixup_cross_entropy(net.C1(f), ya, yb, lam) + mixup_cross_entropy(net.C2(f), ya, yb, lam)
        disc = classifier_discrepancy(torch.softmax(net.C1(fu), 1), torch.softmax(net.C2(fu), 1), t.discrepancy)
        self.opt_c1.zero_grad(set_to_none=True)
        self.opt_c2.zero_grad(set_to_none=True)
        (ce - disc).backward()
        self.opt_c1.step()
        self.opt_c2.step()
        # Step C: num_steps_f updates of F only, minimising the discrepancy.
        for _ in range(t.num_steps_f):
            fu = net.F(xu)
            d = classifier_discrepancy(torch.softmax(net.C1(fu), 1), torch.softmax(net.C2(fu), 1), t.discrepancy)
            self.opt_f.zero_grad(set_to_none=True)
            d.backward()
            self.opt_f.step()
        self.image_passes += len(x) * 2 + len(xu) * (1 + t.num_steps_f)
        if not torch.isfinite(loss_a + ce + d):
            raise FloatingPointError("non-finite MCD loss")
        return {"loss_ce_mix": float(loss_a.item()), "loss_discrepancy": float(d.item())}

    def fit(self, pool: DomainSet, unlabeled: DomainSet, epochs: int, lr: float,
            rng: np.random.Generator) -> dict[str, float]:
        """Train on the labeled pool against the unlabeled domain; returns the last epoch's mean losses."""
        set_lr(self.optimizers, lr)
        self.net.train()
        logs: dict[str, list[float]] = {"loss_ce_mix": [], "loss_discrepancy": []}
        bs = self.t.batch_size
        for _ in range(epochs):
            lab, unl = shuffled_batches(len(pool), bs, rng), shuffled_batches(len(unlabeled), bs, rng)
            logs = {k: [] for k in logs}
            for bl, bu in zip(lab, unl):  # min(#labeled batches, #unlabeled batches) iterations
                y = torch.as_tensor(pool.labels[bl]).to(self.device)
                out = self.step(self._inputs(pool, bl, rng), y, self._inputs(unlabeled, bu, rng))
                for k, v in out.items():
                    logs[k].append(v)
        return {k: float(np.mean(v)) if v else float("nan") for k, v in logs.items()}

    def pseudo_label(self, ds: DomainSet) -> tuple[np.ndarray, torch.Tensor]:
        """(argmax C1(F(x)) for every sample, softmax probs): no confidence threshold [code]."""
        probs = predict_probs(self.net, ds.images, device=self.device)
        return probs.argmax(1).numpy().astype(np.int64), probs

    def state_dict(self) -> dict[str, Any]:
        return {"net": self.net.state_dict(), "opt": [o.state_dict() for o in self.optimizers]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        for o, s in zip(self.optimizers, state["opt"]):
            o.load_state_dict(s)
