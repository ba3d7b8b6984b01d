"""Bad-input catalogue of qae (issue 12): every reader refuses a malformed file with exit 2, a message naming the
file and the field, and the run directory absent or unchanged, before any training.

Readers: `data.states_file` (.npz `states` (N, 2^n) [+ `weights` (N,)] or `rho` (2^n, 2^n)), `model.control_file`
(.npz or .json `drift` (d, d), `controls` (M, d, d)), the run directory files `tenfold eval` / `tenfold predict` /
a resumed `tenfold train` read (checkpoints/last.pt, unitary.npy), and predict's `--input` (the states .npz format).
"""

from __future__ import annotations

import io
import json
import math
import os
import shutil
import tracemalloc
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from tests.badinput import assert_refused
from tenfold.cli import main
from tenfold.core.errors import InputError
from tenfold.systems.qae import data as D
from tenfold.systems.qae.control import ising_drift, load_control_file, xy_controls
from tenfold.systems.qae.data import build_ensemble, load_states_file

KETS = build_ensemble("two_random", 0).kets.numpy()  # (2, 4): the smoke profile's own ensemble
RHO = build_ensemble("werner", 0).rho.numpy()  # (4, 4)


# ---------------------------------------------------------------- writers

def _npz(path: Path, **fields: np.ndarray) -> Path:
    np.savez(path, **fields)
    return path


