"""The quantum autoencoder's encoder: the problem it is learned for, and the learned encoder's unitary and report.

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Shared by train.py, evaluate.py, predict.py and reproduce.py (none of which import each other):
    the problem: ensemble rho, trash projector P, controlled system (default or a user's file)
                                                                   -> load_ensemble, build_control_system,
                                                                      build_problem
    U of a learned encoder from its parameters (controls, H, angles, or U itself) -> encoder_unitary
    decoder output U^dagger (omega (x) |ref><ref|) U, omega = Tr_B[U rho U^dagger] -> reconstruction
    per-state F_enc and F_dec (spec 2, components 3-4)              -> per_state_fidelities
    the inference report (spec 3): F_enc, F_dec, Uhlmann, B_k, gap  -> encoder_metrics
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.systems.qae.bound import compression_bound, is_lossless
from tenfold.systems.qae.config import Config
from tenfold.systems.qae.control import (ControlSystem, default_control_system, default_num_slices,
                                         load_control_file)
from tenfold.systems.qae.data import Ensemble, build_ensemble, check_latent, load_states_file
from tenfold.systems.qae.loss import (decoding_fidelity, encoding_fidelity, partial_trace, trash_projector,
                                      uhlmann_fidelity)


def load_ensemble(cfg: Config) -> Ensemble:
    """The user's states file when given, else the named generated ensemble (seeded by cfg.seed)."""
    if cfg.data.states_file:
        ens = load_states_file(Path(cfg.data.states_file))
    else:
        ens = build_ensemble(cfg.data.ensemble, cfg.seed)
    check_latent(ens.num_qubits, cfg.model.num_latent_qubits)
    return ens


def build_control_system(cfg: Config, num_qubits: int) -> ControlSystem:
    """model.control_file's drift and controls when given (checked against the ensemble's qubit count), else the
    default Ising ZZ + {X_q, Y_q} system; T = model.evolution_time, Q = model.num_slices (0: the default)."""
    q = cfg.model.num_slices or default_num_slices(num_qubits)
    if not cfg.model.control_file:
        return default_control_system(num_qubits, num_slices=q, T=cfg.model.evolution_time)
    drift, controls = load_control_file(cfg.model.control_file)
    if drift.shape[0] != 2**num_qubits:
        raise InputError(f"model.control_file {cfg.model.control_file}: Hamiltonians of dimension {drift.shape[0]} "
                         f"do not act on the ensemble's {num_qubits} qubits (dimension {2**num_qubits})")
    return ControlSystem(drift, controls, cfg.model.evolution_time, q)


def build_problem(cfg: Config) -> tuple[Ensemble, torch.Tensor, ControlSystem]:
    """Ensemble, trash projector P (d, d) and the control system of the config; input errors surface here."""
    ens = load_ensemble(cfg)
    n, k = ens.num_qubits, cfg.model.num_latent_qubits
    wires = list(cfg.data.trash_wires) or None
    P = trash_projector(n, k, trash_wires=wires)  # validates the wires (count, range, distinct)
    return ens, P, build_control_system(cfg, n)


def expected_params_shape(cfg: Config, system: ControlSystem, num_qubits: int) -> tuple[int, ...]:
    """Shape of the learner's final parameters: (num weights,), (d, d) for the ascent, else (Q, M) controls."""
    from tenfold.systems.qae.model import CircuitEncoder, UnitaryEncoder

    if cfg.model.encoder in ("unitary", "circuit"):
        enc = (UnitaryEncoder(num_qubits) if cfg.model.encoder == "unitary"
               else CircuitEncoder(num_qubits, num_layers=cfg.model.num_layers))
        return (sum(p.numel() for p in enc.parameters()),)
    if cfg.train.learner == "unitary_ascent":
        return (2**num_qubits, 2**num_qubits)
    return tuple(system.control_shape)


def final_params(cfg: Config, ckpt: dict | None, path: Path, system: ControlSystem, num_qubits: int) -> torch.Tensor:
    """The `params` of a run's final checkpoint (as read by RunDir.load_checkpoint), checked against the config.

    Raises InputError naming the checkpoint when it is not a final one, or `params` is not a finite numeric tensor
    of the shape the config's encoder and learner produce (a damaged or foreign checkpoint).
    """
    if ckpt is None or ckpt.get("kind") != "final":
        raise InputError(f"{path}: no final checkpoint; run `tenfold train qae` to the end first")
    p = ckpt.get("params")
    shape = expected_params_shape(cfg, system, num_qubits)
    if not isinstance(p, torch.Tensor) or p.dtype == torch.bool or not (p.is_floating_point() or p.is_complex()):
        raise InputError(f"{path}: field 'params' is {type(p).__name__ if not isinstance(p, torch.Tensor) else p.dtype}"
                         f"; expected a float tensor of shape {shape} written by `tenfold train qae`")
    if tuple(p.shape) != shape:
        raise InputError(f"{path}: field 'params' has shape {tuple(p.shape)}; the config's encoder expects {shape}")
    if not torch.isfinite(torch.view_as_real(p) if p.is_complex() else p).all():
        raise InputError(f"{path}: field 'params' contains NaN or inf; expected finite parameters")
    return p


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

    Default wire order only for F_dec (spec 2, components 3-4); F_enc uses P as given.
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
