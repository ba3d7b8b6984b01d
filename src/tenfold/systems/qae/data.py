"""Input ensembles, the real-format reader and interop for the quantum autoencoder.

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Spec component -> function (specs/qae.md):
    1. ensembles {p_i, |psi_i>}, rho = sum_i p_i |psi_i><psi_i|   -> random_pure, ensemble_rho, werner, ghz,
       w_state, basis_states, tfim_thermal, spectrum_rho, maximally_mixed, random_full_rank
    section 4.1 named ensembles                                     -> ENSEMBLES, build_ensemble
    the same kinds on any n (full-profile sweep)                    -> random_pure_ensemble, random_full_rank_ensemble
    section 4.2 user inputs (.npz kets + weights, or rho)          -> load_states_file, validate_rho, validate_kets
    their limits, read from .npz / .npy headers before loading    -> MAX_QUBITS, MAX_FILE_BYTES, npz_headers, npy_header
    12. interop (QuTiP, Qiskit little-endian reversal, PennyLane)  -> to_qutip, from_qutip, from_qiskit,
                                                                      circuit_qnode

# Design choice: the paper's ensembles are not available; these are our guesses at their kind (spec 4.1).
Qubit order is big-endian (qubit 0 = leftmost kron factor).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import Tensor

from tenfold.core.errors import InputError
from tenfold.core import files
from tenfold.core.files import load_npz
from tenfold.systems.qae.control import pauli_on

CDTYPE = torch.complex128
RDTYPE = torch.float64
TOL = 1e-9  # Hermiticity and positivity
# Design choice: trace / norm / weight sums are accepted within 1e-6 (float32 files) and then renormalised exactly.
NORM_TOL = 1e-6
# Design choice: the largest register qae reads from a file (states, rho, control Hamiltonians, a run's unitary).
# The paper's cases have 2-3 qubits and the full profile sweeps 3-5 (reproduce.sweep_num_qubits allows 6). The
# controllability check before training (control.lie_algebra_rank: Gram-Schmidt over dim su(2^n) = 4^n - 1 real
# vectors of length 2 * 4^n) took 0.25 s at 4 qubits and had not finished after 3 minutes at 5 (measured on 2 cores);
# its basis alone is 256 MiB at 6. The unitary / circuit encoders and predict stay cheap at 6 qubits (d = 64), the
# most a laptop handles; a 12-qubit rho alone is 256 MiB before any check.
MAX_QUBITS = 6
# Design choice: a states / control / unitary file, and every array declared inside one, is at most 64 MiB
# (rho of 6 qubits: 64 KiB; 64 MiB holds ~65 000 kets of 6 qubits in complex128).
MAX_FILE_BYTES = 64 * 2**20
NUMERIC_KINDS = "biufc"  # bool, signed / unsigned int, float, complex: what an array field may hold


@dataclass(frozen=True)
class Ensemble:
    """An input ensemble: rho (d, d); kets (N, d) and probs (N,) when it is a pure-state ensemble."""

    name: str
    num_qubits: int
    rho: Tensor
    kets: Tensor | None = None
    probs: Tensor | None = None


# ---------------------------------------------------------------- states and ensembles (component 1)

def _complex_gaussian(shape: tuple[int, ...], generator: torch.Generator) -> Tensor:
    re = torch.randn(shape, generator=generator, dtype=RDTYPE)
    im = torch.randn(shape, generator=generator, dtype=RDTYPE)
    return torch.complex(re, im)


def random_pure(n: int, generator: torch.Generator) -> Tensor:
    """Haar-random pure state (2^n,) complex128: a normalised complex Gaussian vector."""
    v = _complex_gaussian((2**n,), generator)
    return v / torch.linalg.vector_norm(v)


def haar_unitary(d: int, generator: torch.Generator) -> Tensor:
    """Haar-random (d, d) unitary: QR of a complex Gaussian with the phases of R's diagonal removed."""
    q, r = torch.linalg.qr(_complex_gaussian((d, d), generator))
    phase = torch.diagonal(r) / torch.diagonal(r).abs()
    return q * phase.unsqueeze(0)


