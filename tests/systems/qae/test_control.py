"""Controlled quantum system of qae (arXiv 2005.11149): propagator parity, GRAPE gradient, controllability."""

import json
import re
import math

import numpy as np
import pytest
import scipy.linalg
import torch
from torch.testing import assert_close

from tenfold.systems.qae.control import (ControlSystem, default_control_system, grape_gradient, ising_drift,
                                         lie_algebra_rank, pauli_on, xy_controls)
from tenfold.systems.qae.data import build_ensemble, haar_unitary, random_full_rank
from tenfold.systems.qae.learning import grape
from tenfold.systems.qae.loss import encoding_fidelity, trash_projector

C = torch.complex128


def random_controls(system: ControlSystem, seed: int) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return 2 * torch.rand(system.control_shape, generator=g, dtype=torch.float64) - 1


def test_operators_hand() -> None:
    # Z(x)Z = diag(1, -1, -1, 1); X on qubit 1 of 2 = I (x) X maps |00> -> |01>.
    assert_close(ising_drift(2), torch.diag(torch.tensor([1, -1, -1, 1], dtype=C)), rtol=0, atol=0)
    assert pauli_on("X", 1, 2)[1, 0] == 1
    hc = xy_controls(3)
    assert hc.shape == (6, 8, 8)
    assert_close(hc[3], pauli_on("Y", 1, 3), rtol=0, atol=0)  # order X0, Y0, X1, Y1, ...


def test_default_system_shapes() -> None:
    # Q = 20 (2 qubits, 80 parameters), 30 (3 qubits, 180 parameters), 10 n otherwise; T = pi.
    assert default_control_system(2).control_shape == (20, 4)
    assert default_control_system(3).control_shape == (30, 6)
    assert default_control_system(4).num_slices == 40
    assert default_control_system(2).T == pytest.approx(math.pi)


def test_propagator_zero_controls_hand() -> None:
    # u = 0: U(T) = exp(-i T ZZ) = diag(e^{-iT}, e^{iT}, e^{iT}, e^{-iT}); T = pi => -I.
    system = default_control_system(2)
    u = torch.zeros(system.control_shape, dtype=torch.float64)
    assert_close(system.propagator(u), -torch.eye(4, dtype=C), rtol=0.0, atol=1e-10)


@pytest.mark.parametrize("n,q", [(2, 20), (2, 7), (3, 5)])
def test_propagator_vs_scipy_loop(n: int, q: int) -> None:
    system = default_control_system(n, num_slices=q)
    u = random_controls(system, 0)
    h0, hc = system.H0.numpy(), system.Hc.numpy()
    ref = np.eye(2**n, dtype=complex)
    for j in range(q):  # U(T) = U_Q ... U_1: later slices multiply from the left
        h = h0 + np.einsum("m,mij->ij", u[j].numpy(), hc)
        ref = scipy.linalg.expm(-1j * system.dt * h) @ ref
    assert_close(system.propagator(u), torch.from_numpy(ref), rtol=0.0, atol=1e-12)


def test_propagator_vs_qutip() -> None:
    qutip = pytest.importorskip("qutip")
    system = default_control_system(2)
    u = random_controls(system, 1)
    ref = qutip.qeye([2, 2])
    for j in range(system.num_slices):
        h = system.H0 + torch.einsum("m,mij->ij", u[j].to(C), system.Hc)
        hq = qutip.Qobj(h.numpy(), dims=[[2, 2], [2, 2]])
        # tight ODE tolerances: qutip integrates the slice Hamiltonian (default rtol 1e-6 gives ~3e-7 errors)
        ref = qutip.propagator(hq, system.dt, options={"atol": 1e-12, "rtol": 1e-11}) * ref
    assert_close(system.propagator(u), torch.from_numpy(ref.full()), rtol=0.0, atol=1e-8)


def test_batched_propagator_matches_single() -> None:
    system = default_control_system(3)
    us = torch.stack([random_controls(system, s) for s in range(4)])  # (B, Q, M)
    batched = system.propagator(us)
    assert batched.shape == (4, 8, 8)
    for b in range(4):
        assert_close(batched[b], system.propagator(us[b]), rtol=0.0, atol=1e-12)
    rho, p = build_ensemble("ghz_w", 0).rho, trash_projector(3, 1)
    assert_close(system.fidelity(us, rho, p), torch.stack([system.fidelity(x, rho, p) for x in us]),
                 rtol=0.0, atol=1e-12)


