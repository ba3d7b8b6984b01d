"""Networks of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): spec components 1 and 2.

  MixStyle          feature-statistics mixing (Zhou et al., ICLR 2021); only inside the Phase-2 peers
  DigitsCNN         4 x [conv3x3 64, ReLU, maxpool 2]: 3x32x32 -> 64x2x2 -> 256-d (the CPU backbone)
  ResNet18Backbone  torchvision ResNet-18, global-pooled 512-d, ImageNet weights only from a local file
  Classifier        backbone + Linear head (ERM, the peers a / b)
  MCDNet            backbone F + two Linear heads C1, C2 (Phase-1 pseudo-labeler)
"""

from __future__ import annotations

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


def build_backbone(cfg: Any, mixstyle: bool) -> nn.Module:
    m = cfg.model
    layers = tuple(m.mixstyle_layers) if mixstyle else ()
    if m.backbone == "digits_cnn":
        return DigitsCNN(layers, m.mixstyle_p, m.mixstyle_alpha, m.width)
    return ResNet18Backbone(m.weights_file, layers, m.mixstyle_p, m.mixstyle_alpha)


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


def build_classifier(cfg: Any, num_classes: int, mixstyle: bool) -> Classifier:
    return Classifier(build_backbone(cfg, mixstyle), num_classes)


def build_mcd(cfg: Any, num_classes: int) -> MCDNet:
    return MCDNet(build_backbone(cfg, mixstyle=False), num_classes)
