"""Training of `doorping` (Backdoor Attacks Against Dataset Distillation, Liu et al., arXiv 2301.01197).

Spec section 3, one synthetic set per run directory:
 1. load the data (spec 4), keep the attacker's `ori` fraction, normalise;
 2. attack set-up: NAIVE stamps P once (before the `ori` split); DOORPING / INVISIBLE draw P after it,
    build the trigger and stamp P; every poisoned image is relabelled to the target; clean: no P;
 3. distil (DC / DSA / DM or DD) with the trigger hook; log per iteration `loss_match`, the trigger Adam
    steps actually taken per update, the trigger loss and the trigger's pixel range; checkpoint every
    `distill.checkpoint_every` iterations; a re-run on the same directory resumes from the last one;
 4. save the artefacts: synset.pt {images, labels}, trigger.pt {tau, mask, tau_uint8}, PNG grids;
 5. train fresh victims on S and report CTA, ASR and asr_nontarget (mean and std over victims).
Streams: one seeded generator per stream (keep, poison, canvas, nets, batches, victims), so that changing
the attack does not shift the others (Design choice; the code reseeds from the wall clock).
Device: the data, S, the triggers and every network live on `cfg.device`; random draws come from the CPU
streams and are moved there (Design choice: the same draws on every device); artefacts are saved on the CPU.
"""

from __future__ import annotations

import copy
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir
from tenfold.core.runtime import progress_bar, select_device
from tenfold.systems.doorping import distill_dc, distill_dd
from tenfold.systems.doorping.attack import DoorpingTrigger, InvisibleTrigger, NaiveAttack, restamp
from tenfold.systems.doorping.config import Config
from tenfold.systems.doorping.data import (ImageData, keep_fraction, poison_subset, render_uint8, stamp, to_device,
                                           trigger_mask)
from tenfold.systems.doorping.victims import (check_network_fits, load_for_config, network_builder, streams,
                                              victim_factory, victim_metrics)

log = logging.getLogger("tenfold.doorping")


@dataclass
class AttackSetup:
    pool: distill_dc.RealPool
    poison_idx: torch.Tensor  # rows of pool.images carrying the trigger
    clean_poison: torch.Tensor  # their clean copies (re-stamping starts from these)
    attack: Any  # NaiveAttack | DoorpingTrigger | InvisibleTrigger | None


def setup_attack(cfg: Config, data: ImageData, gens: dict[str, torch.Generator]) -> AttackSetup:
    """Spec 3, step 2; the synthetic set is never stamped, only real images are (pitfall 9)."""
    a, n, dev = cfg.attack, len(data.train_x), data.device
    keep = keep_fraction(n, cfg.data.ori, gens["keep"]).to(dev)
    x, y = data.train_x.clone(), data.train_y.clone()
    attack: Any = None
    if a.attack == "naive":  # stamped inside the data set, before the ori split [code]
        attack = NaiveAttack.build(data, a.backdoor_size, a.faithful)
        flag = torch.zeros(n, dtype=torch.bool, device=dev)
        flag[poison_subset(n, a.portion, gens["poison"]).to(dev)] = True
        x[flag], y[flag] = attack.apply(x[flag]), a.trigger_label
        x, y = x[keep], y[keep]
        poison_idx = torch.nonzero(flag[keep]).flatten()
        clean = data.train_x[keep][poison_idx]
    else:
        x, y = x[keep], y[keep]
        poison_idx = poison_subset(len(x), a.portion if a.attack != "clean" else 0.0, gens["poison"]).to(dev)
        clean = x[poison_idx].clone()
        if a.attack == "doorping":
            attack = DoorpingTrigger.build(data, a.backdoor_size, gens["canvas"],
                                           dd_canvas=cfg.distill.method == "dd" and a.faithful, alpha=a.alpha,
                                           topk=a.topk, layer=a.layer, lr=a.trigger_lr, steps=a.trigger_steps,
                                           stop_loss=a.stop_loss, activation=a.activation,
                                           trigger_range=a.trigger_range, neuron_rule=a.neuron_rule)
        elif a.attack == "invisible":
            lr, steps = (0.001, 50) if cfg.distill.method == "dd" else (a.trigger_lr, a.invisible_steps)
            attack = InvisibleTrigger.build(data, a.trigger_label, topk=a.topk, layer=a.layer, lr=lr, steps=steps,
                                            faithful=a.faithful)
        if attack is not None:
            x[poison_idx], y[poison_idx] = attack.apply(clean), a.trigger_label
    return AttackSetup(distill_dc.RealPool(x, y, data.num_classes), poison_idx, clean, attack)


