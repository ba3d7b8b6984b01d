"""DatasetDistillation (DD) back-end of `doorping` (spec 2, component 9).

Paper: Backdoor Attacks Against Dataset Distillation (Liu et al., NDSS 2023, arXiv 2301.01197); DD is Wang
et al., "Dataset Distillation" (arXiv 1811.10959), as forked in the official code's `DD/` folder:
  * distilled data: `dd_steps` steps x `dd_images_per_step` images per class per step;
  * T = dd_steps x dd_epochs unrolled GD steps theta_{t+1} = theta_t - softplus(r_t) grad CE(theta_t; x_(t mod steps)),
    each with its own learned lr, softplus-parametrised, initialised at `dd_lr_init` (r_0 = ln(e^lr - 1));
  * outer: CE on a real batch at theta_T, Adam(0.01, (0.5, 0.999)) over images and raw lrs, StepLR(40, x0.5);
  * known init: one fixed initialisation theta_0 (n_nets = 1) [code];
  * DOORPING: for every real batch, update tau against the model at theta_T, re-stamp P, then the outer step.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call


def raw_lr_init(lr: float) -> float:
    """The raw parameter r with softplus(r) = lr: r = ln(e^lr - 1) (-6.9073 for lr = 0.001)."""
    return math.log(math.expm1(lr))


class DistilledSteps(nn.Module):
    """The learnable distilled data: images (steps, C*k, ch, H, W), fixed labels and T raw learning rates."""

    def __init__(self, steps: int, per_class: int, num_classes: int, shape: tuple[int, int, int], epochs: int,
                 lr_init: float, generator: torch.Generator) -> None:
        super().__init__()
        self.images = nn.Parameter(torch.randn(steps, num_classes * per_class, *shape, generator=generator))
        self.register_buffer("labels", torch.arange(num_classes).repeat_interleave(per_class))  # (C*k,)
        self.raw_lrs = nn.Parameter(torch.full((steps * epochs,), raw_lr_init(lr_init)))
        self.steps, self.epochs = steps, epochs

    def lrs(self) -> torch.Tensor:
        return F.softplus(self.raw_lrs)

    def flat(self) -> tuple[torch.Tensor, torch.Tensor]:
        """All distilled images (steps*C*k, ...) and labels, e.g. to train a victim by plain SGD."""
        return self.images.detach().flatten(0, 1), self.labels.repeat(self.steps)


def unroll(net: nn.Module, params: dict[str, torch.Tensor], distilled: DistilledSteps,
           create_graph: bool = True) -> dict[str, torch.Tensor]:
    """theta_T after the T learned GD steps from `params` (functional; differentiable when create_graph)."""
    lrs = distilled.lrs()
    theta = dict(params)
    for t in range(distilled.steps * distilled.epochs):
        x = distilled.images[t % distilled.steps]
        loss = F.cross_entropy(functional_call(net, theta, (x,)), distilled.labels)
        grads = torch.autograd.grad(loss, list(theta.values()), create_graph=create_graph)
        theta = {k: v - lrs[t] * g for (k, v), g in zip(theta.items(), grads)}
    return theta


def network_at(net: nn.Module, theta: dict[str, torch.Tensor], out: nn.Module | None = None) -> nn.Module:
    """`net` holding the parameters theta, detached (for the trigger update and victims).

    out: a copy of `net` to overwrite in place (the distillation loop keeps one, so that no network is deep-copied
    per real batch; Design choice, issue 21); None = a fresh deep copy (victims, which must stay independent).
    """
    if out is None:
        out = copy.deepcopy(net)
    with torch.no_grad():
        params = dict(out.named_parameters())
        for k, v in theta.items():
            params[k].copy_(v.detach())
    out.zero_grad(set_to_none=True)
    return out


def dd_outer_step(net: nn.Module, params0: dict[str, torch.Tensor], distilled: DistilledSteps,
                  opt: torch.optim.Optimizer, real_x: torch.Tensor, real_y: torch.Tensor,
                  trigger_hook=None, shadow: nn.Module | None = None) -> dict:
    """One outer step on a real batch: unroll, (trigger update + re-stamp via the hook), CE at theta_T, Adam.

    shadow: a copy of `net` reused for the trigger update at theta_T (None: a fresh copy per call).
    """
    theta = unroll(net, params0, distilled)
    updates = []
    if trigger_hook is not None:
        updates.append(trigger_hook(network_at(net, theta, shadow), real_x))
        real_x = updates[-1].pop("restamped")
    loss = F.cross_entropy(functional_call(net, theta, (real_x,)), real_y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    return {"loss_match": float(loss.detach()), "trigger_updates": updates}


def dd_victim(net: nn.Module, distilled: DistilledSteps, params0: dict[str, torch.Tensor] | None,
              generator: torch.Generator, build) -> nn.Module:
    """Apply the learned steps to a fresh random init (default) or to the distillation init (`same_as_train`)."""
    start = params0 if params0 is not None else {k: v.detach() for k, v in build(generator).named_parameters()}
    theta = unroll(net, {k: v.detach().requires_grad_(True) for k, v in start.items()}, distilled,
                   create_graph=False)
    return network_at(net, theta)
