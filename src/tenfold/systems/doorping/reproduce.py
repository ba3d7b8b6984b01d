"""`tenfold reproduce doorping`: clean vs NAIVEATTACK vs DOORPING (faithful and realisable) side by side (spec 6).

Paper: Backdoor Attacks Against Dataset Distillation (Liu et al., NDSS 2023, arXiv 2301.01197). The four synthetic
sets share the data, split, distiller, ipc, poison ratio, trigger size, seed, iteration count and victim budget
(recorded per arm in every row's `budget`); only the attack differs:
    doorping        DOORPING as the code runs it: the trigger is never clamped (faithful)
    doorping_uint8  DOORPING with `attack.trigger_range = uint8`: the trigger is rendered to 8-bit pixels after
                    every Adam step during distillation, so S is distilled with the trigger an image can carry
    naive           NAIVEATTACK (fixed white patch);  clean  no attack (portion 0)
Victims are fresh nets trained on S (never the distillation net). Rows (one seed's `Measurement`s; the CLI joins
the claim seeds and judges them by the noise rule):
  A  CTA essentially preserved: NAIVE / DOORPING / realisable DOORPING CTA >= clean CTA - 0.05
     (reference: the majority-class predictor)
  B  DOORPING asr_nontarget >= NAIVE (and the code's ASR)  (reference: the clean-distilled victim, same trigger)
  C  DOORPING asr_nontarget >= 0.9 (the headline "ASR close to 1.0"; faithful, unclamped trigger)
  D  NAIVE asr_nontarget > the clean-distilled victim's with the same white patch
  E  the trigger alone fails on a clean-distilled victim: clean S + final DOORPING tau << DOORPING S + tau
  F  the realisable DOORPING (distilled with the uint8 trigger) beats NAIVE on ASR and keeps NAIVE's CTA (spec 6.1)
     (the earlier row "unclamped S tested with tau rendered after the fact" measured a train/test mismatch, not
     the realisable attack; it is dropped, its value is in F's details)
  G  every defense on every DOORPING victim (mean over victims; also run on the realisable and clean victims):
     Neural Cleanse does not flag the target; STRIP AUROC < 0.9; fine-pruning at each fraction of `defense.prune_fractions` leaves asr_nontarget >= 0.5;
     activation clustering and spectral signatures on S do not flag the target class
  H  (a check) DC at ipc 1 in faithful mode never updates the trigger (the code's structural break; pitfall 2)
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import torch

from tenfold.core.claims import Measurement, Relation
from tenfold.core.config import make_config, override
from tenfold.core.runtime import seed_everything, select_device, torch_threads
from tenfold.systems.doorping import distill_dc
from tenfold.systems.doorping.config import PROFILES, Config
from tenfold.systems.doorping.evaluate import defense_metrics
from tenfold.systems.doorping.model import ConvNetMini
from tenfold.systems.doorping.train import run_pipeline
from tenfold.systems.doorping.victims import defender_data

log = logging.getLogger("tenfold.doorping")
SYSTEM = "doorping"
# arm -> the attack overrides; DOORPING first so the clean victims can also be scored with its triggers
ARMS: dict[str, dict[str, str]] = {
    "doorping": {"attack.attack": "doorping"},
    "doorping_uint8": {"attack.attack": "doorping", "attack.trigger_range": "uint8"},
    "naive": {"attack.attack": "naive"},
    "clean": {"attack.attack": "clean"},
}
# Design choice (CPU budget): the defenses run on every victim of these arms; NAIVE's victims are not defended
# (no row reads them, and Neural Cleanse costs ~5 s per victim on the shared 2-core machine).
DEFENDED = ("doorping", "doorping_uint8", "clean")
NAMES = {"doorping": "DOORPING", "doorping_uint8": "DOORPING uint8-distilled", "naive": "NAIVEATTACK",
         "clean": "clean"}


def _row(claim: str, metric: str, method: str, mv: float, baseline: str, bv: float, rel: Relation, seed: int,
         wall: float, details: str = "", kind: str = "claim", reference: str = "", rv: float = float("nan"),
         budget: dict | None = None) -> Measurement:
    return Measurement(system=SYSTEM, claim=claim, metric=metric, method=method, method_value=mv, baseline=baseline,
                       baseline_value=bv, relation=rel, seed=seed, wall_time_s=wall, details=details, kind=kind,
                       reference=reference, reference_value=rv, budget=budget or {})


def _pm(m: dict, key: str) -> str:
    return f"{m[key]:.3f} ± {m[key + '_std']:.3f}"


def run_arms(cfg: Config, out_dir: Path, device: torch.device | None = None) -> dict:
    """Distil and score the four arms; the clean victims are also scored with both DOORPING triggers."""
    device = select_device(cfg.device) if device is None else device
    runs, wall = {}, {}
    for arm, ov in ARMS.items():
        t0 = time.perf_counter()
        extra = None
        if arm == "clean":
            extra = {"doorping_trigger": (runs["doorping"]["trigger"]["tau"], runs["doorping"]["trigger"]["mask"],
                                          False),
                     "doorping_uint8_trigger": (runs["doorping_uint8"]["trigger"]["tau"],
                                                runs["doorping_uint8"]["trigger"]["mask"], False)}
        runs[arm] = run_pipeline(override(cfg, ov), None, out_dir / arm, extra_triggers=extra,
                                 keep_nets=cfg.defense.use_defenses and arm in DEFENDED, device=device)
        wall[arm] = time.perf_counter() - t0
        m = runs[arm]["metrics"]
        log.info("doorping reproduce %s: CTA %s, asr_nontarget %s (%.0f s)", arm, _pm(m, "trigger/cta"),
                 _pm(m, "trigger/asr_nontarget"), wall[arm])
    return {"runs": runs, "wall": wall}


def ipc1_updates(cfg: Config, device: torch.device | None = None) -> int:
    """Trigger updates in one faithful DC iteration at ipc 1 (outer_loop 1): the code breaks before any."""
    device = torch.device("cpu") if device is None else device
    c = override(cfg, {"distill.ipc": 1, "distill.outer_loop": 0, "distill.inner_loop": 0,
                       "attack.update_at_ipc1": False})
    pool = distill_dc.RealPool(torch.randn(20, 1, 16, 16).to(device), torch.arange(10, device=device).repeat(2), 10)
    syn = torch.randn(10, 1, 16, 16).to(device).requires_grad_(True)
    calls: list[int] = []
    distill_dc.dc_iteration(ConvNetMini(1, 10, 16).to(device), pool, syn, torch.arange(10, device=device),
                            torch.optim.SGD([syn], lr=0.1), c, torch.Generator().manual_seed(0),
                            lambda net: calls.append(1) or {})
    return len(calls)


def arm_budget(cfg: Config, run: dict, wall: float) -> dict:
    """One arm's budget: the shared distillation and victim schedule; DOORPING adds its trigger Adam steps."""
    d, v = cfg.distill, cfg.victim
    outer, inner = d.loops()
    b = {"distill_iterations": d.iterations, "outer_loop": outer, "inner_loop": inner, "batch_real": d.batch_real,
         "ipc": d.ipc, "victims": v.num_victims, "victim_epochs": v.epochs, "wall_s": round(wall, 1)}
    if run["metrics"]["trigger_updates"]:
        b["trigger_adam_steps"] = run["metrics"]["trigger_steps_total"]
    return b


