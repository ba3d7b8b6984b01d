"""Adaptive output-imbalance selector of harmonize (arXiv 2211.05295): bisection and online variants."""

import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.systems.harmonize.data import make_split
from tenfold.systems.harmonize.model import TinyUNet
from tenfold.systems.harmonize.selector import AdaptiveImbalanceSelector, OnlineImbalanceController
from tenfold.systems.harmonize.train import validation_imbalance


def mock_oi(b: float) -> float:
    return 0.62 - b  # decreasing in b, harmonised at b = 0.62


def test_bisection_on_mock_hand_sequence():
    sel = AdaptiveImbalanceSelector()
    tried = []
    while not sel.done:
        b = sel.propose()
        tried.append(b)
        sel.update(b, mock_oi(b))
    # b = 0.5 (OI 0.12 > 0.05: lo = 0.5) -> (0.5 + 0.95)/2 = 0.725 (OI -0.105: hi = 0.725)
    # -> (0.5 + 0.725)/2 = 0.6125 (OI 0.0075 <= 0.05: stop)
    assert tried == pytest.approx([0.5, 0.725, 0.6125])
    assert sel.best()[0] == pytest.approx(0.6125)
    assert (sel.lo, sel.hi) == pytest.approx((0.5, 0.725))


def test_bisection_keeps_best_candidate_and_round_limit():
    sel = AdaptiveImbalanceSelector(tolerance=1e-6, max_rounds=3)
    while not sel.done:
        b = sel.propose()
        sel.update(b, mock_oi(b))
    # rounds: 0.5 (0.12), 0.725 (-0.105), 0.6125 (0.0075): the best |OI| is the last here; 3 rounds max
    assert len(sel.history) == 3 and sel.best()[0] == pytest.approx(0.6125)
    restored = AdaptiveImbalanceSelector.from_state(sel.state_dict())
    assert restored == sel


def test_non_monotone_oi_switches_to_grid():
    sel = AdaptiveImbalanceSelector()
    sel.update(0.5, 0.5)  # lo = 0.5
    sel.update(0.725, 0.9)  # OI rose with b by more than 2 eps: not monotone
    assert sel.mode == "grid"
    nxt = sel.propose()
    assert nxt in (0.3, 0.7)  # an untried grid point closest to the best b (0.5)


def test_online_variant_converges_and_freezes():
    ctrl = OnlineImbalanceController(num_epochs=100, step_size=0.1, momentum=0.0, freeze_fraction=0.2)
    bs = []
    for epoch in range(100):
        bs.append(ctrl.b)
        ctrl.update(epoch, mock_oi(ctrl.b))
    # b_{e+1} = b_e + 0.1 (0.62 - b_e): error 0.12 * 0.9^e -> 0.12 * 0.9^79 = 3e-5 at the freeze epoch 80
    assert ctrl.freeze_epoch == 80
    assert bs[80] == pytest.approx(0.62, abs=1e-4)
    assert len(set(bs[80:])) == 1  # frozen for the last 20 % of the epochs ...
    assert bs[79] != bs[80]  # ... and not one epoch earlier: epoch 79's OI still sets the b of epoch 80
    short = OnlineImbalanceController(num_epochs=10, step_size=0.1, freeze_fraction=0.2)
    b10 = []
    for epoch in range(10):
        b10.append(short.b)
        short.update(epoch, mock_oi(short.b))
    assert short.freeze_epoch == 8
    assert len(set(b10[:9])) == 9 and b10[8] == b10[9]  # b moves through epoch 8, then holds for 8 and 9
    smoothed = OnlineImbalanceController(num_epochs=200, momentum=0.8)
    for epoch in range(200):
        smoothed.update(epoch, mock_oi(smoothed.b))
    assert smoothed.b == pytest.approx(0.62, abs=5e-3)


def test_selector_refuses_the_test_split():
    test = make_split("test", 2, 32, (3, 4), 0.6, seed=0)
    with pytest.raises(InputError, match="test split"):
        validation_imbalance(TinyUNet(1, (4, 8)), test, torch.device("cpu"))
    val = make_split("val", 2, 32, (3, 4), 0.6, seed=0)
    out = validation_imbalance(TinyUNet(1, (4, 8)), val, torch.device("cpu"))
    assert -1.0 <= out["val_oi"] <= 1.0