def ensemble_rho(kets: Tensor, probs: Tensor | None = None) -> Tensor:
    """rho = sum_i p_i |psi_i><psi_i| for kets (N, d), probs (N,) (uniform when None) -> (d, d)."""
    kets = kets.to(CDTYPE)
    if probs is None:
        probs = torch.full((kets.shape[0],), 1.0 / kets.shape[0], dtype=RDTYPE)
    return torch.einsum("n,na,nb->ab", probs.to(CDTYPE), kets, kets.conj())


def werner(p: float) -> Tensor:
    """p |Phi+><Phi+| + (1 - p) I/4 -> (4, 4)."""
    phi = torch.tensor([1, 0, 0, 1], dtype=CDTYPE) / math.sqrt(2)
    return p * torch.outer(phi, phi.conj()) + (1 - p) * torch.eye(4, dtype=CDTYPE) / 4


def ghz(n: int) -> Tensor:
    """(|0...0> + |1...1>)/sqrt(2) -> (2^n,)."""
    v = torch.zeros(2**n, dtype=CDTYPE)
    v[0] = v[-1] = 1 / math.sqrt(2)
    return v


def w_state(n: int) -> Tensor:
    """(|10...0> + |01...0> + ... + |0...01>)/sqrt(n) -> (2^n,)."""
    v = torch.zeros(2**n, dtype=CDTYPE)
    for q in range(n):
        v[1 << (n - 1 - q)] = 1 / math.sqrt(n)
    return v


def basis_states(n: int, indices: list[int]) -> Tensor:
    """Computational basis kets |indices[i]> (big-endian integer labels) -> (N, 2^n)."""
    kets = torch.zeros(len(indices), 2**n, dtype=CDTYPE)
    kets[torch.arange(len(indices)), torch.tensor(indices)] = 1.0
    return kets


def tfim_thermal(n: int, beta: float, h: float, J: float = 1.0) -> Tensor:
    """exp(-beta H)/Tr for H = -J sum_q Z_q Z_{q+1} - h sum_q X_q (open chain) -> (2^n, 2^n)."""
    d = 2**n
    H = torch.zeros(d, d, dtype=CDTYPE)
    for q in range(n - 1):
        H = H - J * pauli_on("Z", q, n) @ pauli_on("Z", q + 1, n)
    for q in range(n):
        H = H - h * pauli_on("X", q, n)
    g = torch.linalg.matrix_exp(-beta * H)
    g = 0.5 * (g + g.mH)
    return g / torch.trace(g)


def spectrum_rho(eigs: list[float] | Tensor, generator: torch.Generator) -> Tensor:
    """V diag(eigs) V^dagger with Haar V -> (d, d)."""
    lam = torch.as_tensor(eigs, dtype=RDTYPE)
    v = haar_unitary(lam.shape[0], generator)
    return (v * lam.to(CDTYPE)) @ v.mH


def maximally_mixed(n: int) -> Tensor:
    """I / 2^n."""
    return torch.eye(2**n, dtype=CDTYPE) / 2**n


def random_full_rank(n: int, generator: torch.Generator) -> Tensor:
    """Wishart G G^dagger / Tr with G a (d, d) complex Gaussian: full rank with probability 1."""
    g = _complex_gaussian((2**n, 2**n), generator)
    w = g @ g.mH
    return w / torch.trace(w)


def _pure(name: str, n: int, kets: Tensor) -> Ensemble:
    probs = torch.full((kets.shape[0],), 1.0 / kets.shape[0], dtype=RDTYPE)
    return Ensemble(name, n, ensemble_rho(kets, probs), kets, probs)


def _random_kets(name: str, n: int, count: int, seed: int) -> Ensemble:
    g = torch.Generator().manual_seed(seed)
    return _pure(name, n, torch.stack([random_pure(n, g) for _ in range(count)]))


def _mixed(name: str, n: int, rho: Tensor) -> Ensemble:
    return Ensemble(name, n, rho)


