"""Networks of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): spec components 1 and 2.

  MixStyle          feature-statistics mixing (Zhou et al., ICLR 2021); only inside the Phase-2 peers
  DigitsCNN         4 x [conv3x3 64, ReLU, maxpool 2]: 3x32x32 -> 64x2x2 -> 256-d (the CPU backbone)
  ResNet18Backbone  torchvision ResNet-18, global-pooled 512-d, ImageNet weights only from a local file
  Classifier        backbone + Linear head (ERM, the peers a / b)
  MCDNet            backbone F + two Linear heads C1, C2 (Phase-1 pseudo-labeler)
"""

from __future__ import annotations

import functools
from typing import Any

import torch
from torch import nn


class MixStyle(nn.Module):
    """out = (x - mu) / sigma * (lam sigma + (1 - lam) sigma[pi]) + lam mu + (1 - lam) mu[pi]  (spec 1).

    mu, sigma: per-instance, per-channel statistics over (H, W), detached; lam ~ Beta(alpha, alpha) per sample;
    pi a random in-batch permutation. Applied to the whole batch with probability p per call; identity in eval.
    `lam` and `perm` can be passed (tests); then the layer always mixes in training mode.
    """

    def __init__(self, p: float = 0.5, alpha: float = 0.1, eps: float = 1e-6) -> None:
        super().__init__()
        self.p, self.alpha, self.eps = p, alpha, eps

    def forward(self, x: torch.Tensor, lam: torch.Tensor | None = None,
                perm: torch.Tensor | None = None) -> torch.Tensor:
        if not self.training:
            return x
        if lam is None and perm is None and (self.p <= 0 or torch.rand(1).item() > self.p):
            return x
        b = x.size(0)
        mu = x.mean(dim=(2, 3), keepdim=True).detach()  # [B, C, 1, 1]
        sig = (x.var(dim=(2, 3), keepdim=True) + self.eps).sqrt().detach()
        if lam is None:
            lam = torch.distributions.Beta(self.alpha, self.alpha).sample((b, 1, 1, 1)).to(x)
        if perm is None:
            perm = torch.randperm(b)
        lam = torch.as_tensor(lam, dtype=x.dtype).reshape(-1, 1, 1, 1) if torch.is_tensor(lam) else lam
        mu_mix = lam * mu + (1 - lam) * mu[perm]
        sig_mix = lam * sig + (1 - lam) * sig[perm]
        return (x - mu) / sig * sig_mix + mu_mix


class DigitsCNN(nn.Module):
    """[code: present in the repository, unused there] 4 x [conv3x3 64, ReLU, maxpool 2]; B x 3 x 32 x 32 ->
    B x 64 x 2 x 2 -> 256-d. MixStyle after blocks in `mixstyle_layers` (1..3)."""

    def __init__(self, mixstyle_layers: tuple[int, ...] = (), p: float = 0.5, alpha: float = 0.1,
                 width: int = 64) -> None:
        super().__init__()
        self.fdim = 4 * width  # [B, width, 2, 2] flattened
        self.blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(3 if i == 0 else width, width, 3, padding=1), nn.ReLU(inplace=True),
                          nn.MaxPool2d(2))
            for i in range(4))
        self.mixstyle = nn.ModuleDict({str(i): MixStyle(p, alpha) for i in mixstyle_layers})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for i, block in enumerate(self.blocks, start=1):
            x = block(x)
            if str(i) in self.mixstyle:
                x = self.mixstyle[str(i)](x)
        return x.flatten(1)  # [B, width, 2, 2] -> [B, 4 width] (32x32 input)


class ResNet18Backbone(nn.Module):
    """torchvision ResNet-18 without its fc, global-pooled 512-d; MixStyle after layer1..3 when asked."""

    fdim = 512

    def __init__(self, weights_path: str | None = None, mixstyle_layers: tuple[int, ...] = (), p: float = 0.5,
                 alpha: float = 0.1) -> None:
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(weights=None)
        if weights_path is not None:
            from tenfold.core.runs import load_tensors

            state = load_tensors(weights_path, "a ResNet-18 ImageNet state dict (.pth)")
            net.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")}, strict=False)
        self.stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
        self.layers = nn.ModuleList([net.layer1, net.layer2, net.layer3, net.layer4])
        self.mixstyle = nn.ModuleDict({str(i): MixStyle(p, alpha) for i in mixstyle_layers})

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.stem(x)
        for i, layer in enumerate(self.layers, start=1):
            x = layer(x)
            if str(i) in self.mixstyle:
                x = self.mixstyle[str(i)](x)
        return x.mean(dim=(2, 3))  # [B, 512, h, w] -> [B, 512]


