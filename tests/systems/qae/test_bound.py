"""Hand-computed bound cases of spec section 7 (tests 1-9) for arXiv 2005.11149 (qae)."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from tenfold.systems.qae.bound import compression_bound, is_lossless, min_latent_qubits, optimal_unitary
from tenfold.systems.qae.data import (basis_states, build_ensemble, ensemble_rho, ghz, haar_unitary, maximally_mixed,
                                      random_full_rank, random_pure, spectrum_rho, tfim_thermal, w_state, werner)
from tenfold.systems.qae.loss import encoding_fidelity, trash_projector

TOL = dict(rtol=0.0, atol=1e-10)


def scalar(x: float) -> torch.Tensor:
    return torch.tensor(x, dtype=torch.float64)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_two_pure_states_lossless(seed: int) -> None:
    # Test 1: rank rho <= 2 = 2^1 => the top two eigenvalues carry all the weight: B_1 = 1, for 2->1 and 3->1.
    g = torch.Generator().manual_seed(seed)
    for n in (2, 3):
        kets = torch.stack([random_pure(n, g), random_pure(n, g)])
        w = torch.rand(1, generator=g, dtype=torch.float64).item()
        rho = ensemble_rho(kets, torch.tensor([w, 1 - w], dtype=torch.float64))
        assert_close(compression_bound(rho, 1), scalar(1.0), **TOL)
        assert is_lossless(kets, 1) and is_lossless(rho, 1)
        assert not is_lossless(kets, 0)


def test_basis3() -> None:
    # Test 2: rho = diag(1/3, 1/3, 1/3, 0) => B_1 = 1/3 + 1/3 = 2/3; three independent kets are not lossless at k=1.
    rho = build_ensemble("basis3", 0).rho
    assert_close(compression_bound(rho, 1), scalar(2 / 3), **TOL)
    assert not is_lossless(basis_states(2, [0, 1, 2]), 1)


@pytest.mark.parametrize("p", [0.0, 0.3, 0.6, 1.0])
def test_werner(p: float) -> None:
    # Test 3: eigenvalues (1 + 3p)/4 once and (1 - p)/4 three times => B_1 = (1 + 3p)/4 + (1 - p)/4 = (1 + p)/2;
    # p = 0.6 -> 0.7 + 0.1 = 0.8.
    rho = werner(p)
    lam = torch.linalg.eigvalsh(rho).flip(0)
    expected = torch.tensor([(1 + 3 * p) / 4] + [(1 - p) / 4] * 3, dtype=torch.float64)
    assert_close(lam, expected, **TOL)
    assert_close(compression_bound(rho, 1), scalar((1 + p) / 2), **TOL)
    assert_close(compression_bound(build_ensemble("werner", 0).rho, 1), scalar(0.8), **TOL)


@pytest.mark.parametrize("n,k", [(2, 0), (2, 1), (3, 1), (3, 2)])
def test_maximally_mixed(n: int, k: int) -> None:
    # Test 4: all eigenvalues 1/2^n => B_k = 2^k / 2^n; 3 -> 2 gives 4/8 = 0.5.
    assert_close(compression_bound(maximally_mixed(n), k), scalar(2**k / 2**n), **TOL)


def test_paddle_spectrum(gen: torch.Generator) -> None:
    # Test 5: B_2 = 0.4 + 0.2 + 0.2 + 0.1 = 0.9 whatever the Haar rotation.
    rho = spectrum_rho([0.4, 0.2, 0.2, 0.1, 0.1, 0, 0, 0], gen)
    assert_close(compression_bound(rho, 2), scalar(0.9), **TOL)
    assert_close(compression_bound(build_ensemble("paddle_spectrum", 5).rho, 2), scalar(0.9), **TOL)


def test_ghz_w() -> None:
    # Test 6: <GHZ|W> = 0 (disjoint supports), rank 2 => B_1 = 1.
    assert_close(torch.vdot(ghz(3), w_state(3)), torch.tensor(0j, dtype=torch.complex128), **TOL)
    assert_close(compression_bound(build_ensemble("ghz_w", 0).rho, 1), scalar(1.0), **TOL)


def test_two_states_overlap() -> None:
    # Test 7: |00> and |+0>, overlap c = 1/sqrt(2); eigenvalues (1 +- c)/2; k = 0 => B_0 = (1 + c)/2 = 0.853553..,
    # k = 1 => 1.
    plus0 = torch.tensor([1, 0, 1, 0], dtype=torch.complex128) / math.sqrt(2)
    rho = ensemble_rho(torch.stack([basis_states(2, [0])[0], plus0]), None)
    c = 1 / math.sqrt(2)
    assert_close(compression_bound(rho, 0), scalar((1 + c) / 2), **TOL)
    assert_close(compression_bound(rho, 0), scalar(0.853553), rtol=0.0, atol=1e-6)
    assert_close(compression_bound(rho, 1), scalar(1.0), **TOL)


def test_tfim_thermal() -> None:
    # Test 8: exact-diagonalisation reference (spec): top two eigenvalues 0.447399 + 0.368527 => B_1 = 0.815926
    # (given to 6 decimals, hence atol 1e-6).
    rho = tfim_thermal(3, beta=1.0, h=0.5)
    lam = torch.linalg.eigvalsh(rho).flip(0)
    assert_close(lam[:2], torch.tensor([0.447399, 0.368527], dtype=torch.float64), rtol=0.0, atol=1e-6)
    assert_close(compression_bound(rho, 1), scalar(0.815926), rtol=0.0, atol=1e-6)


@pytest.mark.parametrize("n,k", [(2, 0), (2, 1), (3, 1), (3, 2)])
def test_optimal_unitary_attains_bound(n: int, k: int, gen: torch.Generator) -> None:
    # Test 9: the certificate maps the top 2^k eigenvectors into range(P): F_enc = B_k to 1e-12, for the default
    # projector and for permuted trash wires with a non-zero reference.
    rho = random_full_rank(n, gen)
    u = optimal_unitary(rho, k)
    assert_close(u @ u.mH, torch.eye(2**n, dtype=torch.complex128), rtol=0.0, atol=1e-12)
    p = trash_projector(n, k)
    assert_close(encoding_fidelity(u, rho, p), compression_bound(rho, k), rtol=0.0, atol=1e-12)
    wires = list(range(n - k))[::-1]
    p2 = trash_projector(n, k, trash_wires=wires, ref_bits=[1] * (n - k))
    assert_close(encoding_fidelity(optimal_unitary(rho, k, p2), rho, p2), compression_bound(rho, k),
                 rtol=0.0, atol=1e-12)


def test_min_latent_qubits() -> None:
    # Werner(0.6): B_0 = 0.7, B_1 = 0.8, B_2 = 1 => target 0.75 needs k = 1, 0.7 needs k = 0, 0.95 needs k = 2.
    rho = werner(0.6)
    assert min_latent_qubits(rho, 0.75) == 1
    assert min_latent_qubits(rho, 0.7) == 0
    assert min_latent_qubits(rho, 0.95) == 2


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 3), k=st.integers(0, 2), pure=st.booleans())
def test_random_encoder_below_bound(seed: int, n: int, k: int, pure: bool) -> None:
    # Ky Fan: F_enc(U) <= B_k(rho) for every unitary U.
    k = min(k, n - 1)
    g = torch.Generator().manual_seed(seed)
    rho = ensemble_rho(torch.stack([random_pure(n, g) for _ in range(3)]), None) if pure else random_full_rank(n, g)
    f = encoding_fidelity(haar_unitary(2**n, g), rho, trash_projector(n, k))
    assert float(f) <= float(compression_bound(rho, k)) + 1e-9
