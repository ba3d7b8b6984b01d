"""`tenfold predict rulenet` (issue 20): a trained run applied to a user's own tables."""

from __future__ import annotations

import csv
import shutil

import numpy as np
import pytest
import torch

from tenfold.cli import main
from tenfold.core.runs import RunDir
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.predict import load_run, read_items
from tenfold.systems.rulenet.pipeline import predict as predict_items, prepare
from tests.badinput import assert_refused


def _train_on_tables(folder, obs, items, rules, joint_epochs, *extra):
    """Write the tables and rules into `folder`, train a smoke run on them through the CLI; returns the run dir."""
    obs.to_csv(folder / "obs.csv", index=False)
    items.to_csv(folder / "items.csv", index=False)
    (folder / "rules.txt").write_text(rules)
    out = folder / "run"
    argv = ["--quiet", "train", "rulenet", "--profile", "smoke", "--out", str(out)]
    for s in (f"data.observations={folder / 'obs.csv'}", f"data.items={folder / 'items.csv'}",
              f"data.rules={folder / 'rules.txt'}", "train.warmup_epochs=1", "train.rule_epochs=1",
              f"train.joint_epochs={joint_epochs}", *extra):
        argv += ["--set", s]
    assert main(argv) == 0
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A smoke run trained on real-format tables (CSV observations, CSV items with a static attribute)."""
    tmp = tmp_path_factory.mktemp("rulenet-predict")
    obs, items = D.items_to_frames(D.make_machining(300, seed=21, M=6))
    return tmp, _train_on_tables(tmp, obs, items, D.NOISY_EXPERT_RULES, 2)


def _new_items(folder, seed=22, n=60, drop=()):
    obs, items = D.items_to_frames(D.make_machining(n, seed=seed, M=5))
    folder.mkdir(parents=True, exist_ok=True)
    obs.drop(columns=list(drop)).to_csv(folder / "obs.csv", index=False)
    items.drop(columns=["label"]).to_csv(folder / "items.csv", index=False)
    return obs, items


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_writes_one_row_per_item_consistent_with_the_fired_rules(trained, tmp_path, capsys):
    _, run = trained
    obs, items = _new_items(tmp_path / "new")
    out = tmp_path / "preds.csv"
    assert main(["--quiet", "predict", "rulenet", "--run", str(run), "--input", str(tmp_path / "new"),
                 "--output", str(out)]) == 0
    rows = _rows(out)
    assert [int(r["item_id"]) for r in rows] == items["item_id"].tolist()
    for r in rows:
        fired = [t for t in r["rules_fired"].split("; ") if t]
        # first firing learned rule decides, else the default class "ok" (model.hard_decision)
        assert r["prediction"] == (fired[0].split(" : ")[0] if fired else "ok")
        assert 0.0 <= float(r["score_failure"]) <= 1.0
    # the model rebuilt from the checkpoint alone gives the decisions of pipeline.predict on the same items
    cfg, model, meta = load_run(run)
    data = read_items(tmp_path / "new" / "obs.csv", tmp_path / "new" / "items.csv", meta)
    ref = predict_items(model, prepare(data, model.chan_mean, model.chan_std, model.rules.ruleset, cfg), cfg)
    assert [r["prediction"] for r in rows] == list(np.asarray(meta["classes"])[ref["pred"].numpy()])
    # an observation file alone (items.csv beside it) gives the same file
    out2 = tmp_path / "preds2.csv"
    assert main(["--quiet", "predict", "rulenet", "--run", str(run), "--input", str(tmp_path / "new" / "obs.csv"),
                 "--output", str(out2)]) == 0
    assert out2.read_text() == out.read_text()


def test_predict_reads_the_weights_not_the_training_data(trained, tmp_path):
    """Deleting the training tables changes nothing: everything comes from the run directory."""
    data_dir, run = trained
    _new_items(tmp_path / "new")
    before = tmp_path / "a.csv"
    assert main(["--quiet", "predict", "rulenet", "--run", str(run), "--input", str(tmp_path / "new"),
                 "--output", str(before)]) == 0
    moved = data_dir / "moved"
    moved.mkdir(exist_ok=True)
    for name in ("obs.csv", "items.csv", "rules.txt"):
        (data_dir / name).rename(moved / name)
    try:
        after = tmp_path / "b.csv"
        assert main(["--quiet", "predict", "rulenet", "--run", str(run), "--input", str(tmp_path / "new"),
                     "--output", str(after)]) == 0
        assert after.read_text() == before.read_text()
    finally:
        for name in ("obs.csv", "items.csv", "rules.txt"):
            (moved / name).rename(data_dir / name)


@pytest.mark.parametrize("case", ["missing_channel", "no_items_for_grade_rules", "extra_quality", "old_run"])
def test_predict_bad_inputs_exit_2_and_write_nothing(trained, tmp_path, capsys, case):
    _, run = trained
    folder = tmp_path / "new"
    out = tmp_path / "preds.csv"
    if case == "missing_channel":
        _new_items(folder, drop=("torque",))
        names = [str(folder / "obs.csv"), "'torque'"]
    elif case == "no_items_for_grade_rules":
        _new_items(folder)
        (folder / "items.csv").unlink()
        names = [str(folder / "obs.csv"), "'grade'"]
    elif case == "extra_quality":
        obs, _ = _new_items(folder)
        obs["quality2"] = 0.0
        obs.to_csv(folder / "obs.csv", index=False)
        names = [str(folder / "obs.csv"), "quality"]
    else:  # a run whose final checkpoint has no predictor field (trained before issue 20)
        old = tmp_path / "old-run"
        shutil.copytree(run, old)
        ckpt = RunDir(old).load_checkpoint()
        del ckpt["predictor"]
        torch.save(ckpt, RunDir(old).checkpoint_path)
        _new_items(folder)
        run = old
        names = [str(RunDir(old).checkpoint_path), "'predictor'"]
    assert_refused(["predict", "rulenet", "--run", str(run), "--input", str(folder), "--output", str(out)], names,
                   out, capsys)


# ------------------------------------------------------------------ explicit validation, fit on all data (issue 20)

def _dc(**kw):
    from tenfold.core.config import make_config
    from tenfold.systems.rulenet.config import PROFILES, Config

    return make_config(Config, PROFILES, "smoke", {"data.observations": "o.csv", "data.items": "i.csv", **kw}).data


def test_user_splits_hand_counts():
    from tenfold.systems.rulenet.pipeline import user_splits

    items = D.make_machining(20, seed=3, M=2)
    ids = lambda d: d.item_ids.tolist()  # noqa: E731
    s = user_splits(items, None, _dc())  # 0.15 * 20 = 3 val, 0.25 * 20 = 5 test, 12 train, contiguous
    assert (ids(s["train"]), ids(s["val"]), ids(s["test"])) == (list(range(12)), [12, 13, 14], list(range(15, 20)))
    val = D.make_machining(4, seed=4, M=2)
    s = user_splits(items, val, _dc(**{"data.val_observations": "v.csv", "data.val_items": "vi.csv"}))
    assert ids(s["train"]) == list(range(15)) and s["val"] is val and ids(s["test"]) == list(range(15, 20))
    s = user_splits(items, val, _dc(**{"data.val_observations": "v.csv", "data.val_items": "vi.csv",
                                        "data.test_fraction": 0.0}))
    assert ids(s["train"]) == list(range(20)) and s["test"] is val
    s = user_splits(items, None, _dc(**{"data.val_fraction": 0.0, "data.test_fraction": 0.0,
                                        "train.select_best": False}))
    assert ids(s["train"]) == list(range(20)) and s["val"] is s["train"] and s["test"] is s["train"]


def test_no_validation_data_needs_a_fixed_epoch_count():
    from tenfold.core.config import ConfigError

    with pytest.raises(ConfigError, match="select_best"):
        _dc(**{"data.val_fraction": 0.0})


def test_estimator_with_explicit_validation_and_on_all_data():
    from tenfold.systems.rulenet.estimator import RuleNetClassifier
    from tenfold.systems.rulenet.pipeline import f1_positive

    obs, items = D.items_to_frames(D.make_machining(300, seed=23, M=5))
    obs_v, items_v = D.items_to_frames(D.make_machining(120, seed=24, M=5))
    quick = {"train.warmup_epochs": 1, "train.rule_epochs": 1, "train.joint_epochs": 2}
    clf = RuleNetClassifier("smoke", quick).fit(obs, items, D.NOISY_EXPERT_RULES, validation=(obs_v, items_v))
    assert clf.cfg_.data.test_fraction == 0.0 and clf.cfg_.data.val_items is not None
    pred = clf.predict(obs_v, items_v)
    labels = (items_v["label"].to_numpy() == "ok").astype(int)  # class index: failure 0, ok 1
    assert clf.test_f1_ == pytest.approx(f1_positive((pred == "ok").astype(int), labels))
    allfit = RuleNetClassifier("smoke", quick).fit(obs, items, D.NOISY_EXPERT_RULES, validation="none")
    assert allfit.cfg_.train.select_best is False and allfit.cfg_.data.val_fraction == 0.0
    pred = allfit.predict(obs, items)
    labels = (items["label"].to_numpy() == "ok").astype(int)
    assert allfit.test_f1_ == pytest.approx(f1_positive((pred == "ok").astype(int), labels))  # training F1


def test_fixed_epoch_count_keeps_the_last_epoch(tmp_path):
    """train.select_best = false: the final model is the last epoch's (its logged validation F1 is the summary's),
    with the validation block of the tables (not selected on)."""
    import json

    obs, items = D.items_to_frames(D.make_machining(300, seed=25, M=5))
    out = _train_on_tables(tmp_path, obs, items, D.NOISY_EXPERT_RULES, 4, "train.select_best=false")
    logged = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["val_f1"] == pytest.approx(logged[-1]["val_f1"])
    assert summary["split_sources"] == {"val": "contiguous block", "test": "contiguous block"}


# ------------------------------------------------------------------------- numeric static attributes (issue 20)

def test_promote_numeric_static_hand_values():
    from tenfold.core.errors import InputError
    from tenfold.systems.rulenet.pipeline import promote_numeric_static

    obs = torch.arange(12, dtype=torch.float32).reshape(2, 3, 2)
    mask = torch.tensor([[True, True, False], [True, False, False]])
    data = D.ItemData(obs * mask[..., None], mask, torch.zeros(2, 3, 0), {"age": np.array(["1.5", "2"]),
                      "grade": np.array(["L", "H"])}, torch.tensor([0, 1]), ("a", "b"))
    out = promote_numeric_static(data, ["age"], "items.csv")
    assert out.channels == ("a", "b", "age") and set(out.static) == {"grade"}
    assert out.obs[..., 2].tolist() == [[1.5, 1.5, 0.0], [2.0, 0.0, 0.0]]
    assert torch.equal(out.obs[..., :2], data.obs)
    data.static["age"] = np.array(["1.5", "old"])
    with pytest.raises(InputError, match=r"items.csv: static attribute 'age' has the value 'old'"):
        promote_numeric_static(data, ["age"], "items.csv")


def test_rules_on_a_numeric_static_attribute_train_and_predict(tmp_path):
    """A rule `failure : age > 90` on an item-table column: trained, exported and applied by predict."""
    import pandas as pd

    obs, items = D.items_to_frames(D.make_machining(400, seed=26, M=5))
    rng = np.random.default_rng(0)
    items["age"] = rng.uniform(0, 100, len(items)).round(2)
    items.loc[items["age"] > 90, "label"] = "failure"
    out = _train_on_tables(tmp_path, obs, items, D.NOISY_EXPERT_RULES + "failure : age > 80\n", 1)
    new = tmp_path / "new"
    new.mkdir()
    items2 = pd.DataFrame({"item_id": items["item_id"], "grade": items["grade"], "age": items["age"]})
    obs.to_csv(new / "obs.csv", index=False)
    items2.to_csv(new / "items.csv", index=False)
    assert main(["--quiet", "predict", "rulenet", "--run", str(out), "--input", str(new),
                 "--output", str(tmp_path / "p.csv")]) == 0
    rows = _rows(tmp_path / "p.csv")
    _, model, meta = load_run(out)
    age_rule = [a for _, a in model.rules.ruleset.atoms if a.feature == "age"][0]
    theta = float(model.rules.thresholds_original()[len(model.rules.ruleset.atoms) - 1, 0])
    assert meta["channels"][-1] == "age" and age_rule.op == ">"
    for r, age in zip(rows, items["age"]):
        # every item whose age clears the learned threshold has the age rule among the fired ones
        assert (age > theta) == any(t.startswith("failure : age >") for t in r["rules_fired"].split("; "))
