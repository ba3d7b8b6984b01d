"""Evaluation of a trained `qae` encoder (arXiv 2005.11149), spec section 3 "Inference".

Reports F_enc (per state and average), F_dec (pure inputs), the Uhlmann fidelity between the
input ensemble's rho and its reconstruction, B_k(rho), the gap B_k - F_enc, and exports U as
`unitary.npy` for cross-checking with `qutip.propagator`.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.qae.bound import compression_bound, is_lossless
from tenfold.systems.qae.config import Config
from tenfold.systems.qae.control import ControlSystem
from tenfold.systems.qae.data import Ensemble
from tenfold.systems.qae.loss import decoding_fidelity, encoding_fidelity, partial_trace, uhlmann_fidelity


def encoder_unitary(cfg: Config, system: ControlSystem, num_qubits: int, params: Any) -> torch.Tensor:
    """Rebuild the encoder's unitary U (d, d) from a learner's final parameters."""
    from tenfold.systems.qae.model import CircuitEncoder, UnitaryEncoder

    p = torch.as_tensor(np.asarray(params))
    if cfg.model.encoder in ("unitary", "circuit"):
        enc = (UnitaryEncoder(num_qubits) if cfg.model.encoder == "unitary"
               else CircuitEncoder(num_qubits, num_layers=cfg.model.num_layers))
        torch.nn.utils.vector_to_parameters(p.to(torch.float64), enc.parameters())
        return enc.unitary().detach()
    if cfg.train.learner == "unitary_ascent":
        return p.to(torch.complex128)  # the ascent's parameter is U itself, (d, d)
    return system.propagator(p.to(torch.float64)).detach()


def reconstruction(U: torch.Tensor, rho: torch.Tensor, n: int, k: int) -> torch.Tensor:
    """Decoder output U^dagger (omega ⊗ |ref><ref|) U with omega = Tr_B[U rho U^dagger] (spec 3, "Inference").

    Default wire order only (trash = the last n - k qubits, reference |0...0>). The decoder is
    linear, so applied to the ensemble's rho it gives the reconstruction of the average state.
    """
    enc = U @ rho @ U.conj().T
    omega = partial_trace(enc, n, keep=list(range(k)))  # (2^k, 2^k)
    ref = torch.zeros(2 ** (n - k), 2 ** (n - k), dtype=torch.complex128)
    ref[0, 0] = 1.0
    return U.conj().T @ torch.kron(omega, ref) @ U


def per_state_fidelities(U: torch.Tensor, ens: Ensemble, k: int,
                         P: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F_enc (N,) and F_dec (N,) of every pure input state, and the ensemble's average F_dec.

    Default wire order only (spec 2, components 3-4).
    """
    projectors = ens.kets[:, :, None] * ens.kets.conj()[:, None, :]  # (N, d, d): |psi_i><psi_i|
    f_dec, f_dec_avg = decoding_fidelity(U, ens.kets, ens.probs, ens.num_qubits, k)
    return encoding_fidelity(U, projectors, P), f_dec, f_dec_avg


def encoder_metrics(cfg: Config, ens: Ensemble, P: torch.Tensor, U: torch.Tensor) -> dict:
    """The inference report of the encoder U (d, d) on the ensemble."""
    n, k = ens.num_qubits, cfg.model.num_latent_qubits
    f_enc = float(encoding_fidelity(U, ens.rho, P))
    bound = float(compression_bound(ens.rho, k))
    out: dict[str, Any] = {"encoding_fidelity": f_enc, "bound": bound, "gap": bound - f_enc,
                           "num_qubits": n, "num_latent_qubits": k,
                           "lossless_possible": bool(is_lossless(ens.rho, k))}
    if ens.kets is not None and not cfg.data.trash_wires:
        per_enc, per_dec, avg_dec = per_state_fidelities(U, ens, k, P)
        out["decoding_fidelity"] = float(avg_dec)
        out["encoding_fidelity_per_state"] = [float(x) for x in per_enc]
        out["decoding_fidelity_per_state"] = [float(x) for x in per_dec]
    if not cfg.data.trash_wires:
        out["uhlmann_fidelity"] = float(uhlmann_fidelity(ens.rho, reconstruction(U, ens.rho, n, k)))
    return out


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild the problem from config.json, load the final checkpoint, report the metrics."""
    from tenfold.systems.qae.train import build_problem

    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()
    if ckpt is None or ckpt.get("kind") != "final":
        raise FileNotFoundError(f"{run.checkpoint_path}: no final checkpoint; run `tenfold train` to the end first")
    ens, P, system = build_problem(cfg)
    U = encoder_unitary(cfg, system, ens.num_qubits, ckpt["params"])
    metrics = encoder_metrics(cfg, ens, P, U)
    np.save(Path(run_dir) / "unitary.npy", U.numpy())
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
