"""Training of `qae` (arXiv 2005.11149): one learner, one ensemble, one run directory.

Steps (spec section 3):
 1. build rho from the ensemble (or the user's .npz), P from (n, k, trash wires) and the control system
    (default, or the user's `model.control_file`) -- encoder.build_problem;
 2. check and log the controllability (Lie-algebra rank) before training (pitfall 4);
 3.-4. run the learner (Adam-GRAPE by default) with checkpoints every `train.checkpoint_every`
    iterations; `train` re-run on the same directory resumes from the last checkpoint;
 5. compute the bound B_k(rho) for the report only (the learner never sees it); write summary.json with
    `encoding_fidelity`, `bound`, the gap, the evaluation counts (simulation and hardware cost), the
    controllability report, and `unitary.npy` (the learned encoder's U, read by predict.py).
"""

from __future__ import annotations

import dataclasses
import io
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_bytes
from tenfold.core.runtime import progress_bar, seed_everything, select_device, torch_threads
from tenfold.systems.qae import learning
from tenfold.systems.qae.config import GRADIENT_LEARNERS, Config
from tenfold.systems.qae.control import ControlSystem, controllability
from tenfold.systems.qae.data import Ensemble
from tenfold.systems.qae.encoder import build_problem, encoder_metrics, encoder_unitary, final_params

log = logging.getLogger("tenfold.qae")


def run_learner(cfg: Config, ens: Ensemble, P: torch.Tensor, system: ControlSystem, run: RunDir | None,
                generator: torch.Generator) -> learning.LearnResult:
    """Dispatch to the configured learner; gradient learners checkpoint into `run` and resume from it."""
    t = cfg.train
    name = t.learner
    if cfg.model.encoder == "unitary":
        return learning.train_unitary_encoder(ens.rho, P, iters=t.iters, lr=t.lr, generator=generator)
    if cfg.model.encoder == "circuit":
        return learning.train_circuit_encoder(ens.rho, P, ens.num_qubits, num_layers=cfg.model.num_layers,
                                              iters=t.iters, lr=t.lr, generator=generator)
    if name in GRADIENT_LEARNERS:
        return _grape_with_checkpoints(cfg, ens, P, system, run, generator)
    if name == "unitary_ascent":
        return learning.unitary_group_ascent(ens.rho, P, eta=t.ascent_eta, steps=t.ascent_steps, generator=generator,
                                             num_starts=t.ascent_starts)
    kw: dict[str, Any] = {"max_evaluations": t.max_evaluations, "u_max": cfg.model.u_max, "seed": cfg.seed}
    if name == "de":
        return learning.differential_evolution(system, ens.rho, P, popsize_per_dim=t.de_popsize_per_dim, **kw)
    if name == "nelder_mead":
        return learning.nelder_mead(system, ens.rho, P, **kw)
    if name == "cobyla":
        return learning.cobyla(system, ens.rho, P, **kw)
    if name == "spsa":
        return learning.spsa(system, ens.rho, P, shots=t.shots, **kw)
    raise AssertionError(f"unhandled learner {name!r}")  # Config validation makes this unreachable


def _grape_with_checkpoints(cfg: Config, ens: Ensemble, P: torch.Tensor, system: ControlSystem,
                            run: RunDir | None, generator: torch.Generator) -> learning.LearnResult:
    t = cfg.train
    optimizer = t.learner.removeprefix("grape_")
    ckpt = run.load_checkpoint() if run is not None else None
    start_iter, init_u, opt_state = 0, None, None
    prior_evals, prior_hist = np.zeros(0, dtype=np.int64), np.zeros(0)
    if ckpt is not None and ckpt.get("kind") == "grape":
        start_iter, opt_state = ckpt["iter"], ckpt["optimizer"]
        init_u = torch.as_tensor(ckpt["u"], dtype=torch.float64)
        prior_evals, prior_hist = np.asarray(ckpt["evaluations"]), np.asarray(ckpt["history"])
        run.truncate_metrics(start_iter)
        log.info("resuming %s from iteration %d", t.learner, start_iter)
    bar = progress_bar(t.iters, f"qae {t.learner}")
    bar.update(start_iter)

    def on_step(it: int, u: torch.Tensor, opt: torch.optim.Optimizer, hist: dict) -> None:
        bar.update(1)
        bar.set_postfix(F_enc=f"{hist['history'][-1]:.6f}")
        if run is None:
            return
        run.log_metrics({"step": it + 1, "encoding_fidelity": float(hist["history"][-1]),
                         "evaluations": int(hist["evaluations"][-1])})
        if (it + 1) % t.checkpoint_every == 0 or it + 1 == t.iters:
            run.save_checkpoint({"kind": "grape", "iter": it + 1, "u": u.detach().clone(),
                                 "optimizer": opt.state_dict(),
                                 "evaluations": np.concatenate([prior_evals, hist["evaluations"]]),
                                 "history": np.concatenate([prior_hist, hist["history"]])})

    try:
        result = learning.grape(system, ens.rho, P, optimizer=optimizer, iters=t.iters, lr=t.lr,
                                u_max=cfg.model.u_max, generator=generator, init_u=init_u,
                                optimizer_state=opt_state, start_iter=start_iter, on_step=on_step)
    finally:
        bar.close()
    # A resumed run's curve starts with the iterations before the kill (wall times of those are not kept).
    evals = np.concatenate([prior_evals, result.evaluations])
    return dataclasses.replace(result, evaluations=evals, history=np.concatenate([prior_hist, result.history]),
                               hardware_evaluations=learning.grape_hardware_evaluations(
                                   evals, system.num_slices, system.num_controls), times=None)


