"""Parametrised encoders of the quantum autoencoder (nn.Modules only).

Paper: Ma et al., "On compression rate of quantum autoencoders: control design, numerical and experimental
realization", Automatica 147 (2023) 110659, arXiv 2005.11149.

Spec component -> class:
    7. unconstrained U = exp(iH), H Hermitian from 4^n real parameters   -> UnitaryEncoder
   10. L layers of RY/RZ on every qubit + a CNOT ring (circuit model)     -> CircuitEncoder
Both return {"loss_enc": 1 - Tr[P U rho U^dagger]} from forward(rho, P) (loss.py, component 3).
The paper's encoder is the controlled system of control.py; these two are reference / circuit-model encoders.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from tenfold.systems.qae.loss import loss_terms

CDTYPE = torch.complex128
RDTYPE = torch.float64


class UnitaryEncoder(nn.Module):
    """U = exp(iH) with H Hermitian built from d^2 = 4^n real parameters (spec component 7).

    # Design choice: reference point for "what any unitary can do"; the parameters are
    # [d diagonal entries, d(d-1)/2 real parts, d(d-1)/2 imaginary parts of the strict upper triangle].

    Args:
        num_qubits: n. init_scale: std of the Gaussian initial parameters (0 gives U = I).
        generator: torch.Generator for the initial parameters.
    """

    def __init__(self, num_qubits: int, init_scale: float = 0.1, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_qubits = num_qubits
        d = 2**num_qubits
        self.params = nn.Parameter(init_scale * torch.randn(d * d, generator=generator, dtype=RDTYPE))
        self.register_buffer("triu", torch.triu_indices(d, d, offset=1), persistent=False)

    def hamiltonian(self) -> Tensor:
        d = 2**self.num_qubits
        m = d * (d - 1) // 2
        diag, re, im = self.params[:d], self.params[d : d + m], self.params[d + m :]
        upper = torch.zeros(d, d, dtype=CDTYPE).index_put((self.triu[0], self.triu[1]), torch.complex(re, im))
        return upper + upper.mH + torch.diag(diag.to(CDTYPE))  # (d, d) Hermitian

    def unitary(self) -> Tensor:
        return torch.linalg.matrix_exp(1j * self.hamiltonian())

    def forward(self, rho: Tensor, P: Tensor) -> dict[str, Tensor]:
        return loss_terms(self.unitary(), rho, P)


def _ry(theta: Tensor) -> Tensor:
    c, s = torch.cos(theta / 2), torch.sin(theta / 2)
    return torch.stack([torch.stack([c, -s]), torch.stack([s, c])]).to(CDTYPE)  # (2, 2)


def _rz(phi: Tensor) -> Tensor:
    e = torch.exp(-0.5j * phi.to(CDTYPE))
    zero = torch.zeros((), dtype=CDTYPE)
    return torch.stack([torch.stack([e, zero]), torch.stack([zero, e.conj()])])  # (2, 2)


def cnot(control: int, target: int, n: int) -> Tensor:
    """CNOT as a (2^n, 2^n) permutation matrix, big-endian qubit labels."""
    d = 2**n
    idx = torch.arange(d)
    flip = ((idx >> (n - 1 - control)) & 1) * (1 << (n - 1 - target))
    out = torch.zeros(d, d, dtype=CDTYPE)
    out[idx ^ flip, idx] = 1.0
    return out


class CircuitEncoder(nn.Module):
    """L layers of [RY(theta_q) then RZ(phi_q) on every qubit, then a CNOT ring] (spec component 10).

    # Design choice: ring CNOT(q, q+1 mod n) for n >= 3 and a single CNOT(0, 1) for n = 2 (literature: Paddle
    # Quantum QAE tutorial's RY/RZ + CNOT-ring ansatz; exact gate order not verified).

    Args:
        num_qubits: n. num_layers: L. generator: torch.Generator for angles ~ U[0, 2 pi).
    """

    def __init__(self, num_qubits: int, num_layers: int = 6, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.num_qubits = num_qubits
        self.num_layers = num_layers
        self.angles = nn.Parameter(2 * math.pi * torch.rand(num_layers, num_qubits, 2, generator=generator,
                                                            dtype=RDTYPE))  # (L, n, [theta, phi])
        n = num_qubits
        self.cnot_pairs = [(0, 1)] if n == 2 else [(q, (q + 1) % n) for q in range(n)]  # (control, target)
        ring = torch.eye(2**n, dtype=CDTYPE)
        for c, t in self.cnot_pairs:
            ring = cnot(c, t, n) @ ring
        self.register_buffer("ring", ring, persistent=False)

    def unitary(self) -> Tensor:
        u = torch.eye(2**self.num_qubits, dtype=CDTYPE)
        for layer in self.angles:  # layer: (n, 2)
            local = None
            for q in range(self.num_qubits):
                g = _rz(layer[q, 1]) @ _ry(layer[q, 0])
                local = g if local is None else torch.kron(local, g)
            u = self.ring @ local @ u
        return u

    def forward(self, rho: Tensor, P: Tensor) -> dict[str, Tensor]:
        return loss_terms(self.unitary(), rho, P)