def build_backbone(cfg: Any, mixstyle: bool, init: dict[str, torch.Tensor] | None = None) -> nn.Module:
    """The configured backbone; `init` (a backbone state dict, e.g. from `pretrained_backbone`) is copied in."""
    m = cfg.model
    layers = tuple(m.mixstyle_layers) if mixstyle else ()
    if m.backbone == "digits_cnn":
        net: nn.Module = DigitsCNN(layers, m.mixstyle_p, m.mixstyle_alpha, m.width)
    else:
        net = ResNet18Backbone(m.weights_file, layers, m.mixstyle_p, m.mixstyle_alpha)
    if init is not None:
        net.load_state_dict(init)  # MixStyle has no parameters: one state fits the MixStyle and plain variants
    return net


def pretrained_backbone(cfg: Any) -> dict[str, torch.Tensor] | None:
    """The shared initial backbone of every network of a run: None (random init) unless `model.init = "glyphs"`.

    Design choice (spec 6 calibration lever; the paper starts every network from ImageNet weights): the digits
    CNN + a 16-way head trained `model.pretrain_epochs` epochs on `model.pretrain_images` auxiliary letter
    glyphs (data.make_aux_glyphs), seeded by the run's seed; the head is dropped. Every arm of a seed starts
    from the same backbone, as every arm of the paper starts from the same ImageNet checkpoint.
    """
    m = cfg.model
    if m.init == "scratch" or m.backbone != "digits_cnn":
        return None
    return _glyph_pretrain(m.width, m.pretrain_images, m.pretrain_epochs, int(cfg.seed))


@functools.lru_cache(maxsize=4)
def _glyph_pretrain(width: int, n: int, epochs: int, seed: int) -> dict[str, torch.Tensor]:
    import numpy as np
    import torch.nn.functional as F

    from tenfold.systems.ssdg.data import augment, make_aux_glyphs, shuffled_batches, to_input

    images, labels, num_classes = make_aux_glyphs(n, seed)
    rng = np.random.default_rng([seed, 556])
    with torch.random.fork_rng():
        torch.manual_seed(seed + 556)
        net = Classifier(DigitsCNN(width=width), num_classes)
    opt = torch.optim.Adam(net.parameters(), lr=1e-3)
    net.train()
    for _ in range(epochs):
        for idx in shuffled_batches(n, 64, rng):
            x = to_input(augment(images[idx], rng, True, True))
            loss = F.cross_entropy(net(x), torch.as_tensor(labels[idx]))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return {k: v.detach().clone() for k, v in net.backbone.state_dict().items()}


class Classifier(nn.Module):
    """backbone + nn.Linear(fdim, C) [code]."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.backbone = backbone
        self.head = nn.Linear(backbone.fdim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.backbone(x))


class MCDNet(nn.Module):
    """F (backbone, no MixStyle) + classifiers C1, C2 (spec component 5). forward = C1(F(x)), used to pseudo-label."""

    def __init__(self, backbone: nn.Module, num_classes: int) -> None:
        super().__init__()
        self.F = backbone
        self.C1 = nn.Linear(backbone.fdim, num_classes)
        self.C2 = nn.Linear(backbone.fdim, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.C1(self.F(x))


def build_classifier(cfg: Any, num_classes: int, mixstyle: bool,
                     init: dict[str, torch.Tensor] | None = None) -> Classifier:
    return Classifier(build_backbone(cfg, mixstyle, init), num_classes)


def build_mcd(cfg: Any, num_classes: int, init: dict[str, torch.Tensor] | None = None) -> MCDNet:
    return MCDNet(build_backbone(cfg, False, init), num_classes)
