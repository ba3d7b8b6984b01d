"""Evaluation and defenses of `doorping` (Backdoor Attacks Against Dataset Distillation, arXiv 2301.01197).

The victims and their metrics live in `victims.py` (shared with `train`; neither module imports the other).
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
from typing import Any

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text, load_tensors
from tenfold.systems.doorping.data import ImageData, stamp
from tenfold.systems.doorping.victims import (attack_metrics, defender_data, load_for_config, victim_factory,
                                              victim_metrics)

log = logging.getLogger("tenfold.doorping")


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

    run = RunDir(run_dir)
    syn_path, trig_path = Path(run_dir) / "synset.pt", Path(run_dir) / "trigger.pt"
    if not syn_path.exists() or not trig_path.exists():
        raise InputError(f"{syn_path}: no distilled set; run `tenfold train` to the end first")
    device = select_device(cfg.device) if device is None else torch.device(device)
    syn = load_tensors(syn_path)
    trig = to_device(load_tensors(trig_path), device)
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
