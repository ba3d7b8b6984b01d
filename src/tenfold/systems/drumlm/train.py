"""`tenfold train drumlm`: fine-tune A (pretrained LM) and B (random init), train C from scratch ("Language Models
are Drummers", Zhang, Callison-Burch; arXiv 2301.01162; spec section 3 step 2).

Per arm, in `train.arms` order: AdamW, linear warm-up (`train.warmup` of the steps) then cosine decay to 0;
`completion_lm_loss` (completion mean NLL + 0.01 x prompt mean NLL); bf16 autocast for A / B when `train.bf16`;
gradient clipping at `train.grad_clip`; a non-finite loss stops the run. A, B and C see the same records in the
same seeded order (one permutation per epoch); A and B get the same steps and batch, C its own.

Run directory: config.json, metrics.jsonl (one record per logged step: arm, step, losses, lr, tokens/s),
models/<arm>.safetensors (the weights evaluate / predict read), arms.json (each arm's budget: steps, tokens, wall
time), checkpoints/last.pt (which arms are done; C's mid-arm state every `train.checkpoint_every` steps),
summary.json. Resume after a kill: finished arms are skipped; C resumes from its last mid-arm checkpoint; an
interrupted A / B restarts its arm (Design choice: a mid-arm checkpoint of the 135 M model with AdamW states
is ~1.6 GB, more than re-running the quick profile's 36 steps).
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import torch

from tenfold.core.runs import RunDir
from tenfold.core.runtime import LOGGER_NAME, progress_bar

from .arms import Arm, batch_terms, build_arm, collate, encode, load_records, save_arm, write_json
from .config import ARMS, Config

log = logging.getLogger(LOGGER_NAME)


def arm_seed(cfg: Config, name: str) -> int:
    """Initialisation seed of an arm (B and C draw their weights from it; A's weights are the GGUF)."""
    return cfg.seed


def schedule(step: int, total: int, warmup: float) -> float:
    """Learning-rate factor: linear warm-up over ceil(warmup * total) steps, then cosine to 0 (spec 3: warm-up
    3 %, cosine)."""
    w = math.ceil(warmup * total)
    if step < w:
        return (step + 1) / w
    return 0.5 * (1 + math.cos(math.pi * (step - w) / max(1, total - w)))


def arm_hparams(cfg: Config, name: str, num_records: int) -> dict[str, Any]:
    t = cfg.train
    if name == "C":
        batch, steps, lr = t.batch_c, t.steps_c, t.lr_c
    else:
        batch, steps, lr = t.batch_lm, t.steps_lm, (t.lr_a if name == "A" else t.lr_b)
    if steps == 0:
        steps = math.ceil(t.epochs * num_records / batch)
    return {"batch": batch, "steps": steps, "lr": lr}


def batch_order(seed: int, num_records: int, steps: int, batch: int) -> list[list[int]]:
    """The record indices of every step: seeded permutations, one per epoch, cut into batches (the same for every
    arm with the same batch size, so A and B see the same records in the same order)."""
    gen = torch.Generator().manual_seed(seed)
    flat: list[int] = []
    while len(flat) < steps * batch:
        flat += torch.randperm(num_records, generator=gen).tolist()
    return [flat[s * batch:(s + 1) * batch] for s in range(steps)]


def make_optimizer(cfg: Config, arm: Arm, hp: dict[str, Any]) -> tuple[list[torch.nn.Parameter],
                                                                        torch.optim.Optimizer,
                                                                        torch.optim.lr_scheduler.LambdaLR]:
    """(trainable parameters, AdamW over them, warm-up + cosine schedule) of one arm with `arm_hparams` `hp`
    (with LoRA only the adapters require grad)."""
    params = [p for p in arm.model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=hp["lr"], weight_decay=cfg.train.weight_decay)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: schedule(s, hp["steps"], cfg.train.warmup))
    return params, opt, sched


def train_step(cfg: Config, arm: Arm, batch: dict[str, torch.Tensor], params: list[torch.nn.Parameter],
               opt: torch.optim.Optimizer, sched: torch.optim.lr_scheduler.LambdaLR, bf16: bool,
               step: int) -> dict[str, torch.Tensor]:
    """One optimiser step on a `collate` batch: forward and `completion_lm_loss` (bf16 autocast when `bf16`),
    stop on a non-finite loss, backward, clip at `train.grad_clip`, AdamW step, schedule step. Returns the loss
    terms (also what benchmarks/drumlm_bench.py times for the fine-tuning tokens/s)."""
    with torch.autocast(torch.device(cfg.device).type, dtype=torch.bfloat16, enabled=bf16):
        terms = batch_terms(arm, batch, cfg.train.weight_prompt)
    if not torch.isfinite(terms["loss"]):
        raise FloatingPointError(f"drumlm arm {arm.name}: non-finite loss at step {step}; stopping "
                                 f"(lr {sched.base_lrs[0]}, bf16 {bf16})")
    opt.zero_grad(set_to_none=True)
    terms["loss"].backward()
    torch.nn.utils.clip_grad_norm_(params, cfg.train.grad_clip)
    opt.step()
    sched.step()
    return terms