ENSEMBLES: dict[str, Callable[[int], Ensemble]] = {
    "two_random": lambda seed: _random_kets("two_random", 2, 2, seed),
    "three_random": lambda seed: _random_kets("three_random", 2, 3, seed),
    "four_random": lambda seed: _random_kets("four_random", 3, 4, seed),
    "ghz_w": lambda seed: _pure("ghz_w", 3, torch.stack([ghz(3), w_state(3)])),
    "basis3": lambda seed: _pure("basis3", 2, basis_states(2, [0, 1, 2])),
    "werner": lambda seed: _mixed("werner", 2, werner(0.6)),
    "maximally_mixed2": lambda seed: _mixed("maximally_mixed2", 2, maximally_mixed(2)),
    "maximally_mixed3": lambda seed: _mixed("maximally_mixed3", 3, maximally_mixed(3)),
    "paddle_spectrum": lambda seed: _mixed("paddle_spectrum", 3, spectrum_rho(
        [0.4, 0.2, 0.2, 0.1, 0.1, 0.0, 0.0, 0.0], torch.Generator().manual_seed(seed))),
    "tfim_thermal": lambda seed: _mixed("tfim_thermal", 3, tfim_thermal(3, beta=1.0, h=0.5)),
    "random_full_rank2": lambda seed: _mixed("random_full_rank2", 2,
                                             random_full_rank(2, torch.Generator().manual_seed(seed))),
    "random_full_rank3": lambda seed: _mixed("random_full_rank3", 3,
                                             random_full_rank(3, torch.Generator().manual_seed(seed))),
}


def random_pure_ensemble(n: int, count: int, seed: int) -> Ensemble:
    """`count` equiprobable Haar-random pure states of n qubits (any n; the full profile's 3-5 qubit sweep)."""
    return _random_kets(f"{count}_random{n}", n, count, seed)


def random_full_rank_ensemble(n: int, seed: int) -> Ensemble:
    """A Wishart random full-rank rho of n qubits (any n; the full profile's 3-5 qubit sweep)."""
    return _mixed(f"random_full_rank{n}", n, random_full_rank(n, torch.Generator().manual_seed(seed)))


def build_ensemble(name: str, seed: int = 0) -> Ensemble:
    """Build a named ensemble of spec section 4.1; `seed` drives every random choice."""
    if name not in ENSEMBLES:
        raise InputError(f"data.ensemble: unknown ensemble {name!r}; valid names: {sorted(ENSEMBLES)}")
    return ENSEMBLES[name](seed)


def check_latent(num_qubits: int, num_latent_qubits: int) -> None:
    """Require 0 <= k < n for model.num_latent_qubits."""
    if not 0 <= num_latent_qubits < num_qubits:
        raise InputError(f"model.num_latent_qubits must satisfy 0 <= k < n = {num_qubits}, "
                         f"got {num_latent_qubits}")


# ---------------------------------------------------------------- array files: checked before they are loaded

def check_file_size(path: Path, label: str) -> None:
    """Refuse a file over MAX_FILE_BYTES before reading it."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise InputError(f"{label}: file of {size} bytes exceeds the limit of {MAX_FILE_BYTES} bytes "
                         f"(data.MAX_FILE_BYTES); qae handles at most {MAX_QUBITS} qubits")


def _qubit_checks(dims: dict[str, int] | None) -> Any:
    """A `core.files.npz_headers` check: the last `dims[field]` axes of a field at most 2^MAX_QUBITS."""
    def check(name: str, shape: tuple[int, ...], dtype: Any, label: str) -> None:
        check_qubit_dims(shape, (dims or {}).get(name, 0), label)
    return check


def npz_headers(path: Path, label: str, expected: str,
                dims: dict[str, int] | None = None) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """{field: (shape, dtype)} of an .npz read from its members' headers only (the arrays are not loaded).

    `dims` maps a field to its number of trailing state axes (1 for kets, 2 for matrices), checked against MAX_QUBITS;
    each array and all of them together at most MAX_FILE_BYTES (a 12-qubit complex rho is refused, not allocated).
    """
    check_file_size(path, label)
    return files.npz_headers(path, label, f"{expected}; qae handles at most {MAX_QUBITS} qubits", MAX_FILE_BYTES,
                             _qubit_checks(dims))


def npy_header(path: Path, label: str, expected: str, dims: int = 0) -> tuple[tuple[int, ...], np.dtype]:
    """(shape, dtype) of an .npy file from its header only (`dims` as in npz_headers)."""
    check_file_size(path, label)
    with open(path, "rb") as f:
        return files.npy_header(f, label, f"{expected}; qae handles at most {MAX_QUBITS} qubits", MAX_FILE_BYTES,
                                lambda shape, dtype, lab: check_qubit_dims(shape, dims, lab))


def check_qubit_dims(shape: tuple[int, ...], dims: int, label: str) -> None:
    """Refuse, from a header's shape, a state dimension (the last `dims` axes) beyond 2^MAX_QUBITS."""
    for d in shape[len(shape) - dims:] if len(shape) >= dims else shape:
        if d > 2**MAX_QUBITS:
            raise InputError(f"{label}: dimension {d} exceeds 2^{MAX_QUBITS} = {2**MAX_QUBITS}; qae handles at most "
                             f"{MAX_QUBITS} qubits (data.MAX_QUBITS)")