def save_unitary(path: Path, U: torch.Tensor) -> None:
    """unitary.npy, written atomically (predict.py reads it)."""
    buf = io.BytesIO()
    np.save(buf, U.detach().numpy())
    atomic_write_bytes(path, buf.getvalue())


def check_controllability(cfg: Config, system: ControlSystem) -> dict[str, Any]:
    """Lie-algebra rank of the control system, logged before training (pitfall 4); {} for the non-control encoders."""
    if cfg.model.encoder != "control":
        return {}
    report = controllability(system.H0, system.Hc)
    log.info("qae control system: Lie-algebra rank %d of %d (%s)", report["lie_algebra_rank"], report["full_rank"],
             "controllable" if report["controllable"] else "NOT controllable")
    if not report["controllable"]:
        log.warning("qae: the control system is not controllable (Lie-algebra rank %d < %d): the bound B_k may be "
                    "unreachable with these controls", report["lie_algebra_rank"], report["full_rank"])
    return report


def _curve(ckpt: dict, key: str, path: Path, length: int | None = None) -> None:
    x = ckpt.get(key)
    if not isinstance(x, torch.Tensor) or x.ndim != 1 or (length is not None and x.shape[0] != length):
        raise InputError(f"{path}: field {key!r} must be a 1-D tensor{'' if length is None else f' of length {length}'}"
                         f", got {type(x).__name__ if not isinstance(x, torch.Tensor) else tuple(x.shape)}")


def _check_optimizer_state(cfg: Config, state: Any, path: Path, shape: tuple[int, int]) -> None:
    """The optimizer state must load into the learner's optimizer, its tensors finite and of the controls' shape."""
    where = f"{path}: field 'optimizer'"
    opt = learning._make_optimizer(cfg.train.learner.removeprefix("grape_"),
                                   [torch.zeros(shape, dtype=torch.float64, requires_grad=True)], cfg.train.lr)
    try:
        opt.load_state_dict(state)
    except Exception as err:  # not a dict, missing keys, wrong parameter groups: load_state_dict raises several types
        raise InputError(f"{where} is not a {cfg.train.learner} optimizer state ({type(err).__name__})") from None
    size = shape[0] * shape[1]

    def check(key: str, value: Any) -> None:  # Adam: exp_avg (Q, M), step (); L-BFGS: flat (Q*M,) tensors, lists
        if isinstance(value, (list, tuple)):
            for v in value:
                check(key, v)
        elif isinstance(value, torch.Tensor):
            finite = not value.is_floating_point() or bool(torch.isfinite(value).all())
            if (value.ndim > 0 and value.numel() != size) or not finite:
                raise InputError(f"{where}: entry {key!r} must be finite tensors of {size} = Q x M elements or "
                                 f"scalars, got shape {tuple(value.shape)}")
        elif not isinstance(value, (int, float, type(None))):
            raise InputError(f"{where}: entry {key!r} holds a {type(value).__name__}; expected tensors or numbers")

    for per_param in state["state"].values():
        for key, value in (per_param.items() if isinstance(per_param, dict) else [("state", per_param)]):
            check(str(key), value)


