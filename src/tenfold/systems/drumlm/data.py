"""Data of `drumlm` ("Language Models are Drummers", Zhang, Callison-Burch; arXiv 2301.01162): the procedural
groove generator (the embedded default, spec 4.2) and the Groove MIDI Dataset reader (spec 4.1, 4.3).

    make_synth_grooves(seed, ...)        component 14: genres, fills, humanisation; intended grid as ground truth
    groove_to_midi / write_synth_dataset type-0 MIDI files in GMD layout with an info.csv, so the GMD reader runs
    read_info_csv / load_gmd             info.csv + MIDI -> drumroll pieces per split, with counted skips
    load_pieces / window_examples        the one loader of train / evaluate; the quick profile's 6-bar windows
    paper_name                           "<drummer number>_<GMD basename>", the released outputs' names
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from tenfold.core.errors import InputError
from tenfold.systems.drumlm.drumroll import (LINES_PER_BAR, MERGE_TABLE, drop_leading_bars, load_midi,
                                             midi_to_drumroll, quantise_step, require, split_example)

TPB = 480
STEP_TICKS = TPB // 4
# GM notes of the generator (spec 4.2)
KICK, SNARE, SIDE_STICK, HH_CLOSED, HH_PEDAL, HH_OPEN = 36, 38, 37, 42, 44, 46
CRASH, RIDE, RIDE_BELL, FLOOR_TOM, LOW_TOM, MID_TOM, HIGH_TOM = 49, 51, 53, 43, 45, 47, 48

_EIGHTHS = {k: 1.0 for k in range(0, 16, 2)}

# Design choice (spec 4.2): per-genre 16-step probability templates {note: {step: p}}, tempo range (BPM),
# swing (ratio, unit in steps: 2 = swung 8ths), timing sigma (ms) and snare ghost notes.
GENRES: dict[str, dict[str, Any]] = {
    "rock": dict(bpm=(80, 140), swing=None, sigma_ms=8.0, template={
        KICK: {0: 1, 8: 1, 10: .5, 6: .2, 14: .2}, SNARE: {4: 1, 12: 1},
        HH_CLOSED: {k: (1.0 if k % 2 == 0 else .1) for k in range(16)}}),
    "funk": dict(bpm=(90, 115), swing=None, sigma_ms=8.0, ghost=(SNARE, .3), template={
        KICK: {0: 1, 3: .5, 7: .5, 10: .5}, SNARE: {4: 1, 12: 1},
        HH_CLOSED: {k: .9 for k in range(16)}, HH_OPEN: {14: .4}}),
    "hiphop": dict(bpm=(70, 95), swing=(0.58, 2), sigma_ms=8.0, template={
        KICK: {0: 1, 7: .6, 10: .6}, SNARE: {4: 1, 12: 1}, HH_CLOSED: dict(_EIGHTHS)}),
    "jazz": dict(bpm=(110, 220), swing=(0.66, 2), sigma_ms=12.0, template={
        RIDE: {k: 1 for k in (0, 4, 6, 8, 12, 14)}, HH_PEDAL: {4: 1, 12: 1},
        KICK: {k: .2 for k in (0, 4, 8, 12)}, SNARE: {k: .15 for k in range(0, 16, 2)}}),
    "latin": dict(bpm=(110, 140), swing=None, sigma_ms=8.0, template={
        SIDE_STICK: {k: 1 for k in (0, 3, 6, 10, 12)}, KICK: {k: 1 for k in (0, 3, 4, 8, 11, 12)},
        HH_CLOSED: dict(_EIGHTHS)}),
    "punk": dict(bpm=(150, 200), swing=None, sigma_ms=8.0, template={
        KICK: {k: 1 for k in (0, 4, 8, 12)}, SNARE: {k: 1 for k in (2, 6, 10, 14)},
        CRASH: {k: 1 for k in (0, 4, 8, 12)}}),  # crash or ride, drawn per piece
    "reggae": dict(bpm=(70, 90), swing=None, sigma_ms=8.0, template={
        KICK: {8: 1}, SNARE: {8: 1}, SIDE_STICK: {8: 1}, HH_CLOSED: dict(_EIGHTHS)}),
}
FILL_TOMS = (HIGH_TOM, MID_TOM, LOW_TOM, FLOOR_TOM)


@dataclass
class Groove:
    """One generated piece: onsets (tick, note, velocity) and the intended drumroll lines (ground truth)."""

    name: str
    style: str
    bpm: int
    split: str
    onsets: list[tuple[int, int, int]]
    lines: list[str]  # intended grid step of every onset through the merge table (pedal hi-hat dropped)
    num_displaced: int = 0  # onsets whose humanised tick quantises to another step than the intended one


def _core_bar(template: dict[int, dict[int, float]], rng: np.random.Generator) -> dict[int, set[int]]:
    return {note: {k for k, p in cells.items() if p >= 1 or rng.random() < p} for note, cells in template.items()}


def _vary(core: dict[int, set[int]], template: dict[int, dict[int, float]], rng: np.random.Generator,
          p_flip: float = 0.05) -> dict[int, set[int]]:
    """Bar A with each probabilistic cell (0 < p < 1) flipped with probability 0.05 (spec 4.2)."""
    bar = {note: set(steps) for note, steps in core.items()}
    for note, cells in template.items():
        for k, p in cells.items():
            if 0 < p < 1 and rng.random() < p_flip:
                bar[note] ^= {k}
    return bar


def _fill(bar: dict[int, set[int]], rng: np.random.Generator) -> dict[int, set[int]]:
    """The last 4-8 steps become a 16th tom/snare run, toms descending high -> floor, p = .8 per step."""
    length = int(rng.integers(4, 9))
    start = 16 - length
    for note in bar:
        if note != KICK:
            bar[note] = {k for k in bar[note] if k < start}
    drums = (SNARE,) + FILL_TOMS
    for j, k in enumerate(range(start, 16)):
        if rng.random() < .8:
            bar.setdefault(drums[min(j * len(drums) // length, len(drums) - 1)], set()).add(k)
    return bar


def _velocity(note: int, step: int, ghost: bool, rng: np.random.Generator) -> int:
    mu = 110 if note in (CRASH,) else 35 if ghost else 100 if step % 4 == 0 else 80
    return int(np.clip(round(rng.normal(mu, 8)), 1, 127))


def make_groove(index: int, seed: int, split: str, num_bars: int = 16) -> Groove:
    """One piece (spec 4.2), deterministic in (seed, index): genre, tempo, core bar, variations, fills,
    humanised timing and velocity."""
    rng = np.random.default_rng([seed, index])
    style = sorted(GENRES)[int(rng.integers(len(GENRES)))]
    g = GENRES[style]
    bpm = int(rng.integers(g["bpm"][0], g["bpm"][1] + 1))
    template = dict(g["template"])
    if style == "punk" and rng.random() < .5:
        template = {(RIDE if n == CRASH else n): c for n, c in template.items()}
    ghost_note, ghost_p = g.get("ghost", (None, 0.0))
    if ghost_note is not None:
        template[ghost_note] = {**{k: ghost_p for k in range(1, 16, 2)}, **template[ghost_note]}
    core = _core_bar(template, rng)
    ms_per_tick = 60000.0 / (bpm * TPB)
    lines = [["-"] * 6 for _ in range(num_bars * LINES_PER_BAR)]
    onsets: list[tuple[int, int, int]] = []
    displaced = 0
    crash_next = False
    for b in range(num_bars):
        bar = _vary(core, template, rng)
        if crash_next:
            bar.setdefault(CRASH, set()).add(0)
            bar[KICK].add(0)
        crash_next = (b % 4 == 3) or b == num_bars - 1
        if crash_next:
            bar = _fill(bar, rng)
        for note in sorted(bar):
            for k in sorted(bar[note]):
                step = b * LINES_PER_BAR + k
                shift = 0.0
                if g["swing"] is not None:
                    ratio, unit = g["swing"]
                    if k % unit == 0 and (k // unit) % 2 == 1:  # the odd 8th (or 16th) positions
                        shift = (ratio - 0.5) * unit
                bias = -5.0 if note == KICK else 8.0 if note == SNARE else 0.0
                jitter_steps = rng.normal(bias, g["sigma_ms"]) / ms_per_tick / STEP_TICKS
                offset = shift + jitter_steps
                # Design choice: no clipping of the offset (spec 4.2); an onset pushed past its half-step window
                # lands on a neighbouring line and is counted (~0.3 % of onsets at seed 0), the >= 99 % bar of the
                # round-trip test allows for it. A tick before 0 is moved to 0.
                tick = max(0, int(round((step + offset) * STEP_TICKS)))
                displaced += quantise_step(tick, TPB) != step
                ghost = note == ghost_note and k % 2 == 1
                onsets.append((tick, note, _velocity(note, k, ghost, rng)))
                if note in MERGE_TABLE:
                    lines[step][MERGE_TABLE[note]] = "o"
    onsets.sort()
    return Groove(f"synth_{seed}_{index:04d}_{style}_{bpm}", style, bpm, split, onsets,
                  ["".join(line) for line in lines], displaced)


def make_synth_grooves(seed: int, num_train: int = 400, num_dev: int = 50, num_test: int = 50,
                       num_bars: int = 16) -> dict[str, list[Groove]]:
    """{"train", "dev", "test"}: the generator's splits (spec 4.2: 400 / 50 / 50), disjoint by construction
    (piece i of the seed goes to exactly one split)."""
    out: dict[str, list[Groove]] = {"train": [], "dev": [], "test": []}
    i = 0
    for split, n in (("train", num_train), ("dev", num_dev), ("test", num_test)):
        for _ in range(n):
            out[split].append(make_groove(i, seed, split, num_bars))
            i += 1
    return out


def groove_to_midi(groove: Groove) -> Any:
    """Type-0 MIDI at 480 tpb: tempo, 4/4, notes on channel 10 (index 9), a 32nd long each (spec 4.2)."""
    mido = require("mido")

    events = []
    for tick, note, vel in groove.onsets:
        events.append((tick, 1, mido.Message("note_on", channel=9, note=note, velocity=vel)))
        events.append((tick + TPB // 8, 0, mido.Message("note_off", channel=9, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(groove.bpm), time=0),
                            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)])
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    mid = mido.MidiFile(type=0, ticks_per_beat=TPB)
    mid.tracks.append(track)
    return mid


INFO_COLUMNS = ("drummer", "session", "id", "style", "bpm", "beat_type", "time_signature", "midi_filename",
                "audio_filename", "duration", "split")
_SPLIT_NAMES = {"train": "train", "dev": "validation", "test": "test"}


def write_synth_dataset(root: Path | str, grooves: dict[str, list[Groove]]) -> Path:
    """Write the grooves in GMD layout (`drummer1/session1/<i>_<style>_<bpm>_beat_4-4.mid`) with an info.csv."""
    root = Path(root)
    rows = []
    for split, items in grooves.items():
        for i, g in enumerate(items):
            rel = f"drummer1/session1/{split}{i}_{g.style}_{g.bpm}_beat_4-4.mid"
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            groove_to_midi(g).save(str(root / rel))
            duration = 16 * 4 * 60.0 / g.bpm
            rows.append(dict(drummer="drummer1", session="drummer1/session1", id=f"drummer1/session1/{split}{i}",
                             style=g.style, bpm=g.bpm, beat_type="beat", time_signature="4-4", midi_filename=rel,
                             audio_filename="", duration=f"{duration:.6f}", split=_SPLIT_NAMES[split]))
    with open(root / "info.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=INFO_COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    return root


# ------------------------------------------------------------------------------------------ GMD reader

REQUIRED_COLUMNS = ("drummer", "session", "style", "bpm", "beat_type", "midi_filename", "split")
_GMD_SPLITS = {"train": "train", "validation": "dev", "test": "test"}


def read_info_csv(root: Path | str) -> list[dict[str, str]]:
    """Rows of `<root>/info.csv`; a missing file or column, or a bad split / bpm value, is an InputError naming
    the file, the row and the field."""
    path = Path(root) / "info.csv"
    expected = f"a CSV file with the GMD columns {', '.join(REQUIRED_COLUMNS)}"
    if not path.is_file():
        raise InputError(f"{path}: file not found; expected {expected}")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            header = reader.fieldnames or []
            missing = [c for c in REQUIRED_COLUMNS if c not in header]
            if missing:
                raise InputError(f"{path}: missing column(s) {', '.join(missing)}; expected {expected}")
            rows = list(reader)
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"{path}: not a readable CSV file ({type(err).__name__}); expected {expected}") from None
    for i, row in enumerate(rows, start=2):
        if row.get("split") not in _GMD_SPLITS:
            raise InputError(f"{path}: line {i}, field 'split' is {row.get('split')!r}; expected one of "
                             f"{', '.join(_GMD_SPLITS)}")
        try:
            bpm = float(row["bpm"])
        except (TypeError, ValueError):
            bpm = float("nan")
        if not (math.isfinite(bpm) and 10 <= bpm <= 400):
            raise InputError(f"{path}: line {i}, field 'bpm' is {row.get('bpm')!r}; expected a tempo in BPM "
                             "between 10 and 400")
        if not row.get("midi_filename"):
            raise InputError(f"{path}: line {i}, field 'midi_filename' is empty; expected a relative .mid path")
    return rows


def paper_name(row: dict[str, str]) -> str:
    """"<drummer number>_<basename without .mid>", e.g. 1_110_rock-prog_190_beat_4-4 (spec 4.3)."""
    return row["drummer"].removeprefix("drummer") + "_" + Path(row["midi_filename"]).stem


@dataclass
class Piece:
    name: str
    split: str
    style: str
    bpm: float
    lines: list[str]
    path: str = ""


@dataclass
class GMDData:
    pieces: dict[str, list[Piece]]  # split -> pieces that passed every filter (leading bars still kept)
    selected: dict[str, int]  # split -> files selected from info.csv
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    skipped_files: dict[str, list[str]] = field(default_factory=dict)  # reason -> names


def load_gmd(root: Path | str, mode: str = "code", selection: str = "paper",
             min_lines: int = 129) -> GMDData:
    """Drumroll pieces of a GMD-layout folder, per split (spec 4.1).

    Args:
        root: folder holding info.csv and the MIDI files it names.
        mode: "code" (denominator 4: keeps 3/4 and 5/4, the official code) or "paper" (4/4 only).
        selection: "paper" = beats (beat_type "beat") of sessions 1-3 (eval_session excluded; 378 / 48 / 37 on
            GMD v1.0.0); "all" = every row.
        min_lines: the paper's length filter after the leading-bar drop (<= 128 lines skipped).
    A missing or corrupt MIDI file is an InputError naming it (exit 2); time-signature, drum-less and length
    filters are counted skips (`GMDData.skipped`), nothing is written.
    """
    if selection not in ("paper", "all"):
        raise ValueError(f"selection must be 'paper' or 'all', got {selection!r}")
    root = Path(root)
    rows = read_info_csv(root)
    if selection == "paper":
        rows = [r for r in rows if r["beat_type"] == "beat" and "eval_session" not in r["session"]]
    data = GMDData({"train": [], "dev": [], "test": []}, {"train": 0, "dev": 0, "test": 0})

    def skip(reason: str, name: str) -> None:
        data.skipped[reason] = data.skipped.get(reason, 0) + 1
        data.skipped_files.setdefault(reason, []).append(name)

    for row in rows:
        split = _GMD_SPLITS[row["split"]]
        data.selected[split] += 1
        name, path = paper_name(row), root / row["midi_filename"]
        lines = midi_to_drumroll(load_midi(path), mode=mode)
        if lines is None:
            skip("time_signature", name)
        elif all(set(line) == {"-"} for line in lines):
            skip("no_drum_onsets", name)
        elif len(drop_leading_bars(lines)) < min_lines:
            skip("short", name)
        else:
            data.pieces[split].append(Piece(name, split, row["style"], float(row["bpm"]), lines, str(path)))
    return data


def gmd_file_index(root: Path | str) -> dict[str, Path]:
    """{paper name: MIDI path} for the rows of info.csv outside the eval sessions (one-to-one on GMD v1.0.0)."""
    root = Path(root)
    return {paper_name(r): root / r["midi_filename"] for r in read_info_csv(root)
            if "eval_session" not in r["session"]}



# ------------------------------------------------------------------------------------------ shared loading

def load_pieces(source: str, seed: int, gmd_root: Path | str | None = None, mode: str = "code",
                sizes: tuple[int, int, int] = (400, 50, 50)) -> dict[str, list[Piece]]:
    """The pieces of every split, the one loader train.py and evaluate.py will both import (issue 14).

    Args:
        source: "synth" (the generator, spec 4.2; `sizes` = train / dev / test pieces of `seed`) or "gmd"
            (`gmd_root`, the paper's selection in `mode`, pieces that pass the length filter).
    Design choice: generated pieces go through MIDI and the quantising reader, like real files, so both sources
    give the encoder's output (not the generator's intended grid).
    """
    if source == "synth":
        grooves = make_synth_grooves(seed, *sizes)
        return {split: [Piece(g.name, split, g.style, float(g.bpm), midi_to_drumroll(groove_to_midi(g)))
                        for g in items] for split, items in grooves.items()}
    if source != "gmd":
        raise InputError(f"data.source must be 'synth' or 'gmd', got {source!r}")
    if gmd_root is None:
        raise InputError("data.gmd_root: must name a Groove MIDI Dataset folder (with info.csv) when "
                         "data.source = 'gmd'")
    data = load_gmd(gmd_root, mode=mode)
    return {split: [p for p in items if len(drop_leading_bars(p.lines)) >= 129]
            for split, items in data.pieces.items()}


def window_examples(pieces: list[Piece], window_bars: int = 6, offsets: tuple[int, ...] = (0, 4, 8),
                    prompt_bars: int = 2) -> list[dict[str, str]]:
    """Prompt / completion records of `window_bars`-bar windows cut at bar `offsets` of each piece (after its
    leading-bar drop); a window that runs past the piece is left out.

    Deviation (quick profile, spec 5): 6-bar windows (2 prompt + 4 continuation bars) at bar offsets 0, 4, 8
    instead of 2 + ~14 bars per piece; the full profile uses `make_example` on whole pieces.
    """
    out = []
    for p in pieces:
        lines = drop_leading_bars(p.lines)
        for o in offsets:
            window = lines[o * LINES_PER_BAR:(o + window_bars) * LINES_PER_BAR]
            if len(window) == window_bars * LINES_PER_BAR:
                out.append(split_example(window, f"{p.name}@{o}", prompt_bars))
    return out