# ---------------------------------------------------------------- validation (section 4.2)

def _power_of_two(d: int, source: str, what: str) -> int:
    n = int(round(math.log2(d))) if d > 0 else -1
    if d < 2 or 2**n != d:
        raise InputError(f"{source}: {what} dimension {d} is not a power of two 2^n (n >= 1)")
    return n


def _as_complex(x: Tensor | np.ndarray, source: str, expected: str) -> Tensor:
    """A numeric array (bool, int, float, complex) as a complex128 tensor; strings, objects, records are refused."""
    if isinstance(x, Tensor):
        return x.to(CDTYPE)
    a = np.asarray(x)
    if a.dtype.kind not in NUMERIC_KINDS or a.dtype.hasobject or a.dtype.fields is not None:
        raise InputError(f"{source}: dtype {a.dtype.str!r} is not numeric; expected {expected} "
                         "(real or complex numbers)")
    return torch.as_tensor(a.astype(np.complex128))


def validate_rho(rho: Tensor | np.ndarray, source: str = "rho") -> Tensor:
    """Check a density matrix: square 2^n x 2^n, finite, Hermitian and PSD (tol 1e-9), unit trace (tol 1e-6).

    Returns the complex128 matrix symmetrised and renormalised to trace exactly 1.
    """
    r = _as_complex(rho, source, "a (2^n, 2^n) density matrix")
    if r.ndim != 2 or r.shape[0] != r.shape[1]:
        raise InputError(f"{source} must be a square density matrix of shape (2^n, 2^n), got {tuple(r.shape)}")
    if not torch.isfinite(torch.view_as_real(r)).all():
        raise InputError(f"{source} contains NaN or inf; expected a finite (2^n, 2^n) density matrix")
    _power_of_two(r.shape[0], source, "density-matrix")
    check_qubit_dims(tuple(r.shape), 2, source)
    if float((r - r.mH).abs().max()) > TOL:
        raise InputError(f"{source} is not Hermitian (max |rho - rho^dagger| = {float((r - r.mH).abs().max()):.3g})")
    lam_min = float(torch.linalg.eigvalsh(r).min())
    if lam_min < -TOL:
        raise InputError(f"{source} is not positive semidefinite (smallest eigenvalue {lam_min:.3g} < -1e-9)")
    tr = complex(torch.trace(r))
    if abs(tr - 1.0) > NORM_TOL:
        raise InputError(f"{source} must have trace 1, got {tr.real:.6g}")
    return 0.5 * (r + r.mH) / tr.real  # exactly Hermitian, unit trace


