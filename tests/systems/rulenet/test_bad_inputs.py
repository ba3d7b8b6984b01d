"""The bad-input catalogue of `rulenet`: every file it reads, malformed, through the real CLI.

Readers: the rules file (`data.rules`, rules.read_rules), the observation table and the item table
(`data.observations` / `data.items`, CSV or Parquet, data.load_tables), and for `tenfold eval --run` the run's
checkpoint. Each case must exit 2 with a message naming the file (and the field), before anything is written.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config, save_config
from tenfold.core.runs import RunDir
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet import rules as R
from tenfold.systems.rulenet.config import PROFILES, Config
from tests.badinput import assert_refused

GOOD_RULES = D.NOISY_EXPERT_RULES


def _write(tmp_path: Path, n: int = 40) -> dict[str, Path]:
    """Valid observation / item tables (CSV) and a valid rules file; the cases overwrite one of them."""
    obs, items = D.items_to_frames(D.make_machining(n, 5, M=4))
    paths = {"obs": tmp_path / "obs.csv", "items": tmp_path / "items.csv", "rules": tmp_path / "rules.txt"}
    obs.to_csv(paths["obs"], index=False)
    items.to_csv(paths["items"], index=False)
    paths["rules"].write_text(GOOD_RULES)
    return paths


def _argv(paths: dict[str, Path], out: Path) -> list[str]:
    return ["train", "rulenet", "--profile", "smoke", "--set", f"data.observations={paths['obs']}",
            "--set", f"data.items={paths['items']}", "--set", f"data.rules={paths['rules']}", "--out", str(out)]


def _csv_lines(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _edit_cell(path: Path, column: str, row: int, value: str) -> None:
    lines = _csv_lines(path)
    header = lines[0].split(",")
    cells = lines[row + 1].split(",")
    cells[header.index(column)] = value
    lines[row + 1] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")


def _drop_column(path: Path, column: str) -> None:
    rows = [line.split(",") for line in _csv_lines(path)]
    j = rows[0].index(column)
    path.write_text("\n".join(",".join(r[:j] + r[j + 1:]) for r in rows) + "\n")


def _to_parquet(paths: dict[str, Path], key: str, edit=None) -> None:
    import pandas as pd

    df = pd.read_csv(paths[key])
    if edit is not None:
        df = edit(df)
    pq = paths[key].with_suffix(".parquet")
    df.to_parquet(pq)
    paths[key] = pq


# (id, which file, how to break it, what the message must contain besides the file name)
RULE_CASES = [
    ("empty", lambda p: p.write_text(""), "no rules found"),
    ("whitespace-only", lambda p: p.write_text("\n  \n# only a comment\n"), "no rules found"),
    ("non-utf8", lambda p: p.write_bytes(GOOD_RULES.encode() + b"failure : rpm < 1\xff\n"), "not valid UTF-8"),
    ("utf16", lambda p: p.write_text(GOOD_RULES, encoding="utf-16"), "not valid UTF-8"),
    ("truncated", lambda p: p.write_text(GOOD_RULES + "failure : power <"), "expected a number"),
    ("unexpected-char", lambda p: p.write_text(GOOD_RULES + "failure : power < 3$00\n"), "unexpected character"),
    ("threshold-1e999", lambda p: p.write_text(GOOD_RULES + "failure : power < 1e999\n"), "is not finite"),
    ("threshold-nan", lambda p: p.write_text(GOOD_RULES + "failure : power < nan\n"), "expected a number"),
    ("weight-out-of-range", lambda p: p.write_text(GOOD_RULES + "failure : rpm < 1 @ 2\n"), "rule weight"),
    ("interval-reversed", lambda p: p.write_text(GOOD_RULES + "failure : rpm in [3, 1]\n"), "lo > hi"),
    ("unknown-feature", lambda p: p.write_text(GOOD_RULES + "failure : speed < 3\n"), "unknown feature 'speed'"),
    ("unknown-category", lambda p: p.write_text(GOOD_RULES + "failure : grade == X\n"), "no category 'X'"),
    ("default-has-rules", lambda p: p.write_text(GOOD_RULES + "ok : rpm < 3\n"), "default class 'ok'"),
    ("self-define", lambda p: p.write_text("define e = e * 2\n" + GOOD_RULES), "define 'e' refers to itself"),
    ("cyclic-defines", lambda p: p.write_text("define a = b\ndefine b = a\n" + GOOD_RULES), "define 'a' uses 'b'"),
    ("define-chain-too-deep",
     lambda p: p.write_text("define c0 = rpm\n" + "".join(f"define c{i} = c{i - 1} + 1\n" for i in range(1, 40))
                            + GOOD_RULES), "define 'c32' sits on a chain"),
    ("nesting-too-deep", lambda p: p.write_text(GOOD_RULES + "failure : " + "!" * 3000 + "rpm < 1\n"),
     "nesting deeper than 100"),
    ("expression-too-deep", lambda p: p.write_text("define s = " + " + ".join(["rpm"] * 500) + "\n" + GOOD_RULES),
     "define 's' nests deeper"),
    ("define-not-finite-on-data", lambda p: p.write_text("define z = rpm / (torque - torque)\n" + GOOD_RULES
                                                         + "failure : z > 1\n"), "define 'z' is"),
    ("directory", lambda p: (p.unlink(), p.mkdir()), "not found (or not a file)"),
    ("missing", lambda p: p.unlink(), "not found"),
]


@pytest.mark.parametrize("case,breaker,needle", RULE_CASES, ids=[c[0] for c in RULE_CASES])
def test_bad_rules_file(tmp_path, capsys, case, breaker, needle):
    paths = _write(tmp_path)
    breaker(paths["rules"])
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["rules"]), needle], out, capsys)


def test_huge_rules_file_is_refused_by_its_size(tmp_path, capsys, monkeypatch):
    paths = _write(tmp_path)
    monkeypatch.setattr(R, "MAX_RULES_BYTES", 200)  # the real limit is 1 MB; the good file is ~400 bytes
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["rules"]), "over the limit of 200 bytes"], out, capsys)


def test_rules_with_too_many_tokens_are_refused(tmp_path, capsys, monkeypatch):
    paths = _write(tmp_path)
    monkeypatch.setattr(R, "MAX_TOKENS", 30)
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["rules"]), "more than 30 tokens"], out, capsys)


OBS_CASES = [
    ("empty", lambda p: p.write_bytes(b""), "empty"),
    ("header-only", lambda p: p.write_text(_csv_lines(p)[0] + "\n"), "no data rows"),
    ("non-utf8", lambda p: p.write_bytes(p.read_bytes().replace(b"item_id", b"item_\xe9d", 1)), "not valid UTF-8"),
    ("truncated-row", lambda p: p.write_text("\n".join(_csv_lines(p)[:5]) + "\n" + _csv_lines(p)[5][:6]),
     "at data row 5"),
    ("binary-garbage", lambda p: p.write_bytes(bytes(range(256)) * 4), "not valid UTF-8"),
    ("missing-item_id", lambda p: _drop_column(p, "item_id"), "missing column 'item_id'"),
    ("missing-obs_idx", lambda p: _drop_column(p, "obs_idx"), "missing column 'timestamp'"),
    ("non-numeric-channel", lambda p: _edit_cell(p, "rpm", 3, "fast"), "column 'rpm' must be numeric"),
    ("nan-channel", lambda p: _edit_cell(p, "rpm", 3, "nan"), "column 'rpm' has the value nan at data row 4"),
    ("inf-channel", lambda p: _edit_cell(p, "torque", 2, "inf"), "column 'torque' has the value inf at data row 3"),
    ("minus-inf-quality", lambda p: _edit_cell(p, "quality", 7, "-inf"), "column 'quality' has the value -inf"),
    ("beyond-float32", lambda p: _edit_cell(p, "wear", 1, "1e39"), "column 'wear' has the value 1e+39"),
    ("overflow-1e999", lambda p: _edit_cell(p, "T_air", 1, "1e999"), "column 'T_air' has the value inf"),
    ("empty-item_id", lambda p: _edit_cell(p, "item_id", 2, ""), "column 'item_id' is empty at data row 3"),
    ("unknown-item", lambda p: _edit_cell(p, "item_id", 2, "999"), "item_id 999 is not in the item table"),
    ("empty-obs_idx", lambda p: _edit_cell(p, "obs_idx", 2, ""), "column 'obs_idx' has missing values"),
    ("only-id-columns", lambda p: p.write_text("item_id,obs_idx\n0,0\n"), "no channel columns"),
]


@pytest.mark.parametrize("case,breaker,needle", OBS_CASES, ids=[c[0] for c in OBS_CASES])
def test_bad_observation_table(tmp_path, capsys, case, breaker, needle):
    paths = _write(tmp_path)
    breaker(paths["obs"])
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["obs"]), needle], out, capsys)


ITEM_CASES = [
    ("empty", lambda p: p.write_bytes(b""), "items file", "empty"),
    ("header-only", lambda p: p.write_text(_csv_lines(p)[0] + "\n"), "items file", "no data rows"),
    ("non-utf8", lambda p: p.write_bytes(p.read_bytes() + b"99,L,\xe9chec\n"), "items file", "not valid UTF-8"),
    ("missing-label", lambda p: _drop_column(p, "label"), "items", "missing column 'label'"),
    ("missing-item_id", lambda p: _drop_column(p, "item_id"), "items", "missing column 'item_id'"),
    ("duplicate-item_id", lambda p: _edit_cell(p, "item_id", 1, "0"), "items",
     "column 'item_id' has the duplicate value 0"),
    ("empty-label", lambda p: _edit_cell(p, "label", 1, ""), "items", "column 'label' has missing labels"),
    ("label-not-a-rule-class", lambda p: _edit_cell(p, "label", 1, "broken"), "items",
     "column 'label' has labels ['broken'] that are not classes of the rules"),
    ("item-without-observations", lambda p: p.write_text(p.read_text() + "999,L,ok\n"), "items",
     "item(s) without observations, e.g. item_id 999"),
    ("too-few-items", lambda p: p.write_text("\n".join(_csv_lines(p)[:3]) + "\n"), "items", "too few to split"),
]


@pytest.mark.parametrize("case,breaker,prefix,needle", ITEM_CASES, ids=[c[0] for c in ITEM_CASES])
def test_bad_item_table(tmp_path, capsys, case, breaker, prefix, needle):
    paths = _write(tmp_path)
    breaker(paths["items"])
    if case == "too-few-items":  # keep only the observations of those items, so the split is what fails
        import pandas as pd

        obs = pd.read_csv(paths["obs"])
        obs[obs.item_id.isin([0, 1])].to_csv(paths["obs"], index=False)
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["items"]), needle], out, capsys)


def test_huge_table_is_refused_by_its_size(tmp_path, capsys, monkeypatch):
    paths = _write(tmp_path)
    monkeypatch.setattr(D, "MAX_TABLE_BYTES", 1_000)  # the real limit is 2 GB
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["obs"]), "over the limit of 1000 bytes"], out, capsys)


PARQUET_CASES = [
    ("truncated", lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "cannot be read"),
    ("not-parquet", lambda p: p.write_text("item_id,obs_idx\n"), "cannot be read"),
    ("string-channel", None, "column 'rpm' must be numeric"),
    ("nan-channel", None, "column 'rpm' has the value nan"),
]


@pytest.mark.parametrize("case,breaker,needle", PARQUET_CASES, ids=[c[0] for c in PARQUET_CASES])
def test_bad_parquet_observation_table(tmp_path, capsys, case, breaker, needle):
    paths = _write(tmp_path)
    edits = {"string-channel": lambda df: df.assign(rpm=df.rpm.astype(str)),
             "nan-channel": lambda df: df.assign(rpm=np.where(df.index == 3, np.nan, df.rpm))}
    _to_parquet(paths, "obs", edits.get(case))
    if breaker is not None:
        breaker(paths["obs"])
    out = tmp_path / "run"
    assert_refused(_argv(paths, out), [str(paths["obs"]), needle], out, capsys)


# ----------------------------------------------------------------------------- tenfold eval --run

def _fake_run(tmp_path: Path) -> tuple[Path, Config]:
    """A run directory as `tenfold train` leaves it (run.json, config.json) for a tiny generated-data config; the
    cases supply the checkpoint."""
    cfg = make_config(Config, PROFILES, "smoke", {"data.num_train": 40, "data.num_val": 20, "data.num_test": 20,
                                                  "data.num_shift_test": 20, "data.num_obs": 4})
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    save_config(cfg, run / "config.json")
    (run / "run.json").write_text(json.dumps({"system": "rulenet", "profile": "smoke"}) + "\n")
    return run, cfg


def _model_state(cfg: Config) -> dict:
    from tenfold.systems.rulenet.pipeline import prepare_run

    return {k: v.clone() for k, v in prepare_run(cfg)["model"].state_dict().items()}


def _ckpt_cases():
    def nan_weights(cfg):
        state = _model_state(cfg)
        state["rules.theta"].fill_(float("nan"))
        return {"kind": "final", "model": state}

    def wrong_shape(cfg):
        state = _model_state(cfg)
        state["rules.theta"] = torch.zeros(3, 3, dtype=torch.float64)
        return {"kind": "final", "model": state}

    return [
        ("missing", None, "not found"),
        ("empty", b"", "not a file tenfold can load safely"),
        ("truncated", "truncate", "not a file tenfold can load safely"),
        ("epoch-not-final", lambda cfg: {"kind": "epoch", "model": {}}, "no final checkpoint"),
        ("no-model-field", lambda cfg: {"kind": "final"}, "field 'model' missing"),
        ("nan-weights", nan_weights, "holds NaN / inf"),
        ("wrong-shape", wrong_shape, "does not fit the model"),
    ]


CKPT_CASES = _ckpt_cases()


@pytest.mark.parametrize("case,content,needle", CKPT_CASES, ids=[c[0] for c in CKPT_CASES])
def test_bad_checkpoint_for_eval(tmp_path, capsys, case, content, needle):
    run, cfg = _fake_run(tmp_path)
    path = RunDir(run).checkpoint_path
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif content == "truncate":
        torch.save({"kind": "final", "model": _model_state(cfg)}, path)
        path.write_bytes(path.read_bytes()[:200])
    elif content is not None:
        torch.save(content(cfg), path)
    assert_refused(["eval", "--run", str(run)], [str(path), needle], run, capsys)
