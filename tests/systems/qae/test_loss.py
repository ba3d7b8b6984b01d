"""Loss terms of qae (arXiv 2005.11149): trash projector, F_enc, F_dec, Uhlmann fidelity, partial traces."""

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.testing import assert_close

from tenfold.systems.qae.bound import compression_bound
from tenfold.systems.qae.control import pauli_on
from tenfold.systems.qae.data import ensemble_rho, haar_unitary, random_full_rank, random_pure, to_qutip
from tenfold.systems.qae.loss import (decoding_fidelity, encoding_fidelity, loss_terms, partial_trace,
                                      trash_projector, trash_states, uhlmann_fidelity)
from tenfold.systems.qae.learning import unitary_group_ascent

C = torch.complex128
TOL = dict(rtol=0.0, atol=1e-10)


def diag(*v: float) -> torch.Tensor:
    return torch.diag(torch.tensor(v, dtype=C))


def swap_operator(n: int, perm: list[int]) -> torch.Tensor:
    """Permutation operator sending qubit q to position perm[q] (big-endian)."""
    d = 2**n
    out = torch.zeros(d, d, dtype=C)
    for i in range(d):
        bits = [(i >> (n - 1 - q)) & 1 for q in range(n)]
        new = [0] * n
        for q in range(n):
            new[perm[q]] = bits[q]
        out[int("".join(map(str, new)), 2), i] = 1
    return out


def test_trash_projector_hand() -> None:
    # n = 2, k = 1, default trash = qubit 1, ref 0: keep |00>, |10> => diag(1, 0, 1, 0).
    assert_close(trash_projector(2, 1), diag(1, 0, 1, 0), **TOL)
    # trash = qubit 0: keep |00>, |01> => diag(1, 1, 0, 0); reference |1> on qubit 1 => diag(0, 1, 0, 1).
    assert_close(trash_projector(2, 1, trash_wires=[0]), diag(1, 1, 0, 0), **TOL)
    assert_close(trash_projector(2, 1, ref_bits=[1]), diag(0, 1, 0, 1), **TOL)
    # k = 0: every qubit is trash, P = |00><00|.
    assert_close(trash_projector(2, 0), diag(1, 0, 0, 0), **TOL)
    p = trash_projector(3, 1)
    assert int(torch.trace(p).real) == 2
    with pytest.raises(ValueError, match="num_latent_qubits"):
        trash_projector(2, 2)


def test_encoding_fidelity_hand() -> None:
    # psi = cos t |00> + sin t |01>, U = I: the trash qubit is |0> with amplitude cos t => F_enc = cos^2 t.
    t = 0.3
    psi = torch.tensor([math.cos(t), math.sin(t), 0, 0], dtype=C)
    rho = torch.outer(psi, psi.conj())
    eye = torch.eye(4, dtype=C)
    assert_close(encoding_fidelity(eye, rho, trash_projector(2, 1)), torch.tensor(math.cos(t) ** 2, dtype=torch.float64),
                 **TOL)
    # U = X on the trash qubit swaps the amplitudes => F_enc = sin^2 t.
    assert_close(encoding_fidelity(pauli_on("X", 1, 2), rho, trash_projector(2, 1)),
                 torch.tensor(math.sin(t) ** 2, dtype=torch.float64), **TOL)
    assert_close(loss_terms(eye, rho, trash_projector(2, 1))["loss_enc"],
                 torch.tensor(1 - math.cos(t) ** 2, dtype=torch.float64), **TOL)


def test_encoding_fidelity_batched_matches_loop(gen: torch.Generator) -> None:
    rho, p = random_full_rank(3, gen), trash_projector(3, 1)
    us = torch.stack([haar_unitary(8, gen) for _ in range(5)]).reshape(5, 1, 8, 8)  # (5, 1, d, d)
    batched = encoding_fidelity(us, rho, p)
    assert batched.shape == (5, 1)
    assert_close(batched[:, 0], torch.stack([encoding_fidelity(u[0], rho, p) for u in us]), **TOL)


def test_partial_trace_hand() -> None:
    # Bell state: each reduced state is I/2.
    phi = torch.tensor([1, 0, 0, 1], dtype=C) / math.sqrt(2)
    bell = torch.outer(phi, phi.conj())
    assert_close(partial_trace(bell, 2, [0]), torch.eye(2, dtype=C) / 2, **TOL)
    # product rho_A (x) rho_B: Tr_A gives rho_B; keep=[1, 0] reorders the factors.
    ra, rb = diag(0.7, 0.3), diag(0.1, 0.9)
    assert_close(partial_trace(torch.kron(ra, rb), 2, [1]), rb, **TOL)
    assert_close(partial_trace(torch.kron(torch.kron(ra, rb), diag(1, 0)), 3, [1, 0]), torch.kron(rb, ra), **TOL)