def validate_kets(kets: Tensor | np.ndarray, probs: Tensor | np.ndarray | None = None,
                  source: str = "states") -> tuple[Tensor, Tensor]:
    """Check kets (N, 2^n), each of unit norm, and probs (N,) >= 0 summing to 1 (uniform when None); tol 1e-6.

    Returns (kets, probs) as complex128 / float64, renormalised exactly.
    """
    k = _as_complex(kets, source, "kets of shape (N, 2^n)")
    if k.ndim == 1:
        k = k.unsqueeze(0)
    if k.ndim != 2 or k.shape[0] < 1:
        raise InputError(f"{source} must have shape (N, 2^n) with N >= 1 (one ket per row), got {tuple(k.shape)}")
    if not torch.isfinite(torch.view_as_real(k)).all():
        raise InputError(f"{source} contains NaN or inf; expected finite kets of shape (N, 2^n)")
    _power_of_two(k.shape[1], source, "ket")
    check_qubit_dims(tuple(k.shape), 1, source)
    norms = torch.linalg.vector_norm(k, dim=1)
    bad = torch.nonzero((norms - 1).abs() > NORM_TOL).flatten().tolist()
    if bad:
        raise InputError(f"{source}: ket(s) {bad} not normalised (norms {norms[bad].tolist()}); expected unit norm")
    if probs is None:
        p = torch.full((k.shape[0],), 1.0 / k.shape[0], dtype=RDTYPE)
    else:
        p = _as_complex(probs, source, "weights of shape (N,)")
        if p.shape != (k.shape[0],):
            raise InputError(f"{source}: weights must have shape (N,) = ({k.shape[0]},), got {tuple(p.shape)}")
        if not torch.isfinite(torch.view_as_real(p)).all():
            raise InputError(f"{source}: weights contain NaN or inf; expected finite probabilities")
        if float(p.imag.abs().max()) > TOL:
            raise InputError(f"{source}: weights must be real")
        p = p.real.to(RDTYPE)
        if (p < 0).any():
            raise InputError(f"{source}: weights must be non-negative, got {p.tolist()}")
        if abs(float(p.sum()) - 1.0) > NORM_TOL:
            raise InputError(f"{source}: weights must sum to 1, got sum {float(p.sum()):.6g}")
    return k / norms.unsqueeze(1), p / p.sum()


STATES_FILE_FORM = "an .npz with field 'states' (N, 2^n) [+ 'weights' (N,)] or field 'rho' (2^n, 2^n), numeric"


def _check_states_headers(path: Path, headers: dict[str, tuple[tuple[int, ...], np.dtype]]) -> None:
    """Shapes of the fields from the .npz headers, before any array is loaded (MAX_QUBITS, N >= 1, ndim)."""
    if "states" not in headers and "rho" not in headers:
        raise InputError(f"{path}: neither field 'states' nor field 'rho' present (found {sorted(headers)}); "
                         f"expected {STATES_FILE_FORM}")
    field, form = ("states", "(N, 2^n), one ket per row, N >= 1") if "states" in headers else ("rho", "(2^n, 2^n)")
    shape = headers[field][0]
    check_qubit_dims(shape, 1 if field == "states" else 2, f"{path}: field {field!r}")
    if len(shape) != 2 or shape[0] < 1:
        raise InputError(f"{path}: field {field!r} must have shape {form}; got shape {shape}")
    if field == "states" and "weights" in headers and len(headers["weights"][0]) != 1:
        raise InputError(f"{path}: field 'weights' must have shape (N,) = ({shape[0]},); got {headers['weights'][0]}")


def load_states_file(path: str | Path) -> Ensemble:
    """Read an .npz with `states` (N, 2^n) complex [+ optional `weights` (N,)] or `rho` (2^n, 2^n).

    The .npz headers are checked (numeric dtype, at most MAX_QUBITS qubits, at most MAX_FILE_BYTES) before any array
    is loaded; then the values (finite, normalised, Hermitian PSD unit-trace rho, weights a distribution).
    """
    path = Path(path)
    name = path.name
    if not path.is_file():
        raise InputError(f"{path}: file not found; expected {STATES_FILE_FORM}")
    _check_states_headers(path, npz_headers(path, str(path), STATES_FILE_FORM, {"states": 1, "rho": 2}))
    fields = load_npz(path, STATES_FILE_FORM)
    if "states" in fields:
        kets, probs = validate_kets(fields["states"], fields.get("weights"), source=f"{path}: field 'states'/'weights'")
        n = int(round(math.log2(kets.shape[1])))
        return Ensemble(name, n, ensemble_rho(kets, probs), kets, probs)
    rho = validate_rho(fields["rho"], source=f"{path}: field 'rho'")
    return Ensemble(name, int(round(math.log2(rho.shape[0]))), rho)