def _truncate(path: Path) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def header_only_npz(path: Path, name: str, shape: tuple[int, ...], descr: str = "<c16") -> Path:
    """A zip whose member `name.npy` is a valid .npy header declaring `shape` and no data at all (a few hundred bytes
    that would make np.load allocate the whole declared array)."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}.npy", buf.getvalue())  # the header writer puts the magic first
    return path


def header_only_npy(path: Path, shape: tuple[int, ...], descr: str = "<c16") -> Path:
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(buf, {"descr": descr, "fortran_order": False, "shape": shape})
    path.write_bytes(buf.getvalue())
    return path


def _not_hermitian() -> np.ndarray:
    r = RHO.copy()
    r[0, 1] += 0.1
    return r


STATES_CASES = {  # case -> (writer(path), field named in the message)
    "empty_file": (lambda p: p.write_bytes(b""), "'states'"),
    "text_not_zip": (lambda p: p.write_text("states = [[1, 0]]"), "'states'"),
    "truncated": (lambda p: _truncate(_npz(p, states=KETS)), "'states'"),
    "string_rho": (lambda p: _npz(p, rho=np.array([["1.0", "0.0"], ["0.0", "0.0"]], dtype="<U3")), "'rho'"),
    "string_states": (lambda p: _npz(p, states=np.array([["a", "b"]])), "'states'"),
    "object_states": (lambda p: np.savez(p, states=np.array([[1, None]], dtype=object)), "'states'"),
    "string_weights": (lambda p: _npz(p, states=KETS, weights=np.array(["a", "b"])), "'weights'"),
    "empty_states": (lambda p: _npz(p, states=np.zeros((0, 4), complex)), "'states'"),
    "states_3d": (lambda p: _npz(p, states=np.ones((2, 2, 2))), "'states'"),
    "rho_not_square": (lambda p: _npz(p, rho=np.ones((2, 4)) / 2), "'rho'"),
    "rho_scalar": (lambda p: _npz(p, rho=np.array(1.0)), "'rho'"),
    "not_power_of_two": (lambda p: _npz(p, rho=np.eye(3) / 3), "'rho'"),
    "ket_not_power_of_two": (lambda p: _npz(p, states=np.ones((1, 3)) / math.sqrt(3)), "'states'"),
    "not_hermitian": (lambda p: _npz(p, rho=_not_hermitian()), "'rho'"),
    "not_psd": (lambda p: _npz(p, rho=np.diag([1.2, -0.2, 0.0, 0.0])), "'rho'"),
    "trace_not_one": (lambda p: _npz(p, rho=np.eye(4) * 0.5), "'rho'"),
    "nan_rho": (lambda p: _npz(p, rho=np.where(np.eye(4) > 0, np.nan, 0.0)), "'rho'"),
    "inf_ket": (lambda p: _npz(p, states=np.array([[np.inf, 0, 0, 0]])), "'states'"),
    "unnormalised_ket": (lambda p: _npz(p, states=np.array([[1.0, 1.0, 0, 0]])), "'states'"),
    "negative_weights": (lambda p: _npz(p, states=KETS, weights=np.array([1.5, -0.5])), "'weights'"),
    "weights_not_summing_to_1": (lambda p: _npz(p, states=KETS, weights=np.array([0.3, 0.3])), "'weights'"),
    "nan_weights": (lambda p: _npz(p, states=KETS, weights=np.array([np.nan, 1.0])), "'weights'"),
    "complex_weights": (lambda p: _npz(p, states=KETS, weights=np.array([0.5 + 0.5j, 0.5])), "'weights'"),
    "weights_2d": (lambda p: _npz(p, states=KETS, weights=np.eye(2) / 2), "'weights'"),
    "no_known_field": (lambda p: _npz(p, kets=KETS), "'states'"),
    "huge_header_12_qubits": (lambda p: header_only_npz(p, "rho", (2**12, 2**12)), "'rho'"),
    "huge_ket_header": (lambda p: header_only_npz(p, "states", (1, 2**20)), "'states'"),
    "huge_count_header": (lambda p: header_only_npz(p, "states", (10**9, 4)), "'states'"),
}


def _json_controls(drift: np.ndarray, controls: np.ndarray) -> dict:
    return {"drift": {"real": drift.real.tolist(), "imag": drift.imag.tolist()},
            "controls": {"real": controls.real.tolist(), "imag": controls.imag.tolist()}}


DRIFT, CONTROLS = ising_drift(2).numpy(), xy_controls(2).numpy()

CONTROL_CASES = {  # case -> (suffix, writer(path), field named in the message)
    "json_empty": (".json", lambda p: p.write_text(""), "JSON"),
    "json_non_utf8": (".json", lambda p: p.write_bytes(b'{"drift": "\xff\xfe"}'), "JSON"),
    "json_malformed": (".json", lambda p: p.write_text('{"drift": [[1, 0], [0, 1]'), "JSON"),
    "json_not_object": (".json", lambda p: p.write_text("[1, 2]"), "JSON object"),
    "json_deep_nesting": (".json", lambda p: p.write_text("[" * 100_000 + "]" * 100_000), "JSON"),
    "json_strings": (".json", lambda p: p.write_text(json.dumps({"drift": [["1", "0"], ["0", "1"]],
                                                                 "controls": [[["0", "1"], ["1", "0"]]]})), "'drift'"),
    "json_ragged": (".json", lambda p: p.write_text(json.dumps({"drift": [[1, 0], [0]], "controls": [[[0]]]})),
                    "'drift'"),
    "json_nan": (".json", lambda p: p.write_text('{"drift": [[NaN, 0], [0, 1]], "controls": [[[0, 1], [1, 0]]]}'),
                 "'drift'"),
    "json_inf_literal": (".json", lambda p: p.write_text('{"drift": [[1e999, 0], [0, 1]], '
                                                         '"controls": [[[0, 1], [1, 0]]]}'), "'drift'"),
    "json_huge_int": (".json", lambda p: p.write_text('{"drift": [[1' + "0" * 400 + ', 0], [0, 1]], '
                                                      '"controls": [[[0, 1], [1, 0]]]}'), "'drift'"),
    "json_int_over_4300_digits": (".json", lambda p: p.write_text('{"drift": [[1' + "0" * 5000 + ", 0]]}"), "JSON"),
    "json_missing_controls": (".json", lambda p: p.write_text(json.dumps({"drift": DRIFT.real.tolist()})),
                              "'controls'"),
    "json_real_imag_mismatch": (".json", lambda p: p.write_text(json.dumps(
        {"drift": {"real": DRIFT.real.tolist(), "imag": [[0.0]]}, "controls": CONTROLS.real.tolist()})), "'drift'"),
    "json_not_hermitian": (".json", lambda p: p.write_text(json.dumps(
        _json_controls(DRIFT + np.triu(np.ones((4, 4)), 1), CONTROLS))), "'drift'"),
    "json_wrong_dimension": (".json", lambda p: p.write_text(json.dumps(
        _json_controls(ising_drift(3).numpy(), xy_controls(3).numpy()))), "dimension 8"),
    "npz_empty": (".npz", lambda p: p.write_bytes(b""), "control_file"),
    "npz_truncated": (".npz", lambda p: _truncate(_npz(p, drift=DRIFT, controls=CONTROLS)), "control_file"),
    "npz_string_drift": (".npz", lambda p: _npz(p, drift=np.array([["a", "b"], ["c", "d"]]), controls=CONTROLS),
                         "'drift'"),
    "npz_nan_controls": (".npz", lambda p: _npz(p, drift=DRIFT, controls=np.full_like(CONTROLS, np.nan)),
                         "'controls'"),
    "npz_not_power_of_two": (".npz", lambda p: _npz(p, drift=np.eye(3), controls=np.eye(3)[None]), "'drift'"),
    "npz_huge_header": (".npz", lambda p: header_only_npz(p, "controls", (4, 2**12, 2**12)), "'controls'"),
}


# ---------------------------------------------------------------- train: data.states_file, model.control_file

def _train(run: Path, *sets: str) -> list[str]:
    argv = ["train", "qae", "--profile", "smoke"]
    for s in sets:
        argv += ["--set", s]
    return [*argv, "--out", str(run)]


def test_non_finite_lr_is_refused(tmp_path, capsys) -> None:
    """`--set train.lr=inf` used to train (exit 0, F_enc 0.41); now exit 2 naming train.lr, RUN absent."""
    run = tmp_path / "RUN"
    for value in ("inf", "nan", "-inf"):
        assert_refused(_train(run, f"train.lr={value}"), "train.lr", run, capsys)
        assert not run.exists()


@pytest.mark.parametrize("case", sorted(STATES_CASES))
def test_states_file_refused(tmp_path, capsys, case) -> None:
    write, field = STATES_CASES[case]
    path = tmp_path / f"{case}.npz"
    write(path)
    run = tmp_path / "RUN"
    assert_refused(_train(run, f"data.states_file={path}"), [str(path), field], run, capsys)
    assert not run.exists()


def test_states_file_over_the_size_limit(tmp_path, capsys, monkeypatch) -> None:
    path = _npz(tmp_path / "big.npz", states=KETS)
    monkeypatch.setattr(D, "MAX_FILE_BYTES", 64)  # the file is a few hundred bytes
    run = tmp_path / "RUN"
    err = assert_refused(_train(run, f"data.states_file={path}"), [str(path), "MAX_FILE_BYTES"], run, capsys)
    assert "exceeds the limit" in err


def test_states_file_missing(tmp_path, capsys) -> None:
    run = tmp_path / "RUN"
    assert_refused(_train(run, f"data.states_file={tmp_path / 'absent.npz'}"), "absent.npz", run, capsys)


def test_12_qubit_header_is_refused_without_allocating(tmp_path) -> None:
    """A 2^12 x 2^12 complex128 rho is 256 MiB: refused from the .npz header (a ~200-byte file) without allocating
    it (before: np.load allocated the declared array, then found no data). Memory, not wall time, is asserted."""
    path = header_only_npz(tmp_path / "twelve.npz", "rho", (2**12, 2**12))
    assert path.stat().st_size < 1000
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"dimension 4096 exceeds 2\^6 = 64; qae handles at most 6 qubits") as err:
            load_states_file(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20, f"peak {peak} bytes: the declared array was allocated"
    assert "twelve.npz" in str(err.value) and "'rho'" in str(err.value)


@pytest.mark.parametrize("case", sorted(CONTROL_CASES))
def test_control_file_refused(tmp_path, capsys, case) -> None:
    suffix, write, field = CONTROL_CASES[case]
    path = tmp_path / f"{case}{suffix}"
    write(path)
    run = tmp_path / "RUN"
    assert_refused(_train(run, f"model.control_file={path}"), [str(path), "model.control_file", field], run, capsys)
    assert not run.exists()


def test_control_file_over_the_size_limit(tmp_path, capsys, monkeypatch) -> None:
    path = tmp_path / "big.json"
    path.write_text(json.dumps(_json_controls(DRIFT, CONTROLS)))
    monkeypatch.setattr(D, "MAX_FILE_BYTES", 100)
    run = tmp_path / "RUN"
    assert_refused(_train(run, f"model.control_file={path}"), [str(path), "MAX_FILE_BYTES"], run, capsys)


# ---------------------------------------------------------------- eval, predict, resume: run directory files

@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A CLI smoke run (Adam-GRAPE, 5 iterations) on two_random."""
    run = tmp_path_factory.mktemp("qae_bad") / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--set", "train.iters=5", "--out", str(run)]) == 0
    return run