def check_checkpoint(cfg: Config, ckpt: dict | None, path: Path, system: ControlSystem, num_qubits: int) -> None:
    """A checkpoint to resume from (kind 'grape') or re-derive the summary of (kind 'final') must fit the config:
    a damaged or foreign file is refused (InputError naming it) before anything is written."""
    if ckpt is None:
        return
    if ckpt.get("kind") == "final":
        final_params(cfg, ckpt, path, system, num_qubits)
        _curve(ckpt, "evaluations", path)
        _curve(ckpt, "history", path, ckpt["evaluations"].shape[0])
        return
    if ckpt.get("kind") != "grape" or cfg.train.learner not in GRADIENT_LEARNERS:
        raise InputError(f"{path}: a checkpoint of kind {ckpt.get('kind')!r} cannot be resumed by learner "
                         f"{cfg.train.learner!r}; use a new --out directory")
    it, u = ckpt.get("iter"), ckpt.get("u")
    if not isinstance(it, int) or isinstance(it, bool) or not 0 <= it <= cfg.train.iters:
        raise InputError(f"{path}: field 'iter' must be an integer in [0, {cfg.train.iters}], got {it!r}")
    if (not isinstance(u, torch.Tensor) or not u.is_floating_point() or tuple(u.shape) != system.control_shape
            or not torch.isfinite(u).all()):
        raise InputError(f"{path}: field 'u' must be finite controls of shape {system.control_shape}")
    _check_optimizer_state(cfg, ckpt.get("optimizer"), path, system.control_shape)
    _curve(ckpt, "evaluations", path)
    _curve(ckpt, "history", path, ckpt["evaluations"].shape[0])


def train(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Train one encoder; write config.json, metrics.jsonl, checkpoints, unitary.npy and summary.json."""
    t0 = time.perf_counter()
    device = select_device(cfg.device)  # validates the name; "cuda" without a GPU is an error
    if device.type != "cpu":
        # Design choice: qae's 4x4..32x32 complex128 matrices run on the CPU whatever the device.
        log.warning("qae runs on the CPU (matrices up to 32x32); ignoring device %s", device)
    ens, P, system = build_problem(cfg)  # input errors surface here, before anything is written
    control = check_controllability(cfg, system)
    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()  # before the first write: a damaged checkpoint leaves the directory unchanged
    check_checkpoint(cfg, ckpt, run.checkpoint_path, system, ens.num_qubits)
    run.write_config(cfg)
    generator = seed_everything(cfg.seed)
    fresh = ckpt is None or ckpt.get("kind") != "final"
    if fresh:
        with torch_threads(1):  # 4x4..32x32 matrices: threading only adds overhead
            result = run_learner(cfg, ens, P, system, run, generator)
    else:  # a finished run: re-derive the summary only
        hardware = ckpt.get("hardware_evaluations")
        # Checkpoints hold tensors only (weights_only loading): back to numpy for LearnResult.
        result = learning.LearnResult(ckpt["learner"], np.asarray(ckpt["params"]), float("nan"),
                                      np.asarray(ckpt["evaluations"]), np.asarray(ckpt["history"]), 0.0,
                                      hardware_evaluations=None if hardware is None else np.asarray(hardware))
    run.save_checkpoint({"kind": "final", "learner": result.learner, "params": result.params,
                         "evaluations": result.evaluations, "history": result.history,
                         "hardware_evaluations": result.hardware_evaluations})
    if fresh and (cfg.train.learner not in GRADIENT_LEARNERS or cfg.model.encoder != "control"):
        for ev, f in zip(result.evaluations, result.history):
            run.log_metrics({"evaluations": int(ev), "encoding_fidelity": float(f)})
    U = encoder_unitary(cfg, system, ens.num_qubits, result.params)
    save_unitary(Path(run_dir) / "unitary.npy", U)
    metrics = encoder_metrics(cfg, ens, P, U)
    hardware = result.hardware_evaluations
    metrics.update({"learner": result.learner, "evaluations": int(result.evaluations[-1]),
                    "hardware_evaluations": None if hardware is None else int(hardware[-1]),
                    "learner_wall_time_s": result.wall_time_s, "max_history_minus_bound":
                    float(np.max(result.history) - metrics["bound"]), **control})
    run.write_summary(metrics, time.perf_counter() - t0, "cpu")
    log.info("qae %s: F_enc %.6f, bound %.6f", result.learner, metrics["encoding_fidelity"], metrics["bound"])
    return metrics
