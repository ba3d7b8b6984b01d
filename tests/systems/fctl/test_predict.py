"""`tenfold predict fctl`: any-size images and folders, masks equal to the evaluation path, GeoTIFF tags kept."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from tenfold.cli import main
from tests.badinput import assert_refused


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("fctl-predict") / "run"
    assert main(["--quiet", "train", "fctl", "--profile", "smoke", "--out", str(out)]) == 0
    return out


def _image(h, w, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)


def test_png_mask_matches_the_patch_pipeline(run, tmp_path):
    from tenfold.core.config import load_config
    from tenfold.systems.fctl.config import Config
    from tenfold.systems.fctl.patching import segment_large_image
    from tenfold.systems.fctl.stages import load_stage_model, model_factors

    img = _image(70, 101)  # not a multiple of the patch: the grid covers it with overlap
    Image.fromarray(img).save(tmp_path / "a.png")
    assert main(["--quiet", "predict", "fctl", "--run", str(run), "--input", str(tmp_path / "a.png"),
                 "--output", str(tmp_path / "a_mask.png")]) == 0
    mask = np.asarray(Image.open(tmp_path / "a_mask.png"))
    cfg = load_config(Config, run / "config.json")
    model = load_stage_model(cfg, run, "all").eval()
    want = segment_large_image(img, model, cfg.data.patch_size, cfg.data.min_overlap,
                               (1, *model_factors(model, cfg)), cfg.eval.use_tta, num_classes=cfg.data.num_classes,
                               batch=cfg.eval.test_batch)
    assert mask.shape == (70, 101) and np.array_equal(mask, want)


def test_folder_in_folder_out_and_geotiff_tags_kept(run, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(_image(40, 40, 1)).save(src / "b.jpg")
    scale, tie = (0.5, 0.5, 0.0), (0.0, 0.0, 0.0, 440720.0, 3751320.0, 0.0)
    tifffile.imwrite(src / "c.tif", _image(48, 33, 2),
                     extratags=[(33550, 12, 3, scale, True), (33922, 12, 6, tie, True)])
    (src / "notes.txt").write_text("not an image")
    assert main(["--quiet", "predict", "fctl", "--run", str(run), "--input", str(src),
                 "--output", str(tmp_path / "out")]) == 0
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b_mask.png", "c_mask.tif"]
    with tifffile.TiffFile(tmp_path / "out" / "c_mask.tif") as tif:
        tags = tif.pages[0].tags
        assert tuple(tags[33550].value) == scale and tuple(tags[33922].value) == tie
        assert tif.pages[0].shape == (48, 33)


@pytest.mark.parametrize("case", ["tiny", "truncated", "bad_suffix", "wrong_output_suffix"])
def test_bad_inputs_exit_2_and_write_nothing(run, tmp_path, capsys, case):
    inp, outp = tmp_path / "x.png", tmp_path / "out" / "x_mask.png"
    if case == "tiny":
        Image.fromarray(_image(8, 8)).save(inp)
    elif case == "truncated":
        Image.fromarray(_image(64, 64)).save(inp)
        inp.write_bytes(inp.read_bytes()[:200])
    elif case == "bad_suffix":
        inp = tmp_path / "x.bmpx"
        inp.write_bytes(b"zz")
    else:
        Image.fromarray(_image(64, 64)).save(inp)
        outp = tmp_path / "out" / "x_mask.tif"
    assert_refused(["predict", "fctl", "--run", str(run), "--input", str(inp), "--output", str(outp)],
                   inp.name, tmp_path / "out", capsys)