def reproduce(profile: str, seed: int, out_dir: Path) -> list[Measurement]:
    cfg: Config = make_config(Config, PROFILES, profile, {"seed": seed})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    seed_everything(seed)
    device = select_device(cfg.device)
    with torch_threads(cfg.num_threads or torch.get_num_threads()):
        res = run_arms(cfg, out_dir, device)
        runs, wall = res["runs"], res["wall"]
        budgets = {arm: arm_budget(cfg, runs[arm], wall[arm]) for arm in ARMS}
        rows = _attack_rows(runs, wall, budgets, seed)
        if cfg.defense.use_defenses:
            rows += _defense_rows(cfg, runs, seed)
    t0 = time.perf_counter()
    n = ipc1_updates(cfg, device)
    # A check, not a claim: the code's structural break guarantees it (issues 11, 21).
    rows.append(_row("DC at ipc 1 never optimises the DOORPING trigger (faithful; pitfall 2)",
                     "trigger updates per iteration at ipc 1", "DOORPING faithful", n, "0 (code's break)", 0,
                     Relation("within", 0.0), seed, time.perf_counter() - t0,
                     "attack.update_at_ipc1=true adds one update per iteration (a labelled deviation)", kind="check"))
    plot_synthetic(runs, out_dir / "synthetic_sets.png")
    plot_trigger(runs, out_dir / "doorping_trigger.png")
    return rows


