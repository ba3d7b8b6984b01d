"""Issue 18 (harmonize, arXiv 2211.05295): the focal-CE option of every loss with a pixel-wise CE term, the
validation-tuned threshold, the validation search of `reproduce` and the new claim rows (hand values)."""

import math

import pytest
import torch
from torch.testing import assert_close

from tenfold.core.config import make_config
from tenfold.systems.harmonize import loss as L
from tenfold.systems.harmonize import reproduce as R
from tenfold.systems.harmonize.config import PROFILES, Config
from tenfold.systems.harmonize.scoring import SWEEP_LOGITS, metrics_at_logit, validation_threshold

# One fg pixel with p = 0.8 and one bg pixel with p = 0.4 (logits ln 4 and ln(2/3)).
Z = torch.tensor([math.log(4.0), math.log(0.4 / 0.6)]).view(1, 1, 1, 2)
G = torch.tensor([1.0, 0.0]).view(1, 1, 1, 2)


def test_focal_modulated_ce_hand_value():
    # -(1/2)[(1 - 0.8)^2 ln 0.8 + 0.4^2 ln 0.6] = (1/2)(0.04 * 0.223144 + 0.16 * 0.510826) = 0.045329
    assert_close(L.cross_entropy(Z, G, gamma=2.0), torch.tensor(0.045329), atol=1e-5, rtol=0)
    # gamma = 0 is plain BCE: (1/2)(0.223144 + 0.510826) = 0.366985
    assert_close(L.cross_entropy(Z, G), torch.tensor(0.366985), atol=1e-5, rtol=0)


def test_combo_and_unified_focal_focal_option_hand_values():
    # Combo c = 0.5, beta = 0.5, gamma 2: wCE = -(1/2)[0.5 * 0.04 ln 0.8 + 0.5 * 0.16 ln 0.6] = 0.022665;
    # Dice coef (s = 0) = 2 * 0.8 / (1.6 + 0.4 + 0.2) = 0.727273 -> 0.5 * 0.022665 - 0.5 * 0.727273 = -0.352304
    assert_close(L.combo(Z, G, 0.5, 0.5, smooth=0.0, gamma=2.0), torch.tensor(-0.352304), atol=1e-5, rtol=0)
    # Unified Focal with bg exponent 2 instead of 0.5: L_mF = -(1/2)[0.6 ln 0.8 + 0.4 * 0.16 ln 0.6] = 0.083290;
    # L_mFT as in test_loss (0.857001) -> 0.5 * 0.083290 + 0.5 * 0.857001 = 0.470146
    assert_close(L.unified_focal(Z, G, 0.5, 0.6, 0.5, smooth=0.0, bg_gamma=2.0), torch.tensor(0.470146),
                 atol=1e-5, rtol=0)


@pytest.mark.parametrize("name", L.LOSS_NAMES)
def test_use_focal_ce_changes_exactly_the_losses_with_a_ce_term(name):
    plain = float(L.build_criterion(name, smooth=0.0)(Z, G)["loss"])
    focal = float(L.build_criterion(name, smooth=0.0, use_focal_ce=True)(Z, G)["loss"])
    assert (plain != focal) == (name in L.FOCAL_CE_LOSSES)


def test_validation_threshold_and_metrics_at_logit():
    # val: fg logits 1.0, 2.0; bg logits -1.0, 1.5. Thresholds in (-1, 1] give TP 2 FP 1 (F1 0.8); (1, 1.5] TP 1
    # FP 1 (F1 0.5); (1.5, 2] TP 1 FP 0 (F1 2/3). The best grid value is the highest one <= 1.0: 1.0 itself.
    z = torch.tensor([1.0, 2.0, -1.0, 1.5]).view(1, 1, 2, 2)
    g = torch.tensor([1.0, 1.0, 0.0, 0.0]).view(1, 1, 2, 2)
    t = validation_threshold(z, g)
    assert t == pytest.approx(1.0) and t in SWEEP_LOGITS.tolist()
    m = metrics_at_logit(z, g, t)  # TP 2, FP 1, FN 0: P 2/3, R 1, F1 0.8, IoU 2/3, OI (0 - 1)/1 = -1
    assert m["f1"] == pytest.approx(0.8) and m["iou"] == pytest.approx(2 / 3) and m["oi"] == -1.0
    # nothing ranks the foreground: F1 0 at every threshold -> the top of the grid (predict nothing)
    assert validation_threshold(torch.zeros(1, 1, 1, 2) - 20, G) == pytest.approx(16.0)


def _fake_metrics(val_iou: float, focal: bool, iou: float = 0.5, oi: float = 0.0, b: float = 0.6):
    return {"val_iou": val_iou, "use_focal_ce": focal, "iou": iou, "f1": 2 * iou / (1 + iou), "oi": oi,
            "epochs": 10, "wall_time_s": 1.0, "fn_weight": b, "recall": 0.5, "precision": 0.5, "oracle_f1": 0.6,
            "f1_gap": 0.01, "oracle_threshold": 0.5, "fg_ratio": 1e-3, "all_background": {"iou": 0.0, "f1": 0.0},
            "tuned": {"iou": 0.4, "f1": 0.57, "oi": 0.1, "logit_threshold": -2.0}}