def pool_labels(cfg: Config, data: ImageData, gens: dict[str, torch.Generator]) -> torch.Tensor:
    """The labels of the attacker's pool exactly as `setup_attack` draws them (keep, then P relabelled to the
    target), without touching the images: fresh `streams(seed)` give the same draws."""
    a, n = cfg.attack, len(data.train_y)
    keep = keep_fraction(n, cfg.data.ori, gens["keep"])
    y = data.train_y.cpu().clone()
    if a.attack == "naive":  # stamped before the ori split [code]
        y[poison_subset(n, a.portion, gens["poison"])] = a.trigger_label
        return y[keep]
    y = y[keep]
    portion = a.portion if a.attack != "clean" else 0.0
    y[poison_subset(len(y), portion, gens["poison"])] = a.trigger_label
    return y


def check_inputs(cfg: Config, data: ImageData) -> None:
    """Everything `run_pipeline` would otherwise find only after the run directory is written."""
    if cfg.distill.method in ("dc", "dsa"):
        cfg.distill.loops()  # a missing loop table entry is a ConfigError
    trigger_mask(data.shape[1], data.shape[2], cfg.attack.backdoor_size)  # a trigger larger than the image
    check_network_fits(cfg, data)
    labels = pool_labels(cfg, data, streams(cfg.seed))
    empty = [c for c in range(data.num_classes) if not bool((labels == c).any())]
    if empty:
        raise InputError(f"data.ori={cfg.data.ori}, attack.portion={cfg.attack.portion}: the attacker's training "
                         f"pool has no image of classes {empty[:10]}; expected every class to keep at least one "
                         "(raise data.ori or data.num_train, or lower attack.portion)")
    if cfg.attack.attack == "invisible" and not bool((data.test_y == cfg.attack.trigger_label).any()):
        raise InputError(f"attack.attack=invisible: the test split has no image of class "
                         f"attack.trigger_label={cfg.attack.trigger_label}; expected at least one (its canvas)")


def trigger_hook(cfg: Config, setup: AttackSetup) -> Callable | None:
    """update(net) + re-stamp every poisoned real image with the new trigger (pitfall 6)."""
    if not isinstance(setup.attack, (DoorpingTrigger, InvisibleTrigger)):
        return None
    accumulate = isinstance(setup.attack, InvisibleTrigger) and cfg.attack.faithful

    def hook(net: nn.Module) -> dict:
        record = setup.attack.update(net)
        restamp(setup.pool.images, setup.clean_poison, setup.poison_idx, setup.attack, accumulate)
        return record

    return hook


def _attack_state(attack: Any) -> dict:
    if attack is None or isinstance(attack, NaiveAttack):
        return {}
    keys = ("tau", "history") + (("c", "threshold") if isinstance(attack, InvisibleTrigger) else ())
    return {k: getattr(attack, k) for k in keys}


def _iteration_record(it: int, rec: dict) -> dict:
    ups = rec["trigger_updates"]
    out = {"step": it, "loss_match": rec["loss_match"], "trigger_updates": len(ups)}
    if ups:
        steps = [u["trigger_steps"] for u in ups]
        out.update({"trigger_steps_mean": sum(steps) / len(steps), "trigger_zero_step_updates": steps.count(0),
                    "trigger_loss": ups[-1]["trigger_loss"]})
        if "tau_pixel_min" in ups[-1]:
            out.update({"tau_pixel_min": ups[-1]["tau_pixel_min"], "tau_pixel_max": ups[-1]["tau_pixel_max"]})
    return out


