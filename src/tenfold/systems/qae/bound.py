"""The eigenvalue upper bound on the compression rate.

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Spec component 6 -> function:
    F_enc(U) <= B_k(rho) = sum_{j <= 2^k} lambda_j     -> compression_bound
    equality certificate (top eigenvectors -> good subspace) -> optimal_unitary (certificate only)
    smallest k with B_k >= F*                         -> min_latent_qubits
    lossless iff rank rho <= 2^k                      -> is_lossless

The paper states that the bound is "determined by the eigenvalues"; the exact form (Ky Fan maximum principle) is our
derivation, confirmed numerically. Nothing in this file may be used by a learner (pitfall 8): tests patch these
functions to raise while the learners run.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from tenfold.core.errors import InputError
from tenfold.systems.qae.loss import trash_projector

CDTYPE = torch.complex128


def _check(rho: Tensor, k: int) -> int:
    d = rho.shape[-1]
    n = int(round(math.log2(d)))
    if 2**n != d or rho.shape != (d, d):
        raise InputError(f"rho must be (2^n, 2^n), got {tuple(rho.shape)}")
    if not 0 <= k <= n:
        raise InputError(f"model.num_latent_qubits must satisfy 0 <= k <= n = {n}, got {k}")
    return n


def compression_bound(rho: Tensor, k: int) -> Tensor:
    """B_k(rho) = sum of the 2^k largest eigenvalues of rho (0-d float64 tensor)."""
    _check(rho, k)
    lam = torch.linalg.eigvalsh(rho.to(CDTYPE))  # ascending
    return lam.flip(0)[: 2**k].sum()


def optimal_unitary(rho: Tensor, k: int, P: Tensor | None = None) -> Tensor:
    """A unitary that attains F_enc = B_k(rho): a closed-form CERTIFICATE only, never a learned result.

    Sends the top-2^k eigenvectors of rho onto the range of P (good subspace H_A (x) |ref>) and the others onto its
    complement. P defaults to trash_projector(n, k).
    """
    n = _check(rho, k)
    P = trash_projector(n, k) if P is None else P.to(CDTYPE)
    _, v = torch.linalg.eigh(rho.to(CDTYPE))
    v = v.flip(-1)  # columns sorted by descending eigenvalue
    pw, pv = torch.linalg.eigh(0.5 * (P + P.mH))
    w = pv.flip(-1)  # range of P (eigenvalue 1) first, then its complement
    if int((pw > 0.5).sum()) != 2**k:
        raise InputError(f"P must be a projector of rank 2^k = {2**k}")
    return w @ v.mH  # column j of U maps v_j -> w_j


def min_latent_qubits(rho: Tensor, target_fidelity: float, tol: float = 1e-12) -> int:
    """Smallest k with B_k(rho) >= target_fidelity (k = n always satisfies it: no compression)."""
    n = _check(rho, 0)
    lam = torch.linalg.eigvalsh(rho.to(CDTYPE)).flip(0)
    for k in range(n + 1):
        if float(lam[: 2**k].sum()) >= target_fidelity - tol:
            return k
    return n


def is_lossless(kets_or_rho: Tensor, k: int, tol: float = 1e-9) -> bool:
    """Lossless compression (F_enc = 1 reachable) iff rank <= 2^k.

    Accepts a single ket (d,), kets (N, d) (rank = number of singular values > tol) or a density matrix (d, d)
    (rank = number of eigenvalues > tol). A square input that is Hermitian with unit trace is read as a density
    matrix, any other 2-D input as a stack of kets.
    """
    x = kets_or_rho.to(CDTYPE)
    if x.ndim == 1:
        x = x.unsqueeze(0)
    is_rho = (x.shape[0] == x.shape[1] and torch.allclose(x, x.mH, atol=1e-10)
              and abs(complex(torch.trace(x)) - 1.0) < 1e-8)
    if is_rho:
        rank = int((torch.linalg.eigvalsh(x) > tol).sum())
    else:
        rank = int((torch.linalg.svdvals(x) > tol).sum())
    return rank <= 2**k