@pytest.fixture
def run_copy(trained, tmp_path) -> Path:
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    return copy


class _Evil:
    """Unpickling this calls os.system: a crafted checkpoint that would run code under a plain torch.load."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _final(run: Path) -> dict:
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True)


def _with(run: Path, **changes) -> None:
    torch.save({**_final(run), **changes}, run / "checkpoints" / "last.pt")


CHECKPOINT_CASES = {  # case -> writer(run, marker), text the message must hold
    "truncated": (lambda run, m: _truncate(run / "checkpoints" / "last.pt"), "last.pt"),
    "empty": (lambda run, m: (run / "checkpoints" / "last.pt").write_bytes(b""), "last.pt"),
    "malicious_pickle": (lambda run, m: torch.save({"kind": "final", "params": _Evil(m)},
                                                   run / "checkpoints" / "last.pt"), "last.pt"),
    "not_a_dict": (lambda run, m: torch.save(torch.zeros(3), run / "checkpoints" / "last.pt"), "last.pt"),
    "not_final": (lambda run, m: _with(run, kind="grape"), "final checkpoint"),
}
PARAMS_CASES = {  # damaged `params` of a final checkpoint: eval rebuilds U from them
    "params_wrong_shape": (lambda run, m: _with(run, params=torch.zeros(3, 3, dtype=torch.float64)), "'params'"),
    "params_nan": (lambda run, m: _with(run, params=torch.full_like(_final(run)["params"], math.nan)), "'params'"),
    "params_string": (lambda run, m: _with(run, params="abc"), "'params'"),
    "params_missing": (lambda run, m: _with(run, params=None), "'params'"),
}


@pytest.mark.parametrize("case", sorted({**CHECKPOINT_CASES, **PARAMS_CASES}))
def test_eval_refuses_damaged_checkpoint(run_copy, tmp_path, capsys, case) -> None:
    write, needle = {**CHECKPOINT_CASES, **PARAMS_CASES}[case]
    marker = tmp_path / "PWNED"
    write(run_copy, marker)
    assert_refused(["eval", "--run", str(run_copy)], [str(run_copy / "checkpoints" / "last.pt"), needle],
                   run_copy, capsys)
    assert not marker.exists()


@pytest.mark.parametrize("case", sorted(CHECKPOINT_CASES))
def test_predict_refuses_damaged_checkpoint(run_copy, tmp_path, capsys, case) -> None:
    """Before: predict read unitary.npy only and ignored a damaged checkpoint (exit 0)."""
    write, needle = CHECKPOINT_CASES[case]
    marker = tmp_path / "PWNED"
    write(run_copy, marker)
    inp, out = _npz(tmp_path / "in.npz", states=KETS), tmp_path / "out.json"
    assert_refused(["predict", "qae", "--run", str(run_copy), "--input", str(inp), "--output", str(out)],
                   ["last.pt", needle], run_copy, capsys)
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("case", sorted(PARAMS_CASES))
def test_predict_without_unitary_refuses_damaged_params(run_copy, tmp_path, capsys, case) -> None:
    write, needle = PARAMS_CASES[case]
    (run_copy / "unitary.npy").unlink()  # an older run: U is rebuilt from the checkpoint
    write(run_copy, tmp_path / "PWNED")
    inp, out = _npz(tmp_path / "in.npz", states=KETS), tmp_path / "out.json"
    assert_refused(["predict", "qae", "--run", str(run_copy), "--input", str(inp), "--output", str(out)],
                   ["last.pt", needle], run_copy, capsys)
    assert not out.exists()


def _unitary(run: Path, arr: np.ndarray, allow_pickle: bool = False) -> None:
    np.save(run / "unitary.npy", arr, allow_pickle=allow_pickle)


UNITARY_CASES = {  # case -> writer(run), text the message must hold
    "truncated": (lambda run: _truncate(run / "unitary.npy"), "unitary.npy"),
    "empty": (lambda run: (run / "unitary.npy").write_bytes(b""), "not a readable .npy"),
    "garbage": (lambda run: (run / "unitary.npy").write_bytes(b"\x93NUMPY garbage"), "not a readable .npy"),
    "string_dtype": (lambda run: _unitary(run, np.array([["1", "0"], ["0", "1"]])), "not numeric"),
    "object_pickle": (lambda run: _unitary(run, np.array([[1, None]], dtype=object), True), "not numeric"),
    "zero_dim": (lambda run: _unitary(run, np.array(1.0)), "(2^n, 2^n)"),
    "vector": (lambda run: _unitary(run, np.ones(4)), "(2^n, 2^n)"),
    "not_power_of_two": (lambda run: _unitary(run, np.eye(3)), "(2^n, 2^n)"),
    "not_unitary": (lambda run: _unitary(run, 2 * np.eye(4)), "not unitary"),
    "nan": (lambda run: _unitary(run, np.full((4, 4), np.nan + 0j)), "NaN"),
    "too_few_qubits_for_k": (lambda run: _unitary(run, np.eye(2)), "num_latent_qubits"),
    "huge_header": (lambda run: header_only_npy(run / "unitary.npy", (2**12, 2**12)), "at most 6 qubits"),
}


@pytest.mark.parametrize("case", sorted(UNITARY_CASES))
def test_predict_refuses_damaged_unitary(run_copy, tmp_path, capsys, case) -> None:
    write, needle = UNITARY_CASES[case]
    write(run_copy)
    inp, out = _npz(tmp_path / "in.npz", states=KETS), tmp_path / "out.json"
    assert_refused(["predict", "qae", "--run", str(run_copy), "--input", str(inp), "--output", str(out)],
                   [needle], run_copy, capsys)
    assert not out.exists()


@pytest.mark.parametrize("case", ["string_rho", "empty_states", "nan_rho", "huge_header_12_qubits", "truncated",
                                  "negative_weights", "object_states"])
def test_predict_refuses_bad_input(trained, tmp_path, capsys, case) -> None:
    write, field = STATES_CASES[case]
    inp, out = tmp_path / f"{case}.npz", tmp_path / "out.npz"
    write(inp)
    assert_refused(["predict", "qae", "--run", str(trained), "--input", str(inp), "--output", str(out)],
                   [str(inp), field], trained, capsys)
    assert not out.exists()


RESUME_CASES = {  # a resumable (kind 'grape') checkpoint of the smoke config, damaged
    "u_wrong_shape": ({"u": torch.zeros(3, 3, dtype=torch.float64)}, "'u'"),
    "u_nan": ({"u": torch.full((20, 4), math.nan, dtype=torch.float64)}, "'u'"),
    "iter_string": ({"iter": "3"}, "'iter'"),
    "iter_beyond_iters": ({"iter": 10**6}, "'iter'"),
    "history_missing": ({"history": None}, "'history'"),
    "optimizer_not_dict": ({"optimizer": 3}, "'optimizer'"),
    "optimizer_wrong_groups": ({"optimizer": {"state": {}, "param_groups": []}}, "'optimizer'"),
    "optimizer_state_wrong_shape": ("exp_avg", "'optimizer'"),
    "learner_mismatch": ({"kind": "de"}, "cannot be resumed"),
}


@pytest.fixture(scope="module")
def killed(tmp_path_factory) -> tuple[Path, dict]:
    """A smoke run (5 iterations, a checkpoint every 3) and its iteration-3 checkpoint: a run killed at 3."""
    run = tmp_path_factory.mktemp("qae_killed") / "run"
    saved = []
    from tenfold.core.runs import RunDir

    original = RunDir.save_checkpoint
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(RunDir, "save_checkpoint", lambda self, state: (saved.append(state), original(self, state))[1])
        assert main(["--quiet", *_train(run, "train.iters=5", "train.checkpoint_every=3")]) == 0
    grape = torch.load(io.BytesIO(_saved_bytes(saved[0])), weights_only=True)
    assert grape["kind"] == "grape" and grape["iter"] == 3
    return run, grape


def _saved_bytes(state: dict) -> bytes:
    from tenfold.core.runs import _checkpoint_safe

    buf = io.BytesIO()
    torch.save(_checkpoint_safe(state, "state"), buf)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["good", *sorted(RESUME_CASES)])
def test_resume_refuses_damaged_checkpoint(killed, tmp_path, capsys, case) -> None:
    """A killed run resumed with `train` again: a damaged grape checkpoint is refused, the directory unchanged
    (before: a traceback from inside the learner, exit 1). The intact checkpoint resumes (exit 0)."""
    src, grape = killed
    run = tmp_path / "run"
    shutil.copytree(src, run)
    argv = _train(run, "train.iters=5", "train.checkpoint_every=3")
    ckpt = dict(grape)
    if case != "good":
        changes, needle = RESUME_CASES[case]
        if changes == "exp_avg":
            opt = {**grape["optimizer"], "state": {0: {**grape["optimizer"]["state"][0], "exp_avg": torch.zeros(7)}}}
            changes = {"optimizer": opt}
        ckpt.update(changes)
    torch.save(ckpt, run / "checkpoints" / "last.pt")
    if case == "good":
        assert main(["--quiet", *argv]) == 0
        assert _final(run)["kind"] == "final"
        return
    assert_refused(argv, [str(run / "checkpoints" / "last.pt"), needle], run, capsys)


# ---------------------------------------------------------------- fuzz: the JSON control file and the .npz reader

JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["drift", "controls", "real", "imag", "x"]), inner, max_size=4),
    max_leaves=30)


def _only_input_errors(load, path: Path) -> None:
    try:
        load(path)
    except InputError:
        pass


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(max_size=200))
def test_fuzz_control_json_text(tmp_path, text) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(text, encoding="utf-8", errors="surrogatepass")
    _only_input_errors(load_control_file, path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(value=st.dictionaries(st.sampled_from(["drift", "controls", "other"]), JSON_VALUES, max_size=3) | JSON_VALUES)
def test_fuzz_control_json_structures(tmp_path, value) -> None:
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps(value), encoding="utf-8")
    _only_input_errors(load_control_file, path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(shape=st.lists(st.integers(0, 2**40), max_size=4), descr=st.sampled_from(["<c16", "<f8", "|b1", "<U3", "|O"]),
       name=st.sampled_from(["states", "rho", "weights"]))
def test_fuzz_states_npz_headers(tmp_path, shape, descr, name) -> None:
    """Any declared shape and dtype, with no data behind it: refused from the header, never allocated."""
    path = header_only_npz(tmp_path / "fuzz.npz", name, tuple(shape), descr)
    _only_input_errors(load_states_file, path)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(blob=st.binary(max_size=300))
def test_fuzz_states_npz_bytes(tmp_path, blob) -> None:
    path = tmp_path / "fuzz.npz"
    path.write_bytes(blob)
    _only_input_errors(load_states_file, path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(fields=st.dictionaries(
    st.sampled_from(["states", "rho", "weights"]),
    hnp.arrays(st.sampled_from([np.float64, np.float32, np.complex128, np.int64, np.uint8, np.bool_, "<U2"]),
               hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)),
    min_size=1, max_size=3))
def test_fuzz_states_npz_arrays(tmp_path, fields) -> None:
    """Real arrays of any small shape, dtype and content (NaN, inf, huge values): loaded, or an InputError."""
    path = _npz(tmp_path / "fuzz.npz", **fields)
    _only_input_errors(load_states_file, path)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(drift=hnp.arrays(np.complex128, hnp.array_shapes(min_dims=0, max_dims=3, max_side=4)),
       controls=hnp.arrays(np.float64, hnp.array_shapes(min_dims=0, max_dims=4, max_side=4)))
def test_fuzz_control_json_arrays(tmp_path, drift, controls) -> None:
    """Numeric nested lists of any small shape in the JSON control format (NaN and inf as JSON literals)."""
    path = tmp_path / "fuzz.json"
    path.write_text(json.dumps({"drift": {"real": drift.real.tolist(), "imag": drift.imag.tolist()},
                                "controls": controls.tolist()}))
    _only_input_errors(load_control_file, path)
