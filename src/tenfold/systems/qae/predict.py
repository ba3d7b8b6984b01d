"""`tenfold predict qae`: apply a trained encoder to a user's own states (arXiv 2005.11149).

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Steps:
 1. read the run: config.json, the final checkpoint (always, weights_only: a damaged run is refused) and the learned
    encoder's unitary U (d, d) (unitary.npy, written by train, header checked before loading; else the final
    checkpoint's parameters through encoder.encoder_unitary);
 2. read the user's kets or density matrix with the states-file reader of data.py (the same .npz formats as
    `data.states_file`: `states` (N, 2^n) [+ `weights` (N,)], or `rho` (2^n, 2^n));
 3. per state: F_enc,i = Tr[P U |psi_i><psi_i| U^dagger] (the trained "compression rate"), and F_dec,i for kets
    with the default trash wires; for the ensemble: the weighted mean F_enc and the bound B_k(rho);
 4. write them with U to the output file, `.npz` or `.json` by its suffix (README "predict").
"""

from __future__ import annotations

import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_bytes
from tenfold.systems.qae.bound import compression_bound
from tenfold.systems.qae.config import Config
from tenfold.systems.qae.data import Ensemble, check_latent, load_states_file, npy_header
from tenfold.systems.qae.encoder import build_control_system, encoder_unitary, final_params, load_ensemble
from tenfold.systems.qae.loss import decoding_fidelity, encoding_fidelity, trash_projector

OUTPUT_SUFFIXES = (".npz", ".json")
UNITARY_TOL = 1e-8


UNITARY_FORM = "a (2^n, 2^n) complex unitary .npy written by `tenfold train qae`"


def _check_unitary(U: torch.Tensor, label: str) -> torch.Tensor:
    """U (d, d) must be finite and unitary within UNITARY_TOL."""
    d = U.shape[0]
    if not torch.isfinite(torch.view_as_real(U)).all():
        raise InputError(f"{label}: contains NaN or inf; expected {UNITARY_FORM}")
    err = float((U @ U.mH - torch.eye(d, dtype=U.dtype)).abs().max())
    if not err <= UNITARY_TOL:
        raise InputError(f"{label}: not unitary (max |U U^dagger - I| = {err:.3g} > {UNITARY_TOL:g})")
    return U


def read_unitary(path: Path) -> torch.Tensor:
    """unitary.npy -> U (d, d) complex128; the header (numeric dtype, square 2^n <= 2^MAX_QUBITS) is checked first."""
    label = str(path)
    shape, _ = npy_header(path, label, UNITARY_FORM, dims=2)
    d = shape[0] if len(shape) == 2 else 0
    if len(shape) != 2 or shape[1] != d or d < 2 or 2 ** int(round(math.log2(d))) != d:
        raise InputError(f"{label}: expected a (2^n, 2^n) unitary, got shape {shape}")
    try:
        a = np.load(path, allow_pickle=False)
    except Exception as err:  # truncated data, bad header: np.load raises several types
        raise InputError(f"{label}: not a readable .npy array ({type(err).__name__}); "
                         f"expected {UNITARY_FORM}") from None
    return _check_unitary(torch.as_tensor(a.astype(np.complex128)), label)


def load_run(run_dir: Path) -> tuple[Config, torch.Tensor]:
    """(config, U (d, d) complex128) of a finished `tenfold train qae` run.

    The final checkpoint is always read (weights_only: a truncated or crafted file is refused, never unpickled),
    even when U comes from unitary.npy: a run whose checkpoint is damaged is not trusted.
    """
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise InputError(f"{run.config_path}: not found; --run must be a directory written by `tenfold train qae`")
    cfg = run.read_config(Config)
    ckpt = run.load_checkpoint()
    if ckpt is None or ckpt.get("kind") != "final":
        raise InputError(f"{run.checkpoint_path}: no final checkpoint; run `tenfold train qae` to the end first")
    path = Path(run_dir) / "unitary.npy"
    if path.is_file():
        U = read_unitary(path)
    else:  # runs written before train saved unitary.npy: rebuild U from the final parameters
        n = load_ensemble(cfg).num_qubits  # the run's own ensemble fixes n
        system = build_control_system(cfg, n)
        params = final_params(cfg, ckpt, run.checkpoint_path, system, n)
        U = _check_unitary(encoder_unitary(cfg, system, n, params), str(run.checkpoint_path))
    check_latent(int(round(math.log2(U.shape[0]))), cfg.model.num_latent_qubits)
    return cfg, U