def _majority(runs: dict) -> float:
    """The majority-class predictor's test accuracy (the trivial reference of CTA)."""
    y = runs["clean"]["data"].test_y
    return float(torch.bincount(y).max()) / len(y)


def _attack_rows(runs: dict, wall: dict, budgets: dict, seed: int) -> list[Measurement]:
    m = {k: r["metrics"] for k, r in runs.items()}
    d, nv, u, cl = m["doorping"], m["naive"], m["doorping_uint8"], m["clean"]
    majority = _majority(runs)

    def bud(a: str, b: str) -> dict:
        return {"method": budgets[a], "baseline": budgets[b]}

    def steps(x: dict) -> str:
        return (f"{x['trigger_updates']} trigger updates, {x['trigger_zero_step_updates']} stopped at step 0, "
                f"{x['trigger_steps_total']} Adam steps")

    rows = []
    for arm in ("naive", "doorping", "doorping_uint8"):
        rows.append(_row("CTA is essentially preserved (within 5 points of the clean distilled set)", "CTA",
                         NAMES[arm], m[arm]["trigger/cta"], "clean", cl["trigger/cta"], Relation(">=", -0.05), seed,
                         wall[arm] + wall["clean"],
                         f"{NAMES[arm]} {_pm(m[arm], 'trigger/cta')} vs clean {_pm(cl, 'trigger/cta')}",
                         reference="majority class", rv=majority, budget=bud(arm, "clean")))
    clean_patch = ("clean S + same trigger", cl["trigger/asr_nontarget"])
    rows += [
        _row("DOORPING reaches a higher ASR than NAIVEATTACK", "asr_nontarget", "DOORPING", d["trigger/asr_nontarget"],
             "NAIVEATTACK", nv["trigger/asr_nontarget"], Relation(">="), seed, wall["doorping"] + wall["naive"],
             f"{_pm(d, 'trigger/asr_nontarget')} vs {_pm(nv, 'trigger/asr_nontarget')}; {steps(d)}",
             reference="clean S + NAIVE patch", rv=clean_patch[1], budget=bud("doorping", "naive")),
        _row("DOORPING reaches a higher ASR than NAIVEATTACK (code's ASR, true class 0 included)", "asr (code)",
             "DOORPING", d["trigger/asr"], "NAIVEATTACK", nv["trigger/asr"], Relation(">="), seed,
             wall["doorping"] + wall["naive"], reference="clean S + NAIVE patch", rv=cl["trigger/asr"],
             budget=bud("doorping", "naive")),
        _row("DOORPING reaches ASR close to 1.0 (faithful, unclamped trigger)", "asr_nontarget", "DOORPING",
             d["trigger/asr_nontarget"], "threshold", 0.9, Relation(">="), seed, wall["doorping"],
             f"{_pm(d, 'trigger/asr_nontarget')}; {steps(d)}; tau pixels in [{_tau_range(runs, 'doorping')}]",
             reference="clean S + DOORPING tau", rv=cl["doorping_trigger/asr_nontarget"],
             budget={"method": budgets["doorping"]}),
        _row("NAIVEATTACK's patch works on its victims, not on a clean-distilled victim", "asr_nontarget",
             "NAIVEATTACK", nv["trigger/asr_nontarget"], "clean S + same patch", cl["trigger/asr_nontarget"],
             Relation(">"), seed, wall["naive"] + wall["clean"],
             f"clean code's ASR {cl['trigger/asr']:.3f} (floor ≈ 0.1)", budget=bud("naive", "clean")),
        _row("The trigger alone does nothing: the attack lives in S", "asr_nontarget", "clean S + DOORPING tau",
             cl["doorping_trigger/asr_nontarget"], "DOORPING S + tau", d["trigger/asr_nontarget"],
             Relation("<=", -0.5), seed, wall["clean"] + wall["doorping"], budget=bud("clean", "doorping")),
        _row("The realisable DOORPING (trigger rendered to 8-bit during distillation) beats NAIVEATTACK",
             "asr_nontarget", "DOORPING uint8-distilled", u["trigger/asr_nontarget"], "NAIVEATTACK",
             nv["trigger/asr_nontarget"], Relation(">"), seed, wall["doorping_uint8"] + wall["naive"],
             f"{_pm(u, 'trigger/asr_nontarget')} vs {_pm(nv, 'trigger/asr_nontarget')}; {steps(u)}; tau pixels in "
             f"[{_tau_range(runs, 'doorping_uint8')}]; for contrast, the train/test mismatch (victims of the "
             f"unclamped S tested with its tau rendered to uint8 afterwards): {d['trigger_uint8/asr_nontarget']:.3f}",
             reference="clean S + same uint8 tau", rv=cl["doorping_uint8_trigger/asr_nontarget"],
             budget=bud("doorping_uint8", "naive")),
        _row("The realisable DOORPING keeps NAIVEATTACK's CTA (within 5 points)", "CTA", "DOORPING uint8-distilled",
             u["trigger/cta"], "NAIVEATTACK", nv["trigger/cta"], Relation(">=", -0.05), seed,
             wall["doorping_uint8"] + wall["naive"], f"{_pm(u, 'trigger/cta')} vs {_pm(nv, 'trigger/cta')}",
             reference="majority class", rv=majority, budget=bud("doorping_uint8", "naive")),
    ]
    return rows


