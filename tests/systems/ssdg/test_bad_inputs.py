"""Bad-input catalogue of ssdg (issue 12 / 13): every reader refuses a malformed input with exit 2, a message
naming the file (and line), and the run directory absent, before any training.

Readers: DomainBed ImageFolder trees `root/<domain>/<class>/<image>` (data.source=folders), split lists
`root/splits/<domain>_train_kfold.txt` with "relative_path label" lines (data.source=lists, PACS 1-based or
0-based), GBK web lists (data.source=web), and the run files `tenfold predict` reads.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from tests.badinput import assert_refused

DOMAINS = "data.domains=art,clipart,photo,sketch"
TASK = "data.task=art2sketch"


def _img(path: Path, value: int = 50) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((36, 36, 3), value, np.uint8)).save(path)


def folder_tree(root: Path) -> Path:
    for d in ("art", "clipart", "photo", "sketch"):
        for c in ("dog", "horse"):
            _img(root / d / c / "0.png")
    return root


def list_tree(root: Path) -> Path:
    folder_tree(root)
    (root / "splits").mkdir()
    for d in ("art", "clipart", "photo", "sketch"):
        (root / "splits" / f"{d}_train_kfold.txt").write_text(f"{d}/dog/0.png 1\n{d}/horse/0.png 2\n")
    return root


def _argv(source: str, root: Path, run: Path, *sets: str) -> list[str]:
    args = ["train", "ssdg", "--profile", "smoke", "--out", str(run), "--set", f"data.source={source}",
            "--set", f"data.root={root}", "--set", DOMAINS, "--set", TASK, "--set", "data.num_classes=2"]
    for s in sets:
        args += ["--set", s]
    return args


def test_unknown_domain(tmp_path, capsys):
    root, run = folder_tree(tmp_path / "data"), tmp_path / "run"
    err = assert_refused(_argv("folders", root, run, "data.domains=art,clipart,photo,quickdraw",
                               "data.task=art2quickdraw"), "quickdraw", run, capsys)
    assert "unknown domain" in err
    assert_refused(_argv("folders", root, run, "data.task=art2paint"), "paint", run, capsys)


def test_empty_domain_folder(tmp_path, capsys):
    root, run = folder_tree(tmp_path / "data"), tmp_path / "run"
    for f in (root / "photo").rglob("*.png"):
        f.unlink()
    assert_refused(_argv("folders", root, run), str(root / "photo"), run, capsys)


def test_unreadable_and_truncated_image(tmp_path, capsys):
    root, run = folder_tree(tmp_path / "data"), tmp_path / "run"
    bad = root / "clipart" / "dog" / "1.png"
    bad.write_bytes(b"not an image at all")
    assert_refused(_argv("folders", root, run), str(bad), run, capsys)
    bad.unlink()
    good = root / "clipart" / "dog" / "0.png"
    data = good.read_bytes()
    trunc = root / "clipart" / "dog" / "2.png"
    trunc.write_bytes(data[: len(data) // 2])
    assert_refused(_argv("folders", root, run), str(trunc), run, capsys)


def test_list_label_out_of_range_names_file_and_line(tmp_path, capsys):
    root, run = list_tree(tmp_path / "data"), tmp_path / "run"
    lst = root / "splits" / "photo_train_kfold.txt"
    lst.write_text("photo/dog/0.png 1\nphoto/horse/0.png 3\n")  # 1-based, 2 classes: 3 is out of range
    err = assert_refused(_argv("lists", root, run, "data.label_base=1"), f"{lst}:2", run, capsys)
    assert "out of range" in err
    lst.write_text("photo/dog/0.png 0\n")  # 0 is out of range for 1-based PACS lists
    assert_refused(_argv("lists", root, run, "data.label_base=1"), f"{lst}:1", run, capsys)


def test_list_names_missing_image(tmp_path, capsys):
    root, run = list_tree(tmp_path / "data"), tmp_path / "run"
    lst = root / "splits" / "clipart_train_kfold.txt"
    lst.write_text("clipart/dog/0.png 1\nclipart/dog/missing.png 2\n")
    err = assert_refused(_argv("lists", root, run, "data.label_base=1"), [f"{lst}:2", "missing.png"], run, capsys)
    assert "not found" in err


def test_list_malformed_line_and_missing_list(tmp_path, capsys):
    root, run = list_tree(tmp_path / "data"), tmp_path / "run"
    lst = root / "splits" / "art_train_kfold.txt"
    lst.write_text("art/dog/0.png one\n")
    assert_refused(_argv("lists", root, run, "data.label_base=1"), f"{lst}:1", run, capsys)
    lst.unlink()
    assert_refused(_argv("lists", root, run, "data.label_base=1"), str(lst), run, capsys)


def test_web_list_wrong_encoding(tmp_path, capsys):
    root, run = list_tree(tmp_path / "data"), tmp_path / "run"
    lst = root / "splits" / "clipart_train_kfold.txt"
    lst.write_bytes(b"clipart/dog/0.png 0\n\xff\xfe\xff 1\n")
    assert_refused(_argv("web", root, run, "data.label_base=1"), str(lst), run, capsys)


def test_predict_refuses_bad_images_without_writing(tmp_path, capsys):
    from tenfold.cli import main

    run = tmp_path / "run"
    assert main(["--quiet", "train", "ssdg", "--profile", "smoke", "--out", str(run),
                 "--set", "data.n_per_domain=40", "--set", "train.dg_epochs=1"]) == 0
    folder = tmp_path / "imgs"
    _img(folder / "a.png")
    (folder / "b.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "preds.csv"
    assert_refused(["predict", "ssdg", "--run", str(run), "--input", str(folder), "--output", str(out)],
                   str(folder / "b.png"), None, capsys)
    assert not out.exists()
    (folder / "b.png").unlink()
    empty = tmp_path / "empty"
    empty.mkdir()
    assert_refused(["predict", "ssdg", "--run", str(run), "--input", str(empty), "--output", str(out)],
                   str(empty), None, capsys)
    # a good folder: path,label,confidence per image
    assert main(["--quiet", "predict", "ssdg", "--run", str(run), "--input", str(folder), "--output", str(out)]) == 0
    lines = out.read_text().splitlines()
    assert lines[0] == "path,label,confidence" and len(lines) == 2 and lines[1].startswith(str(folder / "a.png"))