@pytest.mark.parametrize("n,k", [(2, 1), (3, 1)])
def test_grape_gradient_parity(n: int, k: int) -> None:
    # Explicit GRAPE (exact Frechet derivative) vs autograd through matrix_exp vs central finite differences.
    system = default_control_system(n, num_slices=6)
    g = torch.Generator().manual_seed(3)
    rho, p = random_full_rank(n, g), trash_projector(n, k)
    u = random_controls(system, 2)
    explicit = grape_gradient(system, u, rho, p)
    ua = u.clone().requires_grad_(True)
    system.fidelity(ua, rho, p).backward()
    assert_close(explicit, ua.grad, rtol=0.0, atol=1e-10)
    h = 1e-5
    fd = torch.zeros_like(u)
    for j in range(u.shape[0]):
        for m in range(u.shape[1]):
            e = torch.zeros_like(u)
            e[j, m] = h
            fd[j, m] = (system.fidelity(u + e, rho, p) - system.fidelity(u - e, rho, p)) / (2 * h)
    assert_close(explicit, fd, rtol=0.0, atol=1e-6)


def test_lie_algebra_rank() -> None:
    # Test 10: ZZ drift + {X_q, Y_q} generates su(4) (dimension 15); local controls only give su(2) + su(2) = 6.
    assert lie_algebra_rank(ising_drift(2), xy_controls(2)) == 15
    assert lie_algebra_rank(None, xy_controls(2)) == 6
    assert lie_algebra_rank(torch.zeros(4, 4, dtype=C), xy_controls(2)) == 6
    assert lie_algebra_rank(ising_drift(3), xy_controls(3)) == 63  # su(8)


def test_local_unitaries_cannot_reach_werner_bound() -> None:
    # Test 10: for U = U_A (x) U_B, F_enc = <0|U_B rho_B U_B^+|0> with rho_B = Tr_A werner = I/2 => F_enc = 1/2 < 0.8.
    rho, p = build_ensemble("werner", 0).rho, trash_projector(2, 1)
    g = torch.Generator().manual_seed(0)
    for _ in range(5):
        u = torch.kron(haar_unitary(2, g), haar_unitary(2, g))
        assert_close(encoding_fidelity(u, rho, p), torch.tensor(0.5, dtype=torch.float64), rtol=0.0, atol=1e-10)
    local = ControlSystem(torch.zeros(4, 4, dtype=C), xy_controls(2), math.pi, 10)
    res = grape(local, rho, p, iters=30, generator=g)
    assert np.all(np.abs(res.history - 0.5) < 1e-10)


# ------------------------------------------------------------------ a user's own control system (model.control_file)

from tenfold.core.errors import InputError  # noqa: E402
from tenfold.systems.qae.control import (control_system_from_operators, controllability,  # noqa: E402
                                         load_control_file)


def _write_npz(path, **arrays):
    np.savez(path, **arrays)
    return path


def test_control_file_npz_and_json_round_trip(tmp_path) -> None:
    drift, controls = ising_drift(2).numpy(), xy_controls(2).numpy()
    h0, hc = load_control_file(_write_npz(tmp_path / "sys.npz", drift=drift, controls=controls))
    assert_close(h0, ising_drift(2), rtol=0, atol=0)
    assert_close(hc, xy_controls(2), rtol=0, atol=0)
    js = tmp_path / "sys.json"
    js.write_text(json.dumps({"drift": {"real": drift.real.tolist()},
                              "controls": {"real": controls.real.tolist(), "imag": controls.imag.tolist()}}))
    h0j, hcj = load_control_file(js)
    assert_close(h0j, ising_drift(2), rtol=0, atol=0)
    assert_close(hcj, xy_controls(2), rtol=0, atol=0)  # Y_q carries the imaginary parts


@pytest.mark.parametrize("case,needle", [
    ("non_hermitian", "not Hermitian"),
    ("wrong_shape", "shape (M, d, d)"),
    ("not_power_of_two", "not a power of two"),
    ("nan", "NaN or inf"),
    ("missing", "['controls'] missing"),
    ("mismatch", "must match"),
    ("garbage", "not a readable .npz"),
])
def test_control_file_errors_name_file_and_field(tmp_path, case, needle) -> None:
    drift, controls = ising_drift(2).numpy(), xy_controls(2).numpy()
    path = tmp_path / f"{case}.npz"
    if case == "non_hermitian":
        bad = controls.copy()
        bad[0, 0, 1] = 2.0  # X_0 with one off-diagonal entry changed: H != H^dagger
        _write_npz(path, drift=drift, controls=bad)
    elif case == "wrong_shape":
        _write_npz(path, drift=drift, controls=controls[0])  # (d, d) instead of (M, d, d)
    elif case == "not_power_of_two":
        _write_npz(path, drift=np.eye(3), controls=np.eye(3)[None])
    elif case == "nan":
        bad = drift.copy()
        bad[0, 0] = np.nan
        _write_npz(path, drift=bad, controls=controls)
    elif case == "missing":
        _write_npz(path, drift=drift)
    elif case == "mismatch":
        _write_npz(path, drift=ising_drift(3).numpy(), controls=controls)
    else:
        path.write_bytes(b"not an npz")
    with pytest.raises(InputError, match=re.escape(needle)) as err:
        load_control_file(path)
    assert path.name in str(err.value) and "model.control_file" in str(err.value)


