"""Slow: the quick profile of harmonize (arXiv 2211.05295) produces the spec section 6 rows (opt-in, -m slow).

The band is the README's measured one on seed 0 and the held-out seed 11 (5/10 rows hold on both, the same
five): CE under-segments and inverse-frequency wCE over-segments at sub-1:1000 foreground; our compound loss
(focal-modulated CE term, quick profile) is at or above the best fixed baseline at S2 with no threshold tuning,
and its F1 at t = 0.5 is within 0.02 of its oracle-threshold F1.
"""

import pytest

from tenfold.systems.harmonize.reproduce import reproduce


@pytest.mark.slow
def test_quick_profile_claims(tmp_path):
    rows = reproduce("quick", 11, tmp_path)  # a held-out seed (development seeds 0-2)
    assert len(rows) == 10 and all(r.verdict in ("holds", "fails") for r in rows)
    ce = next(r for r in rows if r.claim.startswith("CE under-segments"))
    wce = next(r for r in rows if r.claim.startswith("wCE inv-freq over-segments"))
    assert ce.verdict == "holds" and ce.method_value > 0.9  # measured +1.000 (all background)
    assert wce.verdict == "holds" and wce.method_value < -0.9  # measured -0.999 (massive FP)
    iou = next(r for r in rows if r.metric.startswith("IOU (S2"))
    assert iou.verdict == "holds" and iou.method_value > 0.8  # measured 0.892 vs Tversky 0.909 (margin 0.02)
    consistency = next(r for r in rows if r.claim.startswith("Training-inference consistency"))
    assert consistency.verdict == "holds"  # measured F1 gap 0.0038
    assert len(list(tmp_path.glob("*.png"))) == 4
