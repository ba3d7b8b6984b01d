"""reft's claim rows (`reproduce.rows`) on hand-made arm results: the gFSIS bAP row is a retained fraction, so it
can fail at a scale where the base model's bAP is below the paper's 5-point tolerance (Han et al., arXiv
2301.01156; specs/reft.md section 6)."""

from __future__ import annotations

import pytest

from tenfold.core.config import make_config
from tenfold.systems.reft.config import PROFILES, Config
from tenfold.systems.reft.reproduce import BAP_KEEP, rows


def _rows(reft_bap: float, base_bap: float):
    cfg = make_config(Config, PROFILES, "smoke", {"seed": 0})
    r = cfg.reproduce
    run = {"nAP": 1.0, "bAP": reft_bap, "wall_s": 1.0}
    res = {(arm, k): [dict(run)] * r.ft_seeds for k in r.shots for arm in ("reft", "finetune")}
    res.update({(arm, r.ablation_shots): [dict(run)] * r.ft_seeds for arm in ("no_feature", "no_link")})
    return rows(cfg, 0, res, {"nAP": 0.0, "bAP": base_bap}, 1.0, 0.0, 0, 2.0)


def test_bap_row_is_the_retained_fraction_and_can_fail_below_five_points():
    assert BAP_KEEP == pytest.approx(5 / 36)
    row = next(m for m in _rows(reft_bap=3.0, base_bap=4.0) if m.claim.startswith("gFSIS") and "bAP" in m.claim)
    assert row.method_value == pytest.approx(0.75) and row.baseline_value == 1.0
    # 3.0 is within 5 absolute points of 4.0, but keeps only 75 % < 1 - 5/36 = 86.1 %: the relation is violated
    assert not row.relation.holds(row.method_value, row.baseline_value)
    kept = next(m for m in _rows(reft_bap=3.9, base_bap=4.0) if m.claim.startswith("gFSIS") and "bAP" in m.claim)
    assert kept.relation.holds(kept.method_value, kept.baseline_value)  # 97.5 % retained


def test_bap_row_is_missing_not_infinite_when_the_base_model_finds_nothing():
    row = next(m for m in _rows(reft_bap=0.0, base_bap=0.0) if m.claim.startswith("gFSIS") and "bAP" in m.claim)
    assert row.method_value != row.method_value  # NaN: judged inconclusive, never a division by zero
