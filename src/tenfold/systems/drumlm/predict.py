"""`tenfold predict drumlm`: continue a user's drum groove with a trained run ("Language Models are Drummers",
Zhang, Callison-Burch; arXiv 2301.01162).

    tenfold predict drumlm --run DIR --input prompt.mid --output out.mid [--bars N]

Steps: read the run's config and the weights of its first trained arm (A, the pretrained LM, when trained);
encode the input MIDI as drumroll (spec 2.1: x/4 time signature, 16th grid, merged voices), drop its empty leading
bars, take its last `data.prompt_bars` full bars as the prompt (the training prompt length); sample at the
config's temperature until `bars` new bars are written (default: what the run was trained to continue: the window's
continuation or 14 bars); parse leniently; write input + continuation as a playable MIDI file (channel 10, the
input's tempo) atomically, so a refused input leaves nothing behind.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from tenfold.core.config import load_config
from tenfold.core.errors import InputError

from .arms import TOKENS_PER_BAR, load_arm, sample_continuation, weights_path
from .config import ARMS, Config
from .drumroll import (EMPTY, LINES_PER_BAR, drop_leading_bars, drumroll_to_midi, load_midi, midi_to_drumroll,
                       parse_drumroll, with_separators)

MIDI_SUFFIXES = (".mid", ".midi")
MAX_BARS = 64  # Design choice: a cap on --bars (sampling cost grows with it; C's context is smaller still)


def input_tempo(mid: Any) -> float:
    """BPM of the first set_tempo event (120 when there is none, the MIDI default)."""
    import mido

    for track in mid.tracks:
        for msg in track:
            if msg.type == "set_tempo":
                return float(mido.tempo2bpm(msg.tempo))
    return 120.0


def read_prompt(path: Path, prompt_bars: int) -> tuple[list[str], list[str], float]:
    """(all input lines after the leading-bar drop, the prompt's lines, BPM); InputError naming the file."""
    if path.suffix.lower() not in MIDI_SUFFIXES:
        raise InputError(f"--input {path}: suffix {path.suffix!r} is not MIDI; expected a Standard MIDI File "
                         f"({', '.join(MIDI_SUFFIXES)}) with a drum groove in x/4")
    mid = load_midi(path)  # missing / huge / unparsable -> InputError naming the file
    lines = midi_to_drumroll(mid, mode="code")
    if lines is None:
        raise InputError(f"--input {path}: time signature is not x/4; expected a groove in 4/4 (or 3/4, 5/4)")
    lines = drop_leading_bars(lines)
    onsets = [i for i, line in enumerate(lines) if line != EMPTY]
    full = onsets[-1] // LINES_PER_BAR + 1 if onsets else 0  # Design choice: trailing empty bars are dropped
    if full < prompt_bars:
        raise InputError(f"--input {path}: {full} bar(s) of drums after the empty leading bars; expected at least "
                         f"{prompt_bars} bars of drums (channel 10 or the GM drum notes)")
    lines = lines[:full * LINES_PER_BAR]
    return lines, lines[-prompt_bars * LINES_PER_BAR:], input_tempo(mid)


def predict(run_dir: Path, input_path: Path, output_path: Path, bars: int | None = None) -> dict[str, Any]:
    run_dir, inp, outp = Path(run_dir), Path(input_path), Path(output_path)
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise InputError(f"{cfg_path}: not found; --run must be a directory written by `tenfold train drumlm`")
    cfg = load_config(Config, cfg_path)
    default_bars = (cfg.data.window_bars or 16) - cfg.data.prompt_bars
    bars = default_bars if bars is None else int(bars)
    if not 1 <= bars <= MAX_BARS:
        raise InputError(f"--bars {bars}: expected 1 to {MAX_BARS} bars")
    arm_name = next((a for a in ARMS if a in cfg.train.arms and weights_path(run_dir, a).exists()), None)
    if arm_name is None:
        raise InputError(f"{run_dir / 'models'}: no trained weights (A.safetensors, B.safetensors or "
                         "C.safetensors); expected a finished `tenfold train drumlm` run")
    lines, prompt_lines, bpm = read_prompt(inp, cfg.data.prompt_bars)
    arm = load_arm(cfg, run_dir, arm_name)
    prompt = "\n".join(with_separators(prompt_lines)) + "\n"
    per_bar, n_prompt = TOKENS_PER_BAR[arm.codec.kind], len(arm.codec.encode(prompt))
    if arm.kind == "scratch" and n_prompt + bars * per_bar > arm.model.cfg.context_length:
        unit = "lines" if arm.codec.kind == "line" else "characters"
        raise InputError(f"--bars {bars}: arm C's context of {arm.model.cfg.context_length} {unit} holds at most "
                         f"{(arm.model.cfg.context_length - n_prompt) // per_bar} new bars")
    with torch.no_grad():
        text = sample_continuation(arm, cfg, [prompt], cfg.seed, bars=bars)[0]
    generated, report = parse_drumroll(text[len(prompt):])
    generated = generated[:bars * LINES_PER_BAR]
    written = len(generated)
    generated += [EMPTY] * (bars * LINES_PER_BAR - written)  # Design choice: a short generation is padded with rests
    mid = drumroll_to_midi(lines + generated, bpm=bpm)
    outp.parent.mkdir(parents=True, exist_ok=True)
    tmp = outp.with_name(f".{outp.name}.tmp")
    mid.save(str(tmp))
    os.replace(tmp, outp)
    return {"arm": arm_name, "input_bars": len(lines) // LINES_PER_BAR, "generated_bars": bars,
            "generated_lines_written": written, "padded_lines": bars * LINES_PER_BAR - written,
            "malformed_lines": report.num_malformed, "bpm": round(bpm, 2), "output": str(outp)}
