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
from tenfold.systems.doorping.victims import (attack_metrics, check_network_fits, defender_data, load_for_config,
                                              victim_factory, victim_metrics)
from tenfold.systems.doorping.model import build_network

log = logging.getLogger("tenfold.doorping")


def defense_metrics(net: nn.Module, data: ImageData, clean_x: torch.Tensor, clean_y: torch.Tensor,
                    tau: torch.Tensor, mask: torch.Tensor, target: int, dcfg, generator: torch.Generator,
                    syn: dict | None = None) -> dict[str, Any]:
    """Every defense against one victim; the defender holds (clean_x, clean_y) and, for the data-scanning
    defenses (activation clustering, spectral signatures), the distilled set `syn` {images, labels} itself.

    Keys: nc_* (Neural Cleanse), strip_auroc, finepruning/<fraction>/{cta, asr_nontarget, pruned} for every
    fraction of `dcfg.prune_fractions`, ac_* and ss_* (per class lists) when `syn` is given.
    """
    from tenfold.systems.doorping.defense import (activation_clustering, fine_prune, neural_cleanse, penultimate,
                                                  spectral_signature, strip_auroc, strip_entropy)

    nc = neural_cleanse(net, clean_x, data.num_classes, dcfg.nc_steps, dcfg.nc_lambda, generator=generator)
    nontarget = data.test_y != target
    clean_in = data.test_x[nontarget]
    ent_clean = strip_entropy(net, clean_in, clean_x, dcfg.strip_overlays, generator)
    ent_trig = strip_entropy(net, stamp(clean_in, tau, mask), clean_x, dcfg.strip_overlays, generator)
    out: dict[str, Any] = {
        "nc_anomaly_index_target": nc["anomaly_index"][target], "nc_flag_score_target": nc["flag_score"][target],
        "nc_flagged": nc["flagged"], "nc_target_flagged": target in nc["flagged"], "nc_mask_l1": nc["mask_l1"],
        "nc_anomaly_index": nc["anomaly_index"], "strip_auroc": strip_auroc(ent_clean, ent_trig),
        "strip_entropy_clean": float(ent_clean.mean()), "strip_entropy_triggered": float(ent_trig.mean())}
    for frac in dcfg.prune_fractions:
        pruned, dead = fine_prune(net, clean_x, clean_y, frac, dcfg.finetune_epochs, generator=generator)
        after = attack_metrics(pruned, data, tau, mask, target)
        out.update({f"finepruning/{frac:g}/cta": after["cta"],
                    f"finepruning/{frac:g}/asr_nontarget": after["asr_nontarget"],
                    f"finepruning/{frac:g}/pruned": len(dead)})
    if syn is not None:
        feats = penultimate(net, syn["images"])
        out.update(activation_clustering(feats, syn["labels"], data.num_classes))
        out.update(spectral_signature(feats, syn["labels"], data.num_classes))
        out["ac_target_flagged"] = target in out["ac_flagged"]
        out["ss_target_flagged"] = target in out["ss_flagged"]
        out["ss_flag_score_target"] = out["ss_flag_score"][target]
        out["ac_smaller_size_target"] = out["ac_smaller_size"][target]
    return out


def _tensor(obj: Any, key: str, path: Path, shape: tuple | None, kind: str) -> torch.Tensor:
    """obj[key] as a tensor of `shape` (None entries match anything) and kind "float" (finite) or "int"."""
    t = obj.get(key) if isinstance(obj, dict) else None
    want = f"{kind} tensor of shape {tuple('*' if s is None else s for s in shape or ())}"
    if not isinstance(t, torch.Tensor) or (shape is not None and (
            t.dim() != len(shape) or any(s is not None and s != d for s, d in zip(shape, t.shape)))):
        got = tuple(t.shape) if isinstance(t, torch.Tensor) else type(t).__name__
        raise InputError(f"{path}: field {key!r} is {got}; expected a {want} (as `tenfold train` writes it)")
    if kind == "float" and (not t.is_floating_point() or not torch.isfinite(t).all()):
        raise InputError(f"{path}: field {key!r} must hold finite floats; expected a {want}")
    if kind == "int" and (t.is_floating_point() or t.is_complex() or t.dtype == torch.bool):
        raise InputError(f"{path}: field {key!r} has dtype {t.dtype}; expected a {want}")
    return t


def check_artefacts(cfg, data: ImageData, syn: Any, trig: Any, syn_path: Path, trig_path: Path) -> None:
    """synset.pt and trigger.pt must match the config's data (shapes, classes, finite values)."""
    c, h, w = data.shape
    _tensor(syn, "images", syn_path, (None, c, h, w), "float")
    labels = _tensor(syn, "labels", syn_path, (len(syn["images"]),), "int")
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= data.num_classes:
        raise InputError(f"{syn_path}: field 'labels' must be classes in [0, {data.num_classes - 1}] (at least "
                         "one image)")
    if "dd" in syn:
        d = cfg.distill
        dd = syn["dd"]
        _tensor(dd, "images", syn_path, (d.dd_steps, data.num_classes * d.dd_images_per_step, c, h, w), "float")
        _tensor(dd, "raw_lrs", syn_path, (d.dd_steps * d.dd_epochs,), "float")
        m = cfg.model
        with torch.device("meta"):  # parameter shapes only
            template = build_network(m.arch, c, data.num_classes, h, m.width, m.depth, m.hidden)
        for name, param in template.named_parameters():
            _tensor(dd.get("params0"), name, syn_path, tuple(param.shape), "float")
    _tensor(trig, "tau", trig_path, (1, c, h, w), "float")
    _tensor(trig, "mask", trig_path, (1, c, h, w), "float")
    if not isinstance(trig.get("additive", False), bool):
        raise InputError(f"{trig_path}: field 'additive' must be true or false")


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
    trig = load_tensors(trig_path)
    data = load_for_config(cfg)
    check_network_fits(cfg, data)
    check_artefacts(cfg, data, syn, trig, syn_path, trig_path)
    data, trig = data.to(device), to_device(trig, device)
    gen = torch.Generator().manual_seed(cfg.seed + 2_000_003)  # evaluation stream
    target = cfg.attack.trigger_label
    triggers = {"trigger": (trig["tau"], trig["mask"], trig.get("additive", False))}
    res = victim_metrics(victim_factory(cfg, data, syn, cfg.model.arch), data, triggers, cfg.victim.num_victims,
                         gen, target, keep_nets=cfg.defense.use_defenses)
    nets = res.pop("nets", [])
    metrics = {k: v for k, v in res.items() if not k.endswith("_all")}
    if cfg.defense.use_defenses and nets and not trig.get("additive", False):
        cx, cy = defender_data(cfg, data)
        for i, net in enumerate(nets):  # every defense on every victim
            metrics.update({f"defense/victim{i}/{k}": v for k, v in defense_metrics(
                net, data, cx, cy, trig["tau"], trig["mask"], target, cfg.defense, gen,
                to_device(syn, device)).items()})
    atomic_write_text(run.path / "eval.json", json.dumps(metrics, indent=2, default=str) + "\n")
    return metrics
