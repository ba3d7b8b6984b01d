"""doorping victims and metrics: ASR definitions, the victim schedule, accuracy parity (spec 7.9, 7.11)."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from tenfold.systems.doorping.config import VictimConfig
from tenfold.systems.doorping.data import trigger_mask
from tenfold.systems.doorping.model import ConvNetMini
from tenfold.systems.doorping.victims import accuracy, attack_metrics, train_victim, victim_metrics

from .conftest import tiny_data


class Oracle(nn.Module):
    """Predicts the label stored in pixel (0, 0): a perfect classifier that ignores the corner trigger."""

    def forward(self, x):
        return nn.functional.one_hot(x[:, 0, 0, 0].round().long(), 10).float()


def test_asr_of_a_perfect_trigger_blind_classifier():
    # Spec 7.9: on a balanced 10-class test set, code ASR = 0.1 (the true class-0 images) and asr_nontarget = 0;
    # digits' test set has 36 class-0 images of 360.
    d = tiny_data(n_per_class=36)
    d.test_x = torch.zeros(360, 1, 16, 16)
    d.test_x[:, 0, 0, 0] = d.test_y.float()
    tau, mask = torch.full((1, 1, 16, 16), 5.0), trigger_mask(16, 16, 2)
    m = attack_metrics(Oracle(), d, tau, mask, target=0)
    assert m["cta"] == 1.0 and m["asr"] == pytest.approx(36 / 360) and m["asr_nontarget"] == 0.0


def test_accuracy_matches_sklearn(gen):
    from sklearn.metrics import accuracy_score

    net = ConvNetMini(1, 10, 16)
    x, y = torch.randn(50, 1, 16, 16, generator=gen), torch.randint(0, 10, (50,), generator=gen)
    pred = net.eval()(x).argmax(1)
    assert accuracy(net, x, y, batch=7) == pytest.approx(accuracy_score(y.numpy(), pred.numpy()))


def test_victim_schedule_301_passes_and_decay_from_pass_152(monkeypatch, gen):
    # Spec 7.11: passes 0..300 (301), lr 0.01 until pass 151, 0.001 from pass 152.
    lrs = []
    real_step = torch.optim.SGD.step

    def spy(self, *a, **k):
        lrs.append(self.param_groups[0]["lr"])
        return real_step(self, *a, **k)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    net = nn.Sequential(nn.Flatten(), nn.Linear(4, 2))
    losses = train_victim(net, torch.randn(8, 1, 2, 2), torch.arange(8) % 2, VictimConfig(), gen)
    assert len(losses) == len(lrs) == 301  # one full batch per pass (8 < 256)
    assert lrs[151] == pytest.approx(0.01) and lrs[152] == pytest.approx(0.001)


def test_victim_loss_drops_and_metrics_have_mean_std(gen):
    d = tiny_data(n_per_class=3)
    vcfg = VictimConfig(num_victims=2, epochs=30)

    def make(g):
        torch.manual_seed(int(torch.randint(0, 1000, (1,), generator=g)))
        net = ConvNetMini(1, 10, 16)
        return net, train_victim(net, d.train_x, d.train_y, vcfg, g)

    out = victim_metrics(make, d, {"t": (torch.zeros(1, 1, 16, 16), trigger_mask(16, 16, 2), False)}, 2, gen, 0)
    assert out["victim_loss_last"] < out["victim_loss_first"]
    assert len(out["t/cta_all"]) == 2
    assert out["t/cta_std"] == pytest.approx(float(torch.tensor(out["t/cta_all"]).std(unbiased=False)))
