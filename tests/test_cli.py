"""The CLI, in-process through `main(argv)` (exit codes 0 / 1 / 2, messages naming the field or file)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tenfold.cli import main


def test_list_and_help(capsys):
    from tenfold.systems import SYSTEMS

    assert main(["list"]) == 0
    out = capsys.readouterr().out
    assert all(key in out for key in SYSTEMS)
    assert main(["--help"]) == 0


def test_smoke_command(capsys):
    assert main(["--quiet", "smoke", "qae"]) == 0
    assert "qae: ok" in capsys.readouterr().out


def test_device_cuda_without_gpu_is_an_input_error(tmp_path, capsys):
    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    out = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--device", "cuda", "--out", str(out)]) == 2
    assert "CUDA is not available" in capsys.readouterr().err
    assert not out.exists()  # nothing half-written


def test_show_applies_profile_and_set(capsys):
    assert main(["show", "qae", "--profile", "smoke", "--set", "train.lr=0.1"]) == 0
    cfg = json.loads(capsys.readouterr().out)
    assert cfg["train"]["lr"] == 0.1 and cfg["train"]["iters"] == 50


@pytest.mark.parametrize("argv,needle", [
    (["show", "nope"], "unknown system 'nope'; valid systems: "),
    (["show", "qae", "--set", "train.lrr=1"], "unknown config key 'train.lrr'"),
    (["show", "qae", "--set", "train.iters=many"], "train.iters: expected an integer"),
    (["show", "qae", "--set", "noequals"], "expected KEY=VALUE"),
    (["train", "qae"], "--profile"),
    (["frobnicate"], "invalid choice"),
    (["eval", "--run", "/nonexistent/run"], "run.json: not found"),
    (["report", "/nonexistent/rep"], "claims.json"),
])
def test_usage_and_input_errors_exit_2(argv, needle, capsys):
    assert main(argv) == 2
    assert needle in capsys.readouterr().err


def test_train_eval_and_resume(tmp_path, capsys):
    out = tmp_path / "run"
    argv = ["--quiet", "train", "qae", "--profile", "smoke", "--out", str(out), "--set", "train.iters=20",
            "--set", "train.checkpoint_every=5"]
    assert main(argv) == 0
    first = json.loads(capsys.readouterr().out)
    assert first["encoding_fidelity"] <= first["bound"] + 1e-9
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "run.json"):
        assert (out / name).exists(), name
    assert main(["--quiet", "eval", "--run", str(out)]) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["encoding_fidelity"] == pytest.approx(first["encoding_fidelity"], abs=1e-12)
    assert (out / "unitary.npy").exists()
    # A different config on a directory that holds a checkpoint is an input error naming the file.
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(out), "--set", "train.lr=0.3"]) == 2
    assert "config.json" in capsys.readouterr().err


def test_train_on_user_states_file(tmp_path, capsys):
    # Two 2-qubit product states |00> and |+0>: rank 2 <= 2^1, so the bound is 1 (spec 7, case 7 with k = 1).
    states = np.array([[1, 0, 0, 0], [2**-0.5, 0, 2**-0.5, 0]], dtype=np.complex128)
    path = tmp_path / "F.npz"
    np.savez(path, states=states, weights=np.array([0.5, 0.5]))
    out = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "quick", "--out", str(out), "--set",
                 f"data.states_file={path}", "--set", "model.num_latent_qubits=1", "--set", "train.iters=60"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["bound"] == pytest.approx(1.0, abs=1e-12)
    assert 0.99 <= summary["encoding_fidelity"] <= 1.0 + 1e-9
    assert summary["runtime"]["wall_time_s"] > 0


def test_bad_states_file_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.npz"
    np.savez(path, states=np.ones((2, 3), dtype=np.complex128))  # 3 is not a power of two
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(tmp_path / "r"), "--set",
                 f"data.states_file={path}"]) == 2
    err = capsys.readouterr().err
    assert "bad.npz" in err and "states" in err
    assert not (tmp_path / "r" / "config.json").exists()  # nothing half-written
    # k >= n is a clear error naming the field
    good = tmp_path / "good.npz"
    np.savez(good, rho=np.eye(4, dtype=np.complex128) / 4)
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(tmp_path / "r2"), "--set",
                 f"data.states_file={good}", "--set", "model.num_latent_qubits=2"]) == 2
    assert "model.num_latent_qubits" in capsys.readouterr().err


def test_reproduce_smoke_writes_report_and_report_rerenders(tmp_path, capsys):
    out = tmp_path / "rep"
    code = main(["--quiet", "reproduce", "qae", "--profile", "smoke", "--seed", "3", "--seeds", "2", "--out", str(out)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "claims: " in printed and "checks: " in printed
    payload = json.loads((out / "claims.json").read_text())
    assert payload["seeds"] == [3, 4] and payload["systems"]["qae"]["status"] == "ok"
    assert payload["claims"] and all(c["verdict"] in ("holds", "fails", "inconclusive") for c in payload["claims"])
    assert all(c["system"] == "qae" and c["seeds"] == [3, 4] for c in payload["claims"])
    assert {c["kind"] for c in payload["claims"]} == {"claim", "check"}
    assert len(list((out / "qae" / "seed-3").glob("*.png"))) >= 2
    html = (out / "index.html").read_text()
    assert html.count("<tr class=") == len(payload["claims"]) and "data:image/png;base64," in html
    assert main(["report", str(out)]) == 0


def test_predict_options_are_passed_when_offered_and_refused_otherwise(tmp_path, capsys, monkeypatch):
    """`--bars` / `--support` reach `predict` as keyword arguments only for a system that names them in
    `SystemSpec.predict_options`; another system refuses them with exit 2 before its predict runs."""
    import dataclasses

    import tenfold.cli as cli
    from tenfold.systems import SYSTEMS

    run = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(run)]) == 0
    inp = tmp_path / "in.npz"
    inp.write_bytes(b"x")
    calls = []
    base = SYSTEMS["qae"]
    offering = dataclasses.replace(base, predict=lambda r, i, o, **kw: calls.append(kw) or {"ok": 1},
                                   predict_options=("bars",))
    monkeypatch.setattr(cli, "get_system", lambda key: offering)
    argv = ["predict", "qae", "--run", str(run), "--input", str(inp), "--output", str(tmp_path / "o")]
    assert main(argv + ["--bars", "3"]) == 0 and calls == [{"bars": 3}]
    assert main(argv) == 0 and calls[-1] == {}
    capsys.readouterr()
    assert main(argv + ["--bars", "0"]) == 2 and "--bars 0" in capsys.readouterr().err
    assert main(argv + ["--support", str(inp)]) == 2
    assert "does not take this option" in capsys.readouterr().err and len(calls) == 2
    monkeypatch.setattr(cli, "get_system", lambda key: base)
    assert main(argv + ["--bars", "3"]) == 2 and "--bars" in capsys.readouterr().err