def train_arm(cfg: Config, run: RunDir, name: str, records: list[dict[str, str]], state: dict[str, Any],
              step0: int) -> dict[str, Any]:
    """Train one arm; returns its budget {steps, batch, lr, tokens, wall_s, parameters, final losses}."""
    arm = build_arm(cfg, name, arm_seed(cfg, name))
    hp = arm_hparams(cfg, name, len(records))
    params, opt, sched = make_optimizer(cfg, arm, hp)
    start, tokens, wall0 = 0, 0, 0.0
    if state.get("arm") == name and "model" in state:  # resume C mid-arm
        arm.model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        start, tokens, wall0 = int(state["step"]), int(state["tokens"]), float(state["wall_s"])
    encoded = [encode(arm, r) for r in records]
    order = batch_order(cfg.seed, len(records), hp["steps"], hp["batch"])
    bf16 = cfg.train.bf16 and arm.kind == "hf"
    arm.model.train()
    t0 = time.perf_counter() - wall0
    terms: dict[str, Any] = {}
    with progress_bar(hp["steps"] - start, f"drumlm train {name}") as bar:
        for step in range(start, hp["steps"]):
            batch = collate([encoded[i] for i in order[step]], arm.codec.pad_id)
            ts = time.perf_counter()
            terms = train_step(cfg, arm, batch, params, opt, sched, bf16, step)
            n_tok = int(batch["is_real"].sum())
            tokens += n_tok
            if (step + 1) % cfg.train.log_every == 0 or step + 1 == hp["steps"]:
                run.log_metrics({"step": step0 + step + 1, "arm": name, "arm_step": step + 1,
                                 "loss": terms["loss"].item(), "loss_completion": terms["loss_completion"].item(),
                                 "loss_prompt": terms["loss_prompt"].item(), "lr": sched.get_last_lr()[0],
                                 "tokens_per_s": n_tok / max(time.perf_counter() - ts, 1e-9)})
            if arm.kind == "scratch" and (step + 1) % cfg.train.checkpoint_every == 0 and step + 1 < hp["steps"]:
                run.save_checkpoint({**_done_state(state), "arm": name, "step": step + 1, "tokens": tokens,
                                     "wall_s": time.perf_counter() - t0, "model": arm.model.state_dict(),
                                     "optimizer": opt.state_dict(), "scheduler": sched.state_dict()})
            bar.update(1)
    save_arm(cfg, arm, run.path)
    return {**hp, "tokens": tokens, "wall_s": round(time.perf_counter() - t0, 2),
            "trainable_parameters": sum(p.numel() for p in params), "bf16": bf16,
            "lora": cfg.lm.lora and name == "A", "model": arm.info.get("name", name),
            "final_loss_completion": terms["loss_completion"].item() if terms else math.nan}


def _done_state(state: dict[str, Any]) -> dict[str, Any]:
    return {"done": list(state.get("done", [])), "global_step": int(state.get("global_step", 0))}


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Train every arm of `train.arms` into `run_dir`; resumes from its checkpoint. Returns the summary metrics."""
    t0 = time.perf_counter()
    run = RunDir(Path(run_dir))
    _, records = load_records(cfg)  # inputs validated before the first write
    run.write_config(cfg)
    state = run.load_checkpoint() or {"done": [], "global_step": 0}
    run.truncate_metrics(int(state.get("global_step", 0)) + int(state.get("step", 0)))
    budgets = _read_budgets(run)
    for name in [a for a in ARMS if a in cfg.train.arms]:
        if name in state["done"]:
            continue
        log.info("drumlm: training arm %s", name)
        budgets[name] = train_arm(cfg, run, name, records["train"], state, int(state.get("global_step", 0)))
        write_json(run.path / "arms.json", budgets)
        state = {"done": [*state["done"], name], "global_step": int(state.get("global_step", 0))
                 + budgets[name]["steps"]}
        run.save_checkpoint(state)
    metrics = {f"{k}_{a}": v for a, b in budgets.items() for k, v in b.items()
               if k in ("steps", "tokens", "wall_s", "final_loss_completion")}
    metrics["train_records"] = len(records["train"])
    run.write_summary(metrics, time.perf_counter() - t0, cfg.device)
    return metrics


def _read_budgets(run: RunDir) -> dict[str, Any]:
    import json

    path = run.path / "arms.json"
    return json.loads(path.read_text()) if path.exists() else {}


__all__ = ["train", "train_arm", "train_step", "make_optimizer", "schedule", "batch_order", "Arm"]
