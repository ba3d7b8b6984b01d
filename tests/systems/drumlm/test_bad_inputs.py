"""Bad-input catalogue of drumlm (arXiv 2301.01162; issue 14): through the real CLI, every malformed input exits 2
with a message naming the file (and field), and the run / output folder stays as it was.

Inputs: the prompt MIDI of `tenfold predict drumlm` (missing, not MIDI, corrupt, not x/4, too short, drum-less),
the `--bars` option, a run without weights, and the Groove MIDI Dataset layout of `tenfold train drumlm`
(data.source=gmd: missing info.csv, a missing column, a corrupt MIDI file) and a bad config value.
"""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

pytest.importorskip("mido")
pytest.importorskip("transformers")

from tenfold.cli import main  # noqa: E402
from tests.badinput import assert_refused  # noqa: E402

from .conftest import backbeat_bar_notes, write_notes  # noqa: E402

COLUMNS = ["drummer", "session", "id", "style", "bpm", "beat_type", "time_signature", "midi_filename",
           "audio_filename", "duration", "split"]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A smoke run of arm C only, 2 steps (fast): predict uses its first trained arm."""
    out = tmp_path_factory.mktemp("drumlm") / "run"
    assert main(["--quiet", "train", "drumlm", "--profile", "smoke", "--out", str(out), "--set", "train.arms=C",
                 "--set", "train.steps_c=2"]) == 0
    return out


def _predict(run: Path, inp: Path, out: Path, *extra: str) -> list[str]:
    return ["predict", "drumlm", "--run", str(run), "--input", str(inp), "--output", str(out / "o.mid"), *extra]


def _groove(path: Path, bars: int = 3, **kw) -> Path:
    return write_notes(path, [n for b in range(bars) for n in backbeat_bar_notes(b)], **kw)


def test_predict_missing_and_not_midi(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(_predict(run, tmp_path / "nothere.mid", out), "nothere.mid", out, capsys)
    text = tmp_path / "groove.txt"
    text.write_text("---oo-\n")
    assert_refused(_predict(run, text, out), ["groove.txt", "MIDI"], out, capsys)


def test_predict_corrupt_and_truncated_midi(run, tmp_path, capsys):
    out = tmp_path / "out"
    bad = tmp_path / "corrupt.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    assert_refused(_predict(run, bad, out), "corrupt.mid", out, capsys)
    good = _groove(tmp_path / "good.mid")
    cut = tmp_path / "truncated.mid"
    cut.write_bytes(good.read_bytes()[:30])
    assert_refused(_predict(run, cut, out), "truncated.mid", out, capsys)


def test_predict_not_x4_too_short_and_drumless(run, tmp_path, capsys):
    out = tmp_path / "out"
    assert_refused(_predict(run, _groove(tmp_path / "six8.mid", time_sig=(6, 8)), out),
                   ["six8.mid", "time signature"], out, capsys)
    assert_refused(_predict(run, _groove(tmp_path / "onebar.mid", bars=1), out), ["onebar.mid", "at least 2 bars"],
                   out, capsys)
    assert_refused(_predict(run, write_notes(tmp_path / "pedal.mid", [(0, 44), (480, 44)]), out),
                   ["pedal.mid", "bars of drums"], out, capsys)


def test_predict_bad_bars_and_run_without_weights(run, tmp_path, capsys):
    out = tmp_path / "out"
    good = _groove(tmp_path / "good.mid")
    assert_refused(_predict(run, good, out, "--bars", "0"), "--bars", out, capsys)
    assert_refused(_predict(run, good, out, "--bars", "1000"), "--bars", out, capsys)
    empty = tmp_path / "noweights"
    shutil.copytree(run, empty)
    shutil.rmtree(empty / "models")
    assert_refused(_predict(empty, good, out), "models", out, capsys)


def _gmd(root: Path, columns=COLUMNS) -> Path:
    rel = "drummer1/session1/1_rock_120_beat_4-4.mid"
    _groove(root / rel, bars=16)
    with open(root / "info.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerow(dict(drummer="drummer1", session="drummer1/session1", id="x", style="rock", bpm="120",
                        beat_type="beat", time_signature="4-4", midi_filename=rel, audio_filename="",
                        duration="30", split="train"))
    return root


def _train_gmd(root: Path, out: Path) -> list[str]:
    return ["train", "drumlm", "--profile", "smoke", "--out", str(out), "--set", "data.source=gmd",
            "--set", f"data.gmd_root={root}"]


def test_train_gmd_missing_info_csv_and_column(tmp_path, capsys):
    out = tmp_path / "run"
    (tmp_path / "empty").mkdir()
    assert_refused(_train_gmd(tmp_path / "empty", out), "info.csv", out, capsys)
    root = _gmd(tmp_path / "nosplit", [c for c in COLUMNS if c != "split"])
    assert_refused(_train_gmd(root, out), ["info.csv", "split"], out, capsys)


def test_train_gmd_corrupt_midi_and_bad_config(tmp_path, capsys):
    out = tmp_path / "run"
    root = _gmd(tmp_path / "gmd")
    (root / "drummer1/session1/1_rock_120_beat_4-4.mid").write_bytes(b"not midi at all")
    assert_refused(_train_gmd(root, out), "1_rock_120_beat_4-4.mid", out, capsys)
    assert_refused(["train", "drumlm", "--profile", "smoke", "--out", str(out), "--set", "train.arms=D"],
                   "train.arms", out, capsys)
    assert_refused(["train", "drumlm", "--profile", "smoke", "--out", str(out), "--set", "sample.temperature=-1"],
                   "sample.temperature", out, capsys)
