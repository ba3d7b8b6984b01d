"""Victims, metrics and defenses of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197).

Spec 2, component 10 (`evaluate_synset` [code]): K fresh nets trained on S for passes 0..epochs (301), SGD
lr 0.01, momentum 0.9, wd 5e-4, lr x0.1 after pass epochs // 2 + 1 (from pass 152); no augmentation for the
norm-free ConvNet / AlexNet. Metrics:
    CTA            accuracy on the clean test set
    ASR (code's)   accuracy on the fully stamped test set with every label = target, true targets included
    asr_nontarget  the same on test images whose true class != target (primary; pitfall 1)
`evaluate(cfg, run_dir)` rebuilds everything from the artefacts `train` wrote (synset.pt, trigger.pt).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.doorping.data import ImageData, stamp

log = logging.getLogger("tenfold.doorping")


def train_victim(net: nn.Module, x: torch.Tensor, y: torch.Tensor, vcfg, generator: torch.Generator) -> list[float]:
    """Train `net` on (x, y) by the code's schedule; returns the loss of every pass."""
    opt = torch.optim.SGD(net.parameters(), lr=vcfg.lr, momentum=vcfg.momentum, weight_decay=vcfg.weight_decay)
    decay_after = vcfg.epochs // 2 + 1  # [code] lr_schedule = [Epoch // 2 + 1]
    net.train()
    losses = []
    for ep in range(vcfg.epochs + 1):
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        total = 0.0
        for start in range(0, len(x), vcfg.batch):
            idx = perm[start:start + vcfg.batch]
            loss = F.cross_entropy(net(x[idx]), y[idx])
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


def defense_metrics(net: nn.Module, data: ImageData, clean_x: torch.Tensor, clean_y: torch.Tensor,
                    tau: torch.Tensor, mask: torch.Tensor, target: int, dcfg,
                    generator: torch.Generator) -> dict[str, Any]:
    """Neural Cleanse, STRIP and fine-pruning against one victim; the defender holds (clean_x, clean_y)."""
    from tenfold.systems.doorping.defense import fine_prune, neural_cleanse, strip_auroc, strip_entropy

    nc = neural_cleanse(net, clean_x, data.num_classes, dcfg.nc_steps, dcfg.nc_lambda, generator=generator)
    nontarget = data.test_y != target
    clean_in = data.test_x[nontarget]
    ent_clean = strip_entropy(net, clean_in, clean_x, dcfg.strip_overlays, generator)
    ent_trig = strip_entropy(net, stamp(clean_in, tau, mask), clean_x, dcfg.strip_overlays, generator)
    pruned, dead = fine_prune(net, clean_x, clean_y, dcfg.prune_fraction, dcfg.finetune_epochs, generator=generator)
    after = attack_metrics(pruned, data, tau, mask, target)
    return {"nc_anomaly_index_target": nc["anomaly_index"][target], "nc_flagged": nc["flagged"],
            "nc_target_flagged": target in nc["flagged"], "nc_mask_l1": nc["mask_l1"],
            "strip_auroc": strip_auroc(ent_clean, ent_trig), "finepruning_cta": after["cta"],
            "finepruning_asr_nontarget": after["asr_nontarget"], "finepruning_pruned": len(dead)}


def evaluate(cfg, run_dir: Path, device: torch.device | None = None) -> dict[str, Any]:
    """Rebuild the data, load S and the trigger from `run_dir`, train fresh victims, run the defenses.

    device: overrides `cfg.device`; the CPU artefacts are moved there.
    """
    from tenfold.core.runtime import select_device
    from tenfold.systems.doorping.data import to_device
    from tenfold.systems.doorping.train import defender_data, load_for_config, victim_factory

    run = RunDir(run_dir)
    syn_path, trig_path = Path(run_dir) / "synset.pt", Path(run_dir) / "trigger.pt"
    if not syn_path.exists() or not trig_path.exists():
        raise FileNotFoundError(f"{syn_path}: no distilled set; run `tenfold train` to the end first")
    device = select_device(cfg.device) if device is None else torch.device(device)
    syn = torch.load(syn_path, map_location="cpu")
    trig = to_device(torch.load(trig_path, map_location="cpu"), device)
    data = load_for_config(cfg, device)
    gen = torch.Generator().manual_seed(cfg.seed + 2_000_003)  # evaluation stream
    target = cfg.attack.trigger_label
    triggers = {"trigger": (trig["tau"], trig["mask"], trig.get("additive", False))}
    res = victim_metrics(victim_factory(cfg, data, syn, cfg.model.arch), data, triggers, cfg.victim.num_victims,
                         gen, target, keep_nets=cfg.defense.use_defenses)
    nets = res.pop("nets", [])
    metrics = {k: v for k, v in res.items() if not k.endswith("_all")}
    if cfg.defense.use_defenses and nets and not trig.get("additive", False):
        cx, cy = defender_data(cfg, data)
        metrics.update({f"defense/{k}": v for k, v in defense_metrics(
            nets[0], data, cx, cy, trig["tau"], trig["mask"], target, cfg.defense, gen).items()})
    atomic_write_text(run.path / "eval.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics
