"""The drumroll text encoding of "Language Models are Drummers: Drum Composition with Natural Language
Pre-Training" (Zhang, Callison-Burch; arXiv 2301.01162), both directions.

Spec ../shared/specs/drumlm.md, section 2 (official code zharry29/drums-with-llm, `source/midi_to_text.py`,
`split_data.py`, `text_to_midi.py`):
    component 1   MIDI -> drumroll lines (merge table, half-up quantisation)   midi_to_drumroll, quantise_step,
                                                                                midi_to_drumroll_pretty (parity reader)
    component 2   prompt / completion record (leading-bar drop, length filter)  drop_leading_bars, make_example,
                                                                                split_example
    component 3   lenient reader of model text, with a repair report           parse_drumroll, RepairReport
    component 4   drumroll lines -> MIDI (tenfold writer and the paper's)      drumroll_to_midi
    section 4.3   the paper's released output MIDI (exact grid, all channels)   read_drumroll_midi

A *line* is one 16th-note step written as 6 characters in the column order [crash, ride, snare, kick, hi-hat,
tom]: `o` for at least one onset of that voice in that 16th, `-` for none. A *bar* is 16 lines.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

from tenfold.core.errors import InputError

VOICES = ("crash", "ride", "snare", "kick", "hihat", "tom")
EMPTY = "------"
LINES_PER_BAR = 16
SEP, END = "SEP", "END"
# Paper (spec component 1.4): GM / Roland TD-11 notes merged into the 6 voices; everything else is dropped
# (pedal hi-hat 44, 39 hand clap, 54 tambourine, 56 cowbell, ...).
MERGE_TABLE: dict[int, int] = {
    **{n: 0 for n in (49, 55, 57, 52)},  # crash
    **{n: 1 for n in (51, 59, 53)},  # ride
    **{n: 2 for n in (38, 40, 37)},  # snare (side-stick 37 included)
    36: 3,  # kick
    **{n: 4 for n in (42, 46, 22, 26)},  # hi-hat, open and closed merged
    **{n: 5 for n in (50, 48, 47, 45, 43, 58)},  # every tom in one column
}
# Paper (spec component 4): the decoder's one note per column.
PAPER_NOTES = (49, 51, 38, 36, 42, 50)
DRUM_CHANNEL = 9  # MIDI channel 10
# Design choice: a MIDI file larger than this is refused before parsing (GMD's largest file is ~60 KB).
MAX_MIDI_BYTES = 16 * 2**20
_EXPECTED_MIDI = "a Standard MIDI File (.mid) with drum notes"


# ------------------------------------------------------------------------------------------ reading MIDI

def require(module: str) -> Any:
    """Import an optional MIDI library, or say how to install it (the `drumlm` extra)."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"drumlm needs the package {module!r}: pip install -e \".[drumlm]\" "
                          "(mido, pretty_midi)") from None


def load_midi(path: Path | str) -> Any:
    """`mido.MidiFile` of `path`; a missing, huge or unparsable file is an InputError naming it."""
    mido = require("mido")

    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: MIDI file not found; expected {_EXPECTED_MIDI}")
    if path.stat().st_size > MAX_MIDI_BYTES:
        raise InputError(f"{path}: {path.stat().st_size} bytes exceeds the limit of {MAX_MIDI_BYTES} bytes; "
                         f"expected {_EXPECTED_MIDI}")
    try:
        return mido.MidiFile(str(path))
    except Exception as err:  # mido raises OSError, EOFError, ValueError, KeyError, IndexError on bad bytes
        raise InputError(f"{path}: not a readable MIDI file ({type(err).__name__}: {err}); "
                         f"expected {_EXPECTED_MIDI}") from None


def _timed_messages(mid: Any) -> list[tuple[int, Any]]:
    """(cumulative tick, message) over all tracks merged (GMD files are type 0, one track)."""
    mido = require("mido")

    out, tick = [], 0
    for msg in mido.merge_tracks(mid.tracks):
        tick += msg.time
        out.append((tick, msg))
    return out


def time_signature(mid: Any, timed: list[tuple[int, Any]] | None = None) -> tuple[int, int]:
    """(numerator, denominator) of the **last** time-signature meta event (spec 1.1); 4/4 when there is none."""
    sig = (4, 4)  # Design choice: the MIDI default when a file has no time-signature event.
    for _, msg in (timed if timed is not None else _timed_messages(mid)):
        if msg.type == "time_signature":
            sig = (msg.numerator, msg.denominator)
    return sig


def quantise_step(tick: int, ticks_per_beat: int) -> int:
    """k = floor(t / (tpb/4) + 1/2): the 16th step of an onset, half steps rounded **up** (spec 1.3).

    Integer form floor((8 t + tpb) / (2 tpb)), exact for any tpb (Python's `round` is half-to-even: wrong here).
    """
    return (8 * tick + ticks_per_beat) // (2 * ticks_per_beat)


def _onsets(timed: list[tuple[int, Any]]) -> list[tuple[int, int]]:
    """(tick, note) of every note-on with velocity > 0.

    Design choice: when any note sits on channel 10 (index 9), only channel-10 notes count (a user's file with
    melodic tracks); otherwise every channel counts, as in the paper's reader (its own outputs are on channel 0).
    """
    hits = [(t, m.note, m.channel) for t, m in timed if m.type == "note_on" and m.velocity > 0]
    if any(c == DRUM_CHANNEL for _, _, c in hits):
        hits = [h for h in hits if h[2] == DRUM_CHANNEL]
    return [(t, n) for t, n, _ in hits]


def _grid(onsets: Sequence[tuple[int, int]], num_lines: int) -> list[str]:
    """Lines of `num_lines` 16ths from (step, note) pairs in time order; the first step >= num_lines stops."""
    cells = [["-"] * 6 for _ in range(num_lines)]
    for step, note in onsets:
        if step >= num_lines:  # Paper: the first onset past 16 bars stops parsing (truncates the groove)
            break
        col = MERGE_TABLE.get(note)
        if col is not None:
            cells[step][col] = "o"
    return ["".join(c) for c in cells]


def midi_to_drumroll(source: Path | str | Any, mode: str = "code") -> list[str] | None:
    """Drumroll lines of a MIDI file (spec component 1): 64 n lines for an n/d signature (256 in 4/4).

    Args:
        source: a path, or an already loaded `mido.MidiFile`.
        mode: "code" skips files whose denominator is not 4 (keeps 3/4, 5/4: the official code);
            "paper" keeps 4/4 only (the paper's text).
    Returns:
        the lines, or None when the file is skipped by the time-signature filter.
    """
    if mode not in ("code", "paper"):
        raise ValueError(f"mode must be 'code' or 'paper', got {mode!r}")
    mid = load_midi(source) if isinstance(source, (str, Path)) else source
    timed = _timed_messages(mid)
    num, den = time_signature(mid, timed)
    if den != 4 or (mode == "paper" and num != 4):
        return None
    tpb = mid.ticks_per_beat
    steps = [(quantise_step(t, tpb), n) for t, n in _onsets(timed)]
    return _grid(steps, 64 * num)


def midi_to_drumroll_pretty(path: Path | str, mode: str = "code") -> list[str] | None:
    """The same grid read through `pretty_midi` (a second reader, for the parity test of spec section 7).

    Note starts in seconds go back to ticks through `time_to_tick` and then through the same quantisation.
    """
    pretty_midi = require("pretty_midi")

    pm = pretty_midi.PrettyMIDI(str(path))
    sigs = pm.time_signature_changes
    num, den = (sigs[-1].numerator, sigs[-1].denominator) if sigs else (4, 4)
    if den != 4 or (mode == "paper" and num != 4):
        return None
    drums = [i for i in pm.instruments if i.is_drum] or pm.instruments
    notes = sorted((pm.time_to_tick(n.start), n.pitch) for i in drums for n in i.notes if n.velocity > 0)
    steps = [(quantise_step(t, pm.resolution), p) for t, p in notes]
    return _grid(steps, 64 * num)


def read_drumroll_midi(source: Path | str | Any) -> list[str]:
    """Lines of a MIDI file written on the exact 16th grid (the paper's released outputs, our own writer).

    Spec 4.3: tracks merged, every channel kept, line = tick / (tpb/4), line count = last event tick // (tpb/4) + 1
    (the paper's velocity-0 dummies carry the empty lines; our writer ends its track 1 tick before the next line).
    No time-signature filter and no 16-bar cut: the file is read as written.
    """
    mid = load_midi(source) if isinstance(source, (str, Path)) else source
    step = mid.ticks_per_beat // 4
    timed = _timed_messages(mid)
    if not timed:
        return []
    num_lines = timed[-1][0] // step + 1
    hits = [(quantise_step(t, mid.ticks_per_beat), m.note) for t, m in timed
            if m.type == "note_on" and m.velocity > 0]
    return _grid(hits, num_lines)