@pytest.mark.parametrize("n,k", [(2, 1), (3, 1), (3, 2)])
def test_encoding_fidelity_vs_partial_trace_definition(n: int, k: int, gen: torch.Generator) -> None:
    # F_enc = sum_i p_i <ref|sigma_i^B|ref> (definition) = Tr[P U rho U^+] (closed form), linear in the ensemble.
    kets = torch.stack([random_pure(n, gen) for _ in range(4)])
    probs = torch.tensor([0.1, 0.2, 0.3, 0.4], dtype=torch.float64)
    u = haar_unitary(2**n, gen)
    sig = trash_states(u, kets, n, k)  # (N, d_B, d_B)
    definition = (probs * sig[:, 0, 0].real).sum()
    closed = encoding_fidelity(u, ensemble_rho(kets, probs), trash_projector(n, k))
    assert_close(closed, definition, **TOL)
    # same sigma_i via the generic partial trace of U|psi_i><psi_i|U^+ over the latent qubits
    phi = kets @ u.T
    via_pt = torch.stack([partial_trace(torch.outer(f, f.conj()), n, list(range(k, n))) for f in phi])
    assert_close(sig, via_pt, **TOL)
    # linearity: average of per-state F_enc equals F_enc of the average rho
    per_state = torch.stack([encoding_fidelity(u, torch.outer(x, x.conj()), trash_projector(n, k)) for x in kets])
    assert_close((probs * per_state).sum(), closed, **TOL)


def test_decoding_fidelity_hand() -> None:
    t = 0.4
    c, s = math.cos(t), math.sin(t)
    eye = torch.eye(4, dtype=C)
    # psi = c|00> + s|01>: a_0 = c|0>, a_1 = s|0> => F_dec = c^4 + c^2 s^2 = c^2 = F_enc (upper end of sandwich).
    psi = torch.tensor([[c, s, 0, 0]], dtype=C)
    per, avg = decoding_fidelity(eye, psi, None, 2, 1)
    assert_close(per, torch.tensor([c**2], dtype=torch.float64), **TOL)
    # psi = c|00> + s|11>: a_0 = c|0>, a_1 = s|1> orthogonal => F_dec = c^4 = F_enc^2 (lower end).
    psi = torch.tensor([[c, 0, 0, s]], dtype=C)
    per, avg = decoding_fidelity(eye, psi, None, 2, 1)
    assert_close(avg, torch.tensor(c**4, dtype=torch.float64), **TOL)


@settings(max_examples=30, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(2, 3), k=st.integers(0, 2))
def test_sandwich_property(seed: int, n: int, k: int) -> None:
    # F_enc^2 <= F_dec <= F_enc per pure input (spec component 4).
    k = min(k, n - 1)
    g = torch.Generator().manual_seed(seed)
    u, psi = haar_unitary(2**n, g), random_pure(n, g)
    f_enc = float(encoding_fidelity(u, torch.outer(psi, psi.conj()), trash_projector(n, k)))
    f_dec = float(decoding_fidelity(u, psi[None], None, n, k)[0][0])
    assert f_enc**2 - 1e-12 <= f_dec <= f_enc + 1e-12


def test_uhlmann_vs_qutip(gen: torch.Generator) -> None:
    qutip = pytest.importorskip("qutip")
    for _ in range(3):  # full rank: both are accurate
        rho, sigma = random_full_rank(2, gen), random_full_rank(2, gen)
        ref = qutip.fidelity(to_qutip(rho), to_qutip(sigma)) ** 2
        assert_close(uhlmann_fidelity(rho, sigma), torch.tensor(ref, dtype=torch.float64), rtol=0.0, atol=1e-10)
    # rank-deficient rho = V diag(0.5, 0.5, 0, 0) V^+: sqrt(rho) sigma sqrt(rho) = 0.5 W W^+ sigma W W^+ (W = first
    # two columns of V), so F = (sum_j sqrt(eig_j(0.5 W^+ sigma W)))^2 exactly. qutip's sqrtm of the zero
    # eigenvalues leaves ~1e-8 round-off, hence the looser qutip tolerance.
    v, sigma = haar_unitary(4, gen), random_full_rank(2, gen)
    rho = (v * torch.tensor([0.5, 0.5, 0, 0], dtype=C)) @ v.mH
    w = v[:, :2]
    exact = torch.linalg.eigvalsh(0.5 * w.mH @ sigma @ w).clamp(min=0).sqrt().sum() ** 2
    assert_close(uhlmann_fidelity(rho, sigma), exact, rtol=0.0, atol=1e-12)
    ref = qutip.fidelity(to_qutip(rho), to_qutip(sigma)) ** 2
    assert_close(uhlmann_fidelity(rho, sigma), torch.tensor(ref, dtype=torch.float64), rtol=0.0, atol=1e-7)
    # pure states: F = |<a|b>|^2
    a, b = random_pure(2, gen), random_pure(2, gen)
    assert_close(uhlmann_fidelity(torch.outer(a, a.conj()), torch.outer(b, b.conj())), torch.vdot(a, b).abs() ** 2,
                 rtol=0.0, atol=1e-10)


