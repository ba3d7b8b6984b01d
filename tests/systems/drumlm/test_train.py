"""drumlm train / evaluate / predict (arXiv 2301.01162): schedule, batch order, masks, the NLL reference, resume
after a kill, the smoke run end to end and `predict` writing a playable continuation."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("mido")
pytest.importorskip("transformers")
torch = pytest.importorskip("torch")

from tenfold.core.config import make_config  # noqa: E402
from tenfold.core.errors import InputError  # noqa: E402
from tenfold.systems.drumlm import train as train_mod  # noqa: E402
from tenfold.systems.drumlm.arms import collate, dev_nll, load_arm, weights_path  # noqa: E402
from tenfold.systems.drumlm.config import PROFILES, Config  # noqa: E402
from tenfold.systems.drumlm.drumroll import read_drumroll_midi  # noqa: E402
from tenfold.systems.drumlm.evaluate import evaluate, position_bernoulli_nll  # noqa: E402
from tenfold.systems.drumlm.predict import predict  # noqa: E402

from .conftest import backbeat_bar_notes, write_notes  # noqa: E402


def smoke(**over) -> Config:
    return make_config(Config, PROFILES, "smoke", over)


def test_schedule_warmup_then_cosine():
    # total 10, warm-up 0.2 -> 2 steps: 1/2, 2/2; then cos over the 8 remaining: step 6 is half way -> 0.5
    f = [train_mod.schedule(s, 10, 0.2) for s in range(11)]
    assert f[0] == 0.5 and f[1] == 1.0 and f[2] == 1.0
    assert f[6] == pytest.approx(0.5) and f[10] == pytest.approx(0.0)
    assert train_mod.schedule(0, 10, 0.0) == 1.0  # no warm-up


def test_batch_order_seeded_and_one_epoch_covers_every_record():
    order = train_mod.batch_order(3, num_records=5, steps=4, batch=2)  # 8 draws: one epoch of 5 + 3 of the next
    flat = [i for b in order for i in b]
    assert sorted(flat[:5]) == [0, 1, 2, 3, 4] and len(flat) == 8
    assert order == train_mod.batch_order(3, 5, 4, 2) and order != train_mod.batch_order(4, 5, 4, 2)


def test_collate_masks_by_hand():
    # ids [5, 6, 7, 8] with 2 prompt ids: x = 5 6 7, y = 6 7 8; target 6 is a prompt token (position 1 < 2),
    # 7 and 8 are completion tokens; the second row [9, 10] (1 prompt id) is padded with 0 to T = 3
    b = collate([([5, 6, 7, 8], 2), ([9, 10], 1)], pad_id=0)
    assert b["x"].tolist() == [[5, 6, 7], [9, 0, 0]] and b["y"].tolist() == [[6, 7, 8], [10, 0, 0]]
    assert b["is_completion"].tolist() == [[False, True, True], [True, False, False]]
    assert b["is_real"].tolist() == [[True, True, True], [True, False, False]]


def test_position_bernoulli_nll_by_hand():
    # train: one bar where every line is "o-----" except line 1 "------": position 0 crash count 1 of 1 ->
    # p = (1 + 1) / (1 + 2) = 2/3; the other voices p = 1/3. A dev line "o-----" at position 0 costs
    # -log(2/3) - 5 log(2/3) = -6 log(2/3)
    train = [["o-----"] + ["------"] * 15]
    nll = position_bernoulli_nll(train, ["o-----\nSEP\nEND"])
    assert nll == pytest.approx(-6 * math.log(2 / 3))


def test_resume_after_a_kill_gives_the_same_weights(tmp_path, monkeypatch):
    cfg = smoke(**{"train.arms": ("C",), "train.steps_c": 6, "train.checkpoint_every": 2, "model_c.dropout": 0.0})
    ref = tmp_path / "ref"
    train_mod.train(cfg, ref)
    real_save = train_mod.save_arm
    calls = {"n": 0}

    def killed(*a, **k):  # the process dies after the last step, before the weights are written
        calls["n"] += 1
        raise KeyboardInterrupt

    run = tmp_path / "run"
    monkeypatch.setattr(train_mod, "save_arm", killed)
    with pytest.raises(KeyboardInterrupt):
        train_mod.train(cfg, run)
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert state["arm"] == "C" and state["step"] == 4  # mid-arm checkpoints at 2 and 4 (not at the last step)
    monkeypatch.setattr(train_mod, "save_arm", real_save)
    train_mod.train(cfg, run)
    a, b = load_arm(cfg, ref, "C"), load_arm(cfg, run, "C")
    for (n, p), q in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(p, q), n
    steps = [r["step"] for r in (json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines())]
    assert steps == list(range(1, 7))  # no step logged twice


def test_smoke_run_end_to_end_and_predict(tmp_path):
    cfg = smoke(**{"train.steps_lm": 4, "train.steps_c": 4})
    run = tmp_path / "run"
    metrics = train_mod.train(cfg, run)
    assert {"steps_A", "steps_B", "steps_C"} <= set(metrics) and metrics["steps_A"] == 4
    for a in "ABC":
        assert weights_path(run, a).exists()
    budgets = json.loads((run / "arms.json").read_text())
    assert budgets["A"]["tokens"] == budgets["B"]["tokens"]  # A and B see the same records in the same order
    out = evaluate(cfg, run)
    assert "A_nll_per_line" in out and math.isfinite(out["ref_nll_position_bernoulli"])
    assert out["ref_repeat_mean_stability"] == 0.0 and out["ref_repeat_repetition_rate"] == 1.0
    assert (run / "midi" / "A").is_dir() and (run / "generations" / "C.json").exists()
    ev = json.loads((run / "eval.json").read_text())
    for m in [*ev["arms"].values(), *ev["references"].values()]:  # component 13 histogram: novelty is its "0" share
        assert sum(m["duplication"].values()) == m["novel_bars_of"]
        if m["novel_bars_of"]:
            assert m["duplication"].get("0", 0) / m["novel_bars_of"] == pytest.approx(m["novelty"])
    # dev NLL is a sum over records: scoring one record at a time gives the same value
    arm = load_arm(cfg, run, "C")
    recs = json.loads((run / "generations" / "C.json").read_text())
    assert recs and all("repair" in r for r in recs)
    from tenfold.systems.drumlm.arms import load_records
    dev = load_records(cfg)[1]["dev"][:2]
    assert dev_nll(arm, dev, batch=1)["nll_per_line"] == pytest.approx(dev_nll(arm, dev, batch=2)["nll_per_line"],
                                                                       rel=1e-5)
    # predict: a 3-bar backbeat (the last 2 bars are the prompt) continued by 2 bars -> 5 bars, input kept
    notes = [n for bar in range(3) for n in backbeat_bar_notes(bar)]
    prompt = write_notes(tmp_path / "prompt.mid", notes, bpm=100)
    res = predict(run, prompt, tmp_path / "out" / "cont.mid", bars=2)
    assert res["input_bars"] == 3 and res["generated_bars"] == 2 and res["bpm"] == pytest.approx(100, rel=1e-3)
    lines = read_drumroll_midi(tmp_path / "out" / "cont.mid")
    assert len(lines) == 5 * 16
    bar = ["---oo-", "------", "----o-", "------", "--o-o-", "------", "----o-", "------"] * 2
    assert lines[:48] == bar * 3


def test_eval_refuses_a_run_without_weights_before_writing(tmp_path):
    cfg = smoke(**{"train.arms": ("C",), "train.steps_c": 2})
    run = tmp_path / "run"
    train_mod.train(cfg, run)
    weights_path(run, "C").unlink()
    before = sorted(p.relative_to(run) for p in run.rglob("*"))
    with pytest.raises(InputError, match=r"C\.safetensors: not found"):
        evaluate(cfg, run)
    assert sorted(p.relative_to(run) for p in run.rglob("*")) == before  # no midi/human, no eval.json


def test_reproduce_twice_retrains_when_scored_weights_were_deleted(tmp_path):
    from tenfold.systems.drumlm.reproduce import reproduce

    first = reproduce("smoke", 0, tmp_path)
    assert not weights_path(tmp_path / "run", "A").exists()  # deleted once scored
    again = reproduce("smoke", 0, tmp_path)  # e.g. after a kill between scoring and the rows, or a code change
    assert [r.claim for r in again] == [r.claim for r in first]
    assert [r.method_value for r in again] == pytest.approx([r.method_value for r in first], nan_ok=True)
