"""The groove generator and the Groove MIDI Dataset reader of drumlm (arXiv 2301.01162, spec 4.1-4.3):
determinism, structure, the encoding round trip on generated grooves, counted skips and refused inputs on tiny
GMD-layout folders written with mido."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest

from tenfold.core.errors import InputError
from tenfold.systems.drumlm.data import (GENRES, INFO_COLUMNS, groove_to_midi, load_gmd, make_groove,
                                         make_synth_grooves, paper_name, read_info_csv, write_synth_dataset)
from tenfold.systems.drumlm.drumroll import midi_to_drumroll
from tenfold.systems.drumlm.structure import structure_summary

from .conftest import backbeat_bar_notes, write_notes


def _bytes(mid) -> bytes:
    buf = io.BytesIO()
    mid.save(file=buf)
    return buf.getvalue()


def test_generator_is_deterministic() -> None:
    a, b = make_groove(3, seed=7, split="train"), make_groove(3, seed=7, split="train")
    assert a == b and _bytes(groove_to_midi(a)) == _bytes(groove_to_midi(b))  # byte for byte
    assert make_groove(3, seed=8, split="train").onsets != a.onsets
    assert make_groove(4, seed=7, split="train").onsets != a.onsets


def test_generated_splits() -> None:
    g = make_synth_grooves(seed=1, num_train=6, num_dev=3, num_test=3)
    assert [len(g[s]) for s in ("train", "dev", "test")] == [6, 3, 3]
    names = [x.name for s in g.values() for x in s]
    assert len(set(names)) == 12  # disjoint: piece i of a seed lands in exactly one split
    pieces = [tuple(x.lines) for s in g.values() for x in s]
    assert len(set(pieces)) == 12
    assert all(x.split == s for s, items in g.items() for x in items)


def test_generator_structure() -> None:
    for i in range(14):
        g = make_groove(i, seed=2, split="train")
        assert len(g.lines) == 256 and g.style in GENRES
        lo, hi = GENRES[g.style]["bpm"]
        assert lo <= g.bpm <= hi
        assert all(1 <= v <= 127 for _, _, v in g.onsets)
        # after each fill (bars 4, 8, 12 1-indexed), crash + kick on the first step of the next bar
        for bar in (4, 8, 12):
            assert g.lines[16 * bar][0] == "o" and g.lines[16 * bar][3] == "o", (g.name, bar)
        if g.style == "rock":  # backbeat: snare on steps 4 and 12 of every bar that is not a fill
            for bar in (0, 1, 2, 4, 5, 6):
                assert g.lines[16 * bar + 4][2] == "o" and g.lines[16 * bar + 12][2] == "o"
    # repetition plus variation: stability between repeat (0) and random lines (~40)
    s = structure_summary([make_groove(i, seed=2, split="test").lines for i in range(8)])
    assert 0.5 < s.mean_stability < 20 and s.centre_gap > 1


def test_encoding_round_trip_on_generated_grooves() -> None:
    same = total = displaced = 0
    for i in range(28):  # all seven genres several times
        g = make_groove(i, seed=0, split="train")
        lines = midi_to_drumroll(groove_to_midi(g))
        same += sum(a == b for a, b in zip(lines, g.lines))
        total += len(g.lines)
        displaced += g.num_displaced
        # each onset pushed past its half-step window changes at most 2 lines (0 displaced: the exact grid)
        assert sum(a != b for a, b in zip(lines, g.lines)) <= 2 * g.num_displaced
    assert same / total >= 0.99, (same, total, displaced)


# ------------------------------------------------------------------------------------------ GMD layout

def _row(rel: str, split: str, beat_type: str = "beat", bpm: str = "120") -> dict[str, str]:
    drummer, session = rel.split("/")[0], "/".join(rel.split("/")[:2])
    return dict(drummer=drummer, session=session, id=rel[:-4], style="rock", bpm=bpm, beat_type=beat_type,
                time_signature="4-4", midi_filename=rel, audio_filename="", duration="10.0", split=split)


def _write_info(root: Path, rows: list[dict[str, str]], columns=INFO_COLUMNS) -> None:
    with open(root / "info.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)


def _tiny_gmd(root: Path) -> None:
    groove = [n for b in range(16) for n in backbeat_bar_notes(b)]
    write_notes(root / "drummer1/session1/1_rock_120_beat_4-4.mid", groove)
    write_notes(root / "drummer1/session1/2_jazz_120_beat_3-4.mid", groove[:40], time_sig=(3, 4))
    write_notes(root / "drummer1/session1/3_rock_120_beat_6-8.mid", groove, time_sig=(6, 8))
    write_notes(root / "drummer2/session1/4_rock_120_beat_4-4.mid", [(0, 44), (480, 44)])  # pedal hat only
    write_notes(root / "drummer1/session2/5_rock_120_beat_4-4.mid",
                [n for b in range(10, 16) for n in backbeat_bar_notes(b)])  # 10 empty bars, then 6 bars
    write_notes(root / "drummer1/session1/6_rock_120_fill_4-4.mid", groove)
    write_notes(root / "drummer1/eval_session/7_rock_120_beat_4-4.mid", groove)
    _write_info(root, [_row("drummer1/session1/1_rock_120_beat_4-4.mid", "train"),
                       _row("drummer1/session1/2_jazz_120_beat_3-4.mid", "validation"),
                       _row("drummer1/session1/3_rock_120_beat_6-8.mid", "train"),
                       _row("drummer2/session1/4_rock_120_beat_4-4.mid", "test"),
                       _row("drummer1/session2/5_rock_120_beat_4-4.mid", "train"),
                       _row("drummer1/session1/6_rock_120_fill_4-4.mid", "train", beat_type="fill"),
                       _row("drummer1/eval_session/7_rock_120_beat_4-4.mid", "test")])


def test_gmd_selection_and_counted_skips(tmp: Path) -> None:
    _tiny_gmd(tmp)
    d = load_gmd(tmp)
    # paper selection: beats outside eval_session -> rows 1-5; train 1, 3, 5; dev 2; test 4
    assert d.selected == {"train": 3, "dev": 1, "test": 1}
    assert [p.name for p in d.pieces["train"]] == ["1_1_rock_120_beat_4-4"]
    assert [p.name for p in d.pieces["dev"]] == ["1_2_jazz_120_beat_3-4"] and len(d.pieces["dev"][0].lines) == 192
    assert d.pieces["test"] == []
    assert d.skipped == {"time_signature": 1, "no_drum_onsets": 1, "short": 1}
    assert d.skipped_files["short"] == ["1_5_rock_120_beat_4-4"]  # 6 bars left after the leading drop
    paper = load_gmd(tmp, mode="paper")  # 4/4 only: the 3/4 piece is skipped as well
    assert paper.skipped["time_signature"] == 2 and paper.pieces["dev"] == []
    everything = load_gmd(tmp, selection="all")
    assert everything.selected == {"train": 4, "dev": 1, "test": 2} and len(everything.pieces["train"]) == 2


def test_gmd_reads_the_generator_layout(tmp: Path) -> None:
    g = make_synth_grooves(seed=4, num_train=3, num_dev=1, num_test=1)
    write_synth_dataset(tmp, g)
    d = load_gmd(tmp)
    assert {s: len(v) for s, v in d.pieces.items()} == {"train": 3, "dev": 1, "test": 1} and d.skipped == {}
    for split, items in g.items():
        for got, want in zip(d.pieces[split], items):
            assert got.bpm == want.bpm and got.style == want.style
            # each onset pushed past its half step (jazz swing + jitter) changes at most 2 lines
            assert sum(a != b for a, b in zip(got.lines, want.lines)) <= 2 * want.num_displaced


def test_paper_name() -> None:
    row = dict(drummer="drummer1", midi_filename="drummer1/session2/110_rock-prog_190_beat_4-4.mid")
    assert paper_name(row) == "1_110_rock-prog_190_beat_4-4"


def test_gmd_refuses_bad_inputs(tmp: Path) -> None:
    with pytest.raises(InputError, match="info.csv: file not found"):
        load_gmd(tmp)
    rel = "drummer1/session1/1_rock_120_beat_4-4.mid"
    write_notes(tmp / rel, backbeat_bar_notes(0))
    _write_info(tmp, [_row(rel, "train")], columns=[c for c in INFO_COLUMNS if c != "split"])
    with pytest.raises(InputError, match=r"info.csv: missing column\(s\) split"):
        read_info_csv(tmp)
    _write_info(tmp, [_row(rel, "holdout")])
    with pytest.raises(InputError, match="line 2, field 'split'"):
        load_gmd(tmp)
    _write_info(tmp, [_row(rel, "train", bpm="fast")])
    with pytest.raises(InputError, match="field 'bpm'"):
        load_gmd(tmp)
    _write_info(tmp, [_row(rel, "train"), _row("drummer1/session1/9_rock_120_beat_4-4.mid", "train")])
    with pytest.raises(InputError, match="9_rock_120_beat_4-4.mid: MIDI file not found"):
        load_gmd(tmp)
    (tmp / "drummer1/session1/9_rock_120_beat_4-4.mid").write_bytes(b"MThd\x00\x00\x00\x06garbage")
    with pytest.raises(InputError, match="9_rock_120_beat_4-4.mid: not a readable MIDI file"):
        load_gmd(tmp)
    (tmp / "info.csv").write_bytes(b"\xff\xfe\x00bad")
    with pytest.raises(InputError, match="info.csv"):
        load_gmd(tmp)


def test_gmd_empty_and_trackless_files_are_counted_skips(tmp: Path) -> None:
    import mido

    empty = "drummer1/session1/1_rock_120_beat_4-4.mid"
    write_notes(tmp / empty, [])  # a track with tempo and 4/4 but no note
    trackless = "drummer1/session1/2_rock_120_beat_4-4.mid"
    mido.MidiFile(type=1, ticks_per_beat=480).save(str(tmp / trackless))  # a header and no track at all
    melodic = "drummer1/session1/3_rock_120_beat_4-4.mid"
    write_notes(tmp / melodic, [(0, 60), (480, 64)], channel=0)  # piano notes C4 / E4: not in the merge table
    _write_info(tmp, [_row(empty, "train"), _row(trackless, "train"), _row(melodic, "test")])
    d = load_gmd(tmp)
    assert d.skipped == {"no_drum_onsets": 3} and all(v == [] for v in d.pieces.values())


def test_window_examples() -> None:
    from tenfold.systems.drumlm.data import Piece, window_examples
    from tenfold.systems.drumlm.drumroll import EMPTY, parse_drumroll

    bars = [[f"{'o' if b & 1 else '-'}{'o' if b & 2 else '-'}{'o' if b & 4 else '-'}o--"] + [EMPTY] * 15
            for b in range(16)]  # 16 distinguishable bars (kick on every downbeat)
    piece = Piece("p", "train", "rock", 120.0, [x for bar in bars for x in bar])
    ex = window_examples([piece])
    assert [e["name"] for e in ex] == ["p@0", "p@4", "p@8"]  # 8 + 6 = 14 <= 16 bars
    lines, _ = parse_drumroll(ex[2]["prompt"] + ex[2]["completion"])
    assert lines == [x for bar in bars[8:14] for x in bar]  # window at offset 8 = bars 8..13
    # completion: 4 bars = 64 drum lines + 3 SEP (trailing one stripped) + END = 68 lines
    assert len(ex[0]["completion"].split("\n")) == 68
    short = Piece("s", "train", "rock", 120.0, piece.lines[:160])  # 10 bars: offsets 0 and 4 only
    assert [e["name"] for e in window_examples([short])] == ["s@0", "s@4"]


def test_load_pieces_synth_and_refusals(tmp: Path) -> None:
    from tenfold.systems.drumlm.data import load_pieces

    p = load_pieces("synth", seed=3, sizes=(2, 1, 1))
    assert {s: len(v) for s, v in p.items()} == {"train": 2, "dev": 1, "test": 1}
    g = make_groove(0, seed=3, split="train")
    assert p["train"][0].lines == midi_to_drumroll(groove_to_midi(g))  # through MIDI and the reader
    with pytest.raises(InputError, match="data.gmd_root"):
        load_pieces("gmd", seed=0)
    with pytest.raises(InputError, match="data.source"):
        load_pieces("wav", seed=0)