# ------------------------------------------------------------------------------------------ examples

def drop_leading_bars(lines: Sequence[str]) -> list[str]:
    """Drop whole leading bars while the bar's first quarter note (4 lines) is empty (spec component 2)."""
    lines = list(lines)
    while lines and all(line == EMPTY for line in lines[:4]):
        lines = lines[LINES_PER_BAR:]
    return lines


def with_separators(lines: Sequence[str]) -> list[str]:
    """The lines with a `SEP` line after every complete bar (16 lines)."""
    out: list[str] = []
    for i, line in enumerate(lines):
        out.append(line)
        if (i + 1) % LINES_PER_BAR == 0:
            out.append(SEP)
    return out


def make_example(lines: Sequence[str], name: str, prompt_bars: int = 2,
                 min_lines: int = 129) -> dict[str, str] | None:
    """Prompt / completion record `{prompt, completion, name}` (spec component 2), or None for a short piece.

    Paper: drop the empty leading bars, skip pieces of <= 128 lines (8 bars), then `split_example`.
    """
    lines = drop_leading_bars(lines)
    if len(lines) < min_lines:
        return None
    return split_example(lines, name, prompt_bars)


def split_example(lines: Sequence[str], name: str, prompt_bars: int = 2) -> dict[str, str]:
    """Paper: prompt = the first 2 bars with `SEP` after each, completion = the rest with `SEP` after every 16
    lines, stripped of S/E/P/newline at both ends, then `\nEND`. Design choice: the prompt ends with `SEP\n`, so
    the completion starts on a drum line. No drop, no filter (`make_example` does both first)."""
    cut = prompt_bars * LINES_PER_BAR
    prompt = "\n".join(with_separators(lines[:cut])) + "\n"
    completion = "\n".join(with_separators(lines[cut:])).strip("SEP\n") + "\n" + END
    return {"prompt": prompt, "completion": completion, "name": name}


# ------------------------------------------------------------------------------------------ model text

@dataclass
class RepairReport:
    """What `parse_drumroll` changed. A *malformed* line is one that needed any repair or was dropped."""

    num_drum_lines: int = 0  # lines returned
    num_malformed: int = 0  # lines padded, truncated, with unknown characters, blank, or separator fragments
    num_padded: int = 0  # shorter than 6 characters, padded with '-'
    num_truncated: int = 0  # longer than 6 characters, cut to 6
    num_unknown_chars: int = 0  # characters other than 'o' / '-' mapped to '-'
    num_dropped: int = 0  # blank lines and separator fragments ("SE", "SEPP", "EN", ...) removed
    num_separators: int = 0  # well-formed SEP lines removed
    num_after_end: int = 0  # lines after the first END, ignored
    ended: bool = False  # an END line was seen
    notes: list[str] = field(default_factory=list)

    @property
    def num_bars(self) -> float:
        return self.num_drum_lines / LINES_PER_BAR

    @property
    def malformed_fraction(self) -> float:
        total = self.num_drum_lines + self.num_dropped
        return self.num_malformed / total if total else 0.0


_SEP_LETTERS = set("SEPND")


def parse_drumroll(text: str) -> tuple[list[str], RepairReport]:
    """Lenient reader of model text (spec component 3): never raises; returns (lines, repair report).

    Rules (Design choice): reading stops at the first `END` line; `SEP` lines are dropped; a line made only of the
    letters S, E, P, N, D (a cut or doubled separator) and a blank line are dropped and counted malformed; any
    other line is padded with '-' or truncated to 6 characters, characters other than 'o' and '-' become '-'.
    Surrounding whitespace and a '\\r' are stripped first (not counted).
    """
    report = RepairReport()
    out: list[str] = []
    raw = text.split("\n")
    if raw and raw[-1].strip() == "":
        raw = raw[:-1]  # the final newline of a text
    for i, line in enumerate(raw):
        line = line.strip()
        if line == END:
            report.ended = True
            report.num_after_end = len(raw) - i - 1
            break
        if line == SEP:
            report.num_separators += 1
            continue
        if line == "" or set(line) <= _SEP_LETTERS:
            report.num_dropped += 1
            report.num_malformed += 1
            continue
        repaired = False
        if len(line) < 6:
            line, repaired = line + "-" * (6 - len(line)), True
            report.num_padded += 1
        elif len(line) > 6:
            line, repaired = line[:6], True
            report.num_truncated += 1
        bad = sum(c not in "o-" for c in line)
        if bad:
            line, repaired = "".join(c if c in "o-" else "-" for c in line), True
            report.num_unknown_chars += bad
        report.num_malformed += repaired
        out.append(line)
    report.num_drum_lines = len(out)
    return out, report


