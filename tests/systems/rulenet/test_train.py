"""rulenet training: run directory, resume after a kill, link=none freezes the GNN, export == predict, CLI on
real-format files, the estimator, metric parity, and the quick-profile bands (slow)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from tenfold.cli import main
from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.rulenet.config import PROFILES, Config
from tenfold.systems.rulenet.data import NOISY_EXPERT_RULES, items_to_frames, make_machining
from tenfold.systems.rulenet.export import export_rules, raw_features
from tenfold.systems.rulenet.pipeline import average_precision, f1_positive, predict, prepare_run
from tenfold.systems.rulenet.rules import parse_rules, predict_hard
from tenfold.systems.rulenet.train import train, train_model

TINY = {"data.num_train": 600, "data.num_val": 300, "data.num_test": 300, "data.num_shift_test": 200,
        "train.warmup_epochs": 1, "train.rule_epochs": 1, "train.joint_epochs": 2}


def _cfg(**overrides) -> Config:
    return make_config(Config, PROFILES, "smoke", {**TINY, **overrides})


def test_resume_after_kill_continues_the_same_trajectory(tmp_path, monkeypatch):
    straight = train(_cfg(), tmp_path / "straight")
    real_log = RunDir.log_metrics

    def killed_at_step_3(self, record):
        if record.get("step") == 3:
            raise KeyboardInterrupt  # killed during epoch 3, after the epoch-2 checkpoint
        real_log(self, record)

    monkeypatch.setattr(RunDir, "log_metrics", killed_at_step_3)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "killed")
    monkeypatch.setattr(RunDir, "log_metrics", real_log)
    run = RunDir(tmp_path / "killed")
    assert run.load_checkpoint()["epoch"] == 2 and not run.summary_path.exists()
    resumed = train(_cfg(), tmp_path / "killed")
    assert [r["step"] for r in run.read_metrics()] == [1, 2, 3, 4]  # continued, not restarted
    assert resumed["learned_rules"] == straight["learned_rules"]  # optimizer + RNG state restored
    assert resumed["f1"] == straight["f1"]
    # a finished run is not retrained
    lines = run.metrics_path.read_text()
    assert train(_cfg(), tmp_path / "killed")["f1"] == straight["f1"] and run.metrics_path.read_text() == lines


def test_link_none_freezes_the_gnn_and_structure_never_changes(tmp_path):
    _, warm_only, _ = train_model(_cfg(**{"train.joint_epochs": 0, "train.rule_epochs": 0}), tmp_path / "a")
    _, frozen, _ = train_model(_cfg(**{"train.link": "none", "train.rule_epochs": 0}), tmp_path / "b")
    for (name, p0), (_, p1) in zip(warm_only.assessor.state_dict().items(), frozen.assessor.state_dict().items()):
        assert torch.equal(p0, p1), name  # bit-identical after the joint phase
    assert not torch.equal(frozen.rules.theta, frozen.rules.theta_expert)  # the rules did train
    rn, fresh = frozen.rules, prepare_run(_cfg(**{"train.link": "none"}))["model"].rules  # untrained, same config
    assert torch.equal(rn.atom_to_rule, fresh.atom_to_rule) and torch.equal(rn.rule_to_class, fresh.rule_to_class)
    assert rn.atom_to_rule.sum() == 10 and rn.rule_to_class.sum() == 6
    assert rn.ruleset == fresh.ruleset and [n for n, _ in rn.ruleset.derived] == ["dT", "power", "strain"]


def test_export_reparsed_gives_bit_identical_predictions(tmp_path):
    metrics, model, ctx = train_model(_cfg(), tmp_path)
    cfg = _cfg()
    for split in ("val", "test"):
        p = ctx["prepared"][split]
        out = predict(model, p, cfg)
        raw = raw_features(model, out["k"], p.data.static)
        text = export_rules(model, raw, p.tensors["labels"].numpy())
        reparsed = parse_rules(text)
        assert np.array_equal(predict_hard(reparsed, raw), out["pred"].numpy())
    assert metrics["learned_rules"].count("failure :") <= 6  # never more rules than the expert's
    th = {t["feature"]: t for t in metrics["thresholds"]}
    assert 5.0 < th["dT"]["learned"] < 12.0  # reported in kelvin, not in std units


@pytest.fixture(scope="module")
def warm_only_assessor(tmp_path_factory):
    """The assessor after the warm-up alone (same seed and data as every variant below)."""
    _, model, _ = train_model(_cfg(**{"train.joint_epochs": 0, "train.rule_epochs": 0}),
                              tmp_path_factory.mktemp("warm"))
    return model.assessor.state_dict()


# (overrides, loss terms the variant must log, whether its joint phase must move the GNN)
VARIANTS = [({"train.link": "ste"}, {"loss_rule", "loss_anchor", "loss_warmup"}, True),
            ({"train.link": "graft"}, {"loss_rule", "loss_anchor", "loss_warmup"}, True),
            ({"train.link": "search", "train.search_with_graft": False},
             {"loss_rule", "loss_anchor", "loss_warmup", "loss_link"}, True),
            ({"train.use_soft_inference": True, "train.link": "graft"}, {"loss_rule", "loss_anchor", "loss_warmup"},
             True),
            ({"model.pooling": "median"}, {"loss_rule", "loss_anchor"}, False),
            ({"model.graph_mode": "knn_rows"}, {"loss_rule", "loss_anchor", "loss_warmup", "loss_link"}, True),
            ({"model.use_learned_gates": True, "data.expert_rules": "noisy_spurious"},
             {"loss_rule", "loss_anchor", "loss_warmup", "loss_link", "loss_gate"}, True),
            # Known limitation (README "Not done"): top-k uniform weights carry no gradient, so with hard assessment
            # the joint phase trains the rules only and the GNN stays as the warm-up left it.
            ({"model.use_hard_assessment": True}, {"loss_rule", "loss_anchor", "loss_warmup", "loss_link"}, False),
            ({"train.link": "none"}, {"loss_rule", "loss_anchor", "loss_warmup"}, False)]


@pytest.mark.parametrize("overrides,terms,moves_gnn", VARIANTS)
def test_variants_log_their_terms_train_the_rules_and_link_the_gnn(tmp_path, overrides, terms, moves_gnn,
                                                                   warm_only_assessor):
    # Each variant does what its name says: the loss terms it logs are exactly its own, every logged loss is
    # finite, the thresholds left the expert values, and the joint phase moves the GNN iff a link reaches it
    # (knn_rows builds a different graph and median pooling has no GNN: no comparison for those).
    metrics, model, _ = train_model(_cfg(**overrides), tmp_path)
    records = RunDir(tmp_path).read_metrics()
    logged = {k for r in records for k in r if k.startswith("loss_")}
    assert logged == terms
    assert all(np.isfinite(r[k]) for r in records for k in r if k.startswith("loss_"))
    assert not torch.equal(model.rules.theta, model.rules.theta_expert)
    if overrides.get("model.pooling", "gnn") == "gnn" and "model.graph_mode" not in overrides:
        same = all(torch.equal(v, model.assessor.state_dict()[k]) for k, v in warm_only_assessor.items())
        assert same != moves_gnn
    assert 0.0 <= metrics["f1"] <= 1.0 and parse_rules(metrics["learned_rules"]).rules


def _write_real(tmp_path, n=400, seed=4, rules=NOISY_EXPERT_RULES):
    obs, items = items_to_frames(make_machining(n, seed=seed))
    obs.to_csv(tmp_path / "obs.csv", index=False)
    items.to_parquet(tmp_path / "items.parquet")
    (tmp_path / "rules.txt").write_text(rules)
    return [f"data.observations={tmp_path / 'obs.csv'}", f"data.items={tmp_path / 'items.parquet'}",
            f"data.rules={tmp_path / 'rules.txt'}"]


def test_cli_trains_on_real_format_files(tmp_path, capsys):
    sets = _write_real(tmp_path)
    out = tmp_path / "run"
    argv = ["--quiet", "train", "rulenet", "--profile", "quick", "--out", str(out)]
    for s in sets + ["train.warmup_epochs=1", "train.rule_epochs=1", "train.joint_epochs=1"]:
        argv += ["--set", s]
    assert main(argv) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert {"f1", "expert_rules_f1", "learned_rules"} <= set(summary)
    parse_rules(summary["learned_rules"])  # the export is valid rule text
    assert main(["--quiet", "eval", "--run", str(out)]) == 0
    assert (out / "learned_rules.txt").exists()


def test_cli_rules_with_unknown_feature_exit_2_and_write_nothing(tmp_path, capsys):
    sets = _write_real(tmp_path, rules="default : ok\nfailure : speed < 3\n")
    out = tmp_path / "run"
    argv = ["--quiet", "train", "rulenet", "--profile", "smoke", "--out", str(out)]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "rules.txt" in err and "unknown feature 'speed'" in err
    assert not out.exists()


def test_estimator_fit_predict_explain_export():
    from tenfold.systems.rulenet.estimator import RuleNetClassifier

    obs, items = items_to_frames(make_machining(500, seed=8))
    clf = RuleNetClassifier("smoke", {"train.warmup_epochs": 1, "train.rule_epochs": 1, "train.joint_epochs": 1})
    clf.fit(obs, items, NOISY_EXPERT_RULES)
    pred = clf.predict(obs, items.drop(columns=["label"]))
    proba = clf.predict_proba(obs, items)
    assert set(pred) <= {"failure", "ok"} and proba.shape == (500, 2)
    torch.testing.assert_close(torch.as_tensor(proba.sum(1)), torch.ones(500, dtype=torch.float64))
    text = clf.export_rules()
    raw = clf.key_features(obs, items)
    rs = parse_rules(text)
    assert np.array_equal(np.asarray(rs.classes)[predict_hard(rs, raw)], pred)  # export == predict
    ex = clf.explain(7, obs, items)
    assert ex["prediction"] == pred[7] and len(ex["most_trusted"]) == 3
    assert ex["most_trusted"][0][1] >= ex["least_trusted"][0][1]


def test_f1_and_pr_auc_match_scikit_learn():
    from sklearn.metrics import average_precision_score, f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 300)
    pred = np.where(rng.random(300) < 0.3, labels, rng.integers(0, 2, 300))
    scores = np.round(rng.random(300), 2)  # ties included
    assert f1_positive(pred, labels) == pytest.approx(f1_score(labels == 0, pred == 0))
    assert average_precision(scores, labels == 0) == pytest.approx(average_precision_score(labels == 0, scores))


def test_deep_ensemble_average_equals_loop_over_members(tmp_path):
    from tenfold.systems.rulenet.baselines import fit_deep_ensemble

    _, _, ctx = train_model(_cfg(**{"train.joint_epochs": 0, "train.warmup_epochs": 0}), tmp_path)
    tr, va = ctx["prepared"]["train"], ctx["prepared"]["val"]
    ens = fit_deep_ensemble(tr, va, num_members=3, epochs=1, seed=0)
    members = ens.member_probas(va)
    loop = sum(members[j] for j in range(3)) / 3
    torch.testing.assert_close(torch.as_tensor(ens.predict_proba(va)), loop)
    assert not torch.equal(members[0], members[1])  # independently initialised


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 7])
def test_quick_profile_learns_thresholds_and_beats_expert_rules(tmp_path, seed):
    # spec 7 "Slow": quick-profile rulenet beats the noisy expert rules by >= 0.3 F1 and the HDF threshold
    # approaches 8.6 K (seed 0 = development, 7 = held out).
    metrics = train(make_config(Config, PROFILES, "quick", {"seed": seed}), tmp_path)
    assert metrics["f1"] >= metrics["expert_rules_f1"] + 0.3
    th = {(t["rule"], t["feature"]): t for t in metrics["thresholds"]}
    assert abs(th[(0, "dT")]["learned"] - 8.6) < 0.05 * 8.6


def test_multiclass_iris_noisy_observations_estimator():
    # spec 4.2: iris with the hand rules, each row replicated into M = 8 observations with 25 % coherent corruption;
    # API / format test of the multi-class path (CE over rule classes + default, first-match hard decision).
    import pandas as pd
    from sklearn.datasets import load_iris

    from tenfold.systems.rulenet.estimator import RuleNetClassifier

    iris = load_iris(as_frame=True)
    X = iris.data.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    names = np.asarray(iris.target_names)[iris.target]
    order = np.random.default_rng(0).permutation(len(X))  # mix the classes before the contiguous split
    X, names = X.iloc[order].reset_index(drop=True), names[order]
    rng = np.random.default_rng(1)
    rows = []
    for i in range(len(X)):
        bias = rng.normal(0, 1.0, 4)
        for m in range(8):
            noise = rng.normal(0, 0.05, 4) + (bias if m < 2 else 0)  # 2 of 8 observations share a bias
            rows.append([i, m, *(X.iloc[i].to_numpy() + noise)])
    obs = pd.DataFrame(rows, columns=["item_id", "obs_idx", *X.columns])
    items = pd.DataFrame({"item_id": np.arange(len(X)), "label": names})
    rules = "default : versicolor\nsetosa : petal_length < 2.45\nvirginica : petal_width > 1.75\n"
    clf = RuleNetClassifier("smoke", {"train.warmup_epochs": 2, "train.rule_epochs": 3, "train.joint_epochs": 5,
                                      "train.batch_size": 32})
    clf.fit(obs, items, rules)
    assert clf.classes_ == ["setosa", "virginica", "versicolor"]
    pred = clf.predict(obs, items)
    rs = parse_rules(clf.export_rules())
    assert np.array_equal(np.asarray(rs.classes)[predict_hard(rs, clf.key_features(obs, items))], pred)
    # The hand rules reach 0.96 on the clean rows (spec 4.2) but only 0.893 on the mean of the noisy observations
    # (both computed here); rulenet must beat the hand rules on the same noisy observations (measured 0.913).
    hand = parse_rules(rules)
    clean = np.asarray(hand.classes)[predict_hard(hand, {c: X[c].to_numpy() for c in X.columns})]
    mean = obs.groupby("item_id")[list(X.columns)].mean()
    noisy = np.asarray(hand.classes)[predict_hard(hand, {c: mean[c].to_numpy() for c in X.columns})]
    assert np.mean(clean == names) == pytest.approx(0.96)
    assert np.mean(pred == names) > np.mean(noisy == names)


def test_reproduce_smoke_rows_and_plots(tmp_path, capsys):
    # smoke scale: the rows are built from measured numbers (several fail at this scale by design)
    code = main(["--quiet", "reproduce", "rulenet", "--profile", "smoke", "--seed", "2", "--seeds", "1",
                 "--out", str(tmp_path)])
    assert code == 0
    payload = json.loads((tmp_path / "claims.json").read_text())
    claims = payload["claims"]
    assert len(claims) >= 16 and all(c["system"] == "rulenet" and c["seeds"] == [2] for c in claims)
    # one seed: every learned claim is inconclusive by the noise rule; the two checks are judged
    assert all(c["verdict"] == "inconclusive" for c in claims if c["kind"] == "claim")
    assert sum(c["kind"] == "check" for c in claims) == 2
    # issue 20: search only, graft only and search + graft each against link = none
    linking = {c["method"] for c in claims if c["baseline"] == "frozen GNN (link=none)"}
    assert linking == {"rulenet (search + graft)", "rulenet (search only)", "rulenet (graft only)"}
    for c in claims:  # every F1 row has the majority-class reference (F1 0) and both arms' budgets
        if c["metric"] == "failure F1, iid test":
            assert c["reference"] == "majority class (never failure)" and c["reference_values"] == [0.0]
            assert "epoch_budget" in c["budget"]["method"]
    ens = next(c for c in claims if c["baseline"] == "deep ensemble" and c["metric"] == "failure F1, iid test")
    assert ens["budget"]["method"]["epoch_budget"] == ens["budget"]["baseline"]["epoch_budget"] == 3
    th = [c for c in claims if c["claim"].startswith("Learned thresholds")]
    assert {c["method"] for c in th} == {"rulenet (search + graft)", "rulenet (pos_weight=25)"}
    assert (tmp_path / "rulenet" / "seed-2" / "ensemble_convergence.tsv").exists()
    folder = tmp_path / "rulenet" / "seed-2"
    assert {p.name for p in folder.glob("*.png")} == {"f1_per_shift.png", "thresholds.png"}
    parse_rules((folder / "learned_rules.txt").read_text())


def test_threshold_support_and_supported_error_hand_computed():
    # Three latent items (grade L): (1) dT = 8 < 8.6 and rpm 1300 < 1380: HDF; power 40*1300*2pi/60 = 5445 W;
    # (2) dT 10, torque 20, rpm 1500: power 3141.6 < 3500: PWF low; (3) torque 70, rpm 1500: power 10996 > 9000:
    # PWF high, and strain 200 * 70 = 14000 > 11000 (grade L): OSF-L. True-rule supports: 1, 1, 1, 1, 0, 0.
    from tenfold.systems.rulenet.data import ItemData
    from tenfold.systems.rulenet.pipeline import supported_threshold_error, true_rule_support

    lat = {"T_air": np.array([300.0, 300.0, 300.0]), "T_proc": np.array([308.0, 310.0, 310.0]),
           "rpm": np.array([1300.0, 1500.0, 1500.0]), "torque": np.array([40.0, 20.0, 70.0]),
           "wear": np.array([0.0, 0.0, 200.0])}
    data = ItemData(torch.zeros(3, 1, 5), torch.ones(3, 1, dtype=torch.bool), torch.zeros(3, 1, 1),
                    {"grade": np.array(["L", "L", "L"])}, torch.zeros(3, dtype=torch.long),
                    ("T_air", "T_proc", "rpm", "torque", "wear"), latent=lat)
    support = true_rule_support(data)
    assert support == [1, 1, 1, 1, 0, 0]
    rows = [{"rule": 0, "feature": "dT", "true": 8.6, "rel_error": 0.01, "expert_rel_error": 0.09},
            {"rule": 3, "feature": "strain", "true": 11000.0, "rel_error": 0.03, "expert_rel_error": 0.10},
            {"rule": 4, "feature": "strain", "true": 12000.0, "rel_error": 0.20, "expert_rel_error": 0.08},
            {"rule": 1, "feature": "power"}]  # no true counterpart: never counted
    err, left = supported_threshold_error(rows, support)
    assert err == 0.03 and left == ["strain (rule 4, support 0)"]  # max(0.01, 0.03); rule 4 left out
    assert supported_threshold_error(rows, support, "expert_rel_error")[0] == 0.10


def test_ensemble_member_early_stops_and_keeps_its_best_validation_epoch(tmp_path):
    # Within a budget of 6 epochs with patience 1, a member stops after the first epoch without a new best val BCE
    # and keeps the best epoch's weights: its val BCE afterwards equals the minimum of its history.
    from tenfold.systems.rulenet.baselines import EnsembleMember, _bce, static_onehot, train_member

    _, _, ctx = train_model(_cfg(**{"train.joint_epochs": 0, "train.warmup_epochs": 0}), tmp_path)
    tr, va = ctx["prepared"]["train"], ctx["prepared"]["val"]
    levels = {"grade": ["H", "L", "M"]}
    torch.manual_seed(0)
    m = EnsembleMember(tr.tensors["obs"].shape[-1] + tr.tensors["quality"].shape[-1], 3, hidden=8, num_layers=1,
                       head=8)
    hist = train_member(m, tr, static_onehot(tr, levels), 6, 64, 3e-2, torch.Generator().manual_seed(0), va,
                        static_onehot(va, levels), patience=1)
    n, best = hist["epochs_trained"], hist["best_epoch"]
    assert len(hist["val_loss"]) == n <= 6 and best == int(np.argmin(hist["val_loss"])) + 1
    assert n == 6 or n == best + 1  # ran out of budget, or stopped one epoch after the best
    assert _bce(m, va, static_onehot(va, levels)) == pytest.approx(min(hist["val_loss"]), rel=1e-6)


@pytest.mark.parametrize("default_line", ["", "default : normal\n"])
def test_binary_task_whose_items_name_their_negative_class(tmp_path, default_line):
    # Items labelled failure / ok, rules only for `failure` with no default line (implied `not_failure`) or with
    # `default : normal`: `ok` is the one label no rule names, so it is the negative class (issue 20), not refused.
    rules = default_line + "\n".join(line for line in NOISY_EXPERT_RULES.splitlines() if not line.startswith("default"))
    sets = _write_real(tmp_path, n=300, rules=rules + "\n")
    overrides = dict(s.split("=", 1) for s in sets)
    cfg = _cfg(**overrides)
    ctx = prepare_run(cfg)
    assert ctx["ruleset"].classes == ["failure", "ok"] and ctx["ruleset"].default == "ok"
    labels = ctx["prepared"]["train"].tensors["labels"].numpy()
    assert set(labels.tolist()) <= {0, 1} and (labels == 1).mean() > 0.8  # ok = index 1, the majority


def test_two_unnamed_labels_are_still_refused():
    from tenfold.systems.rulenet.pipeline import negative_class

    rs = parse_rules("failure : x > 1\n")
    assert negative_class(rs, ["failure", "ok"]).default == "ok"
    assert negative_class(rs, ["failure", "ok", "other"]).default == "not_failure"  # ambiguous: unchanged
    assert negative_class(parse_rules("default : ok\nfailure : x > 1\n"), ["failure", "ok"]).default == "ok"


def test_estimator_save_load_round_trip_and_refuses_a_pickle(tmp_path):
    # save -> load gives bit-identical predictions, probabilities, export and explanation; weights.pt replaced by
    # a pickle that would run code on load is refused (torch.load(weights_only=True)), nothing is executed.
    import pickle

    from tenfold.core.errors import InputError
    from tenfold.systems.rulenet.estimator import RuleNetClassifier

    obs, items = items_to_frames(make_machining(400, seed=9))
    clf = RuleNetClassifier("smoke", {"train.warmup_epochs": 1, "train.rule_epochs": 1, "train.joint_epochs": 1})
    clf.fit(obs, items, NOISY_EXPERT_RULES)
    clf.save(tmp_path / "m")
    back = RuleNetClassifier.load(tmp_path / "m")
    assert np.array_equal(back.predict(obs, items), clf.predict(obs, items))
    assert np.array_equal(back.predict_proba(obs, items), clf.predict_proba(obs, items))
    assert back.export_rules() == clf.export_rules() and back.classes_ == clf.classes_
    assert back.explain(3, obs, items) == clf.explain(3, obs, items)

    class Evil:
        def __reduce__(self):
            return (exec, ("open(%r, 'w').write('ran')" % str(tmp_path / "pwned"),))

    (tmp_path / "m" / "weights.pt").write_bytes(pickle.dumps(Evil()))
    with pytest.raises(InputError, match="weights.pt"):
        RuleNetClassifier.load(tmp_path / "m")
    assert not (tmp_path / "pwned").exists()
    (tmp_path / "m" / "estimator.json").write_text('{"format": "something else"}')
    with pytest.raises(InputError, match="not a saved RuleNetClassifier"):
        RuleNetClassifier.load(tmp_path / "m")