def distill(cfg: Config, data: ImageData, setup: AttackSetup, gens: dict, run: RunDir | None) -> dict:
    """Steps 3 of spec section 3 with checkpoints; returns {"images", "labels"[, "dd"]} of S."""
    d = cfg.distill
    build = network_builder(cfg, data, cfg.model.arch)
    hook = trigger_hook(cfg, setup)
    if d.method == "dd":
        return _distill_dd(cfg, data, setup, gens, run, build, hook)
    syn_y = torch.arange(data.num_classes, device=data.device).repeat_interleave(d.ipc)  # (C*ipc,) [0,0,..,1,1,..]
    syn = distill_dc.init_synthetic(setup.pool, d.ipc, d.init, gens["syn"]).requires_grad_(True)
    opt_img = torch.optim.SGD([syn], lr=d.lr_img, momentum=d.momentum_img)
    start = _resume(run, syn, opt_img, setup, gens)
    bar = progress_bar(d.iterations, f"doorping {d.method} {cfg.attack.attack}")
    bar.update(start)
    for it in range(start, d.iterations):
        net = build(gens["nets"])
        if d.method == "dm":
            rec = distill_dc.dm_iteration(net, setup.pool, syn, opt_img, cfg, gens["batches"], hook)
        else:
            dsa_seed = int(torch.randint(0, 2**31, (1,), generator=gens["batches"])) if d.method == "dsa" else None
            rec = distill_dc.dc_iteration(net, setup.pool, syn, syn_y, opt_img, cfg, gens["batches"], hook, dsa_seed)
        record = _iteration_record(it + 1, rec)
        bar.update(1)
        bar.set_postfix(loss_match=f"{record['loss_match']:.3f}")
        if run is not None:
            run.log_metrics(record)
            if (it + 1) % d.checkpoint_every == 0 or it + 1 == d.iterations:
                _save(run, it + 1, syn, opt_img, setup, gens)
    bar.close()
    return {"images": syn.detach().clone(), "labels": syn_y}


def _save(run: RunDir, it: int, syn, opt, setup: AttackSetup, gens: dict, extra: dict | None = None) -> None:
    state = {"kind": "distill", "iter": it, "syn": syn.detach().clone(), "opt": opt.state_dict(),
             "attack": _attack_state(setup.attack), "poisoned": setup.pool.images[setup.poison_idx],
             "gens": {k: g.get_state() for k, g in gens.items()}, **(extra or {})}
    run.save_checkpoint(to_device(state, "cpu"))  # device-independent checkpoint


def _resume(run: RunDir | None, syn, opt, setup: AttackSetup, gens: dict, extra: Callable | None = None) -> int:
    ckpt = run.load_checkpoint() if run is not None else None
    if ckpt is None or ckpt.get("kind") != "distill":
        return 0
    dev = setup.pool.images.device
    try:
        with torch.no_grad():
            syn.copy_(ckpt["syn"])
        opt.load_state_dict(ckpt["opt"])  # the optimiser moves its state to the parameters' device
        for k, v in ckpt["attack"].items():
            setattr(setup.attack, k, to_device(v, dev))
        setup.pool.images[setup.poison_idx] = ckpt["poisoned"].to(dev)
        for k, g in gens.items():
            g.set_state(ckpt["gens"][k])
        if extra is not None:
            extra(ckpt)
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as err:
        raise InputError(f"{run.checkpoint_path}: not a doorping distillation checkpoint of this config "
                         f"({type(err).__name__}: {str(err)[:200]}); delete it to start the run afresh") from None
    run.truncate_metrics(ckpt["iter"])
    log.info("resuming distillation from iteration %d", ckpt["iter"])
    return int(ckpt["iter"])