# ------------------------------------------------------------------------------------------ writing MIDI

def drumroll_to_midi(lines: Sequence[str], bpm: float = 120.0, mode: str = "tenfold",
                     ticks_per_beat: int = 480) -> Any:
    """A `mido.MidiFile` playing the drumroll (spec component 4).

    Args:
        lines: well-formed 6-character lines (run model text through `parse_drumroll` first).
        bpm: tempo; "tenfold" mode writes it (the source's `info.csv` bpm), "paper" mode always writes 120.
        mode: "tenfold": type 0, channel 10 (index 9), note-off after a 32nd, every note at its true line, the
            track ends 1 tick before the line after the last; "paper": the official decoder with its quirks
            (type 1, tempo/4-4/key track, program change on channel 9 but notes on channel 0, velocity-0 note 51
            dummies for empty lines, no note-offs, the first note at tick 0 even after leading empty lines).
    Line k starts at tick k * tpb / 4 (Paper: 120 ticks at 480 tpb; a bar is 1,920 ticks = 2 s at 120 BPM).
    """
    mido = require("mido")

    if mode not in ("tenfold", "paper"):
        raise ValueError(f"mode must be 'tenfold' or 'paper', got {mode!r}")
    if not bpm > 0:
        raise ValueError(f"bpm must be > 0, got {bpm}")
    step = ticks_per_beat // 4
    mid = mido.MidiFile(type=0 if mode == "tenfold" else 1, ticks_per_beat=ticks_per_beat)
    meta = [mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm if mode == "tenfold" else 120), time=0),
            mido.MetaMessage("time_signature", numerator=4, denominator=4, time=0)]
    if mode == "paper":
        mid.tracks.append(mido.MidiTrack(meta + [mido.MetaMessage("key_signature", key="C", time=0),
                                                 mido.MetaMessage("end_of_track", time=1)]))
        mid.tracks.append(_paper_track(lines, step))
        return mid
    events: list[tuple[int, int, Any]] = []  # (tick, order, message): note-offs before note-ons at one tick
    for k, line in enumerate(lines):
        for col, c in enumerate(line[:6]):
            if c == "o":
                note = PAPER_NOTES[col]
                events.append((k * step, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=100)))
                events.append((k * step + step // 2, 0,
                               mido.Message("note_off", channel=DRUM_CHANNEL, note=note, velocity=0)))
    events.sort(key=lambda e: (e[0], e[1]))
    track, now = mido.MidiTrack(meta), 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    end = max(len(lines) * step - 1, now)
    track.append(mido.MetaMessage("end_of_track", time=end - now))
    mid.tracks.append(track)
    return mid


def _paper_track(lines: Sequence[str], step: int) -> Any:
    """The official decoder's note track: one line after another, 120 ticks apart (quirks in drumroll_to_midi)."""
    mido = require("mido")

    track = mido.MidiTrack([mido.Message("program_change", channel=9, program=0, time=0)])
    started, delta = False, 0
    for line in lines:
        hits = [PAPER_NOTES[col] for col, c in enumerate(line[:6]) if c == "o"]
        if not hits and not started:
            continue  # Paper quirk: leading empty lines write nothing, so the first note lands at tick 0
        msgs = [mido.Message("note_on", channel=0, note=n, velocity=100) for n in hits] or \
               [mido.Message("note_on", channel=0, note=51, velocity=0)]
        for j, msg in enumerate(msgs):
            track.append(msg.copy(time=delta if j == 0 else 0))
        started, delta = True, step
    track.append(mido.MetaMessage("end_of_track", time=1))
    return track


def write_midi(mid: Any, path: Path | str) -> Path:
    """Save a `mido.MidiFile` (parent folders created)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path
