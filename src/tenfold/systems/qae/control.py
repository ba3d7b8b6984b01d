"""The controlled quantum system that realises the encoder.

Paper: Ma, Huang, Chen, Dong, Wang, Wu, Xiang, "On compression rate of quantum autoencoders: control design,
numerical and experimental realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Spec component -> function (see specs/qae.md section 2):
    8. bilinear control model  i dU/dt = (H0 + sum_m u_m(t) H_m) U       -> ControlSystem
       piecewise-constant slices U_j = exp(-i dt (H0 + sum_m u_mj H_m))  -> ControlSystem.slice_unitaries
       U(T) = U_Q ... U_1                                                 -> ControlSystem.propagator
       default instance: Ising ZZ drift + {X_q, Y_q} controls, T = pi    -> default_control_system
       controllability (dynamical Lie algebra = su(2^n))                  -> lie_algebra_rank, controllability
       a user's own drift / control Hamiltonians (.npz / .json / API)     -> load_control_file,
                                                                             control_system_from_operators
    9. GRAPE gradient with the exact Frechet derivative of exp            -> grape_gradient

The drift, control Hamiltonians, T and Q are not available from the paper; every default here is a design choice.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from tenfold.core.errors import InputError
from tenfold.core.files import load_npz
from tenfold.systems.qae.loss import encoding_fidelity

CDTYPE = torch.complex128
RDTYPE = torch.float64

PAULI: dict[str, Tensor] = {
    "I": torch.tensor([[1, 0], [0, 1]], dtype=CDTYPE),
    "X": torch.tensor([[0, 1], [1, 0]], dtype=CDTYPE),
    "Y": torch.tensor([[0, -1j], [1j, 0]], dtype=CDTYPE),
    "Z": torch.tensor([[1, 0], [0, -1]], dtype=CDTYPE),
}


def kron_all(ops: list[Tensor]) -> Tensor:
    """Big-endian Kronecker product ops[0] (x) ops[1] (x) ... (qubit 0 leftmost)."""
    out = ops[0]
    for op in ops[1:]:
        out = torch.kron(out, op)
    return out


def pauli_on(op: str | Tensor, q: int, n: int) -> Tensor:
    """Single-qubit operator `op` ("X", "Y", "Z", "I" or a (2, 2) tensor) on qubit q of n -> (2^n, 2^n)."""
    single = PAULI[op] if isinstance(op, str) else op.to(CDTYPE)
    return kron_all([single if j == q else PAULI["I"] for j in range(n)])


def ising_drift(n: int, J: float = 1.0) -> Tensor:
    """H0 = J sum_q Z_q Z_{q+1}, open chain -> (2^n, 2^n).

    # Design choice: nearest-neighbour Ising drift (the paper's drift is not available).
    """
    d = 2**n
    h0 = torch.zeros(d, d, dtype=CDTYPE)
    for q in range(n - 1):
        h0 = h0 + J * pauli_on("Z", q, n) @ pauli_on("Z", q + 1, n)
    return h0


def xy_controls(n: int) -> Tensor:
    """Control Hamiltonians [X_0, Y_0, X_1, Y_1, ...] -> (M = 2n, 2^n, 2^n).

    # Design choice: local X and Y controls on every qubit (interleaved per qubit).
    """
    ops = []
    for q in range(n):
        ops += [pauli_on("X", q, n), pauli_on("Y", q, n)]
    return torch.stack(ops)  # (2n, d, d)


class ControlSystem:
    """Piecewise-constant bilinear control system (spec component 8).

    Args:
        H0: drift Hamiltonian, (d, d) complex Hermitian.
        Hc: control Hamiltonians, (M, d, d) complex Hermitian.
        T: total evolution time.
        num_slices: number Q of equal control slices, dt = T / Q.
    """

    def __init__(self, H0: Tensor, Hc: Tensor, T: float, num_slices: int) -> None:
        if Hc.ndim != 3 or Hc.shape[1:] != H0.shape:
            raise InputError(f"Hc must have shape (M, d, d) matching H0 {tuple(H0.shape)}, got {tuple(Hc.shape)}")
        if num_slices < 1 or T <= 0:
            raise InputError(f"need num_slices >= 1 and T > 0, got num_slices={num_slices}, T={T}")
        self.H0 = H0.to(CDTYPE)
        self.Hc = Hc.to(CDTYPE)
        self.T = float(T)
        self.num_slices = int(num_slices)
        self.dt = self.T / self.num_slices
        self.dim = H0.shape[0]
        self.num_qubits = int(round(math.log2(self.dim)))
        self.num_controls = Hc.shape[0]

    @property
    def control_shape(self) -> tuple[int, int]:
        return (self.num_slices, self.num_controls)

    def slice_hamiltonians(self, u: Tensor) -> Tensor:
        """H_j = H0 + sum_m u_mj H_m for u (..., Q, M) real -> (..., Q, d, d)."""
        uc = u.to(CDTYPE)
        return self.H0 + torch.einsum("...qm,mij->...qij", uc, self.Hc)

    def slice_unitaries(self, u: Tensor) -> Tensor:
        """U_j = exp(-i dt H_j) for u (..., Q, M) -> (..., Q, d, d)."""
        return torch.linalg.matrix_exp(-1j * self.dt * self.slice_hamiltonians(u))

    def propagator(self, u: Tensor) -> Tensor:
        """U(T) = U_Q ... U_1 for u (Q, M) -> (d, d), or batched u (B, Q, M) -> (B, d, d)."""
        if u.shape[-2:] != self.control_shape:
            raise InputError(f"controls must have shape (..., {self.num_slices}, {self.num_controls}), "
                             f"got {tuple(u.shape)}")
        us = self.slice_unitaries(u)  # (..., Q, d, d), index j holds U_{j+1}
        # Tree reduction of the time-ordered product: pair (U_{2j+2} U_{2j+1}) keeps later slices on the left.
        while us.shape[-3] > 1:
            q = us.shape[-3]
            paired = us[..., 1 : q - q % 2 : 2, :, :] @ us[..., 0 : q - q % 2 : 2, :, :]  # (..., q//2, d, d)
            us = torch.cat([paired, us[..., q - 1 :, :, :]], dim=-3) if q % 2 else paired
        return us[..., 0, :, :]

    def fidelity(self, u: Tensor, rho: Tensor, P: Tensor) -> Tensor:
        """J(u) = Tr[P U(T) rho U(T)^dagger]; (...,) for u (..., Q, M)."""
        return encoding_fidelity(self.propagator(u), rho, P)


def default_num_slices(n: int) -> int:
    """Design choice (spec 2.8): Q = 20 slices for 2 qubits, 30 for 3, 10 n beyond."""
    return {2: 20, 3: 30}.get(n, 10 * n)


def default_control_system(n: int, num_slices: int | None = None, T: float = math.pi) -> ControlSystem:
    """Default instance: ZZ drift (J = 1), {X_q, Y_q} controls, T = pi, Q = 20 (n=2), 30 (n=3), else 10 n.

    # Design choice: calibrated on a prototype to reach the bound (spec component 8).
    """
    return ControlSystem(ising_drift(n), xy_controls(n), T, num_slices or default_num_slices(n))


def expm_frechet(A: Tensor, E: Tensor) -> Tensor:
    """Exact Frechet derivative L(A, E) of exp at A in direction E: upper-right block of exp([[A, E], [0, A]]).

    A, E: (..., d, d) -> (..., d, d).
    """
    d = A.shape[-1]
    zeros = torch.zeros_like(A)
    block = torch.cat([torch.cat([A, E], dim=-1), torch.cat([zeros, A], dim=-1)], dim=-2)  # (..., 2d, 2d)
    return torch.linalg.matrix_exp(block)[..., :d, d:]


def grape_gradient(system: ControlSystem, u: Tensor, rho: Tensor, P: Tensor) -> Tensor:
    """Explicit GRAPE gradient dJ/du (spec component 9) -> (Q, M).

    dJ/du_mj = 2 Re Tr[P B_j (dU_j/du_mj) F_{j-1} rho U(T)^dagger], F_{j-1} = U_{j-1} ... U_1,
    B_j = U_Q ... U_{j+1}, dU_j/du_mj = L(-i dt H_j, -i dt H_m) (exact Frechet derivative, not first order).
    Kept for a parity test against autograd through matrix_exp.
    """
    u = u.detach()
    Q, M, d = system.num_slices, system.num_controls, system.dim
    a = -1j * system.dt * system.slice_hamiltonians(u)  # (Q, d, d)
    us = torch.linalg.matrix_exp(a)  # (Q, d, d)
    eye = torch.eye(d, dtype=CDTYPE)
    fwd = [eye]  # fwd[j] = U_j ... U_1 (fwd[0] = I)
    for j in range(Q):
        fwd.append(us[j] @ fwd[-1])
    bwd = [eye] * Q  # bwd[j] = product of the slices after slice j (0-based), i.e. B_{j+1} in 1-based notation
    acc = eye
    for j in range(Q - 1, -1, -1):
        bwd[j] = acc
        acc = acc @ us[j]
    u_total = fwd[Q]
    e = (-1j * system.dt * system.Hc).unsqueeze(0).expand(Q, M, d, d)  # (Q, M, d, d)
    dus = expm_frechet(a.unsqueeze(1).expand(Q, M, d, d), e)  # (Q, M, d, d)
    back = torch.stack(bwd)  # (Q, d, d)
    front = torch.stack(fwd[:Q])  # (Q, d, d): F_{j-1}
    right = front @ rho.to(CDTYPE) @ u_total.mH  # (Q, d, d)
    left = P.to(CDTYPE) @ back  # (Q, d, d)
    # Tr[left_j dU_jm right_j] for every (j, m)
    grad = torch.einsum("qab,qmbc,qca->qm", left, dus, right)
    return 2.0 * grad.real


def _real_vec(x: np.ndarray) -> np.ndarray:
    return np.concatenate([x.real.ravel(), x.imag.ravel()])


def lie_algebra_rank(H0: Tensor | None, Hc: Tensor, max_depth: int = 50, tol: float = 1e-9,
                     max_rank: int | None = None) -> int:
    """Dimension of the dynamical Lie algebra generated by i H0 and i H_m under commutators.

    Gram-Schmidt on the real vectorisation of anti-Hermitian matrices; nested commutators of the current basis with
    the generators are added until nothing new appears, the dimension reaches `max_rank` (default d^2 = dim u(d);
    d^2 - 1 = dim su(d) when every generator is traceless), or `max_depth` rounds. A zero drift is skipped. Full controllability of U(d) up to phase <=> the traceless part has rank
    4^n - 1 (su(2^n)); see `controllability`.
    """
    gens = [1j * h.detach().cpu().numpy().astype(complex) for h in Hc]
    if H0 is not None and float(torch.linalg.matrix_norm(H0)) > tol:
        gens.insert(0, 1j * H0.detach().cpu().numpy().astype(complex))
    d = gens[0].shape[0] if gens else 1
    cap = d * d if max_rank is None else max_rank
    basis = np.zeros((d * d, 2 * d * d))  # orthonormal real vectors, filled row by row
    rank = 0

    def add(x: np.ndarray) -> bool:
        nonlocal rank
        v = _real_vec(x)
        for _ in range(2):  # second pass for numerical orthogonality
            v = v - basis[:rank].T @ (basis[:rank] @ v)
        norm = np.linalg.norm(v)
        if norm <= tol or rank == cap:
            return False
        basis[rank] = v / norm
        rank += 1
        return True

    frontier = [g / np.linalg.norm(g) for g in gens if add(g)]
    for _ in range(max_depth):
        new = []
        for x in frontier:
            for g in gens:
                c = g @ x - x @ g
                norm = np.linalg.norm(c)
                if norm > tol and add(c):
                    new.append(c / norm)
            if rank == cap:  # the whole algebra: nothing more can appear
                return rank
        if not new:
            break
        frontier = new
    return rank


def controllability(H0: Tensor | None, Hc: Tensor) -> dict[str, Any]:
    """Controllability report of H(t) = H0 + sum_m u_m(t) H_m (pitfall 4), computed before any training.

    The identity parts of the Hamiltonians only add a global phase, so the rank is taken on their traceless parts:
    `controllable` <=> that rank is 4^n - 1 = dim su(2^n), i.e. every unitary is reachable up to phase and the
    bound B_k can be reached. Returns {"lie_algebra_rank", "full_rank", "controllable"}.
    """
    d = Hc.shape[-1]
    eye = torch.eye(d, dtype=CDTYPE)

    def traceless(h: Tensor) -> Tensor:
        h = h.to(CDTYPE)
        return h - torch.diagonal(h, dim1=-2, dim2=-1).sum(-1)[..., None, None] / d * eye

    rank = lie_algebra_rank(None if H0 is None else traceless(H0), traceless(Hc), max_rank=d * d - 1)
    return {"lie_algebra_rank": rank, "full_rank": d * d - 1, "controllable": rank == d * d - 1}


# ---------------------------------------------------------------- a user's own control system

CONTROL_FILE_FORM = ("an .npz with arrays 'drift' (d, d) and 'controls' (M, d, d), complex Hermitian, d = 2^n; "
                     "or a .json object {\"drift\": {\"real\": [[...]], \"imag\": [[...]]}, \"controls\": "
                     "{\"real\": [[[...]]], \"imag\": [[[...]]]}} (\"imag\" optional)")


def _hermitian_field(x: Any, source: str, name: str, ndim: int) -> Tensor:
    """Validate one array of a control file: shape (d, d) or (M, d, d), finite, Hermitian (tol 1e-9), d = 2^n."""
    a = np.asarray(x)
    if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
        raise InputError(f"{source}: field {name!r} is not a numeric array; expected {CONTROL_FILE_FORM}")
    shape = "(d, d)" if ndim == 2 else "(M, d, d)"
    if a.ndim != ndim or a.shape[-1] != a.shape[-2] or a.shape[-1] < 2 or (ndim == 3 and a.shape[0] < 1):
        raise InputError(f"{source}: field {name!r} must have shape {shape} with d = 2^n, got {a.shape}")
    d = a.shape[-1]
    if 2 ** int(round(math.log2(d))) != d:
        raise InputError(f"{source}: field {name!r} has dimension d = {d}, not a power of two 2^n")
    from tenfold.systems.qae.data import check_qubit_dims  # data.py imports this module

    check_qubit_dims(a.shape, 2, f"{source}: field {name!r}")
    if not np.all(np.isfinite(a)):
        raise InputError(f"{source}: field {name!r} contains NaN or inf; expected finite Hermitian matrices")
    t = torch.as_tensor(a.astype(np.complex128))
    err = float((t - t.mH).abs().max())
    if err > 1e-9:
        raise InputError(f"{source}: field {name!r} is not Hermitian (max |H - H^dagger| = {err:.3g} > 1e-9)")
    return 0.5 * (t + t.mH)


def _numbers(value: Any) -> Any:
    """`value` itself when it is a JSON number or (nested) list; strings and others raise TypeError.

    np.asarray(dtype=float) would otherwise parse the string "1.5" as a number.
    """
    if isinstance(value, (list, tuple)):
        for v in value:
            _numbers(v)
    elif isinstance(value, bool) or not isinstance(value, (int, float, np.ndarray)):
        raise TypeError(f"not a number: {type(value).__name__}")
    return value


def _json_array(value: Any, source: str, name: str) -> np.ndarray:
    if isinstance(value, dict):
        if "real" not in value:
            raise InputError(f"{source}: field {name!r} needs a 'real' part; expected {CONTROL_FILE_FORM}")
        try:
            real = np.asarray(_numbers(value["real"]), dtype=float)
            imag = np.asarray(_numbers(value.get("imag", np.zeros_like(real))), dtype=float)
        except (TypeError, ValueError, OverflowError, RecursionError):
            raise InputError(f"{source}: field {name!r} holds non-numeric or ragged entries; expected "
                             f"{CONTROL_FILE_FORM}") from None
        if real.shape != imag.shape:
            raise InputError(f"{source}: field {name!r}: 'real' {real.shape} and 'imag' {imag.shape} differ in shape")
        out = real.astype(np.complex128)
        out.imag = imag  # not real + 1j * imag: 1j * inf would be nan + inf j, with a warning
        return out
    try:
        return np.asarray(_numbers(value), dtype=float)
    except (TypeError, ValueError, OverflowError, RecursionError):
        raise InputError(f"{source}: field {name!r} holds non-numeric or ragged entries; expected "
                         f"{CONTROL_FILE_FORM}") from None


def load_control_file(path: str | Path) -> tuple[Tensor, Tensor]:
    """Read (drift (d, d), controls (M, d, d)) complex128 from a user's .npz or .json (model.control_file).

    # Design choice: no pickles (np.load with allow_pickle=False); QuTiP objects come in through the Python API
    # (`control_system_from_operators`), never through a file.
    """
    path = Path(path)
    source = f"model.control_file {path}"
    if not path.is_file():
        raise InputError(f"{source}: file not found; expected {CONTROL_FILE_FORM}")
    # Imported here: data.py imports this module (pauli_on) for its generators.
    from tenfold.systems.qae.data import check_file_size, npz_headers

    if path.suffix == ".json":
        check_file_size(path, source)
        try:
            fields = json.loads(path.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as err:  # ValueError: JSONDecodeError, or an integer
            reason = "nested too deeply" if isinstance(err, RecursionError) else str(err)[:200]  # of > 4300 digits
            raise InputError(f"{source}: not valid JSON ({reason}); expected {CONTROL_FILE_FORM}") from None
        if not isinstance(fields, dict):
            raise InputError(f"{source}: expected a JSON object; expected {CONTROL_FILE_FORM}")
        fields = {k: _json_array(v, source, k) for k, v in fields.items() if k in ("drift", "controls")}
    elif path.suffix == ".npz":
        # dtype, qubit count and size from the headers, before any array is loaded
        npz_headers(path, source, CONTROL_FILE_FORM, {"drift": 2, "controls": 2})
        fields = load_npz(path, CONTROL_FILE_FORM, source)
    else:
        raise InputError(f"{source}: unknown suffix {path.suffix!r}; expected {CONTROL_FILE_FORM}")
    missing = [k for k in ("drift", "controls") if k not in fields]
    if missing:
        raise InputError(f"{source}: field(s) {missing} missing (found {sorted(fields)}); expected {CONTROL_FILE_FORM}")
    drift = _hermitian_field(fields["drift"], source, "drift", 2)
    controls = _hermitian_field(fields["controls"], source, "controls", 3)
    if controls.shape[1:] != drift.shape:
        raise InputError(f"{source}: field 'controls' has matrices of shape {tuple(controls.shape[1:])}, field "
                         f"'drift' {tuple(drift.shape)}; they must match")
    return drift, controls


def control_system_from_operators(drift: Any, controls: Any, T: float = math.pi, num_slices: int = 20,
                                  source: str = "control system") -> ControlSystem:
    """A ControlSystem from a drift (d, d) and controls [(d, d)] * M or (M, d, d): numpy, torch or qutip.Qobj.

    The Python-API road for QuTiP users; the same checks as `load_control_file`.
    """
    def plain(x: Any) -> np.ndarray:
        return np.asarray(x.full()) if hasattr(x, "full") else np.asarray(x)

    h0 = _hermitian_field(plain(drift), source, "drift", 2)
    if isinstance(controls, (list, tuple)):
        controls = np.stack([plain(c) for c in controls]) if controls else np.zeros((0,) + tuple(h0.shape))
    hc = _hermitian_field(plain(controls), source, "controls", 3)
    if hc.shape[1:] != h0.shape:
        raise InputError(f"{source}: controls of shape {tuple(hc.shape[1:])} do not match the drift {tuple(h0.shape)}")
    return ControlSystem(h0, hc, T, num_slices)
