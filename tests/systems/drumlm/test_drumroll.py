"""The drumroll encoding of drumlm (arXiv 2301.01162, spec components 1-4): hand-computed grids, the example
split, the lenient parser on hand-written malformed text, the MIDI writer and round trips."""

from __future__ import annotations

from pathlib import Path

import mido
import pytest

from tenfold.core.errors import InputError
from tenfold.systems.drumlm.data import groove_to_midi, make_groove
from tenfold.systems.drumlm.drumroll import (EMPTY, drop_leading_bars, drumroll_to_midi, load_midi, make_example,
                                             midi_to_drumroll, midi_to_drumroll_pretty, parse_drumroll,
                                             quantise_step, read_drumroll_midi)

from .conftest import backbeat_bar_notes, write_notes


def test_quantise_half_up() -> None:
    # tpb 480: a 16th is 120 ticks, k = floor(t / 120 + 1/2); 60 is exactly half a step and rounds up.
    assert [quantise_step(t, 480) for t in (0, 59, 60, 179, 180, 30659, 30660)] == [0, 0, 1, 1, 2, 255, 256]
    # tpb 96 (a 16th is 24 ticks): 11 -> 0.46 -> 0; 12 -> 0.5 -> 1 (half up); 36 -> 1.5 -> 2;
    # 60 -> 2.5 -> 3, where Python's round (half to even) would give 2.
    assert [quantise_step(t, 96) for t in (11, 12, 36, 60)] == [0, 1, 2, 3]


def test_grid_quantisation_and_cut(tmp: Path) -> None:
    notes = [(0, 36), (59, 38), (60, 42), (179, 49), (180, 50), (30659, 36), (30660, 38), (30000, 42)]
    lines = midi_to_drumroll(write_notes(tmp / "q.mid", notes))
    assert len(lines) == 256  # 4/4: 64 * 4 lines
    assert lines[0] == "--oo--"  # kick 36 at 0 and snare 38 at 59 (< 60) share line 0
    assert lines[1] == "o---o-"  # hat 42 at 60 (half up) and crash 49 at 179
    assert lines[2] == "-----o"  # tom 50 at 180
    assert lines[250] == "----o-"  # hat 42 at tick 30000 = step 250
    assert lines[255] == "---o--"  # kick at 30659 -> 255; snare at 30660 -> 256 = num_lines stops parsing
    assert sum(line != EMPTY for line in lines) == 5


def test_merge_table(tmp: Path) -> None:
    s = 120
    notes = [(0, 36), (0, 42), (s, 38), (s, 46), (2 * s, 49), (2 * s, 36), (3 * s, 44), (4 * s, 58),
             (5 * s, 39), (5 * s, 54), (5 * s, 56), (6 * s, 59), (6 * s, 22), (7 * s, 53), (7 * s, 26), (7 * s, 37),
             (8 * s, 55), (8 * s, 40), (8 * s, 43)]
    lines = midi_to_drumroll(write_notes(tmp / "m.mid", notes))
    assert lines[:9] == ["---oo-",  # kick + closed hat
                         "--o-o-",  # snare + open hat
                         "o--o--",  # crash + kick
                         "------",  # pedal hat 44 is dropped
                         "-----o",  # 58 -> tom column
                         "------",  # 39, 54, 56 dropped
                         "-o--o-",  # ride 59, hat 22
                         "-oo-o-",  # ride bell 53, hat 26, side-stick 37
                         "o-o--o"]  # crash 55, snare 40, floor tom 43


def test_time_signature_modes(tmp: Path) -> None:
    three = write_notes(tmp / "34.mid", [(0, 36)], time_sig=(3, 4))
    assert len(midi_to_drumroll(three, mode="code")) == 192  # 64 * 3 lines: kept by the official code
    assert midi_to_drumroll(three, mode="paper") is None  # 4/4 only
    six_eight = write_notes(tmp / "68.mid", [(0, 36)], time_sig=(6, 8))
    assert midi_to_drumroll(six_eight, mode="code") is None  # denominator 8
    # the last time-signature event rules: 4/4 at 0, 3/4 later -> 192 lines
    last = write_notes(tmp / "last.mid", [(0, 36)], extra_time_sigs=[(1920, 3, 4)])
    assert len(midi_to_drumroll(last)) == 192
    assert len(midi_to_drumroll(write_notes(tmp / "none.mid", [(0, 36)], time_sig=None))) == 256  # default 4/4


