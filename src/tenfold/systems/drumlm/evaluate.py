"""`tenfold eval --run DIR` on a drumlm run: sample, parse and score every trained arm ("Language Models are Drummers", Zhang,
Callison-Burch; arXiv 2301.01162; spec section 3 steps 3-5, components 9-13).

Per arm of `train.arms`:
  1. dev NLL per drum line (and per token) on the first `eval.dev_windows` dev records (spec 2.12);
  2. one continuation per test prompt (the first `sample.num_prompts`), T 0.9, KV cache, stop at END (spec 2.9);
  3. the lenient parse (spec 2.3) -> lines + repair report; the first `window_bars` (or 16) bars are scored;
  4. on the generated bars only: stability, 2-means centre gap / mean deviation, distance to the human
     continuation, repetition rate, novelty against the train bar pool, onset density per voice, validity
     (spec 2.12); the prompt bars are kept as the left neighbour of the first generated bar;
  5. MIDI of every generation at the source tempo (run_dir/midi/<arm>/<name>.mid) and of the human windows.
References on the same prompts: human (the data's own continuation), `repeat` (prompt bar 2 repeated) and
`random` (random lines after the prompt, seed 29, sorted names; spec 2.11); for the dev NLL the per-position
onset model (`position_bernoulli_nll`, a trivial predictor of the next line). Writes run_dir/eval.json.
"""

from __future__ import annotations

import math
import re
import time
from collections import Counter
from pathlib import Path
from typing import Any, Sequence

import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir

from .arms import (dev_nll, drum_lines, load_arm, load_records, require_weights, sample_continuation,
                   write_json)
from .config import ARMS, Config
from .data import Piece
from .drumroll import LINES_PER_BAR, drop_leading_bars, drumroll_to_midi, parse_drumroll, write_midi
from .structure import (VOICES, bar_pool, distance_to_human, duplication_histogram, novelty, onset_density,
                        piece_features, random_reference, repeat_reference, repetition_rate, structure_summary,
                        validity)


def scored_bars(cfg: Config) -> int:
    """Bars scored per piece: the window (quick / smoke) or the paper's 16."""
    return cfg.data.window_bars or 16


def position_bernoulli_nll(train: Sequence[Sequence[str]], dev_completions: Sequence[str]) -> float:
    """Trivial reference of the dev NLL: each voice at each of the 16 bar positions is an independent Bernoulli
    fitted on the train lines (add-one smoothing); nats per drum line of the dev completions (SEP / END cost
    nothing here, a small advantage for the reference)."""
    on = [[1.0] * 6 for _ in range(LINES_PER_BAR)]
    total = [2.0] * LINES_PER_BAR
    for lines in train:
        for k, line in enumerate(lines):
            total[k % LINES_PER_BAR] += 1
            for v in range(6):
                on[k % LINES_PER_BAR][v] += line[v] == "o"
    nats, n = 0.0, 0
    for text in dev_completions:
        lines = [x for x in text.split("\n") if len(x) == 6 and set(x) <= {"o", "-"}]
        for k, line in enumerate(lines):  # a completion starts on a bar line (the prompt is whole bars)
            p = [on[k % LINES_PER_BAR][v] / total[k % LINES_PER_BAR] for v in range(6)]
            nats -= sum(math.log(p[v] if line[v] == "o" else 1 - p[v]) for v in range(6))
            n += 1
    return nats / n if n else math.nan


def score(pieces: Sequence[Sequence[str]], human: Any, pool: Counter, train_density: dict[str, float],
          prompt_bars: int, method: str) -> dict[str, Any]:
    """Generated-bar metrics of `pieces` (lines, prompt included) against the human summary and the pool."""
    s = structure_summary(pieces, first=prompt_bars, method=method)
    nov, n_bars = novelty(pieces, pool, prompt_bars)
    gen_lines = [p[prompt_bars * LINES_PER_BAR:] for p in pieces]
    dens = onset_density(gen_lines)
    out = {"mean_stability": s.mean_stability, "centre_gap": s.centre_gap, "mean_deviation": s.mean_deviation,
           "repetition_rate": repetition_rate(pieces, prompt_bars), "novelty": nov, "novel_bars_of": n_bars,
           "generated_bars": sum(len(g) for g in gen_lines) / LINES_PER_BAR / max(1, len(pieces)),
           "density": dens,
           # component 13: {occurrences in the pool: non-empty generated bars}; its "0" entry / novel_bars_of = novelty
           "duplication": {str(k): v for k, v in sorted(duplication_histogram(pieces, pool, prompt_bars).items())}}
    out["density_rel_error"] = {v: (dens[v] - train_density[v]) / train_density[v] if train_density[v] else math.nan
                                for v in ("snare", "kick", "hihat")}
    if human is not None:
        out["distance_to_human"] = distance_to_human(s, human)
    return out


def safe_name(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)


