"""Attacks of `doorping` (Backdoor Attacks Against Dataset Distillation, Liu et al., arXiv 2301.01197).

Spec 2, components 3-5:
    NaiveAttack      BadNets-style: stamp a white patch on P once, before distillation, relabel to y_t
    DoorpingTrigger  tau optimised during distillation against the selected neuron (Trojaning-attack style):
                       select_neuron   r_j = sum_i |W_ji| of the second-to-last weight matrix, top-k units
                       select_active_neuron  (deviation, `attack.neuron_rule`) the same among units active on tau
                       objective       L(tau) = MSE(a_K(tau), alpha * a0_K), a0 detached at the first step
                       update          Adam(0.08, (0.9, 0.99)), gradient x M, stop when L < 0.5 (checked first)
    InvisibleTrigger the reviewers' extra baseline: full-image additive trigger with a neuron term and a
                     thresholded L1 term towards the black image
Every poisoned real image is re-stamped with the current tau after each update (pitfall 6); the synthetic
set is never stamped (pitfall 9).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from tenfold.systems.doorping.data import ImageData, naive_trigger, render_uint8, stamp, trigger_mask


def weight_layers(net: nn.Module) -> list[nn.Module]:
    """Modules owning a weight tensor of >= 2 dims (conv, linear) in registration order; biases skipped."""
    return [m for m in net.modules() if isinstance(getattr(m, "weight", None), torch.Tensor)
            and m.weight.dim() >= 2 and not list(m.children())]


def select_neuron(net: nn.Module, layer: int = -2, topk: int = 1) -> tuple[nn.Module, torch.Tensor]:
    """The `layer`-th weight module from the end and its top-k units by r_j = sum_i |W_ji| [code]."""
    module = weight_layers(net)[layer]
    w = module.weight.detach()
    scores = w.reshape(w.shape[0], -1).abs().sum(1)  # (out, in*k*k) -> (out,)
    return module, torch.topk(scores, topk).indices


def active_threshold(alpha: float, stop_loss: float) -> float:
    """The smallest a0 whose initial loss (alpha - 1)^2 a0^2 reaches `stop_loss` (spec 7.4: 0.0786 at 10, 0.5)."""
    return math.sqrt(stop_loss) / abs(alpha - 1) if alpha != 1 else math.inf


def select_active_neuron(net: nn.Module, tau: torch.Tensor, layer: int = -2, topk: int = 1, post_relu: bool = True,
                         min_activation: float = 0.0) -> tuple[nn.Module, torch.Tensor, bool]:
    """Deviation (issue 21, `attack.neuron_rule = "active_top_weight"`): the top-k units by r_j = sum_i |W_ji|
    among those whose activation on tau exceeds `min_activation` (so the early stop cannot fire at step 0).

    The code ranks all units (`select_neuron`); with the post-ReLU objective a unit silent on tau then gives
    a0 = 0 (or 81 a0^2 < 0.5) and the trigger never moves (pitfall 12). With fewer than k eligible units the
    remaining picks are the most active units. Returns (module, units, fell_back).
    """
    module = weight_layers(net)[layer]
    w = module.weight.detach()
    scores = w.reshape(w.shape[0], -1).abs().sum(1)  # (out,)
    with torch.no_grad():
        a = hooked_activation(net, module, tau, post_relu)[0]  # (out,)
    eligible = a > min_activation
    n = int(eligible.sum())
    if n >= topk:
        return module, torch.topk(scores.masked_fill(~eligible, -math.inf), topk).indices, False
    ranked = torch.topk(scores.masked_fill(~eligible, -math.inf), n).indices if n else scores.new_zeros(0).long()
    rest = torch.topk(a.masked_fill(eligible, -math.inf), topk - n).indices
    return module, torch.cat([ranked, rest]), True


def hooked_activation(net: nn.Module, module: nn.Module, x: torch.Tensor, post_relu: bool) -> torch.Tensor:
    """The output of `module` for input x, captured by a forward hook that is always removed (pitfall 8).

    post_relu=True reproduces the official code, whose in-place ReLU overwrites the hooked tensor.
    """
    captured: list[torch.Tensor] = []
    handle = module.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        net(x)
    finally:
        handle.remove()
    out = captured[0].flatten(1)  # (1, units[, h, w]) -> (1, D)
    return F.relu(out) if post_relu else out


def apply_range(data: ImageData, tau: torch.Tensor, mode: str) -> torch.Tensor:
    """`unclamped` (code-faithful), `clamp` to the valid pixel range, or `uint8` (clamp + quantise)."""
    if mode == "unclamped":
        return tau
    if mode == "clamp":
        return data.from_pixels(data.to_pixels(tau).clamp(0, 1))
    return render_uint8(data, tau)


@dataclass
class NaiveAttack:
    """The fixed white patch (or the SVHN stripe in faithful mode) and its mask, both (1, C, H, W)."""

    tau: torch.Tensor
    mask: torch.Tensor

    @classmethod
    def build(cls, data: ImageData, size: int, faithful: bool = False) -> "NaiveAttack":
        tau, mask = naive_trigger(data, size, svhn_stripe=faithful and data.name == "svhn")
        return cls(tau, mask)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return stamp(x, self.tau, self.mask)


@dataclass
class DoorpingTrigger:
    """tau (1, C, H, W) in normalised space, mask M; `update` runs one trigger optimisation (spec 2.4).

    Args:
        data: supplies mean / std (canvas black, the value range).
        size: backdoor_size s.
        generator: the canvas stream.
        alpha: target scale (10 [code]). topk, layer: neuron selection. lr, steps, stop_loss: Adam schedule.
        activation: "post_relu" (faithful) | "pre_relu" (deviation).
        trigger_range: "unclamped" (faithful) | "clamp" | "uint8".
        neuron_rule: "top_weight" (faithful: `select_neuron`) | "active_top_weight" (deviation:
            `select_active_neuron` with min_activation = sqrt(stop_loss) / |alpha - 1|).
        dd_canvas: DD's canvas [1, 254] and mask (canvas > 1) quirk instead of DC's [1, 255] and > 0.
    """

    tau: torch.Tensor
    mask: torch.Tensor
    data: ImageData
    alpha: float = 10.0
    topk: int = 1
    layer: int = -2
    lr: float = 0.08
    steps: int = 1000
    stop_loss: float = 0.5
    activation: str = "post_relu"
    trigger_range: str = "unclamped"
    neuron_rule: str = "top_weight"
    check_every: int = 0  # steps between early-stop checks (host syncs); 0 = 1 on the CPU, 16 on an accelerator
    history: list[dict] = field(default_factory=list)

    @classmethod
    def build(cls, data: ImageData, size: int, generator: torch.Generator, dd_canvas: bool = False,
              **kw) -> "DoorpingTrigger":
        c, h, w = data.shape
        geometry = trigger_mask(h, w, size, c)
        high = 255 if dd_canvas else 256  # randint's upper bound is exclusive: DC [1, 255], DD [1, 254]
        canvas = torch.zeros(1, c, h, w)
        patch = torch.randint(1, high, (1, c, size, size), generator=generator).float()  # CPU canvas stream
        canvas[..., h - 1 - size:h - 1, w - 1 - size:w - 1] = patch
        mask = (canvas > (1 if dd_canvas else 0)).float() * geometry  # DD quirk: a value of 1 is outside M
        canvas, mask = canvas.to(data.device), mask.to(data.device)
        tau = data.from_pixels(canvas / 255.0)  # outside M: normalised black -mu/sigma (pitfall 13)
        return cls(tau, mask, data, **kw)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return stamp(x, self.tau, self.mask)

    def update(self, net: nn.Module) -> dict:
        """Optimise tau against the current `net` (eval mode, parameters untouched); returns the update's log."""
        was_training = net.training
        net.eval()
        post = self.activation == "post_relu"
        fell_back = False
        if self.neuron_rule == "active_top_weight":
            module, units, fell_back = select_active_neuron(net, self.tau, self.layer, self.topk, post,
                                                            active_threshold(self.alpha, self.stop_loss))
        else:
            module, units = select_neuron(net, self.layer, self.topk)
        tau = self.tau.clone().requires_grad_(True)
        opt = torch.optim.Adam([tau], lr=self.lr, betas=(0.9, 0.99))
        check_every = self.check_every or (1 if tau.device.type == "cpu" else 16)
        a0, stop_loss, loss0 = None, tau.new_zeros(()), tau.new_zeros(())
        done = torch.zeros((), dtype=torch.bool, device=tau.device)
        taken = torch.zeros((), dtype=torch.long, device=tau.device)
        for step in range(self.steps):
            a = hooked_activation(net, module, tau, post)[0, units]
            if a0 is None:
                a0 = a.detach()
            loss = F.mse_loss(a, self.alpha * a0)
            if step == 0:
                loss0 = loss.detach()
            # Early stop when the loss < stop_loss, checked before the step [code]. Design choice (GPU): no host
            # sync per step; a stopped trigger is frozen with torch.where and the loop breaks at the next check
            # (every `check_every` steps; 1 on the CPU), so tau, the loss and the step count equal the per-step
            # break's (tested).
            stop_loss = torch.where(done, stop_loss, loss.detach())
            done = done | (loss.detach() < self.stop_loss)
            if (step + 1) % check_every == 0 or step == 0:
                if bool(done):
                    break
            opt.zero_grad(set_to_none=True)
            loss.backward()
            tau.grad.mul_(self.mask)  # only patch pixels move
            before = tau.detach().clone()
            opt.step()
            with torch.no_grad():
                new = apply_range(self.data, tau, self.trigger_range) * self.mask + self.tau * (1 - self.mask)
                tau.copy_(torch.where(done, before, new))
            taken += (~done).long()
        loss = stop_loss
        taken = int(taken)
        net.zero_grad(set_to_none=True)
        net.train(was_training)
        self.tau = tau.detach()
        pix = self.data.to_pixels(self.tau)[self.mask.bool().expand_as(self.tau)]
        record = {"trigger_steps": taken, "trigger_loss": float(loss.detach()), "trigger_loss0": float(loss0),
                  "a0": float(a0.mean()) if a0 is not None else 0.0, "unit": int(units[0]),
                  "neuron_fell_back": fell_back, "tau_pixel_min": float(pix.min()), "tau_pixel_max": float(pix.max())}
        self.history.append(record)
        return record