def test_drum_channel_preferred(tmp: Path) -> None:
    # channel 0 only (the paper's own outputs): read
    assert midi_to_drumroll(write_notes(tmp / "c0.mid", [(0, 36)], channel=0))[0] == "---o--"
    # channel 10 present: a note 38 on channel 0 (a melodic track) is ignored
    path = tmp / "mixed.mid"
    write_notes(path, [(0, 36)], channel=9)
    mid = mido.MidiFile(str(path))
    mid.type = 1
    mid.tracks.append(mido.MidiTrack([mido.Message("note_on", channel=0, note=38, velocity=90, time=0)]))
    mid.save(str(path))
    assert midi_to_drumroll(path)[0] == "---o--"


def test_leading_bars_and_length_filter() -> None:
    bar = ["---o--"] * 16
    late = [EMPTY] * 4 + ["---o--"] * 12  # first quarter empty: the whole bar goes although lines 4-15 hold onsets
    assert drop_leading_bars(late + bar) == bar
    assert make_example(late + bar * 9, "nine") is not None  # 144 lines left after the drop: kept
    assert make_example(late + bar * 8, "eight") is None  # 128 lines left: skipped
    assert drop_leading_bars([EMPTY] * 32) == []


def test_example_split_counts() -> None:
    bar = ["---o--"] + ["----o-"] * 15
    ex = make_example(bar * 9, "nine")
    prompt, completion = ex["prompt"].split("\n"), ex["completion"].split("\n")
    # prompt: 2 bars of 16 drum lines, SEP after each, then the final newline -> 34 lines + ""
    assert prompt[-1] == "" and len(prompt) == 35 and prompt[16] == prompt[33] == "SEP"
    # completion: 7 bars = 112 drum lines + 7 SEP - the trailing one (stripped) + END = 119 lines
    assert len(completion) == 119 and completion.count("SEP") == 6 and completion[-1] == "END"
    assert completion[0] == "---o--"
    full = make_example(bar * 16, "full")["completion"].split("\n")
    assert len(full) == 224 + 13 + 1 and full.count("SEP") == 13  # 14 bars
    lines, report = parse_drumroll(ex["prompt"] + ex["completion"])
    assert lines == bar * 9 and report.num_malformed == 0 and report.ended


def test_parser_hand_counted() -> None:
    text = "\n".join([
        "---oo-",
        "--o-o",  # 5 characters: padded (malformed 1)
        "SEP",  # separator: dropped, not malformed
        "---oo--o",  # 8 characters: truncated (malformed 2)
        "--x-o-",  # unknown character x -> '-' (malformed 3)
        "",  # blank line: dropped (malformed 4)
        "SE",  # a cut separator: dropped (malformed 5)
        "O-o-o-",  # 'O' is not 'o' -> '-' (malformed 6)
        "  ---oo-\r",  # whitespace and CR stripped: not a repair
        "END",
        "---oo-",  # after END: ignored
    ]) + "\n"
    lines, r = parse_drumroll(text)
    assert lines == ["---oo-", "--o-o-", "---oo-", "----o-", "--o-o-", "---oo-"]
    assert (r.num_malformed, r.num_padded, r.num_truncated, r.num_unknown_chars, r.num_dropped) == (6, 1, 1, 2, 2)
    assert (r.num_separators, r.num_after_end, r.ended, r.num_drum_lines) == (1, 1, True, 6)
    assert r.malformed_fraction == pytest.approx(6 / 8)  # 6 malformed of 6 kept + 2 dropped
    assert r.num_bars == pytest.approx(6 / 16)


@pytest.mark.parametrize("text", ["", "\n\n", "END", "SEPSEP\nENDX\noooooooooooo\n\x00\xff", "o" * 1000, "-\n" * 5])
def test_parser_never_raises(text: str) -> None:
    lines, r = parse_drumroll(text)
    assert all(len(x) == 6 and set(x) <= {"o", "-"} for x in lines)
    assert "SEP" not in lines and "END" not in lines and r.num_drum_lines == len(lines)