def test_control_file_json_and_suffix_errors(tmp_path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(InputError, match="bad.json: not valid JSON"):
        load_control_file(bad)
    ragged = tmp_path / "ragged.json"
    ragged.write_text(json.dumps({"drift": [[1, 0], [0]], "controls": [[[0, 1], [1, 0]]]}))
    with pytest.raises(InputError, match="'drift' holds non-numeric or ragged"):
        load_control_file(ragged)
    with pytest.raises(InputError, match="file not found"):
        load_control_file(tmp_path / "absent.npz")
    other = tmp_path / "sys.txt"
    other.write_text("x")
    with pytest.raises(InputError, match="unknown suffix"):
        load_control_file(other)


def test_controllability_report() -> None:
    # ZZ + {X_q, Y_q}: su(4), rank 15 = 4^2 - 1 -> controllable; local controls only: su(2) + su(2) = 6 -> not.
    # A drift with an identity part (ZZ + 3 I) only adds a global phase: still rank 15 on the traceless parts.
    assert controllability(ising_drift(2), xy_controls(2)) == {"lie_algebra_rank": 15, "full_rank": 15,
                                                              "controllable": True}
    assert controllability(None, xy_controls(2))["lie_algebra_rank"] == 6
    assert not controllability(None, xy_controls(2))["controllable"]
    shifted = ising_drift(2) + 3 * torch.eye(4, dtype=C)
    assert controllability(shifted, xy_controls(2))["controllable"]
    assert lie_algebra_rank(ising_drift(3), xy_controls(3), max_rank=63) == 63  # early exit at dim su(8)


def test_control_system_from_qutip_operators() -> None:
    qutip = pytest.importorskip("qutip")
    zz = qutip.tensor(qutip.sigmaz(), qutip.sigmaz())
    xs = [qutip.tensor(qutip.sigmax(), qutip.qeye(2)), qutip.tensor(qutip.qeye(2), qutip.sigmax())]
    system = control_system_from_operators(zz, xs, T=1.0, num_slices=4)
    assert system.control_shape == (4, 2)
    assert_close(system.H0, ising_drift(2), rtol=0, atol=0)
    with pytest.raises(InputError, match="not Hermitian"):
        control_system_from_operators(qutip.Qobj(np.array([[0, 1], [0, 0]])), [qutip.sigmax()])


def test_train_with_control_file_reports_controllability(tmp_path, caplog) -> None:
    from tenfold.core.config import make_config
    from tenfold.systems.qae.config import PROFILES, Config
    from tenfold.systems.qae.train import train

    good = _write_npz(tmp_path / "good.npz", drift=ising_drift(2).numpy(), controls=xy_controls(2).numpy())
    cfg = make_config(Config, PROFILES, "smoke", {"model.control_file": str(good), "train.iters": 5})
    metrics = train(cfg, tmp_path / "run_good")
    assert metrics["lie_algebra_rank"] == 15 and metrics["controllable"]
    local = _write_npz(tmp_path / "local.npz", drift=np.zeros((4, 4)), controls=xy_controls(2).numpy())
    cfg = make_config(Config, PROFILES, "smoke", {"model.control_file": str(local), "train.iters": 5})
    with caplog.at_level("WARNING", logger="tenfold.qae"):
        metrics = train(cfg, tmp_path / "run_local")
    assert metrics["lie_algebra_rank"] == 6 and not metrics["controllable"]
    assert "not controllable" in caplog.text
    three = _write_npz(tmp_path / "three.npz", drift=ising_drift(3).numpy(), controls=xy_controls(3).numpy())
    cfg = make_config(Config, PROFILES, "smoke", {"model.control_file": str(three)})
    with pytest.raises(InputError, match="three.npz.*2 qubits"):
        train(cfg, tmp_path / "run_three")
    assert not (tmp_path / "run_three").exists()  # rejected before anything is written