@dataclass
class InvisibleTrigger:
    """Full-image additive trigger x' = x + tau (spec 2.5); tau starts from the first class-0 test image.

    faithful=True keeps the DC code's quirks: the MSE target 10 a is not detached (the term drives the unit
    to 0), and each update adds the new tau on top of the already-perturbed images (`accumulate`).
    """

    tau: torch.Tensor
    black: torch.Tensor
    data: ImageData
    topk: int = 1
    layer: int = -2
    lr: float = 0.08
    steps: int = 100
    faithful: bool = False
    c: float = 1.0
    threshold: float = 0.0
    history: list[dict] = field(default_factory=list)

    @classmethod
    def build(cls, data: ImageData, target: int, **kw) -> "InvisibleTrigger":
        # Design choice, as the official code does (say so): tau starts from the first target-class *test* image,
        # so the trigger is seeded with test data; nothing else of the test split is seen before evaluation.
        first = int(torch.nonzero(data.test_y == target)[0])
        black = data.from_pixels(torch.zeros(1, *data.shape, device=data.device))
        return cls(data.test_x[first:first + 1].clone(), black, data,
                   threshold=float(1 / data.std.min()), **kw)

    def apply(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.tau

    def update(self, net: nn.Module) -> dict:
        was_training = net.training
        net.eval()
        module, units = select_neuron(net, self.layer, self.topk)
        tau = self.tau.clone().requires_grad_(True)
        opt = torch.optim.Adam([tau], lr=self.lr)
        loss = torch.tensor(0.0)
        for step in range(self.steps):
            if step == 0:
                self.c *= 0.8  # [code]
            a = hooked_activation(net, module, tau, post_relu=True)[0, units]
            target = 10 * a if self.faithful else (10 * a).detach()  # quirk: undetached in the DC code
            dist = (tau - self.black).abs()
            loss = self.c * F.mse_loss(a, target) + dist[dist > self.threshold].sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if float((tau.detach() - self.black).abs().max()) < self.threshold:
                self.threshold *= 0.9
        net.zero_grad(set_to_none=True)
        net.train(was_training)
        self.tau = tau.detach()
        record = {"trigger_steps": self.steps, "trigger_loss": float(loss.detach())}
        self.history.append(record)
        return record


def restamp(images: torch.Tensor, clean: torch.Tensor, index: torch.Tensor, attack, accumulate: bool = False) -> None:
    """Re-stamp the poisoned real images `images[index]` with the attack's current trigger (pitfall 6).

    `accumulate` (INVISIBLE, faithful DC) adds the trigger on top of the already-perturbed images.
    """
    if len(index) == 0:
        return
    source = images[index] if accumulate else clean
    images[index] = attack.apply(source)
