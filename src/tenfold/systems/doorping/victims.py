"""Victims of `doorping` (Backdoor Attacks Against Dataset Distillation, Liu et al., arXiv 2301.01197).

What `train` and `evaluate` both need, so that neither imports the other:
    streams / load_for_config   the seeded streams and the configured data set (spec 4)
    network_builder             fresh networks drawn on the CPU from a stream, moved to the data's device
    defender_data               the defender's small clean set (training images only)
    victim_factory              make_victim(generator) -> (net, losses) on S (SGD, or DD's learned steps)
    train_victim / victim_metrics / attack_metrics / accuracy
                                spec 2, component 10: fresh victims trained on S, CTA / ASR / asr_nontarget
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.errors import InputError
from tenfold.systems.doorping import distill_dc, distill_dd
from tenfold.systems.doorping.config import Config
from tenfold.systems.doorping.data import ImageData, load_data, stamp, subsample, to_device
from tenfold.systems.doorping.model import build_network


STREAMS = ("keep", "poison", "canvas", "nets", "batches", "syn", "victims", "subset", "defense")


def streams(seed: int) -> dict[str, torch.Generator]:
    return {name: torch.Generator().manual_seed(seed * 1009 + i) for i, name in enumerate(STREAMS)}


def load_for_config(cfg: Config, device: torch.device | None = None) -> ImageData:
    """The configured data set (validated), subsampled to `data.num_train` when set, on `device` (default CPU)."""
    d = cfg.data
    # Design choice (issue 21): the split depends on the seed (digits' stratified 1,437 / 360 split, shapes10's
    # generator, an ImageFolder tree's 80/20 split), so held-out seeds never reuse the same test images.
    data = load_data(d.dataset, d.root, d.image_size, cfg.seed, cfg.attack.trigger_label)
    if d.num_train:
        data = subsample(data, d.num_train, streams(cfg.seed)["subset"])
    return data if device is None else data.to(device)


def network_builder(cfg: Config, data: ImageData, arch: str) -> Callable[[torch.Generator], nn.Module]:
    m = cfg.model
    c, h, _ = data.shape
    init = m.init_for(cfg.distill.method)  # Xavier for DD, PyTorch's default for DC (model.init = "auto")
    # The init is drawn on the CPU from the nets stream, then moved: the same weights on every device.
    return lambda g: build_network(arch, c, data.num_classes, h, m.width, m.depth, m.hidden,
                                   generator=g, init=init).to(data.device)


def check_network_fits(cfg: Config, data: ImageData) -> None:
    """Build model.arch (and model.eval_arch) once on the meta device: images too small for the pooling
    stack are an InputError before anything is written, not a crash in the first iteration."""
    m = cfg.model
    c, h, _ = data.shape
    for arch in (m.arch,) + m.eval_archs():
        try:
            with torch.device("meta"):  # shapes only, no memory
                build_network(arch, c, data.num_classes, h, m.width, m.depth, m.hidden)
        except (RuntimeError, ValueError):  # ValueError: instance norm over a 1 x 1 map (VGG11 below 32 x 32)
            raise InputError(f"data.root={cfg.data.root!r}: images of {h}x{h} pixels are too small for "
                             f"model.arch={arch} (depth {m.depth}); expected larger images (data.image_size) "
                             "or a shallower model.depth") from None


def defender_data(cfg: Config, data: ImageData) -> tuple[torch.Tensor, torch.Tensor]:
    """The defender's small clean set: `defense.num_clean` clean training images (never test images)."""
    idx = torch.randperm(len(data.train_x), generator=streams(cfg.seed)["defense"])[: cfg.defense.num_clean]
    idx = idx.to(data.device)
    return data.train_x[idx], data.train_y[idx]