def _distill_dd(cfg: Config, data: ImageData, setup: AttackSetup, gens: dict, run: RunDir | None, build,
                hook) -> dict:
    """DD (spec 2.9): `distill.iterations` epochs over the real data in batches of `dd_batch_real`."""
    d = cfg.distill
    # DD's code initialises with Xavier (`init = xavier`; `model.init = "auto"` resolves to it in
    # `network_builder`) and distils on AlexCifarNet (`model.arch = alexcifarnet`).
    net = build(gens["nets"])
    params0 = {k: v.detach().clone().requires_grad_(True) for k, v in net.named_parameters()}  # known init
    distilled = distill_dd.DistilledSteps(d.dd_steps, d.dd_images_per_step, data.num_classes, data.shape,
                                          d.dd_epochs, d.dd_lr_init, gens["syn"]).to(data.device)
    opt = torch.optim.Adam(distilled.parameters(), lr=d.dd_outer_lr, betas=(0.5, 0.999))
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=40, gamma=0.5)
    start = _resume(run, distilled.images, opt, setup, gens, lambda ck: (
        distilled.raw_lrs.data.copy_(ck["raw_lrs"]), sched.load_state_dict(ck["sched"])))
    pool = setup.pool
    shadow = copy.deepcopy(net) if hook is not None else None  # theta_T is copied into it for every trigger update
    bar = progress_bar(d.iterations, f"doorping dd {cfg.attack.attack}")
    bar.update(start)
    for epoch in range(start, d.iterations):
        perm = torch.randperm(len(pool.images), generator=gens["batches"]).to(data.device)
        recs = []
        for s in range(0, len(perm), d.dd_batch_real):
            idx = perm[s:s + d.dd_batch_real]
            batch_hook = None if hook is None else (lambda net_t, _x, idx=idx: {**hook(net_t),
                                                                                "restamped": pool.images[idx]})
            recs.append(distill_dd.dd_outer_step(net, params0, distilled, opt, pool.images[idx], pool.labels[idx],
                                                 batch_hook, shadow))
        sched.step()
        rec = {"loss_match": sum(r["loss_match"] for r in recs) / len(recs),
               "trigger_updates": [u for r in recs for u in r["trigger_updates"]]}
        record = _iteration_record(epoch + 1, rec)
        bar.update(1)
        if run is not None:
            run.log_metrics(record)
            if (epoch + 1) % d.checkpoint_every == 0 or epoch + 1 == d.iterations:
                _save(run, epoch + 1, distilled.images, opt, setup, gens,
                      {"raw_lrs": distilled.raw_lrs.detach().clone(), "sched": sched.state_dict()})
    bar.close()
    images, labels = distilled.flat()
    return {"images": images, "labels": labels, "dd": {"images": distilled.images.detach().clone(),
            "raw_lrs": distilled.raw_lrs.detach().clone(), "params0": {k: v.detach() for k, v in params0.items()}}}


def trigger_artefact(cfg: Config, data: ImageData, setup: AttackSetup) -> dict:
    """trigger.pt: the trigger the victims are tested with (clean sets: the NAIVE white patch [code])."""
    attack = setup.attack if setup.attack is not None else NaiveAttack.build(data, cfg.attack.backdoor_size,
                                                                            cfg.attack.faithful)
    tau = attack.tau
    mask = getattr(attack, "mask", torch.ones_like(tau))
    additive = isinstance(attack, InvisibleTrigger)
    return {"tau": tau, "mask": mask, "additive": additive, "attack": cfg.attack.attack,
            "tau_uint8": tau if additive else render_uint8(data, tau) * mask + tau * (1 - mask)}


