"""Evaluation of a trained `qae` encoder (arXiv 2005.11149), spec section 3 "Inference".

Reports F_enc (per state and average), F_dec (pure inputs), the Uhlmann fidelity between the
input ensemble's rho and its reconstruction, B_k(rho), the gap B_k - F_enc, and exports U as
`unitary.npy` for cross-checking with `qutip.propagator`. The report itself is `encoder.encoder_metrics`
(shared with train.py, which this file does not import).
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import numpy as np

from tenfold.core.runs import RunDir, atomic_write_bytes, atomic_write_text
from tenfold.systems.qae.config import Config
from tenfold.systems.qae.encoder import build_problem, encoder_metrics, encoder_unitary, final_params


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Rebuild the problem from config.json, load the final checkpoint, report the metrics."""
    run = RunDir(run_dir)
    ckpt = run.load_checkpoint()  # weights_only: a damaged or crafted file is an InputError, never unpickled
    ens, P, system = build_problem(cfg)
    params = final_params(cfg, ckpt, run.checkpoint_path, system, ens.num_qubits)
    U = encoder_unitary(cfg, system, ens.num_qubits, params)
    metrics = encoder_metrics(cfg, ens, P, U)
    buf = io.BytesIO()
    np.save(buf, U.numpy())
    atomic_write_bytes(Path(run_dir) / "unitary.npy", buf.getvalue())  # predict reads it: never half-written
    atomic_write_text(Path(run_dir) / "eval.json", json.dumps(metrics, indent=2) + "\n")
    return metrics