def test_search_arm_keeps_higher_validation_iou_and_records_budget(monkeypatch, tmp_path):
    cfg = make_config(Config, PROFILES, "smoke", {"seed": 0})
    vals = {False: 0.2, True: 0.3}
    seen = []

    def fake_run_one(c, run_dir):
        seen.append((c.loss.name, c.loss.use_focal_ce, run_dir.name))
        return _fake_metrics(vals[c.loss.use_focal_ce], c.loss.use_focal_ce)

    monkeypatch.setattr(R, "run_one", fake_run_one)
    ce = R.search_arm(cfg, "S2", "ce", 0, tmp_path, True)
    assert ce["use_focal_ce"] and ce["budget"]["runs"] == 2 and ce["budget"]["epochs"] == 20
    assert ce["search_val_iou"] == [0.2, 0.3] and ce["budget"]["chosen"] == "focal-modulated CE term"
    dice = R.search_arm(cfg, "S2", "dice", 0, tmp_path, True)  # no CE term: one run, the plain form
    assert dice["budget"]["runs"] == 1 and not dice["use_focal_ce"]
    vals[True] = 0.2  # a tie keeps the plain form (tried first)
    assert not R.search_arm(cfg, "S2", "harmonize", 0, tmp_path, True)["use_focal_ce"]
    assert [s[2] for s in seen[:2]] == ["S2-ce-seed0", "S2-ce-focalce-seed0"]


def test_claim_rows_fixed_b_tuned_ce_and_references():
    cfg = make_config(Config, PROFILES, "smoke", {"seed": 0})
    res = {}
    for loss, iou, oi in (("ce", 0.1, 0.9), ("wce_inverse", 0.05, -0.9), ("tversky", 0.6, -0.5),
                          ("harmonize", 0.7, 0.05), ("fixed_b", 0.5, -0.4), ("fixed_bstar", 0.72, 0.2)):
        res[("S2", loss, 0)] = _fake_metrics(0.0, False, iou, oi)
        res[("S2", loss, 0)]["budget"] = {"runs": 1, "epochs": 10, "chosen": "plain", "wall_s": 1.0}
    for s in ("S1", "S3"):
        for loss in cfg.reproduce.scale_losses:
            res[(s, loss, 0)] = dict(res[("S2", loss, 0)])
    rows = {(r.claim, r.metric, r.baseline): r for r in R.claim_rows(res, cfg, (0,))}
    tuned = rows[("Ours (t = 0.5) >= CE + threshold tuned on validation", "IOU (S2)", "CE + val-tuned threshold")]
    assert tuned.baseline_value == 0.4 and tuned.method_value == 0.7 and tuned.verdict == "holds"
    assert tuned.reference == R.ALL_BG and tuned.reference_value == 0.0
    assert "tuned on validation" in tuned.budget["baseline"]["threshold"]
    fixed = [r for r in rows.values() if r.claim.startswith("Adaptive b")]
    assert len(fixed) == 4
    iou_half = next(r for r in fixed if r.metric.startswith("IoU") and r.baseline == "fixed b = 0.5")
    assert (iou_half.method_value, iou_half.baseline_value, iou_half.verdict) == (0.7, 0.5, "holds")
    oi_star = next(r for r in fixed if r.metric.startswith("|OI|") and "b*" in r.baseline)
    assert (oi_star.method_value, oi_star.baseline_value, oi_star.verdict) == (0.05, 0.2, "holds")
    iou_star = next(r for r in fixed if r.metric.startswith("IoU") and "b*" in r.baseline)
    assert iou_star.verdict == "fails"  # 0.7 < 0.72
    # every IoU / F1 row names the all-background model as its reference (the F1 *gap* rows measure consistency)
    quality = [r for r in rows.values() if r.metric.startswith(("IOU", "F1", "IoU")) and "oracle" not in r.metric]
    assert len(quality) == 7 and all(r.reference.startswith("all-background") for r in quality)


def test_scale_config_takes_one_folder_per_level_with_data_root(tmp_path):
    from tenfold.core.config import override
    from tenfold.core.errors import InputError

    cfg = override(make_config(Config, PROFILES, "smoke", {"seed": 0}), {"data.root": str(tmp_path)})
    assert R.scale_config(cfg, "S2", "ce", 0).data.root == str(tmp_path)  # main scale: the root itself
    with pytest.raises(InputError, match="S1"):
        R.scale_config(cfg, "S1", "ce", 0)  # no S1 folder: refused, never the same data twice
    (tmp_path / "S1").mkdir()
    (tmp_path / "S2").mkdir()
    assert R.scale_config(cfg, "S1", "ce", 0).data.root == str(tmp_path / "S1")
    assert R.scale_config(cfg, "S2", "ce", 0).data.root == str(tmp_path / "S2")


def test_full_profile_uses_spec_sizes_and_bisection():
    c = make_config(Config, PROFILES, "full", {})
    assert c.data.image_size == 512 and c.reproduce.scale_sizes == (512, 512, 1024)
    assert c.selector.selector == "bisection"
    # 25 warm-up epochs + 4 warm-started rounds of 25 + a 100-epoch retrain: up to 225 epochs (baselines: 100)
    s = c.selector
    assert s.warmup_epochs + (s.max_rounds - 1) * s.round_epochs + c.train.epochs == 225


def test_quick_profile_gives_no_loss_the_focal_option_by_default():
    c = make_config(Config, PROFILES, "quick", {})
    assert not c.loss.use_focal_ce and c.reproduce.search_focal_ce and "focal" not in c.reproduce.losses
