"""ModalMask3D of cmt (arXiv 2301.01283, spec component 13)."""

import numpy as np
import pytest

from tenfold.systems.cmt.augment import modal_mask_3d


def test_train_frequencies_never_both() -> None:
    # Spec 7: ~25 % image-dropped, 25 % point-dropped, 50 % both kept. 4000 draws: sd of a 25 % share = 0.7 %.
    rng = np.random.default_rng(0)
    pts, imgs = np.ones((5, 5)), np.ones((2, 4, 4, 3))
    seen = {"none": 0, "image": 0, "points": 0}
    for _ in range(4000):
        p, i, d = modal_mask_3d(pts, imgs, rng)
        seen[d] += 1
        assert not (p == 0).all() or not (i == 0).all()  # never both dropped
        assert (d == "image") == (i == 0).all() and (d == "points") == (p == 0).all()
    assert seen["image"] / 4000 == pytest.approx(0.25, abs=0.03)
    assert seen["points"] / 4000 == pytest.approx(0.25, abs=0.03)
    assert pts.sum() == 25 and imgs.sum() == 96  # inputs untouched


def test_test_mode_and_bad_values() -> None:
    pts, imgs = np.ones((3, 5)), np.ones((1, 2, 2, 3))
    p, i, d = modal_mask_3d(pts, imgs, mode="test", mask_modal="points")
    assert d == "points" and p.sum() == 0 and i.sum() == 12
    assert modal_mask_3d(pts, imgs, mode="test")[2] == "none"
    with pytest.raises(ValueError, match="mask_modal"):
        modal_mask_3d(pts, imgs, mode="test", mask_modal="lidar")
    with pytest.raises(ValueError, match="mode"):
        modal_mask_3d(pts, imgs, mode="eval")