def _tau_range(runs: dict, arm: str) -> str:
    trig, data = runs[arm]["trigger"], runs[arm]["data"]
    pix = data.to_pixels(trig["tau"])[trig["mask"].bool()]
    return f"{float(pix.min()):.3g}, {float(pix.max()):.3g}"


def defend_all(cfg: Config, runs: dict, seed: int) -> tuple[dict, float]:
    """Every defense on every victim of every arm: {arm: [metrics per victim]}, wall seconds.

    Each arm's victims are tested with that arm's own trigger; the clean victims with the faithful DOORPING tau
    (a control: what the defenses see on a model without the backdoor). Activation clustering and spectral
    signatures scan the arm's own S.
    """
    t0 = time.perf_counter()
    out = {}
    for arm in DEFENDED:
        r = runs[arm]
        trig = runs["doorping" if arm == "clean" else arm]["trigger"]
        cx, cy = defender_data(cfg, r["data"])
        gen = torch.Generator().manual_seed(seed + 17)
        out[arm] = [defense_metrics(net, r["data"], cx, cy, trig["tau"], trig["mask"], cfg.attack.trigger_label,
                                    cfg.defense, gen, r["syn"]) for net in r["nets"]]
    return out, time.perf_counter() - t0


def _mean(per: list[dict], key: str) -> float:
    return float(np.mean([float(v[key]) for v in per]))