def test_uhlmann_not_linear() -> None:
    # Counter-example (pitfall 2): rho_1 = |0><0| vs sigma_1 = |1><1| and rho_2 = |1><1| vs sigma_2 = |0><0| each
    # have F = 0, so the average of fidelities is 0; the averages rho = sigma = I/2 have F = 1.
    z0, z1 = diag(1, 0), diag(0, 1)
    avg_of_f = 0.5 * uhlmann_fidelity(z0, z1) + 0.5 * uhlmann_fidelity(z1, z0)
    f_of_avg = uhlmann_fidelity(0.5 * (z0 + z1), 0.5 * (z1 + z0))
    assert_close(avg_of_f, torch.tensor(0.0, dtype=torch.float64), **TOL)
    assert_close(f_of_avg, torch.tensor(1.0, dtype=torch.float64), **TOL)


def test_trash_relabelling_invariance(gen: torch.Generator) -> None:
    # Relabel qubits by a permutation Pi: the projector on the relabelled wires with the relabelled reference is
    # Pi P Pi^+, so F_enc(Pi U) with it equals F_enc(U) with P; B_k does not depend on the labels at all.
    n, k = 3, 1
    perm = [2, 0, 1]  # qubit q -> position perm[q]; default trash wires {1, 2} -> {0, 1}
    ref = [0, 1]
    p = trash_projector(n, k, ref_bits=ref)
    pi = swap_operator(n, perm)
    p_perm = trash_projector(n, k, trash_wires=[perm[1], perm[2]], ref_bits=ref)
    assert_close(p_perm, pi @ p @ pi.mH, **TOL)
    # same projector whatever order the trash wires are listed in, when ref_bits follow them
    assert_close(trash_projector(n, k, trash_wires=[2, 1], ref_bits=[1, 0]), p, **TOL)
    rho, u = random_full_rank(n, gen), haar_unitary(8, gen)
    assert_close(encoding_fidelity(pi @ u, rho, p_perm), encoding_fidelity(u, rho, p), **TOL)
    # the learned F_enc (unitary-group ascent) is the same for both labellings
    f1 = unitary_group_ascent(rho, p, steps=1500, generator=torch.Generator().manual_seed(0)).fidelity
    f2 = unitary_group_ascent(rho, p_perm, steps=1500, generator=torch.Generator().manual_seed(0)).fidelity
    assert abs(f1 - f2) < 1e-6
    assert abs(f1 - float(compression_bound(rho, k))) < 1e-6


@pytest.mark.parametrize("n,k,wires,ref", [(2, 1, None, None), (3, 1, [0, 2], [1, 0])])
def test_encoding_fidelity_vs_pennylane(n: int, k: int, wires, ref, gen: torch.Generator) -> None:
    # Parity: Tr[P U rho U^+] vs PennyLane's qml.expval(qml.Projector(ref, wires=trash)) after the same circuit.
    pytest.importorskip("pennylane")
    from tenfold.systems.qae.data import circuit_qnode
    from tenfold.systems.qae.model import CircuitEncoder

    enc = CircuitEncoder(n, num_layers=2, generator=gen)
    rho = random_full_rank(n, gen)
    p = trash_projector(n, k, trash_wires=wires, ref_bits=ref)
    with torch.no_grad():
        ours = encoding_fidelity(enc.unitary(), rho, p)
        exact = circuit_qnode(enc, k, trash_wires=wires, ref_bits=ref, interface="numpy")(rho.numpy())
        trainable = circuit_qnode(enc, k, trash_wires=wires, ref_bits=ref)(rho)
    assert_close(ours, torch.as_tensor(exact, dtype=torch.float64), rtol=0.0, atol=1e-10)
    # PennyLane 0.45 default.mixed under the torch interface applies RZ with ~2e-8 round-off per gate (a lone RZ,
    # which commutes with the diagonal P and cannot change F, moves its expval by 2.3e-8): looser tolerance.
    assert_close(ours, torch.as_tensor(trainable, dtype=torch.float64), rtol=0.0, atol=1e-6)
