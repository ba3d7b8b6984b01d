"""Issue 12, core: safe checkpoints, config validated once, non-finite floats, run-directory files, the report.

Each test here failed before its fix (weights_only=False loading, per-`--set` validation, inf accepted, ...).
"""

from __future__ import annotations

import json
import os
import pickle

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tenfold.cli import main
from tenfold.core.claims import Measurement, Relation, aggregate
from tenfold.core.config import ConfigError, load_config, make_config, to_dict
from tenfold.core.errors import InputError
from tenfold.core.report import write_report
from tenfold.core.runs import RunDir, load_tensors
from tenfold.systems import SYSTEMS
from tests.badinput import assert_refused

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


class _Exploit:
    """A pickle that runs code on load: creates `marker` through os.system-like side effect."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


# --------------------------------------------------------------------------------- checkpoints (item 1)

def test_malicious_checkpoint_is_refused_and_does_not_run(tmp_path):
    run = RunDir(tmp_path / "run")
    marker = tmp_path / "pwned"
    run.checkpoint_path.parent.mkdir(parents=True)
    torch.save({"model": _Exploit(marker)}, run.checkpoint_path)
    with pytest.raises(InputError, match="last.pt: not a file tenfold can load safely"):
        run.load_checkpoint()
    assert not marker.exists()
    with open(tmp_path / "raw.pt", "wb") as f:  # a bare pickle, not a torch zip
        pickle.dump(_Exploit(marker), f)
    with pytest.raises(InputError, match="raw.pt"):
        load_tensors(tmp_path / "raw.pt")
    assert not marker.exists()


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated zip", b"\x80\x04garbage"])
def test_truncated_checkpoint_is_an_input_error(tmp_path, content):
    run = RunDir(tmp_path)
    run.checkpoint_path.parent.mkdir(parents=True)
    run.checkpoint_path.write_bytes(content)
    with pytest.raises(InputError, match="last.pt"):
        run.load_checkpoint()


def test_checkpoints_store_numpy_as_tensors_and_refuse_objects(tmp_path):
    import numpy as np

    run = RunDir(tmp_path)
    run.save_checkpoint({"a": np.arange(3), "b": np.float64(2.5), "c": (1, [2.0, None]), "d": torch.ones(2)})
    back = run.load_checkpoint()
    assert torch.equal(back["a"], torch.arange(3)) and back["b"] == 2.5 and back["c"] == (1, [2.0, None])
    with pytest.raises(TypeError, match=r"state\['x'\]"):
        run.save_checkpoint({"x": object()})


def test_eval_of_a_run_with_a_malicious_checkpoint_exits_2(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(run)]) == 0
    marker = tmp_path / "pwned"
    torch.save({"kind": "final", "params": _Exploit(marker)}, run / "checkpoints" / "last.pt")
    assert_refused(["eval", "--run", str(run)], "last.pt", run, capsys)
    assert_refused(["train", "qae", "--profile", "smoke", "--out", str(run)], "last.pt", run, capsys)
    assert not marker.exists()


def test_killed_writes_leave_no_temporaries_after_restart(tmp_path):
    run = RunDir(tmp_path)
    (tmp_path / "checkpoints").mkdir()
    stale = [tmp_path / "checkpoints" / ".last.pt.abc123.tmp", tmp_path / ".config.json.tmp"]
    for p in stale:
        p.write_bytes(b"half")
    cfg = make_config(SYSTEMS["qae"].config_cls, SYSTEMS["qae"].profiles, "smoke")
    run.write_config(cfg)
    assert not any(p.exists() for p in stale) and run.config_path.exists()


# ------------------------------------------------------------------------------------ config (items 2, 5)

def test_overrides_are_validated_once_so_order_never_matters():
    spec = SYSTEMS["maskfocal"]
    files = {"data.train_file": "a.json", "data.val_file": "b.json", "data.test_file": "c.json"}
    forward = make_config(spec.config_cls, spec.profiles, "smoke", {"data.source": "files", **files})
    backward = make_config(spec.config_cls, spec.profiles, "smoke", {**files, "data.source": "files"})
    assert forward == backward and forward.data.source == "files"
    with pytest.raises(ConfigError, match="data.source='files' needs"):  # the final config is still validated
        make_config(spec.config_cls, spec.profiles, "smoke", {"data.source": "files"})


@pytest.mark.parametrize("value", ["inf", "-inf", "nan", "1e999", "-1e999", "Infinity"])
def test_non_finite_config_floats_exit_2(tmp_path, capsys, value):
    out = tmp_path / "run"
    assert_refused(["train", "qae", "--profile", "smoke", "--set", f"train.lr={value}", "--out", str(out)],
                   ["train.lr", "finite"], out, capsys)


def test_non_finite_in_config_json_is_refused(tmp_path):
    spec = SYSTEMS["qae"]
    cfg = make_config(spec.config_cls, spec.profiles, "smoke")
    path = tmp_path / "config.json"
    data = to_dict(cfg)
    data["train"]["lr"] = float("inf")
    path.write_text(json.dumps(data))  # json writes Infinity, which json.loads accepts
    with pytest.raises(ConfigError, match="config.json: train.lr: expected a finite number"):
        load_config(spec.config_cls, path)


@pytest.mark.parametrize("seed", ["-1", str(2**32), str(10**30)])
def test_seeds_out_of_range_exit_2(tmp_path, capsys, seed):
    out = tmp_path / "run"
    assert_refused(["train", "qae", "--profile", "smoke", "--seed", seed, "--out", str(out)], "seed", out, capsys)


# ------------------------------------------------------------------------------------ the CLI (item 6)

def test_out_that_is_a_file_exits_2(tmp_path, capsys):
    f = tmp_path / "afile"
    f.write_text("x")
    assert_refused(["train", "qae", "--profile", "smoke", "--out", str(f)], "afile", None, capsys)
    assert f.read_text() == "x"
    assert_refused(["train", "qae", "--profile", "smoke", "--out", str(f / "sub")], "afile", None, capsys)
    assert_refused(["reproduce", "qae", "--profile", "smoke", "--out", str(f)], "afile", None, capsys)


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_out_exits_2(tmp_path, capsys):
    ro = tmp_path / "ro"
    ro.mkdir(mode=0o500)
    assert_refused(["train", "qae", "--profile", "smoke", "--out", str(ro / "run")], "ro", ro, capsys)


def _trained_run(tmp_path):
    run = tmp_path / "run"
    assert main(["--quiet", "train", "qae", "--profile", "smoke", "--out", str(run)]) == 0
    return run


@pytest.mark.parametrize("name,content", [
    ("config.json", b""), ("config.json", b"\xff\xfe not utf-8"), ("config.json", b"[1, 2]"),
    ("config.json", b'{"seed": 0}'), ("config.json", b"[" * 100_000),
    ("run.json", b"{"), ("run.json", b'{"system": 3}'), ("run.json", b'{"system": "nope"}'),
    ("run.json", b"\xff\xfe"), ("checkpoints/last.pt", b"PK\x03\x04"),
])
def test_damaged_run_directory_files_exit_2(tmp_path, capsys, name, content):
    run = _trained_run(tmp_path)
    (run / name).write_bytes(content)
    assert_refused(["eval", "--run", str(run)], name.split("/")[-1], run, capsys)


# ------------------------------------------------------------------------------------ the report (item 9)

def _report(tmp_path):
    rows = []
    for s in (1, 2, 3):
        rows.append(Measurement("qae", "beats DE", "F", "grape", 0.9 + s / 100, "de", 0.5, Relation(">="), s, 1.0,
                                reference="zero", reference_value=0.1))
    meta = {"profile": "quick", "seeds": [1, 2, 3], "systems": {"qae": {"status": "ok", "wall_time_s": 1.0,
                                                                        "seeds": [1, 2, 3]}}}
    write_report(tmp_path, aggregate(rows), meta)
    return json.loads((tmp_path / "claims.json").read_text())


@pytest.mark.parametrize("edit", [
    lambda r: r.update(relation={"op": "<=", "margin": 0.0, "tie": 1e-9}, verdict="fails"),  # relation flipped
    lambda r: r.update(method_values=[0.4, 0.4, 0.4], verdict="fails", method_mean=0.4),  # numbers and verdict
    lambda r: r.pop("digest"),  # the digest removed
    lambda r: r.update(reference="something else"),
])
def test_edited_rows_are_flagged_even_when_consistent(tmp_path, capsys, edit):
    payload = _report(tmp_path)
    edit(payload["claims"][0])
    (tmp_path / "claims.json").write_text(json.dumps(payload))
    err = assert_refused(["report", str(tmp_path)], "claims.json", None, capsys)
    assert "digest" in err or "disagrees" in err


def test_report_reads_no_png_outside_its_folder(tmp_path):
    secret = tmp_path / "secret.png"
    secret.write_bytes(b"\x89PNG secret")
    report = tmp_path / "rep"
    payload = _report(report)
    payload["systems"] = {"../": {"seeds": [1]}, str(tmp_path): {"seeds": [1]}, "qae": {"seeds": ["../.."]}}
    (report / "claims.json").write_text(json.dumps(payload))
    assert main(["--quiet", "report", str(report)]) in (0, 2)
    html = (report / "index.html").read_text()
    assert "secret" not in html and "PNG secret" not in html


json_values = st.recursive(st.none() | st.booleans() | st.floats(allow_nan=True) | st.integers() | st.text(max_size=8),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                       max_size=4), max_leaves=20)


@FUZZ
@given(st.data())
def test_fuzz_report_rows_load_or_exit_2(tmp_path_factory, data):
    """Mutating any field of a valid claims.json to any JSON value: exit 0 (harmless) or exit 2, never 1."""
    folder = tmp_path_factory.mktemp("rep")
    payload = _report(folder)
    row = payload["claims"][0]
    key = data.draw(st.sampled_from(sorted(row) + ["systems", "seeds", "claims"]))
    value = data.draw(json_values)
    if key in row:
        row[key] = value
    else:
        payload[key] = value
    (folder / "claims.json").write_text(json.dumps(payload))
    assert main(["--quiet", "report", str(folder)]) in (0, 2)


@FUZZ
@given(text=st.text(max_size=200) | st.binary(max_size=200).map(lambda b: b.decode("latin-1")))
def test_fuzz_config_json_loads_or_raises_config_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("cfg") / "config.json"
    path.write_text(text, encoding="utf-8", errors="surrogateescape")
    for key in SYSTEMS:
        with pytest.raises(ConfigError):
            load_config(SYSTEMS[key].config_cls, path)


@FUZZ
@given(key=st.sampled_from(sorted(SYSTEMS)), data=st.data())
def test_fuzz_set_overrides_convert_or_raise_config_error(key, data):
    """Any `--set section.field=text` either gives a valid config or a ConfigError naming the key."""
    spec = SYSTEMS[key]
    flat = []

    def walk(d, prefix):
        for k, v in d.items():
            if isinstance(v, dict):
                walk(v, prefix + k + ".")
            else:
                flat.append(prefix + k)

    walk(to_dict(make_config(spec.config_cls, spec.profiles, "smoke")), "")
    field = data.draw(st.sampled_from(flat))
    value = data.draw(st.text(max_size=12) | st.sampled_from(["inf", "nan", "1e999", "-1", "0", "true", "1,2"]))
    try:
        make_config(spec.config_cls, spec.profiles, "smoke", {field: value})
    except ConfigError as err:
        assert str(err)


# ------------------------------------------------------------------------------- array files (item 8)

def _header_only_npz(path, field, shape, dtype="<c16"):
    """An .npz whose member declares `shape` in its header but holds no data (a few hundred bytes)."""
    import zipfile

    header = {"descr": dtype, "fortran_order": False, "shape": shape}
    text = repr(header).encode("latin1")
    text += b" " * (64 - (10 + len(text) + 1) % 64) + b"\n"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{field}.npy", b"\x93NUMPY\x01\x00" + len(text).to_bytes(2, "little") + text)
    return path


def test_load_npz_refuses_a_declared_huge_array_without_allocating(tmp_path):
    import tracemalloc

    from tenfold.core.files import load_npz

    path = _header_only_npz(tmp_path / "big.npz", "x", (2**20, 2**20))  # 16 TiB declared
    tracemalloc.start()
    try:
        with pytest.raises(InputError, match=r"big.npz: field 'x': array of shape \(1048576, 1048576\)"):
            load_npz(path, "an array x")
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16 * 2**20


@pytest.mark.parametrize("dtype", ["|O", "<U3", "|S2"])
def test_load_npz_refuses_non_numeric_dtypes_from_the_header(tmp_path, dtype):
    from tenfold.core.files import load_npz

    path = _header_only_npz(tmp_path / "s.npz", "x", (3,), dtype)
    with pytest.raises(InputError, match="s.npz: field 'x': dtype .* is not numeric"):
        load_npz(path, "an array x")