def train_victim(net: nn.Module, x: torch.Tensor, y: torch.Tensor, vcfg, generator: torch.Generator,
                 augment: bool = False) -> list[float]:
    """Train `net` on (x, y) by the code's schedule; returns the loss of every pass.

    augment: DSA-augment every batch and train for `vcfg.dsa_epochs` (+ 1) passes, as the code does for a DSA set;
    otherwise `vcfg.epochs` (+ 1) plain passes. (The code's DC augmentation applies only to ConvNetBN victims,
    which are not built here, so DC / DM / DD sets get none, as the code's ConvNet and AlexNet.)
    """
    epochs = vcfg.dsa_epochs if augment else vcfg.epochs
    opt = torch.optim.SGD(net.parameters(), lr=vcfg.lr, momentum=vcfg.momentum, weight_decay=vcfg.weight_decay)
    decay_after = epochs // 2 + 1  # [code] lr_schedule = [Epoch // 2 + 1]
    net.train()
    losses = []
    for ep in range(epochs + 1):
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for start in range(0, len(x), vcfg.batch):
            idx = perm[start:start + vcfg.batch]
            xb = distill_dc.dsa_augment_samples(x[idx], generator) if augment else x[idx]
            loss = F.cross_entropy(net(xb), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        losses.append(total / len(x))
        if ep == decay_after:
            for group in opt.param_groups:
                group["lr"] *= 0.1
    return losses


@torch.no_grad()
def accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 1024) -> float:
    net.eval()
    if len(x) == 0:
        return float("nan")
    correct = sum(int((net(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum()) for i in range(0, len(x), batch))
    return correct / len(x)


def attack_metrics(net: nn.Module, data: ImageData, tau: torch.Tensor, mask: torch.Tensor, target: int,
                   additive: bool = False) -> dict[str, float]:
    """CTA, the code's ASR and `asr_nontarget` of one model for one trigger (tau, M) (1, C, H, W)."""
    triggered = data.test_x + tau if additive else stamp(data.test_x, tau, mask)
    labels = torch.full_like(data.test_y, target)
    nontarget = data.test_y != target
    return {"cta": accuracy(net, data.test_x, data.test_y), "asr": accuracy(net, triggered, labels),
            "asr_nontarget": accuracy(net, triggered[nontarget], labels[nontarget])}


def victim_metrics(make_victim: Callable[[torch.Generator], tuple[nn.Module, list[float]]], data: ImageData,
                   triggers: dict[str, tuple], num_victims: int, generator: torch.Generator, target: int,
                   keep_nets: bool = False) -> dict[str, Any]:
    """Train `num_victims` fresh victims (`make_victim(generator) -> (net, losses)`) and score each trigger.

    triggers: {name: (tau, mask, additive)}; metric keys are "<name>/<metric>", "<name>/<metric>_std" and
    "<name>/<metric>_all" (one value per victim); mean and std over victims.
    """
    per: dict[str, list[float]] = {}
    nets, loss_ends = [], []
    for _ in range(num_victims):
        net, losses = make_victim(generator)  # fresh random init from the victim stream
        loss_ends.append((losses[0], losses[-1]) if losses else (float("nan"), float("nan")))
        for name, (tau, mask, additive) in triggers.items():
            for k, v in attack_metrics(net, data, tau, mask, target, additive).items():
                per.setdefault(f"{name}/{k}", []).append(v)
        if keep_nets:
            nets.append(net)
    out: dict[str, Any] = {}
    for k, vals in per.items():
        out[k], out[k + "_std"], out[k + "_all"] = float(np.mean(vals)), float(np.std(vals)), vals
    out["victim_loss_first"] = float(np.mean([a for a, _ in loss_ends]))
    out["victim_loss_last"] = float(np.mean([b for _, b in loss_ends]))
    if keep_nets:
        out["nets"] = nets
    return out


def victim_factory(cfg: Config, data: ImageData, syn: dict, arch: str) -> Callable:
    """make_victim(generator) -> (net, losses): SGD on S (DC / DSA / DM), or DD's learned steps."""
    build = network_builder(cfg, data, arch)
    syn = to_device(syn, data.device)  # S loaded from synset.pt is on the CPU
    if "dd" in syn and arch == cfg.model.arch:
        dd = syn["dd"]
        d = cfg.distill
        distilled = distill_dd.DistilledSteps(d.dd_steps, d.dd_images_per_step, data.num_classes, data.shape,
                                              d.dd_epochs, d.dd_lr_init, torch.Generator()).to(data.device)
        distilled.images.data.copy_(dd["images"])
        distilled.raw_lrs.data.copy_(dd["raw_lrs"])
        template = build(torch.Generator().manual_seed(0))
        # Faithful mode keeps DD's `same_as_train` test nets (pitfall 5); the default uses fresh inits.
        params0 = dd["params0"] if cfg.attack.faithful else None
        return lambda g: (distill_dd.dd_victim(template, distilled, params0, g, build), [])

    def make(g: torch.Generator):
        net = build(g)
        return net, train_victim(net, syn["images"], syn["labels"], cfg.victim, g,
                                 augment=cfg.distill.method == "dsa")

    return make