def save_artefacts(out: Path, data: ImageData, syn: dict, trig: dict, ipc_rows: int) -> None:
    """synset.pt, trigger.pt and PNG grids of S and of the trigger (de-normalised, clipped to [0, 1])."""
    from torchvision.utils import save_image

    out.mkdir(parents=True, exist_ok=True)
    torch.save(to_device(syn, "cpu"), out / "synset.pt")  # device-independent artefacts
    torch.save(to_device(trig, "cpu"), out / "trigger.pt")
    pix = data.to_pixels(syn["images"]).clamp(0, 1).cpu()
    order = torch.argsort(syn["labels"], stable=True).cpu()
    save_image(pix[order], out / "synset.png", nrow=max(1, len(order) // data.num_classes), padding=1)
    tau = trig["tau"] if trig["additive"] else stamp(torch.zeros_like(trig["tau"]) + data.from_pixels(
        torch.full_like(trig["tau"], 0.5)), trig["tau"], trig["mask"])  # the trigger on a grey canvas
    big = torch.nn.functional.interpolate(data.to_pixels(tau).clamp(0, 1), scale_factor=8, mode="nearest")
    save_image(big.cpu(), out / "trigger.png")


def run_pipeline(cfg: Config, run: RunDir | None, out: Path | None, extra_triggers: dict | None = None,
                 keep_nets: bool = False, device: torch.device | None = None) -> dict[str, Any]:
    """Steps 1-5 for one config; the run directory (if any) gets checkpoints and metrics.

    extra_triggers: {name: (tau, mask, additive)} also scored on the victims (e.g. the DOORPING trigger on a
    clean-distilled victim); keep_nets returns the trained victims under "nets" (for the defenses).
    device: where the data, S, the triggers and the networks live (default CPU); the returned "syn",
    "trigger", "data" and "nets" stay there.
    """
    data = load_for_config(cfg, device)
    gens = streams(cfg.seed)
    setup = setup_attack(cfg, data, gens)
    t0 = time.perf_counter()
    syn = distill(cfg, data, setup, gens, run)
    distill_s = time.perf_counter() - t0
    trig = trigger_artefact(cfg, data, setup)
    if out is not None:
        save_artefacts(out, data, syn, trig, cfg.distill.ipc)
    t1 = time.perf_counter()
    triggers = {"trigger": (trig["tau"], trig["mask"], trig["additive"])}
    if cfg.attack.attack == "doorping":
        triggers["trigger_uint8"] = (trig["tau_uint8"], trig["mask"], False)
    triggers.update(to_device(extra_triggers or {}, data.device))
    res = victim_metrics(victim_factory(cfg, data, syn, cfg.model.arch), data, triggers, cfg.victim.num_victims,
                         gens["victims"], cfg.attack.trigger_label, keep_nets=keep_nets)
    nets = res.pop("nets", [])
    for arch in cfg.model.eval_archs():  # transfer victims (eval_mode M), each on its own fresh inits
        other = victim_metrics(victim_factory(cfg, data, syn, arch), data, triggers,
                               cfg.victim.num_victims, gens["victims"], cfg.attack.trigger_label)
        res.update({f"transfer_{arch}/{k}": v for k, v in other.items()})
    history = getattr(setup.attack, "history", [])
    steps = [h["trigger_steps"] for h in history]
    res.update({"distill_wall_time_s": distill_s, "victim_wall_time_s": time.perf_counter() - t1,
                "num_poisoned": int(len(setup.poison_idx)), "trigger_updates": len(steps),
                "trigger_zero_step_updates": steps.count(0), "trigger_steps_total": sum(steps),
                "class0_pool_triggered_share": float(len(setup.poison_idx) / max(1, len(setup.pool.indices_class[
                    cfg.attack.trigger_label])))})
    return {"metrics": res, "syn": syn, "trigger": trig, "data": data, "setup": setup, "nets": nets}


def train(cfg: Config, run_dir: Path, device: torch.device | None = None) -> dict[str, Any]:
    """Distil one synthetic set (clean / NAIVE / DOORPING / INVISIBLE) and score fresh victims on it.

    device: overrides `cfg.device` (default: `select_device(cfg.device)`, CUDA when "auto" finds one).
    """
    t0 = time.perf_counter()
    device = select_device(cfg.device) if device is None else torch.device(device)
    data = load_for_config(cfg)  # input errors surface here, before anything is written
    check_inputs(cfg, data)
    run = RunDir(run_dir)
    run.write_config(cfg)
    result = run_pipeline(cfg, run, Path(run_dir), device=device)
    metrics = {k: v for k, v in result["metrics"].items() if not k.endswith("_all")}
    run.save_checkpoint({"kind": "final", "iter": cfg.distill.iterations})
    run.write_summary(metrics, time.perf_counter() - t0, str(device))
    log.info("doorping %s: CTA %.3f, asr_nontarget %.3f", cfg.attack.attack, metrics["trigger/cta"],
             metrics["trigger/asr_nontarget"])
    return metrics
