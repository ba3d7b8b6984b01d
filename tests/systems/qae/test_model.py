"""Encoders of qae (arXiv 2005.11149): UnitaryEncoder (component 7) and CircuitEncoder (component 10)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from tenfold.systems.qae.bound import compression_bound
from tenfold.systems.qae.data import random_full_rank, werner
from tenfold.systems.qae.loss import encoding_fidelity, trash_projector
from tenfold.systems.qae.model import CircuitEncoder, UnitaryEncoder, _ry, cnot

C = torch.complex128


def test_unitary_encoder_parameters_and_identity() -> None:
    enc = UnitaryEncoder(2, init_scale=0.0)
    assert enc.params.numel() == 16  # 4^n real parameters
    # params = 0 => H = 0 => U = I; werner(0.6) with P = diag(1, 0, 1, 0): F = 0.6/2 + 0.4 * 2/4 = 0.5.
    assert_close(enc.unitary(), torch.eye(4, dtype=C), rtol=0.0, atol=1e-12)
    out = enc(werner(0.6), trash_projector(2, 1))
    assert_close(out["loss_enc"], torch.tensor(0.5, dtype=torch.float64), rtol=0.0, atol=1e-12)


def test_unitary_encoder_hermitian_generator(gen: torch.Generator) -> None:
    enc = UnitaryEncoder(3, init_scale=1.0, generator=gen)
    h = enc.hamiltonian()
    assert_close(h, h.mH, rtol=0.0, atol=0.0)
    u = enc.unitary()
    assert_close(u @ u.mH, torch.eye(8, dtype=C), rtol=0.0, atol=1e-12)
    enc(random_full_rank(3, gen), trash_projector(3, 1))["loss_enc"].backward()
    assert enc.params.grad is not None and bool((enc.params.grad != 0).all())  # gradient reaches every parameter


def test_circuit_gates_hand() -> None:
    # RY(pi)|0> = |1>; CNOT(0 -> 1) maps |10> (index 2) to |11> (index 3) and fixes |00>, |01>.
    assert_close(_ry(torch.tensor(math.pi, dtype=torch.float64)) @ torch.tensor([1, 0], dtype=C),
                 torch.tensor([0, 1], dtype=C), rtol=0.0, atol=1e-12)
    cx = cnot(0, 1, 2)
    assert cx[3, 2] == 1 and cx[0, 0] == 1 and cx[1, 1] == 1 and cx[2, 3] == 1


@pytest.mark.parametrize("n", [2, 3])
def test_circuit_encoder_unitary_and_grad(n: int, gen: torch.Generator) -> None:
    enc = CircuitEncoder(n, num_layers=3, generator=gen)
    u = enc.unitary()
    assert_close(u @ u.mH, torch.eye(2**n, dtype=C), rtol=0.0, atol=1e-12)
    enc(random_full_rank(n, gen), trash_projector(n, 1))["loss_enc"].backward()
    assert enc.angles.grad is not None and enc.angles.grad.abs().sum() > 0


@settings(max_examples=20, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(0, 1))
def test_encoders_below_bound(seed: int, k: int) -> None:
    g = torch.Generator().manual_seed(seed)
    rho, p = random_full_rank(2, g), trash_projector(2, k)
    bound = float(compression_bound(rho, k))
    for enc in (UnitaryEncoder(2, init_scale=2.0, generator=g), CircuitEncoder(2, 2, generator=g)):
        with torch.no_grad():
            assert float(encoding_fidelity(enc.unitary(), rho, p)) <= bound + 1e-9
