"""Ensembles, input validation, the .npz reader and interop of qae (arXiv 2005.11149)."""

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.qae.data import (ENSEMBLES, Ensemble, basis_states, build_ensemble, check_latent, ensemble_rho,
                                      from_qiskit, from_qutip, ghz, load_states_file, random_pure, to_qutip,
                                      validate_kets, validate_rho, w_state, werner)
from tenfold.systems.qae.loss import encoding_fidelity, trash_projector

C = torch.complex128
TOL = dict(rtol=0.0, atol=1e-12)


def test_random_pure_seeded(gen: torch.Generator) -> None:
    psi = random_pure(3, gen)
    assert psi.shape == (8,) and psi.dtype == C
    assert_close(torch.linalg.vector_norm(psi), torch.tensor(1.0, dtype=torch.float64), **TOL)
    a = random_pure(2, torch.Generator().manual_seed(5))
    assert_close(a, random_pure(2, torch.Generator().manual_seed(5)), rtol=0, atol=0)


@pytest.mark.parametrize("name", sorted(ENSEMBLES))
def test_every_ensemble_is_a_valid_state(name: str) -> None:
    ens = build_ensemble(name, 0)
    assert isinstance(ens, Ensemble) and ens.rho.shape == (2**ens.num_qubits,) * 2
    validate_rho(ens.rho, source=name)
    if ens.kets is not None:
        validate_kets(ens.kets, ens.probs, source=name)
        assert_close(ensemble_rho(ens.kets, ens.probs), ens.rho, **TOL)


def test_seed_changes_random_ensembles() -> None:
    for name in ("two_random", "three_random", "four_random", "random_full_rank2", "paddle_spectrum"):
        a, b = build_ensemble(name, 0).rho, build_ensemble(name, 1).rho
        assert (a - b).abs().max() > 1e-3
        assert_close(a, build_ensemble(name, 0).rho, rtol=0, atol=0)


def test_unknown_ensemble() -> None:
    with pytest.raises(ValueError, match="two_random"):
        build_ensemble("nope", 0)


def test_states_hand() -> None:
    # GHZ(3) = (|000> + |111>)/sqrt 2; W(3) has 1/sqrt 3 at |100> = 4, |010> = 2, |001> = 1.
    assert_close(ghz(3)[[0, 7]], torch.full((2,), 1 / math.sqrt(2), dtype=C), **TOL)
    assert_close(w_state(3)[[1, 2, 4]], torch.full((3,), 1 / math.sqrt(3), dtype=C), **TOL)
    assert_close(basis_states(2, [2])[0], torch.tensor([0, 0, 1, 0], dtype=C), **TOL)
    # Werner(1) = |Phi+><Phi+|: entries 1/2 at (0,0), (0,3), (3,0), (3,3).
    assert_close(werner(1.0)[0, 3], torch.tensor(0.5, dtype=C), **TOL)


def test_check_latent() -> None:
    check_latent(3, 0)
    check_latent(3, 2)
    for k in (-1, 3):
        with pytest.raises(ValueError, match="model.num_latent_qubits"):
            check_latent(3, k)


