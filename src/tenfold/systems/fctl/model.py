"""Patch segmentation models of FCtL (Liu et al., "Ultra-high Resolution Image Segmentation via Locality-aware
Context Fusion and Alternating Local Enhancement", IJCV 2024, arXiv 2109.02580). Spec components 3, 4, 7.

  TinyEncoder / TinyFCN   component 4 [design choice]: CPU trunk, output stride 16, FCN-style decoder
  VGGEncoder / FCN8s      component 3 [code]: VGG-16 (pad 100, ceil pools), conv6/7, FCN-8s "at once" decoder
  FCtLNet                 local trunk + context encoders + LCF (+ ALE) for one training stage
  GlobalOnly              baseline (component 14): whole image down-sampled to p, segmented, up-sampled
Every model maps inputs in [0, 1] (no ImageNet mean/std [code], pitfall 5) to raw logits.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from tenfold.core.errors import InputError
from tenfold.systems.fctl.ale import AlternatingLocalEnhancement
from tenfold.systems.fctl.lcf import LocalityAwareContextFusion, Mode

log = logging.getLogger("tenfold.fctl")


# ---------------------------------------------------------------- TinyFCN (smoke / quick)
def _conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class TinyEncoder(nn.Module):
    """Stride-2 stem then three stride-2 stages: taps s4 (w1), s8 (w2) and X = s16 (w3)."""

    def __init__(self, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        w0, w1, w2, w3 = widths
        self.stem = _conv_bn(3, w0, 2)
        self.stage1 = nn.Sequential(_conv_bn(w0, w1, 2), _conv_bn(w1, w1))
        self.stage2 = nn.Sequential(_conv_bn(w1, w2, 2), _conv_bn(w2, w2))
        self.stage3 = nn.Sequential(_conv_bn(w2, w3, 2), _conv_bn(w3, w3))
        self.out_channels = w3

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        s4 = self.stage1(self.stem(x))
        s8 = self.stage2(s4)
        return {"skip4": s4, "skip8": s8, "x": self.stage3(s8)}


class TinyFCN(nn.Module):
    """TinyEncoder + FCN-style decoder: score(X) up x2 + score(s8), up x2 + score(s4), up x4 to the input."""

    def __init__(self, num_classes: int, widths: Sequence[int] = (16, 32, 64, 128)) -> None:
        super().__init__()
        self.encoder = TinyEncoder(widths)
        w = widths
        self.head = nn.Conv2d(w[3], num_classes, 1)
        self.score8 = nn.Conv2d(w[2], num_classes, 1)
        self.score4 = nn.Conv2d(w[1], num_classes, 1)

    def decode(self, taps: dict[str, torch.Tensor], x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        s = self.head(x)
        s = F.interpolate(s, size=taps["skip8"].shape[-2:], mode="bilinear", align_corners=False)
        s = s + self.score8(taps["skip8"])
        s = F.interpolate(s, size=taps["skip4"].shape[-2:], mode="bilinear", align_corners=False)
        s = s + self.score4(taps["skip4"])
        return F.interpolate(s, size=size, mode="bilinear", align_corners=False)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        taps = self.encoder(image)
        return self.decode(taps, taps["x"], image.shape[-2:])


# ---------------------------------------------------------------- VGG-16 FCN-8s (full)
def _bilinear_kernel(channels: int, k: int) -> torch.Tensor:
    """(C, C, k, k) frozen bilinear up-sampling kernel of FCN [code]."""
    factor = (k + 1) // 2
    center = factor - 1 if k % 2 == 1 else factor - 0.5
    og = torch.arange(k, dtype=torch.float32)
    filt1d = 1 - (og - center).abs() / factor
    w = torch.zeros(channels, channels, k, k)
    w[range(channels), range(channels)] = filt1d[:, None] * filt1d[None, :]
    return w


class VGGEncoder(nn.Module):
    """VGG-16 conv trunk with first-conv padding 100 and ceil-mode pools [code]; taps pool3, pool4, pool5."""

    def __init__(self) -> None:
        super().__init__()
        from torchvision.models import vgg16

        features = vgg16(weights=None).features  # never downloads (pitfall 14)
        features[0].padding = (100, 100)
        for m in features:
            if isinstance(m, nn.MaxPool2d):
                m.ceil_mode = True
        self.to_pool3, self.to_pool4, self.to_pool5 = features[:17], features[17:24], features[24:]
        self.out_channels = 512

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        p3 = self.to_pool3(x)
        p4 = self.to_pool4(p3)
        return {"pool3": p3, "pool4": p4, "x": self.to_pool5(p4)}


class FCN8s(nn.Module):
    """Component 3 [code]: conv6 7x7 -> 4096, conv7 1x1, score; x2 up + score(0.01 pool4)[5:], x2 up +
    score(1e-4 pool3)[9:], x8 up, crop 31 to the input size. Transposed convs are frozen bilinear kernels."""

    def __init__(self, num_classes: int) -> None:
        super().__init__()
        self.encoder = VGGEncoder()
        k = num_classes
        self.classifier = nn.Sequential(
            nn.Conv2d(512, 4096, 7), nn.ReLU(inplace=True), nn.Dropout2d(),
            nn.Conv2d(4096, 4096, 1), nn.ReLU(inplace=True), nn.Dropout2d(), nn.Conv2d(4096, k, 1))
        self.score_pool4 = nn.Conv2d(512, k, 1)
        self.score_pool3 = nn.Conv2d(256, k, 1)
        self.upscore2 = nn.ConvTranspose2d(k, k, 4, 2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(k, k, 4, 2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(k, k, 16, 8, bias=False)
        for up, size in ((self.upscore2, 4), (self.upscore_pool4, 4), (self.upscore8, 16)):
            with torch.no_grad():
                up.weight.copy_(_bilinear_kernel(k, size))
            up.weight.requires_grad_(False)

    def decode(self, taps: dict[str, torch.Tensor], x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
        s = self.upscore2(self.classifier(x))  # 23 -> 17 -> 36 at p = 508
        p4 = self.score_pool4(0.01 * taps["pool4"])[..., 5:5 + s.shape[-2], 5:5 + s.shape[-1]]
        s = self.upscore_pool4(s + p4)  # 36 -> 74
        p3 = self.score_pool3(1e-4 * taps["pool3"])[..., 9:9 + s.shape[-2], 9:9 + s.shape[-1]]
        s = self.upscore8(s + p3)  # 74 -> 600
        return s[..., 31:31 + size[0], 31:31 + size[1]]

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        taps = self.encoder(image)
        return self.decode(taps, taps["x"], image.shape[-2:])

    def load_vgg_weights(self, path: Path, state: dict[str, torch.Tensor] | None = None) -> None:
        """Copy a torchvision VGG-16 state dict (features.*, classifier.0/3) from a local file."""
        state = _load_state(path) if state is None else state
        feats = {k[len("features."):]: v for k, v in state.items() if k.startswith("features.")}
        if not feats or "classifier.0.weight" not in state:
            raise InputError(f"{path}: expected a torchvision VGG-16 state dict with features.* and classifier.0.*")
        seq = nn.Sequential(*self.encoder.to_pool3, *self.encoder.to_pool4, *self.encoder.to_pool5)
        seq.load_state_dict(feats)
        with torch.no_grad():
            self.classifier[0].weight.copy_(state["classifier.0.weight"].view(4096, 512, 7, 7))
            self.classifier[0].bias.copy_(state["classifier.0.bias"])
            self.classifier[3].weight.copy_(state["classifier.3.weight"].view(4096, 4096, 1, 1))
            self.classifier[3].bias.copy_(state["classifier.3.bias"])
        log.info("loaded VGG-16 weights from %s", path)


# Design choice: a torchvision VGG-16 state dict is 528 MB; a weights file over 2 GiB is refused unread.
MAX_WEIGHTS_BYTES = 2 * 2**30
# torchvision's VGG-16 classifier layers that FCN-8s turns into conv6 / conv7 (component 3).
VGG_CLASSIFIER_NUMEL = {"classifier.0.weight": 4096 * 512 * 7 * 7, "classifier.0.bias": 4096,
                        "classifier.3.weight": 4096 * 4096, "classifier.3.bias": 4096}


def _load_state(path: Path) -> dict[str, torch.Tensor]:
    """`model.weights_file` -> a checked torchvision VGG-16 state dict (weights_only: a pickle runs no code).

    Refused with InputError naming the file: missing, over MAX_WEIGHTS_BYTES, truncated or not a torch file,
    a pickled object, not a {name: tensor} dict, NaN / inf weights, missing VGG-16 keys or wrong shapes.
    """
    path = Path(path)
    expected = "expected a local torchvision VGG-16 state dict (torch.save(vgg16().state_dict()))"
    if not path.is_file():
        raise InputError(f"{path}: model.weights_file not found; {expected}")
    if path.stat().st_size > MAX_WEIGHTS_BYTES:
        raise InputError(f"{path}: model.weights_file is {path.stat().st_size} bytes, over the limit of "
                         f"{MAX_WEIGHTS_BYTES} (fctl.model.MAX_WEIGHTS_BYTES); {expected}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # a truncated or non-torch file, or a pickle of anything but tensors
        raise InputError(f"{path}: model.weights_file is not a readable torch state dict "
                         f"({type(err).__name__}); {expected}") from None
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise InputError(f"{path}: model.weights_file holds a {type(state).__name__}, not a {{name: tensor}} "
                         f"dict; {expected}")
    for name, value in state.items():
        if value.is_floating_point() and not torch.isfinite(value).all():
            raise InputError(f"{path}: model.weights_file tensor {name!r} has NaN or inf values; {expected}")
    _check_vgg_shapes(state, path, expected)
    return state


def _check_vgg_shapes(state: dict[str, torch.Tensor], path: Path, expected: str) -> None:
    with torch.device("meta"):  # shapes only, no 134 M parameters allocated
        enc = VGGEncoder()
    seq = nn.Sequential(*enc.to_pool3, *enc.to_pool4, *enc.to_pool5)
    want = {f"features.{k}": v.numel() for k, v in seq.state_dict().items()} | VGG_CLASSIFIER_NUMEL
    for name, numel in want.items():
        if name not in state:
            raise InputError(f"{path}: model.weights_file has no tensor {name!r}; {expected}")
        if state[name].numel() != numel:
            raise InputError(f"{path}: model.weights_file tensor {name!r} has shape {tuple(state[name].shape)} "
                             f"({state[name].numel()} values, VGG-16 has {numel}); {expected}")


# ---------------------------------------------------------------- builders and the FCtL patch model
def build_trunk(backbone: str, num_classes: int, widths: Sequence[int] = (16, 32, 64, 128),
                weights_file: str | None = "") -> nn.Module:
    """A full segmenter (encoder + decoder): TinyFCN or FCN8s (VGG weights only from a local file).

    `weights_file=None`: the weights will come from a stage checkpoint (nothing read, nothing logged).
    """
    if backbone == "tiny":
        return TinyFCN(num_classes, widths)
    state = _load_state(Path(weights_file)) if weights_file else None  # a bad file fails before the 134 M init
    net = FCN8s(num_classes)
    if state is not None:
        net.load_vgg_weights(Path(weights_file), state)
    elif weights_file is not None:
        log.info("FCN8s: no model.weights_file given, VGG-16 trunk is randomly initialised")
    return net


def check_weights_file(backbone: str, weights_file: str) -> None:
    """Read and check `model.weights_file` before a run writes anything (see `_load_state`)."""
    if not weights_file:
        return
    if backbone != "vgg16":
        raise InputError(f"{weights_file}: model.weights_file is read only with model.backbone=vgg16, got "
                         f"model.backbone={backbone!r}; expected an empty model.weights_file")
    _load_state(Path(weights_file))


def build_encoder(backbone: str, widths: Sequence[int] = (16, 32, 64, 128)) -> nn.Module:
    return TinyEncoder(widths) if backbone == "tiny" else VGGEncoder()


class FCtLNet(nn.Module):
    """One stage's patch model: local trunk, context encoders, LCF in `mode`, optional ALE.

    forward(local (B, 3, p, p), contexts [(B, 3, p, p)] one per context encoder) -> logits (B, K, p, p).
    Args:
        mode: "local" (stage 0), "single_context" (stages 1, 2), "all" (stage 3).
        num_contexts: context encoders (0, 1, or len(context_factors)).
        freeze_contexts: stage 3 [code]: context encoders get no gradient and stay in eval mode.
    """

    def __init__(self, trunk: nn.Module, encoders: Sequence[nn.Module], mode: Mode, use_centered_qk: bool = False,
                 use_ale: bool = False, ale_rounds: int = 2, ale_mode: str = "cross", init_std: float = 0.01,
                 freeze_contexts: bool = False) -> None:
        super().__init__()
        self.trunk = trunk
        self.context_encoders = nn.ModuleList(encoders)
        c = trunk.encoder.out_channels
        self.lcf = LocalityAwareContextFusion(c, mode, len(encoders), use_centered_qk, init_std)
        self.ale = AlternatingLocalEnhancement(c, ale_rounds, ale_mode, init_std) if use_ale else None
        self.freeze_contexts = freeze_contexts
        if freeze_contexts:
            self.context_encoders.requires_grad_(False)

    def train(self, mode: bool = True) -> "FCtLNet":
        super().train(mode)
        if self.freeze_contexts:
            self.context_encoders.eval()  # frozen trunks keep their BN statistics
        return self

    def forward(self, local: torch.Tensor, contexts: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        taps = self.trunk.encoder(local)
        feats = []
        for enc, ctx in zip(self.context_encoders, contexts):
            if self.freeze_contexts:
                with torch.no_grad():
                    feats.append(enc(ctx)["x"])
            else:
                feats.append(enc(ctx)["x"])
        x = self.lcf(taps["x"], feats)  # pool5 <- X + sum_i W_i O_i (or X + O, or X)
        if self.ale is not None:
            x = self.ale(x, taps["x"])
        return self.trunk.decode(taps, x, local.shape[-2:])

    def gammas(self) -> dict[str, float]:
        """Learned gamma of every attention branch (pitfall 10: log them)."""
        return {name: float(p.detach()) for name, p in self.named_parameters() if name.endswith("gamma")}


class GlobalOnly(nn.Module):
    """Baseline (component 14): image (B, 3, S, S) -> resize to p -> trunk -> logits resized to (S, S)."""

    def __init__(self, trunk: nn.Module, patch: int) -> None:
        super().__init__()
        self.trunk, self.patch = trunk, patch

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        small = F.interpolate(image, size=(self.patch, self.patch), mode="bilinear", align_corners=False)
        return F.interpolate(self.trunk(small), size=image.shape[-2:], mode="bilinear", align_corners=False)