def evaluate(cfg: Config, run_dir: Path) -> dict[str, Any]:
    """Score every arm trained in `run_dir` (see the module docstring); returns flat metrics."""
    t0 = time.perf_counter()
    run_dir = Path(run_dir)
    if not RunDir(run_dir).config_path.exists():
        raise InputError(f"{run_dir / 'config.json'}: not found; expected a run directory of `tenfold train drumlm`")
    for name in [a for a in ARMS if a in cfg.train.arms]:  # refuse before anything is written
        require_weights(run_dir, name)
    pieces, records = load_records(cfg)
    nb, pb = scored_bars(cfg), cfg.data.prompt_bars
    n_lines = nb * LINES_PER_BAR
    test = records["test"][:cfg.sample.num_prompts or None]
    dev = records["dev"][:cfg.eval.dev_windows or None]
    if not test or not dev:
        raise InputError("data: no test or dev record to evaluate (data.num_test / data.num_dev too small for the "
                         "windows)")
    bpm = _bpm_of(pieces)
    train_lines = [drop_leading_bars(p.lines) for p in pieces["train"]]
    pool = bar_pool(train_lines if cfg.eval.novelty_pool == "train"
                    else [drop_leading_bars(p.lines) for p in pieces["test"]])
    train_density = onset_density(train_lines)
    method = cfg.eval.kmeans

    human = [parse_drumroll(r["prompt"] + r["completion"])[0][:n_lines] for r in test]
    names = [r["name"] for r in test]
    rand = random_reference(names, num_lines=n_lines - pb * LINES_PER_BAR)
    refs = {"human": human, "repeat": [repeat_reference(h, nb) for h in human],
            "random": [h[:pb * LINES_PER_BAR] + rand[n] for h, n in zip(human, names)]}
    human_summary = structure_summary(human, first=pb, method=method)
    result: dict[str, Any] = {"references": {k: score(v, human_summary, pool, train_density, pb, method)
                                             for k, v in refs.items()},
                              "nll_reference": {"position_bernoulli_nll_per_line": position_bernoulli_nll(
                                  train_lines, [r["completion"] for r in dev])},
                              "train_density": train_density, "arms": {}, "prompts": names, "scored_bars": nb}
    result["curves"] = {"human": [list(piece_features(h, 1, method).values) for h in human]}
    _write_midi(run_dir / "midi" / "human", names, human, bpm)
    for name in [a for a in ARMS if a in cfg.train.arms]:
        arm = load_arm(cfg, run_dir, name)
        ta = time.perf_counter()
        nll = dev_nll(arm, dev)
        tn = time.perf_counter()
        with torch.no_grad():
            texts = sample_continuation(arm, cfg, [r["prompt"] for r in test], cfg.seed)
        ts = time.perf_counter()
        parsed = [parse_drumroll(t) for t in texts]
        lines = [p[0][:n_lines] for p in parsed]
        arm_metrics = score(lines, human_summary, pool, train_density, pb, method)
        arm_metrics.update(nll)
        arm_metrics.update({f"validity_{k}": v for k, v in validity([p[1] for p in parsed]).items()})
        arm_metrics.update({"nll_wall_s": round(tn - ta, 2), "sample_wall_s": round(ts - tn, 2)})
        result["arms"][name] = arm_metrics
        result["curves"][name] = [list(piece_features(x, 1, method).values) for x in lines]
        write_json(run_dir / "generations" / f"{name}.json",
                   [{"name": n, "text": t, "repair": vars(p[1])} for n, t, p in zip(names, texts, parsed)])
        _write_midi(run_dir / "midi" / name, names, lines, bpm)
        del arm
    result["wall_s"] = round(time.perf_counter() - t0, 2)
    write_json(run_dir / "eval.json", result)
    return flatten(result)


def _bpm_of(pieces: dict[str, list[Piece]]) -> dict[str, float]:
    return {p.name: p.bpm for items in pieces.values() for p in items}


def _write_midi(folder: Path, names: Sequence[str], pieces: Sequence[Sequence[str]], bpm: dict[str, float]) -> None:
    """tenfold writer (channel 10, the source tempo); a window's name is '<piece>@<bar offset>'."""
    for n, lines in zip(names, pieces):
        if lines:
            write_midi(drumroll_to_midi(lines, bpm=bpm.get(n.split("@")[0], 120.0)), folder / f"{safe_name(n)}.mid")


def flatten(result: dict[str, Any]) -> dict[str, float]:
    """{"A_dev_nll_per_line": ..., "ref_random_mean_stability": ..., ...}: the numeric scalars of eval.json."""
    out: dict[str, float] = {}
    for prefix, group in [*((a, m) for a, m in result["arms"].items()),
                          *((f"ref_{k}", m) for k, m in result["references"].items())]:
        for k, v in group.items():
            if isinstance(v, (int, float)) and not isinstance(v, bool):
                out[f"{prefix}_{k}"] = float(v)
    out["ref_nll_position_bernoulli"] = result["nll_reference"]["position_bernoulli_nll_per_line"]
    return out


__all__ = ["evaluate", "score", "position_bernoulli_nll", "flatten", "drum_lines", "VOICES"]