def _abs_events(mid) -> list[tuple[int, object]]:
    out, t = [], 0
    for msg in mido.merge_tracks(mid.tracks):
        t += msg.time
        out.append((t, msg))
    return out


def test_writer_ticks_and_tempo() -> None:
    lines = ["---o--"] + [EMPTY] * 15 + ["--o---"]  # a hit on line 0 and on line 16 (the next bar)
    mid = drumroll_to_midi(lines, bpm=100)
    ons = [(t, m.note, m.channel) for t, m in _abs_events(mid) if m.type == "note_on"]
    assert ons == [(0, 36, 9), (1920, 38, 9)]  # line k at 120 k: a bar is 1,920 ticks
    assert [m.tempo for _, m in _abs_events(mid) if m.type == "set_tempo"] == [600_000]  # 60e6 / 100 BPM
    offs = [t for t, m in _abs_events(mid) if m.type == "note_off"]
    assert offs == [60, 1980]  # a 32nd after each hit
    # 120 BPM: 500,000 us per beat, a bar of 4 beats = 2 s
    assert mido.tick2second(1920, 480, drumroll_to_midi(lines).tracks[0][0].tempo) == pytest.approx(2.0)


def test_paper_writer_quirks() -> None:
    lines = [EMPTY, "---o--", EMPTY, "--o-o-"]
    mid = drumroll_to_midi(lines, bpm=90, mode="paper")
    assert mid.type == 1 and len(mid.tracks) == 2
    ev = _abs_events(mid)
    assert [m.tempo for _, m in ev if m.type == "set_tempo"] == [500_000]  # always 120 BPM
    assert [(m.channel, m.program) for _, m in ev if m.type == "program_change"] == [(9, 0)]
    notes = [(t, m.note, m.velocity, m.channel) for t, m in ev if m.type == "note_on"]
    # the leading empty line writes nothing (first note at tick 0); the inner empty line is a velocity-0 51
    assert notes == [(0, 36, 100, 0), (120, 51, 0, 0), (240, 38, 100, 0), (240, 42, 100, 0)]
    assert read_drumroll_midi(mid) == lines[1:]


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_round_trip_writer_modes(index: int, tmp: Path) -> None:
    lines = make_groove(index, seed=5, split="train").lines
    for mode in ("tenfold", "paper"):
        path = tmp / f"{mode}.mid"
        drumroll_to_midi(lines, bpm=97, mode=mode).save(str(path))
        first = next(i for i, x in enumerate(lines) if x != EMPTY)
        expect = lines if mode == "tenfold" else lines[first:]  # the paper writer's leading-line quirk
        assert read_drumroll_midi(path) == expect
        if first == 0 or mode == "tenfold":
            assert midi_to_drumroll(path) == lines  # 4/4, 256 lines: the quantising reader agrees
    trimmed = lines[:37] + [EMPTY] * 3  # a length that is not a whole bar, ending on empty lines
    assert read_drumroll_midi(drumroll_to_midi(trimmed)) == trimmed


def test_mido_and_pretty_midi_readers_agree(tmp: Path) -> None:
    for i in range(3):
        path = tmp / f"g{i}.mid"
        groove_to_midi(make_groove(i, seed=11, split="train")).save(str(path))
        assert midi_to_drumroll_pretty(path) == midi_to_drumroll(path)
    three = write_notes(tmp / "34.mid", backbeat_bar_notes(0), time_sig=(3, 4))
    assert midi_to_drumroll_pretty(three) == midi_to_drumroll(three)


def test_unreadable_midi_names_the_file(tmp: Path) -> None:
    bad = tmp / "corrupt.mid"
    bad.write_bytes(b"MThd\x00\x00\x00\x06\x00\x00\x00\x01\x01\xe0MTrk\x00\x00\x00\xffgarbage")
    with pytest.raises(InputError, match="corrupt.mid"):
        midi_to_drumroll(bad)
    (tmp / "text.mid").write_text("not midi")
    with pytest.raises(InputError, match="text.mid"):
        load_midi(tmp / "text.mid")
    with pytest.raises(InputError, match="absent.mid"):
        load_midi(tmp / "absent.mid")
