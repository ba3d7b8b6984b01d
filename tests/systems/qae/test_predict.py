"""`predict` of qae (arXiv 2005.11149): a smoke-trained run applied to a user's own states file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from torch.testing import assert_close

from tenfold.core.config import make_config
from tenfold.core.errors import InputError
from tenfold.systems.qae.config import PROFILES, Config
from tenfold.systems.qae.data import build_ensemble
from tenfold.systems.qae.loss import encoding_fidelity, trash_projector
from tenfold.systems.qae.predict import predict
from tenfold.systems.qae.train import train


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A smoke run (Adam-GRAPE, 20 iterations) on two_random, seed 0 (a development seed)."""
    path = tmp_path_factory.mktemp("qae_run")
    metrics = train(make_config(Config, PROFILES, "smoke", {"train.iters": 20}), path)
    return path, metrics


def test_round_trip_json_and_npz(run, tmp_path) -> None:
    run_dir, metrics = run
    ens = build_ensemble("two_random", 0)  # the run's own ensemble
    inp = tmp_path / "states.npz"
    np.savez(inp, states=ens.kets.numpy(), weights=np.array([0.25, 0.75]))
    summary = predict(run_dir, inp, tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    U = torch.as_tensor(np.asarray(out["unitary"]["real"]) + 1j * np.asarray(out["unitary"]["imag"]))
    assert_close(U, torch.as_tensor(np.load(run_dir / "unitary.npy")), rtol=0, atol=0)
    # Per-state F_enc,i = Tr[P U |psi_i><psi_i| U^dagger]; the run reported their equal-weight mean.
    P = trash_projector(2, 1)
    expected = [float(encoding_fidelity(U, torch.outer(k, k.conj()), P)) for k in ens.kets]
    assert out["encoding_fidelity"] == pytest.approx(expected, abs=1e-12)
    assert np.mean(out["encoding_fidelity"]) == pytest.approx(metrics["encoding_fidelity"], abs=1e-12)
    # Weighted mean with the file's weights 1/4, 3/4.
    assert summary["mean_encoding_fidelity"] == pytest.approx(0.25 * expected[0] + 0.75 * expected[1], abs=1e-12)
    assert summary["num_states"] == 2 and summary["num_qubits"] == 2 and summary["bound"] == pytest.approx(1.0)
    assert all(d <= e + 1e-12 for d, e in zip(out["decoding_fidelity"], out["encoding_fidelity"]))
    npz_summary = predict(run_dir, inp, tmp_path / "out.npz")
    with np.load(tmp_path / "out.npz") as f:
        assert f["encoding_fidelity"] == pytest.approx(expected, abs=1e-12)
        assert f["unitary"].shape == (4, 4) and f["decoding_fidelity"].shape == (2,)
    assert npz_summary["mean_encoding_fidelity"] == pytest.approx(summary["mean_encoding_fidelity"])


def test_density_matrix_input(run, tmp_path) -> None:
    # One mixed state: werner(0.6); F_enc = Tr[P U rho U^dagger], no decoding fidelity (defined for kets).
    run_dir, _ = run
    rho = build_ensemble("werner", 0).rho
    np.savez(tmp_path / "rho.npz", rho=rho.numpy())
    predict(run_dir, tmp_path / "rho.npz", tmp_path / "out.json")
    out = json.loads((tmp_path / "out.json").read_text())
    U = torch.as_tensor(np.load(run_dir / "unitary.npy"))
    assert out["encoding_fidelity"] == pytest.approx([float(encoding_fidelity(U, rho, trash_projector(2, 1)))])
    assert out["decoding_fidelity"] is None and out["bound"] == pytest.approx(0.8)


def test_wrong_dimension_and_bad_files_exit_2(run, tmp_path) -> None:
    run_dir, _ = run
    three = tmp_path / "three_qubits.npz"
    np.savez(three, states=build_ensemble("four_random", 0).kets.numpy())
    out = tmp_path / "out.json"
    with pytest.raises(InputError, match="three_qubits.npz: states of 3 qubits .* encodes 2 qubits"):
        predict(run_dir, three, out)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"\x00\xffnot a file")
    with pytest.raises(InputError, match="garbage.npz"):
        predict(run_dir, garbage, out)
    unnormalised = tmp_path / "unnormalised.npz"
    np.savez(unnormalised, states=np.array([[1.0, 1.0, 0, 0]]))
    with pytest.raises(InputError, match="unnormalised.npz.*not normalised"):
        predict(run_dir, unnormalised, out)
    with pytest.raises(InputError, match="unknown suffix '.csv'"):
        predict(run_dir, three, tmp_path / "out.csv")
    with pytest.raises(InputError, match="config.json: not found"):
        predict(tmp_path / "no_run", three, out)
    assert not out.exists()  # nothing half-written


def test_run_without_unitary_file_rebuilds_from_checkpoint(run, tmp_path) -> None:
    run_dir, _ = run
    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    (copy / "unitary.npy").unlink()
    ens = build_ensemble("two_random", 0)
    np.savez(tmp_path / "s.npz", states=ens.kets.numpy())
    a = predict(run_dir, tmp_path / "s.npz", tmp_path / "a.json")
    b = predict(copy, tmp_path / "s.npz", tmp_path / "b.json")
    assert b["mean_encoding_fidelity"] == pytest.approx(a["mean_encoding_fidelity"], abs=1e-12)


def test_cli_predict_round_trip(tmp_path, capsys) -> None:
    """`tenfold predict qae --run DIR --input PATH --output PATH` on a CLI-trained smoke run."""
    from tenfold.cli import main

    run_dir = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(run_dir), "--set", "train.iters=5"]) == 0
    capsys.readouterr()
    inp = tmp_path / "states.npz"
    np.savez(inp, states=build_ensemble("two_random", 0).kets.numpy())
    assert main(["predict", "qae", "--run", str(run_dir), "--input", str(inp), "--output", str(tmp_path / "o.json")]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["num_states"] == 2 and (tmp_path / "o.json").exists()