def predict_fidelities(cfg: Config, U: torch.Tensor, ens: Ensemble) -> dict[str, Any]:
    """Per-state F_enc (N,) and weights (N,), F_dec (N,) for kets with the default wires, mean F_enc and B_k."""
    n, k = ens.num_qubits, cfg.model.num_latent_qubits
    P = trash_projector(n, k, trash_wires=list(cfg.data.trash_wires) or None)
    if ens.kets is not None:
        states = ens.kets[:, :, None] * ens.kets.conj()[:, None, :]  # (N, d, d): |psi_i><psi_i|
        weights = ens.probs
    else:
        states, weights = ens.rho[None], torch.ones(1, dtype=torch.float64)  # one mixed state
    f_enc = encoding_fidelity(U, states, P)  # (N,)
    out = {"encoding_fidelity": f_enc.numpy(), "weights": weights.numpy(),
           "mean_encoding_fidelity": float((weights * f_enc).sum()),
           "bound": float(compression_bound(ens.rho, k)), "decoding_fidelity": None}
    if ens.kets is not None and not cfg.data.trash_wires:
        out["decoding_fidelity"] = decoding_fidelity(U, ens.kets, ens.probs, n, k)[0].numpy()
    return out


def _write(output_path: Path, result: dict[str, Any], U: torch.Tensor, n: int, k: int) -> None:
    u = U.numpy()
    if output_path.suffix == ".npz":
        arrays = {"encoding_fidelity": result["encoding_fidelity"], "weights": result["weights"], "unitary": u,
                  "mean_encoding_fidelity": np.float64(result["mean_encoding_fidelity"]),
                  "bound": np.float64(result["bound"])}
        if result["decoding_fidelity"] is not None:
            arrays["decoding_fidelity"] = result["decoding_fidelity"]
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        atomic_write_bytes(output_path, buf.getvalue())
        return
    payload = {"num_qubits": n, "num_latent_qubits": k,
               "encoding_fidelity": result["encoding_fidelity"].tolist(), "weights": result["weights"].tolist(),
               "decoding_fidelity": None if result["decoding_fidelity"] is None
               else result["decoding_fidelity"].tolist(),
               "mean_encoding_fidelity": result["mean_encoding_fidelity"], "bound": result["bound"],
               "unitary": {"real": u.real.tolist(), "imag": u.imag.tolist()}}
    atomic_write_bytes(output_path, (json.dumps(payload, indent=1) + "\n").encode("utf-8"))


def predict(run_dir: Path, input_path: Path, output_path: Path) -> dict[str, Any]:
    """Encoder fidelities of the user's states under a trained run; writes `output_path`, returns a summary.

    Raises InputError (exit 2) for a run directory without a trained encoder, an unreadable or invalid states
    file (the messages of data.load_states_file name the file and the field), states whose qubit count differs
    from the run's, or an output suffix other than .npz / .json. Nothing is written unless every check passed.
    """
    run_dir, input_path, output_path = Path(run_dir), Path(input_path), Path(output_path)
    if output_path.suffix not in OUTPUT_SUFFIXES:
        raise InputError(f"--output {output_path}: unknown suffix {output_path.suffix!r}; expected one of "
                         f"{', '.join(OUTPUT_SUFFIXES)}")
    cfg, U = load_run(run_dir)
    n_run = int(round(math.log2(U.shape[0])))
    ens = load_states_file(input_path)
    if ens.num_qubits != n_run:
        raise InputError(f"{input_path}: states of {ens.num_qubits} qubits (dimension {2**ens.num_qubits}), but the "
                         f"run in {run_dir} encodes {n_run} qubits (dimension {2**n_run})")
    result = predict_fidelities(cfg, U, ens)
    _write(output_path, result, U, n_run, cfg.model.num_latent_qubits)
    return {"num_states": int(result["encoding_fidelity"].shape[0]), "num_qubits": n_run,
            "num_latent_qubits": cfg.model.num_latent_qubits,
            "mean_encoding_fidelity": result["mean_encoding_fidelity"], "bound": result["bound"],
            "min_encoding_fidelity": float(result["encoding_fidelity"].min()), "output": str(output_path)}
