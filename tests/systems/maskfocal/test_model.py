"""Detectors of maskfocal (arXiv 2212.11542, spec 2.6): shapes, locations, gradients."""

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.maskfocal.model import CenterNetLite, FCOSLite, location_points


def test_centernet_shapes_and_prior():
    torch.manual_seed(0)
    m = CenterNetLite((8, 16, 32, 64), 16, output_stride=4)
    out = m(torch.randn(2, 3, 64, 96))
    assert out["heatmap"].shape == (2, 1, 16, 24)
    assert out["size"].shape == (2, 2, 16, 24) and out["offset"].shape == (2, 2, 16, 24)
    # bias = -log((1 - 0.1) / 0.1) = -2.1972: the initial mean probability is near the prior 0.1.
    assert float(m.heatmap[-1].bias.detach()) == pytest.approx(-2.19722, abs=1e-5)
    out2 = CenterNetLite((8, 16, 32, 64), 16, output_stride=2)(torch.randn(1, 3, 64, 64))
    assert out2["heatmap"].shape == (1, 1, 32, 32)


def test_fcos_shapes_and_box_decoding():
    torch.manual_seed(0)
    m = FCOSLite((8, 16, 32, 64), 16, strides=(4, 8))
    out = m(torch.randn(2, 3, 64, 64))
    L = 16 * 16 + 8 * 8
    assert out["cls"].shape == (2, L) and out["ctr"].shape == (2, L) and out["boxes"].shape == (2, L, 4)
    pts = out["points"]
    assert_close(out["boxes"][..., :2], pts - out["ltrb"][..., :2])
    assert_close(out["boxes"][..., 2:], pts + out["ltrb"][..., 2:])
    assert bool((out["ltrb"] > 0).all())


def test_location_points_are_cell_centres():
    # stride 4, 2 x 3 grid: x = 2, 6, 10; y = 2, 6 (row-major).
    expected = torch.tensor([[2, 2], [6, 2], [10, 2], [2, 6], [6, 6], [10, 6]], dtype=torch.float32)
    assert_close(location_points(2, 3, 4), expected)


@pytest.mark.parametrize("cls", [CenterNetLite, FCOSLite])
def test_gradient_reaches_every_parameter(cls):
    torch.manual_seed(0)
    m = cls((8, 16, 32, 64), 16)
    out = m(torch.randn(2, 3, 64, 64))
    sum(v.float().sum() for k, v in out.items() if k != "points").backward()
    missing = [n for n, p in m.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert not missing


def test_batch_of_one_equals_batched():
    torch.manual_seed(0)
    m = CenterNetLite((8, 16, 32, 64), 16).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.no_grad():
        full = m(x)["heatmap"]
        one = m(x[1:2])["heatmap"]
    assert_close(full[1:2], one, rtol=1e-4, atol=1e-5)
