"""StyleDigits-4 and the task protocol of ssdg (spec 4.1, section 7; arXiv 2111.10221)."""

import numpy as np
from PIL import Image

from tenfold.systems.ssdg.data import make_style_digits, read_folders, read_list, tasks, to_input


def test_generator_shapes_determinism_and_styles():
    a = make_style_digits(40, seed=1)
    b = make_style_digits(40, seed=1)
    for d in "PMCT":
        x, y = a[d]
        assert x.shape == (40, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
        assert set(y.tolist()) == set(range(10)) and np.bincount(y).max() == 4  # balanced: i % 10
        assert np.array_equal(x, b[d][0]) and np.array_equal(y, b[d][1])
    p, t = a["P"][0].astype(float), a["T"][0].astype(float)
    # P: bright glyph on black -> most pixels dark; T: dark glyph on light texture -> most pixels light
    assert np.median(p) < 30 and np.median(t) > 150
    assert not np.array_equal(make_style_digits(40, seed=2)["P"][0], a["P"][0])


def test_web_domain_noise():
    w = make_style_digits(300, seed=0, web=True)["W"]
    x, y, truth = w
    ooc = truth < 0
    assert 0.12 < ooc.mean() < 0.28  # 20 % out-of-class letters
    wrong = (y != truth) & ~ooc
    assert 0.2 < wrong.sum() / (~ooc).sum() < 0.4  # 30 % symmetric crawl noise


def test_tasks_protocol():
    ts = tasks("PMCT")
    assert len(ts) == 12 and len({(l, t) for l, _, t in ts}) == 12
    assert ("P", ["M", "C"], "T") in ts
    for l, us, t in ts:
        assert sorted(us + [l, t]) == sorted("PMCT")


def test_to_input_standardises_per_image_and_channel():
    x = np.random.default_rng(0).integers(0, 255, (2, 8, 8, 3)).astype(np.uint8)
    z = to_input(x)
    assert z.shape == (2, 3, 8, 8)
    assert float(z.mean(dim=(2, 3)).abs().max()) < 1e-5


def test_readers_folders_and_lists(tmp_path):
    for dom in ("art", "clipart"):
        for c in ("000_Alarm_Clock", "001_Bike"):
            (tmp_path / dom / c).mkdir(parents=True)
            Image.fromarray(np.full((40, 30, 3), 9, np.uint8)).save(tmp_path / dom / c / "a.png")
    x, y, paths = read_folders(tmp_path, "art", 32, 2)
    assert x.shape == (2, 32, 32, 3) and y.tolist() == [0, 1] and paths[0].startswith("art")
    (tmp_path / "splits").mkdir()
    (tmp_path / "splits" / "art_train_kfold.txt").write_text("art/001_Bike/a.png 2\nart/000_Alarm_Clock/a.png 1\n")
    x, y, _ = read_list(tmp_path / "splits" / "art_train_kfold.txt", tmp_path, 32, 2, label_base=1)
    assert y.tolist() == [1, 0]  # PACS-style 1-based -> 0-based
    (tmp_path / "splits" / "web.txt").write_bytes("art/001_Bike/a.png 0\n".encode("gbk"))
    assert read_list(tmp_path / "splits" / "web.txt", tmp_path, 32, 2, 0, "gbk")[1].tolist() == [0]
