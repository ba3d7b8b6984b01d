"""Models of `harmonize`: Harmonizing output imbalance for semantic segmentation on extremely-imbalanced
input data (Yi, Zhong, Liu, Wu, Deng; arXiv 2211.05295).

The paper's architectures are not available (spec section 6); spec section 2:
  component 7  TinyUNet ............ `TinyUNet` (the quick-profile model, trained from scratch)
  component 8  smp architectures ... `build_smp_model` (Unet, UnetPlusPlus, FPN, DeepLabV3Plus, PSPNet;
                                     segmentation-models-pytorch, imported inside the builder)
All models map an image (B, 1, H, W) to one logit map (B, 1, H, W).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.runs import load_tensors

SMP_ARCHITECTURES = ("smp_unet", "smp_unetplusplus", "smp_fpn", "smp_deeplabv3plus", "smp_pspnet")


def _num_groups(channels: int) -> int:
    # Design choice: 4 groups (or fewer for thin layers) so every group has >= 2 channels.
    return max(1, min(4, channels // 2))


class ConvBlock(nn.Module):
    """Two 3x3 conv + GroupNorm + ReLU (spec component 7)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.GroupNorm(_num_groups(c_out), c_out), nn.ReLU(),
            nn.Conv2d(c_out, c_out, 3, padding=1, bias=False), nn.GroupNorm(_num_groups(c_out), c_out), nn.ReLU(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)


class TinyUNet(nn.Module):
    """A small U-Net: `len(widths)` levels, max-pool down, transposed-conv up, skip concatenation.

    Design choice (spec component 7): widths 8-16-32-64, GroupNorm because BatchNorm on tiny batches of mostly
    empty images is unstable (pitfall 9); one output channel (sigmoid at inference).

    Args:
        in_channels: image channels (1 for EL images).
        widths: channels per level, shallow to deep (default (8, 16, 32, 64)).
        prior_foreground: initial foreground probability encoded in the output bias (see below).
    """

    def __init__(self, in_channels: int = 1, widths: tuple[int, ...] = (8, 16, 32, 64),
                 prior_foreground: float = 0.01) -> None:
        super().__init__()
        self.down = nn.ModuleList()
        c = in_channels
        for w in widths:
            self.down.append(ConvBlock(c, w))
            c = w
        self.up = nn.ModuleList()
        self.fuse = nn.ModuleList()
        for w_skip in reversed(widths[:-1]):
            self.up.append(nn.ConvTranspose2d(c, w_skip, 2, stride=2))
            self.fuse.append(ConvBlock(2 * w_skip, w_skip))
            c = w_skip
        self.head = nn.Conv2d(c, 1, 1)
        # Design choice: prior-probability bias init (as in RetinaNet) so no loss starts with a flood of
        # p = 0.5 false positives on 99.9 % background; identical for every loss compared.
        nn.init.constant_(self.head.bias, float(torch.logit(torch.tensor(prior_foreground))))
        self.depth = len(widths)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[-2:]
        factor = 2 ** (self.depth - 1)
        if h % factor or w % factor:
            raise InputError(f"TinyUNet with {self.depth} levels needs H and W divisible by {factor}, got {h}x{w}")
        skips = []
        for i, block in enumerate(self.down):
            x = block(x if i == 0 else nn.functional.max_pool2d(x, 2))  # (B, w_i, H/2^i, W/2^i)
            skips.append(x)
        for up, fuse, skip in zip(self.up, self.fuse, reversed(skips[:-1])):
            x = fuse(torch.cat([up(x), skip], dim=1))  # (B, 2 w, h, w) -> (B, w, h, w)
        return self.head(x)  # (B, 1, H, W) logits


def build_smp_model(arch: str, encoder: str = "resnet18", weights_file: str | None = None) -> nn.Module:
    """One of the full profile's architectures through segmentation-models-pytorch (spec component 8).

    Always `encoder_weights=None` (no hub download, pitfall 10); `weights_file` (a local state dict of the
    whole model or of the encoder) is loaded when given.
    """
    import segmentation_models_pytorch as smp

    common = {"encoder_name": encoder, "encoder_weights": None, "in_channels": 1, "classes": 1}
    if arch == "smp_unet":
        # Spec 8: depth 4 with slim decoder channels (64, 32, 16, 8) keeps the 1-px resolution path cheap.
        model = smp.Unet(encoder_depth=4, decoder_channels=(64, 32, 16, 8), **common)
    elif arch == "smp_unetplusplus":
        model = smp.UnetPlusPlus(encoder_depth=4, decoder_channels=(64, 32, 16, 8), **common)
    elif arch == "smp_fpn":
        model = smp.FPN(**common)
    elif arch == "smp_deeplabv3plus":
        model = smp.DeepLabV3Plus(**common)  # output stride 16 + bilinear upsampling: blurs 1-px cracks
    elif arch == "smp_pspnet":
        model = smp.PSPNet(**common)  # 1/8 resolution: GPU scale only (spec 8)
    else:
        raise InputError(f"model.arch must be 'tiny_unet' or one of {SMP_ARCHITECTURES}, got {arch!r}")
    if weights_file:
        load_weights(model, Path(weights_file))
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """Load a local state dict into the whole model, or into `model.encoder` when its keys fit there."""
    try:
        state = load_tensors(path, "a torch state dict {parameter name: tensor}")  # weights_only: never runs code
    except InputError as err:
        raise InputError(f"model.weights_file: {err}") from None
    state = state.get("model", state) if isinstance(state, dict) else state
    if not isinstance(state, dict) or not state or not all(isinstance(k, str) for k in state):
        raise InputError(f"model.weights_file: {path}: expected a state dict {{parameter name: tensor}}, got "
                         f"{type(state).__name__}{' (empty)' if isinstance(state, dict) else ''}")
    target = model
    if hasattr(model, "encoder") and not any(k.startswith("encoder.") for k in state):
        target = model.encoder
    try:
        missing, unexpected = target.load_state_dict(state, strict=False)
    except (RuntimeError, TypeError, ValueError) as err:  # shape mismatch, a non-tensor value
        first = str(err).strip().splitlines()[-1][:300] if str(err).strip() else type(err).__name__
        raise InputError(f"model.weights_file: {path}: does not fit the model ({first}); expected the state "
                         "dict of this model.arch / model.widths / model.encoder") from None
    if len(unexpected) == len(state):
        raise InputError(f"model.weights_file: {path}: no key matches the model (e.g. {next(iter(state), None)!r})")


def input_multiple(model: nn.Module) -> int:
    """Image sides must be multiples of this: 2^(levels - 1) for TinyUNet, the encoder's output stride for smp."""
    if isinstance(model, TinyUNet):
        return 2 ** (model.depth - 1)
    if getattr(model, "requires_divisible_input_shape", False):
        return int(model.encoder.output_stride)
    return 1


def build_model(arch: str, widths: tuple[int, ...] = (8, 16, 32, 64), encoder: str = "resnet18",
                weights_file: str | None = None) -> nn.Module:
    """`tiny_unet` (quick) or an smp architecture (full); one logit channel."""
    if arch == "tiny_unet":
        model = TinyUNet(1, widths)
        if weights_file:
            load_weights(model, Path(weights_file))
        return model
    return build_smp_model(arch, encoder, weights_file)
