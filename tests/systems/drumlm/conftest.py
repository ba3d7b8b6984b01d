"""Shared helpers of the drumlm tests (arXiv 2301.01162): tiny MIDI files written with mido."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import pytest

try:
    import mido
except ImportError:  # the optional `drumlm` extra is not installed: nothing here can run
    mido = None
    collect_ignore = ["test_drumroll.py", "test_data.py", "test_parity.py"]


def write_notes(path: Path, notes: Sequence[tuple[int, int]], tpb: int = 480, time_sig: tuple[int, int] | None = (4, 4),
                channel: int = 9, extra_time_sigs: Sequence[tuple[int, int, int]] = (), bpm: float = 120.0) -> Path:
    """A type-0 MIDI file with note-ons (velocity 100) and note-offs 10 ticks later at absolute ticks.

    `extra_time_sigs`: (tick, numerator, denominator) meta events added later in the track.
    """
    events = []
    for tick, note in notes:
        events.append((tick, 1, mido.Message("note_on", channel=channel, note=note, velocity=100)))
        events.append((tick + 10, 0, mido.Message("note_off", channel=channel, note=note, velocity=0)))
    for tick, num, den in extra_time_sigs:
        events.append((tick, 0, mido.MetaMessage("time_signature", numerator=num, denominator=den)))
    events.sort(key=lambda e: (e[0], e[1]))
    track = mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(bpm), time=0)])
    if time_sig is not None:
        track.append(mido.MetaMessage("time_signature", numerator=time_sig[0], denominator=time_sig[1], time=0))
    now = 0
    for tick, _, msg in events:
        track.append(msg.copy(time=tick - now))
        now = tick
    mid = mido.MidiFile(type=0, ticks_per_beat=tpb)
    mid.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    mid.save(str(path))
    return path


def backbeat_bar_notes(bar: int, tpb: int = 480) -> list[tuple[int, int]]:
    """Kick on beats 1 and 3, snare on 2 and 4, closed hats on 8ths, in bar `bar` (4/4)."""
    base, s = bar * 16, tpb // 4
    notes = [((base + k) * s, 42) for k in range(0, 16, 2)]
    notes += [((base + k) * s, 36) for k in (0, 8)] + [((base + k) * s, 38) for k in (4, 12)]
    return notes


@pytest.fixture
def tmp(tmp_path: Path) -> Path:
    return tmp_path