@pytest.mark.parametrize("rho,match", [
    (np.full((4, 4), np.nan), "NaN"),
    (np.eye(3) / 3, "power of two"),
    (np.array([[0.5, 0.1], [0.0, 0.5]]), "not Hermitian"),
    (np.diag([1.5, -0.5]), "not positive semidefinite"),
    (np.eye(2), "trace 1"),
    (np.ones((2, 3)), "square"),
])
def test_validate_rho_errors(rho: np.ndarray, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        validate_rho(rho, source="my_rho")
    assert "my_rho" in str(err.value)


@pytest.mark.parametrize("kets,probs,match", [
    (np.array([[1.0, 0.0, 0.0]]), None, "power of two"),
    (np.array([[2.0, 0.0]]), None, "not normalised"),
    (np.array([[np.inf, 0.0]]), None, "NaN or inf"),
    (np.eye(2), np.array([1.5, -0.5]), "non-negative"),
    (np.eye(2), np.array([0.5, 0.6]), "sum to 1"),
    (np.eye(2), np.array([1.0]), "shape"),
])
def test_validate_kets_errors(kets: np.ndarray, probs: np.ndarray | None, match: str) -> None:
    with pytest.raises(ValueError, match=match) as err:
        validate_kets(kets, probs, source="my_states")
    assert "my_states" in str(err.value)


def test_load_states_file_valid(tmp_path: Path) -> None:
    kets = np.array([[1, 0, 0, 0], [0, 1, 0, 0]], dtype=complex)
    np.savez(tmp_path / "good.npz", states=kets, weights=np.array([0.25, 0.75]))
    ens = load_states_file(tmp_path / "good.npz")
    # rho = 0.25 |00><00| + 0.75 |01><01|
    assert ens.num_qubits == 2
    assert_close(ens.rho, torch.diag(torch.tensor([0.25, 0.75, 0, 0], dtype=C)), **TOL)
    np.savez(tmp_path / "rho.npz", rho=np.eye(8) / 8)
    ens = load_states_file(tmp_path / "rho.npz")
    assert ens.num_qubits == 3 and ens.kets is None


def _write(tmp_path: Path, name: str, **fields: np.ndarray) -> Path:
    path = tmp_path / name
    np.savez(path, **fields)
    return path


@pytest.mark.parametrize("fields,field_name,match", [
    ({"states": np.ones((2, 2, 2))}, "states", r"shape \(N, 2\^n\)"),
    ({"states": np.ones((2, 3)) / math.sqrt(3)}, "states", "power of two"),
    ({"states": np.array([[1.0, 1.0]])}, "states", "not normalised"),
    ({"states": np.eye(2), "weights": np.array([1.5, -0.5])}, "weights", "non-negative"),
    ({"states": np.eye(2), "weights": np.array([0.2, 0.2])}, "weights", "sum to 1"),
    ({"states": np.eye(2), "weights": np.array([1.0, 0.0, 0.0])}, "weights", "shape"),
    ({"rho": np.array([[0.5, 0.2], [0.0, 0.5]])}, "rho", "not Hermitian"),
    ({"rho": np.diag([1.2, -0.2])}, "rho", "positive semidefinite"),
    ({"rho": np.eye(2) * 0.4}, "rho", "trace 1"),
    ({"rho": np.full((2, 2), np.nan)}, "rho", "NaN"),
    ({"other": np.eye(2)}, "states", "neither field"),
])
def test_load_states_file_errors(tmp_path: Path, fields: dict, field_name: str, match: str) -> None:
    path = _write(tmp_path, "bad.npz", **fields)
    with pytest.raises(ValueError, match=match) as err:
        load_states_file(path)
    assert "bad.npz" in str(err.value) and field_name in str(err.value)


def test_load_states_file_missing_and_not_npz(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not found") as err:
        load_states_file(tmp_path / "missing.npz")
    assert "missing.npz" in str(err.value)
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ValueError, match="not a readable .npz") as err:
        load_states_file(tmp_path / "text.npz")
    assert "text.npz" in str(err.value) and "'states'" in str(err.value)


def test_qutip_round_trip(gen: torch.Generator) -> None:
    pytest.importorskip("qutip")
    psi = random_pure(2, gen)
    q = to_qutip(psi)
    assert q.isket and q.dims[0] == [2, 2]
    assert_close(from_qutip(q), psi, **TOL)
    rho = torch.outer(psi, psi.conj())
    assert_close(from_qutip(to_qutip(rho)), rho, **TOL)


class FakeQiskitState:
    """Mimics qiskit.quantum_info.Statevector / DensityMatrix: `.data` (little-endian) and `.num_qubits`."""

    def __init__(self, data: np.ndarray, num_qubits: int) -> None:
        self.data, self.num_qubits = data, num_qubits

    @classmethod
    def from_label(cls, label: str) -> "FakeQiskitState":
        # Qiskit labels are written qubit n-1 ... qubit 0, so the label read as binary is the little-endian index.
        data = np.zeros(2 ** len(label), dtype=complex)
        data[int(label, 2)] = 1
        return cls(data, len(label))


def test_from_qiskit_ordering() -> None:
    # Statevector.from_label("01"): qubit 0 in |1>, Qiskit index 1; big-endian (qubit 0 leftmost) it is |10>, index 2.
    sv = FakeQiskitState.from_label("01")
    assert sv.data[1] == 1
    psi = from_qiskit(sv)
    assert_close(psi, torch.tensor([0, 0, 1, 0], dtype=C), **TOL)
    # The trash projector on qubit 0 with reference |1> selects it (F = 1); reference |0> gives F = 0.
    rho = torch.outer(psi, psi.conj())
    eye = torch.eye(4, dtype=C)
    assert float(encoding_fidelity(eye, rho, trash_projector(2, 1, trash_wires=[0], ref_bits=[1]))) == pytest.approx(1)
    assert float(encoding_fidelity(eye, rho, trash_projector(2, 1, trash_wires=[0], ref_bits=[0]))) == pytest.approx(0)
    # 3 qubits: label "011" -> qubits (q0, q1, q2) = (1, 1, 0) -> big-endian |110> = index 6.
    assert int(torch.argmax(from_qiskit(FakeQiskitState.from_label("011")).abs())) == 6
    # DensityMatrix: rows and columns both reversed.
    dm = FakeQiskitState(np.outer(sv.data, sv.data.conj()), 2)
    assert_close(from_qiskit(dm), rho, **TOL)


def test_from_qiskit_real() -> None:
    qi = pytest.importorskip("qiskit.quantum_info")
    assert_close(from_qiskit(qi.Statevector.from_label("01")), torch.tensor([0, 0, 1, 0], dtype=C), **TOL)
    dm = qi.DensityMatrix.from_label("01")
    assert_close(from_qiskit(dm), torch.diag(torch.tensor([0, 0, 1, 0], dtype=C)), **TOL)