def _defense_rows(cfg: Config, runs: dict, seed: int) -> list[Measurement]:
    res, w = defend_all(cfg, runs, seed)
    dc = cfg.defense
    budget = {"method": {"victims": len(res["doorping"]), "nc_steps": dc.nc_steps, "strip_overlays": dc.strip_overlays,
                         "finetune_epochs": dc.finetune_epochs, "num_clean": dc.num_clean, "wall_s": round(w, 1)}}

    def others(key: str, fmt: str = ".2f") -> str:
        return "; ".join(f"{NAMES[a]} victims {', '.join(format(float(v[key]), fmt) for v in res[a])}"
                         for a in DEFENDED)

    d = res["doorping"]
    rows = [
        _row("DOORPING evades Neural Cleanse (target class not flagged)",
             "flag score of the target class (anomaly index if its norm is below the median, else 0; mean over "
             "victims)", "DOORPING victims", _mean(d, "nc_flag_score_target"), "flag threshold", 2.0, Relation("<"),
             seed, w, f"target flagged on {sum(v['nc_target_flagged'] for v in d)} of {len(d)} victims; per victim: "
             + others("nc_flag_score_target"), budget=budget),
        _row("DOORPING evades STRIP (triggered inputs not separable by entropy)", "STRIP detection AUROC (mean over "
             "victims)", "DOORPING victims", _mean(d, "strip_auroc"), "detection threshold", 0.9, Relation("<"), seed,
             w, "per victim: " + others("strip_auroc", ".3f"), budget=budget),
    ]
    for frac in dc.prune_fractions:
        key = f"finepruning/{frac:g}"
        rows.append(_row(f"DOORPING survives fine-pruning ({frac:g} of the last-conv channels pruned)",
                         "asr_nontarget after fine-pruning (mean over victims)", "DOORPING victims",
                         _mean(d, key + "/asr_nontarget"), "survival threshold", 0.5, Relation(">="), seed, w,
                         f"CTA after fine-pruning {_mean(d, key + '/cta'):.3f} (before "
                         f"{runs['doorping']['metrics']['trigger/cta']:.3f}); per victim asr_nontarget: "
                         + others(key + "/asr_nontarget", ".3f") + "; CTA: " + others(key + "/cta", ".3f"),
                         budget=budget))
    rows += [
        _row("DOORPING evades activation clustering on S (target class not flagged)",
             "share of victims whose activations flag the target class", "DOORPING victims",
             _mean(d, "ac_target_flagged"), "flag threshold", 0.5, Relation("<"), seed, w,
             "smaller-cluster share of the target class per victim: " + others("ac_smaller_size_target") + "; flagged "
             "classes: " + "; ".join(f"{NAMES[a]} {[v['ac_flagged'] for v in res[a]]}" for a in DEFENDED),
             budget=budget),
        _row("DOORPING evades spectral signatures on S (target class not flagged)",
             "spectral-ratio flag score of the target class (mean over victims)", "DOORPING victims",
             _mean(d, "ss_flag_score_target"), "flag threshold", 2.0, Relation("<"), seed, w,
             "per victim: " + others("ss_flag_score_target"), budget=budget),
    ]
    return rows


def plot_synthetic(runs: dict, path: Path) -> None:
    """The synthetic images per class (rows) for clean / NAIVE / DOORPING (panels), de-normalised."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from torchvision.utils import make_grid

    fig, axes = plt.subplots(1, 3, figsize=(13, 5))
    for ax, attack in zip(axes, ("clean", "naive", "doorping")):
        r = runs[attack]
        syn, data = r["syn"], r["data"]
        order = torch.argsort(syn["labels"], stable=True)
        pix = data.to_pixels(syn["images"][order]).clamp(0, 1).cpu()
        grid = make_grid(pix, nrow=max(1, len(order) // data.num_classes), padding=1, pad_value=1)
        ax.imshow(grid.permute(1, 2, 0).numpy())  # (C, H, W) -> (H, W, C)
        ax.set_title(f"{attack} (rows: classes 0..{data.num_classes - 1})")
        ax.axis("off")
    fig.suptitle("doorping: distilled sets (DC); only real images are ever stamped")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_trigger(runs: dict, path: Path) -> None:
    """The optimised DOORPING trigger: its patch values (pixel units) and a triggered test image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    r = runs["doorping"]
    trig, data = r["trigger"], r["data"]
    h = data.shape[1]
    s = int(trig["mask"][0, 0].sum().sqrt())
    patch = data.to_pixels(trig["tau"])[0, 0, h - 1 - s:h - 1, h - 1 - s:h - 1].cpu()
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    im = axes[0].imshow(patch.numpy(), cmap="coolwarm")
    for (i, j), v in zip([(i, j) for i in range(s) for j in range(s)], patch.flatten().tolist()):
        axes[0].text(j, i, f"{v:.3g}", ha="center", va="center", fontsize=9)
    fig.colorbar(im, ax=axes[0])
    axes[0].set_title("DOORPING patch (pixel units; valid [0, 1])")
    x = data.test_x[data.test_y != 0][:1]
    for ax, (name, tau) in zip(axes[1:], (("float tau", trig["tau"]), ("uint8-rendered tau", trig["tau_uint8"]))):
        stamped = x * (1 - trig["mask"]) + tau * trig["mask"]
        ax.imshow(data.to_pixels(stamped)[0, 0].clamp(0, 1).cpu().numpy(), cmap="gray", vmin=0, vmax=1)
        ax.set_title(f"test image + {name}")
        ax.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