# ---------------------------------------------------------------- interop (component 12)

def to_qutip(x: Tensor) -> Any:
    """Torch ket (d,) or operator (d, d) -> qutip.Qobj with big-endian [[2]*n, ...] dims."""
    import qutip

    n = int(round(math.log2(x.shape[0])))
    arr = x.detach().cpu().numpy()
    if x.ndim == 1:
        return qutip.Qobj(arr.reshape(-1, 1), dims=[[2] * n, [1]])
    return qutip.Qobj(arr, dims=[[2] * n, [2] * n])


def from_qutip(qobj: Any) -> Tensor:
    """qutip ket -> (d,) or operator -> (d, d) complex128 (QuTiP is already big-endian)."""
    arr = np.asarray(qobj.full())
    if qobj.isket:
        return torch.as_tensor(arr.reshape(-1)).to(CDTYPE)
    if qobj.isbra:
        return torch.as_tensor(arr.reshape(-1).conj()).to(CDTYPE)
    return torch.as_tensor(arr).to(CDTYPE)


def from_qiskit(obj: Any) -> Tensor:
    """Qiskit Statevector / DensityMatrix (anything with `.data` and `.num_qubits`) -> tenfold big-endian tensor.

    Qiskit is little-endian (qubit 0 is the least significant bit); reversing the qubit axes gives tenfold's
    big-endian order (pitfall 3). Statevector.from_label("01") (Qiskit index 1) -> tenfold index 2.
    """
    data = np.asarray(obj.data)
    n = int(obj.num_qubits)
    rev = list(range(n))[::-1]
    if data.ndim == 1:
        t = data.reshape((2,) * n).transpose(rev)  # (2,)*n with qubit axes reversed
        return torch.as_tensor(t.reshape(2**n).copy()).to(CDTYPE)
    t = data.reshape((2,) * (2 * n)).transpose(rev + [n + q for q in rev])  # rows then columns, each reversed
    return torch.as_tensor(t.reshape(2**n, 2**n).copy()).to(CDTYPE)


def circuit_qnode(encoder: Any, num_latent_qubits: int, trash_wires: list[int] | None = None,
                  ref_bits: list[int] | None = None, interface: str = "torch") -> Callable[[Any], Any]:
    """PennyLane QNode of a CircuitEncoder: rho (d, d) -> F_enc = <Projector(ref, trash wires)>.

    Same gates and order as CircuitEncoder.unitary (RY then RZ per qubit, then the CNOT ring); PennyLane wire 0 is
    the most significant qubit, like tenfold. Requires the optional `pennylane` package (default.mixed device).
    interface "torch" keeps the encoder's angles trainable; "numpy" reads a detached copy (PennyLane 0.45's
    default.mixed applies RZ with ~2e-8 round-off under the torch interface, exactly under numpy).
    """
    import pennylane as qml

    n = encoder.num_qubits
    check_latent(n, num_latent_qubits)
    trash = list(range(num_latent_qubits, n)) if trash_wires is None else list(trash_wires)
    ref = [0] * len(trash) if ref_bits is None else list(ref_bits)
    dev = qml.device("default.mixed", wires=n)

    @qml.qnode(dev, interface=interface)
    def qnode(rho: Any) -> Any:
        angles = encoder.angles if interface == "torch" else encoder.angles.detach().numpy()  # (L, n, 2)
        qml.QubitDensityMatrix(rho, wires=range(n))
        for layer in angles:
            for q in range(n):
                qml.RY(layer[q, 0], wires=q)
                qml.RZ(layer[q, 1], wires=q)
            for c, t in encoder.cnot_pairs:
                qml.CNOT(wires=[c, t])
        return qml.expval(qml.Projector(ref, wires=trash))

    return qnode
