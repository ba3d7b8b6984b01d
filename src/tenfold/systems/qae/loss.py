"""Encoding / decoding fidelities of the quantum autoencoder.

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Spec component -> function (specs/qae.md section 2):
    2. P = I_A (x) |ref><ref|_B                        -> trash_projector
    3. F_enc(U) = sum_i p_i <ref|sigma_i^B|ref>
               = Tr[P U rho U^dagger]  ("compression rate") -> encoding_fidelity, trash_states, loss_terms
    4. F_dec = sum_i p_i <psi_i|U^dag(omega_i (x) |ref><ref|)U|psi_i>  -> decoding_fidelity
    5. Uhlmann fidelity (Tr sqrt(sqrt(rho) sigma sqrt(rho)))^2        -> uhlmann_fidelity

# Design choice: the paper's "compression rate" is identified with F_enc (spec section 1); loss_enc = 1 - F_enc
with weight_enc = 1.
Qubit order is big-endian (qubit 0 is the leftmost kron factor, as in numpy.kron and QuTiP).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tenfold.core.errors import InputError

CDTYPE = torch.complex128


def _num_qubits(d: int) -> int:
    n = int(round(math.log2(d)))
    if 2**n != d:
        raise InputError(f"dimension {d} is not a power of two")
    return n


def trash_projector(n: int, k: int, trash_wires: list[int] | None = None,
                    ref_bits: list[int] | None = None) -> Tensor:
    """P = I_A (x) |ref><ref|_B as a diagonal (2^n, 2^n) projector of rank 2^k.

    Args:
        n: number of qubits; k: number of latent qubits, 0 <= k < n.
        trash_wires: the n - k trash qubits (big-endian labels); default the last n - k qubits.
            # Design choice: default trash wires are the last n - k qubits.
        ref_bits: reference bit string on the trash wires (same order as trash_wires); default all zeros.
    """
    if not 0 <= k < n:
        raise InputError(f"model.num_latent_qubits must satisfy 0 <= k < n = {n}, got {k}")
    trash = list(range(k, n)) if trash_wires is None else list(trash_wires)
    ref = [0] * (n - k) if ref_bits is None else list(ref_bits)
    if len(trash) != n - k or len(set(trash)) != len(trash) or not all(0 <= w < n for w in trash):
        raise InputError(f"trash_wires must be {n - k} distinct qubits in [0, {n}), got {trash}")
    if len(ref) != n - k or not all(b in (0, 1) for b in ref):
        raise InputError(f"ref_bits must be {n - k} bits, got {ref}")
    idx = torch.arange(2**n)
    keep = torch.ones(2**n, dtype=torch.bool)
    for w, b in zip(trash, ref):
        bit = (idx >> (n - 1 - w)) & 1  # big-endian: qubit 0 is the most significant bit
        keep &= bit == b
    return torch.diag(keep.to(CDTYPE))


def encoding_fidelity(U: Tensor, rho: Tensor, P: Tensor) -> Tensor:
    """F_enc = Re Tr[P U rho U^dagger] (spec component 3).

    U: (..., d, d) (batched for vectorised learners); rho, P: (d, d) or broadcastable -> (...,) float64.
    """
    m = U @ rho.to(CDTYPE) @ U.mH  # (..., d, d)
    return (P.to(CDTYPE).transpose(-1, -2) * m).sum(dim=(-2, -1)).real  # Tr[P M] = sum_ij P_ij M_ji


def loss_terms(U: Tensor, rho: Tensor, P: Tensor) -> dict[str, Tensor]:
    """Named loss terms: {"loss_enc": 1 - F_enc}; the matching weight is weight_enc = 1."""
    return {"loss_enc": 1.0 - encoding_fidelity(U, rho, P)}


def partial_trace(rho: Tensor, n: int, keep: list[int]) -> Tensor:
    """Reduced state on qubits `keep` (big-endian, returned in the order given): (2^n, 2^n) -> (2^m, 2^m)."""
    traced = [q for q in range(n) if q not in keep]
    t = rho.reshape((2,) * (2 * n))  # (2,)*n row indices then (2,)*n column indices
    perm = list(keep) + traced + [n + q for q in keep] + [n + q for q in traced]
    dk, dt = 2 ** len(keep), 2 ** len(traced)
    t = t.permute(perm).reshape(dk, dt, dk, dt)  # (keep, traced, keep', traced')
    return torch.einsum("ajbj->ab", t)


def _encoded_blocks(U: Tensor, kets: Tensor, n: int, k: int) -> Tensor:
    """U|psi_i> written as sum_b |a_b>|b>: (N, d) -> (N, 2^k, 2^(n-k)); [i, :, b] is the latent vector a_b."""
    phi = kets.to(CDTYPE) @ U.transpose(-1, -2)  # (N, d): row i is U psi_i
    return phi.reshape(kets.shape[0], 2**k, 2 ** (n - k))  # (N, d_A, d_B)


def trash_states(U: Tensor, kets: Tensor, n: int, k: int) -> Tensor:
    """sigma_i^B = Tr_A[U|psi_i><psi_i|U^dagger] on the default trash wires -> (N, 2^(n-k), 2^(n-k))."""
    blocks = _encoded_blocks(U, kets, n, k)
    return torch.einsum("nab,nac->nbc", blocks, blocks.conj())


def decoding_fidelity(U: Tensor, kets: Tensor, probs: Tensor | None, n: int, k: int) -> tuple[Tensor, Tensor]:
    """F_dec per state (N,) and ensemble average (spec component 4), default trash wires and |ref> = |0...0>.

    omega_i = Tr_B[U|psi_i><psi_i|U^dagger]; decoded state U^dagger(omega_i (x) |0><0|)U;
    F_dec,i = <psi_i| decoded |psi_i> = a_0^dagger omega_i a_0 = sum_b |<a_0|a_b>|^2.
    Evaluation only: the eigenvalue bound is on F_enc, not on F_dec (pitfall 1).
    """
    blocks = _encoded_blocks(U, kets, n, k)  # (N, d_A, d_B)
    omega = torch.einsum("nab,ncb->nac", blocks, blocks.conj())  # (N, d_A, d_A) latent states
    a0 = blocks[:, :, 0]  # (N, d_A) component on the reference |0...0>_B
    per_state = torch.einsum("na,nac,nc->n", a0.conj(), omega, a0).real
    if probs is None:
        probs = torch.full((kets.shape[0],), 1.0 / kets.shape[0], dtype=torch.float64)
    return per_state, (probs.to(torch.float64) * per_state).sum()


def _clip_psd_eigs(w: Tensor) -> Tensor:
    """Zero eigenvalues at round-off level (|w| <= 1e-14 d max w): their square roots (~1e-8) would dominate the
    error of rank-deficient inputs."""
    cut = 1e-14 * w.shape[-1] * w.abs().max()
    return torch.where(w > cut, w, torch.zeros_like(w))


def _sqrt_psd(rho: Tensor) -> Tensor:
    w, v = torch.linalg.eigh(rho.to(CDTYPE))
    return (v * _clip_psd_eigs(w).sqrt().to(CDTYPE)) @ v.mH


def uhlmann_fidelity(rho: Tensor, sigma: Tensor) -> Tensor:
    """F(rho, sigma) = (Tr sqrt(sqrt(rho) sigma sqrt(rho)))^2 (squared convention, as qutip.fidelity**2).

    Eigen-decompositions of PSD matrices with negative round-off eigenvalues clipped, so rank-deficient inputs work.
    Evaluation only (never called by a learner). Not linear in the ensemble (pitfall 2).
    """
    s = _sqrt_psd(rho)
    m = s @ sigma.to(CDTYPE) @ s
    m = 0.5 * (m + m.mH)
    w = _clip_psd_eigs(torch.linalg.eigvalsh(m))
    return w.sqrt().sum() ** 2
