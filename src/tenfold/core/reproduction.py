"""`tenfold reproduce`: every system's claims over paired seeds, resumable and incremental.

    units       one (system, seed): `spec.reproduce(profile, seed, out/<key>/seed-<seed>)` -> measurements
    cache       out/<key>/seed-<seed>/rows.json holds a finished unit with its profile, seed and code digest;
                a re-run with the same profile and code reuses it (`force=True` redoes it), so a killed run
                loses at most the units in progress
    report      claims.json, summary.md and index.html are rewritten after each finished system
    parallel    `jobs > 1` runs units in spawned processes with the cores split between them

The code digest of a system hashes the sources it runs (core/, systems/__init__.py, systems/<key>/):
an edit to any of them, committed or not, invalidates that system's cache; the git commit is recorded
beside it for the reader.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tenfold.core.claims import Claim, Measurement, aggregate
from tenfold.core.runs import atomic_write_text, git_commit
from tenfold.core.runtime import LOGGER_NAME

log = logging.getLogger(LOGGER_NAME)

# Design choice: the default claim seeds start at 1000, disjoint from every development seed the systems
# list (all below 100); seeds are consecutive: BASE, BASE + 1, ...
DEFAULT_SEED_BASE = 1000
DEFAULT_NUM_SEEDS = 3
CACHE_NAME = "rows.json"


def claim_seeds(base: int, num: int) -> tuple[int, ...]:
    return tuple(base + i for i in range(num))


def code_digest(key: str) -> str:
    """sha256 over the sources a system's reproduction runs: core/, systems/__init__.py, systems/<key>/."""
    root = Path(__file__).resolve().parent.parent  # src/tenfold
    files = sorted([*(root / "core").rglob("*.py"), root / "systems" / "__init__.py",
                    *(root / "systems" / key).rglob("*.py")])
    h = hashlib.sha256()
    for f in files:
        h.update(str(f.relative_to(root)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def seed_dir(out: Path, key: str, seed: int) -> Path:
    return Path(out) / key / f"seed-{seed}"


def load_cached(out: Path, key: str, profile: str, seed: int,
                digest: str) -> tuple[list[Measurement], float] | None:
    """(measurements, wall seconds) of a finished unit, or None when absent, unreadable or of other code or profile."""
    path = seed_dir(out, key, seed) / CACHE_NAME
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
        if (payload.get("profile"), payload.get("seed"), payload.get("code")) != (profile, seed, digest):
            return None
        return [Measurement.from_dict(d) for d in payload["rows"]], float(payload["wall_time_s"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def run_unit(key: str, profile: str, seed: int, out: str, force: bool, threads: int | None = None,
             quiet: bool = False) -> tuple[list[dict[str, Any]], float, bool]:
    """Run (or reuse) one (system, seed); returns (measurements as dicts, wall seconds, cached?).

    Top-level and picklable, so that a spawned worker process can run it.
    """
    import torch

    from tenfold.systems import get_system

    if quiet:
        logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING)
    if threads is not None:
        torch.set_num_threads(threads)
    digest = code_digest(key)
    cached = None if force else load_cached(Path(out), key, profile, seed, digest)
    if cached is not None:
        return [m.to_dict() for m in cached[0]], cached[1], True
    folder = seed_dir(Path(out), key, seed)
    if force and folder.exists():
        shutil.rmtree(folder)  # --force: the unit starts clean; no checkpoint of a killed run is resumed
    t0 = time.perf_counter()
    rows = get_system(key).reproduce(profile, seed, folder)
    wall = time.perf_counter() - t0
    bad = [r for r in rows if not isinstance(r, Measurement) or r.seed != seed or r.system != key]
    if bad:
        raise ValueError(f"{key}.reproduce returned rows of another seed or system, or not Measurements: {bad[:1]}")
    payload = {"system": key, "profile": profile, "seed": seed, "code": digest, "commit": git_commit(),
               "wall_time_s": wall, "rows": [r.to_dict() for r in rows]}
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_text(folder / CACHE_NAME, json.dumps(payload, indent=1, allow_nan=False) + "\n")
    return payload["rows"], wall, False


@dataclass
class SystemRun:
    key: str
    seeds: tuple[int, ...]
    dev_seeds: tuple[int, ...]
    budget_minutes: float
    code: str = ""  # the code digest, computed once per system
    rows: dict[int, list[Measurement]] = field(default_factory=dict)
    wall: dict[int, float] = field(default_factory=dict)
    cached: list[int] = field(default_factory=list)
    errors: dict[int, str] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return len(self.rows) + len(self.errors) == len(self.seeds)

    def record(self, seed: int, rows: list[dict[str, Any]], wall: float, cached: bool) -> None:
        self.rows[seed] = [Measurement.from_dict(d) for d in rows]
        self.wall[seed] = wall
        if cached:
            self.cached.append(seed)

    def facts(self) -> dict[str, Any]:
        facts: dict[str, Any] = {
            "status": "error" if self.errors else "ok", "seeds": list(self.seeds),
            "wall_time_s": round(sum(self.wall.values()), 3), "budget_minutes": self.budget_minutes,
            "cached_seeds": sorted(self.cached), "code": self.code,
            "dev_seeds_used": sorted(set(self.seeds) & set(self.dev_seeds))}
        if self.errors:
            facts["error"] = "; ".join(f"seed {s}: {e}" for s, e in sorted(self.errors.items()))
        return facts

    def measurements(self) -> list[Measurement]:
        return [m for s in self.seeds for m in self.rows.get(s, [])]


def reproduce(keys: list[str], profile: str, seeds: tuple[int, ...], out: Path, force: bool = False,
              jobs: int = 1, quiet: bool = False) -> tuple[list[Claim], dict[str, Any]]:
    """Run every (system, seed) unit, rewriting the report after each finished system; return (claims, meta)."""
    from tenfold.core.report import write_report
    from tenfold.systems import get_system

    out = Path(out)
    runs = {}
    for key in keys:
        spec = get_system(key)
        runs[key] = SystemRun(key, seeds, tuple(spec.dev_seeds), spec.reproduce_minutes, code_digest(key))
        overlap = sorted(set(seeds) & set(spec.dev_seeds))
        if overlap:
            log.warning("%s: seeds %s were used during development; they are flagged in the report", key, overlap)
    meta: dict[str, Any] = {"profile": profile, "seeds": list(seeds), "commit": git_commit(), "systems": {}}
    finished: list[str] = []

    def finish(run: SystemRun) -> None:
        meta["systems"][run.key] = run.facts()
        finished.append(run.key)
        claims = aggregate(m for k in keys if k in finished for m in runs[k].measurements())
        write_report(out, claims, meta)
        status = "ok" if not run.errors else "ERROR"
        log.info("%s: %s, %.1f s over seeds %s%s", run.key, status, sum(run.wall.values()), list(seeds),
                 f" (cached: {run.cached})" if run.cached else "")

    units = [(k, s) for k in keys for s in seeds]
    if jobs <= 1:
        for key, seed in units:
            _run_in_process(runs[key], key, profile, seed, out, force)
            if runs[key].done:
                finish(runs[key])
    else:
        _run_parallel(runs, units, profile, out, force, jobs, finish)
    claims = aggregate(m for k in keys for m in runs[k].measurements())
    meta["systems"] = {k: meta["systems"][k] for k in keys}
    return claims, meta


def _run_in_process(run: SystemRun, key: str, profile: str, seed: int, out: Path, force: bool) -> None:
    log.info("reproducing %s, seed %d (%s profile)", key, seed, profile)
    try:
        run.record(seed, *run_unit(key, profile, seed, str(out), force))
    except Exception as err:  # one broken unit must not hide the others' claims
        traceback.print_exc()
        run.errors[seed] = f"{type(err).__name__}: {err}"


def _run_parallel(runs: dict[str, SystemRun], units: list[tuple[str, int]], profile: str, out: Path, force: bool,
                  jobs: int, finish) -> None:
    import multiprocessing

    threads = max(1, (os.cpu_count() or 1) // jobs)
    quiet = not logging.getLogger(LOGGER_NAME).isEnabledFor(logging.INFO)
    ctx = multiprocessing.get_context("spawn")  # fresh interpreters: no forked torch thread pools
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        pending = {pool.submit(run_unit, k, profile, s, str(out), force, threads, True): (k, s) for k, s in units}
        while pending:
            done, _ = wait(pending, return_when=FIRST_COMPLETED)
            for fut in done:
                key, seed = pending.pop(fut)
                run = runs[key]
                try:
                    run.record(seed, *fut.result())
                    if not quiet:
                        log.info("%s seed %d finished in %.1f s", key, seed, run.wall[seed])
                except Exception as err:
                    run.errors[seed] = f"{type(err).__name__}: {err}"
                    log.error("%s seed %d failed: %s", key, seed, run.errors[seed])
                if run.done:
                    finish(run)
