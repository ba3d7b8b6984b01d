"""`tenfold reproduce` over paired seeds: the per-(system, seed) cache, resume after a kill, --force, --jobs."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tenfold.cli import main
from tenfold.core import reproduction
from tenfold.core.claims import Measurement, Relation
from tenfold.core.registry import SystemSpec
from tenfold.systems import SYSTEMS


def _fake_spec(key: str, calls: list, fail_on: int | None = None) -> SystemSpec:
    def reproduce(profile: str, seed: int, out_dir: Path) -> list[Measurement]:
        calls.append((key, seed))
        if seed == fail_on:
            raise RuntimeError("boom")
        Path(out_dir).mkdir(parents=True, exist_ok=True)
        # paired: ours = base + 0.1 + tiny seed noise, baseline = base
        base = 0.5 + (seed % 7) / 100
        return [Measurement(key, "ours beats base", "acc", "ours", base + 0.1 + (seed % 3) / 1000, "base", base,
                            Relation(">"), seed, 0.01, reference="majority", reference_value=0.3),
                Measurement(key, "a bound", "x", "ours", 0.0, "bound", 1.0, Relation("<="), seed, 0.01, kind="check")]

    return SystemSpec(key=key, title="fake", arxiv="0000", config_cls=object, profiles={}, train=None,
                      evaluate=None, reproduce=reproduce, reproduce_minutes=1.0, dev_seeds=(7,))


@pytest.fixture
def fakes(monkeypatch):
    calls: list = []
    monkeypatch.setitem(SYSTEMS, "fakea", _fake_spec("fakea", calls))
    monkeypatch.setitem(SYSTEMS, "fakeb", _fake_spec("fakeb", calls, fail_on=11))
    return calls


def test_claim_seeds_and_defaults_are_disjoint_from_every_dev_seed():
    seeds = reproduction.claim_seeds(reproduction.DEFAULT_SEED_BASE, reproduction.DEFAULT_NUM_SEEDS)
    assert seeds == (1000, 1001, 1002)
    for key, spec in SYSTEMS.items():
        assert spec.dev_seeds, f"{key} lists no development seeds"
        assert not set(seeds) & set(spec.dev_seeds), key


def test_runs_every_seed_then_reuses_the_cache(tmp_path, fakes, capsys):
    out = tmp_path / "rep"
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "3", "--out", str(out)]) == 0
    assert fakes == [("fakea", 1), ("fakea", 2), ("fakea", 3)]
    payload = json.loads((out / "claims.json").read_text())
    claim, check = payload["claims"]
    assert claim["seeds"] == [1, 2, 3] and claim["verdict"] == "holds" and check["kind"] == "check"
    assert payload["counts"]["claims"] == 1 and payload["counts"]["checks"] == 1
    assert "claims: 1 holds / 0 fails / 0 inconclusive (of 1); checks: 1/1 pass" in capsys.readouterr().out
    fakes.clear()
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "3", "--out", str(out)]) == 0
    assert fakes == []  # nothing redone
    assert json.loads((out / "claims.json").read_text())["systems"]["fakea"]["cached_seeds"] == [1, 2, 3]
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "3", "--out", str(out), "--force"]) == 0
    assert len(fakes) == 3
    fakes.clear()  # another profile is another unit
    assert main(["--quiet", "reproduce", "fakea", "--profile", "smoke", "--seed", "1", "--seeds", "1",
                 "--out", str(out)]) == 0
    assert fakes == [("fakea", 1)]


def test_force_starts_the_unit_clean(tmp_path, fakes):
    # A killed unit leaves checkpoints in its folder; --force must not let the system resume from them.
    out = tmp_path / "rep"
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "1", "--out", str(out)]) == 0
    stale = reproduction.seed_dir(out, "fakea", 1) / "checkpoints" / "last.pt"
    stale.parent.mkdir(parents=True)
    stale.write_text("from a killed run")
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "1", "--out", str(out)]) == 0
    assert stale.exists()  # without --force the cache is reused and the folder left alone
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "1", "--out", str(out), "--force"]) == 0
    assert not stale.exists() and (reproduction.seed_dir(out, "fakea", 1) / reproduction.CACHE_NAME).exists()


def test_a_code_change_invalidates_the_cache(tmp_path, fakes, monkeypatch):
    out = tmp_path / "rep"
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "2", "--out", str(out)]) == 0
    monkeypatch.setattr(reproduction, "code_digest", lambda key: "edited")
    fakes.clear()
    assert main(["--quiet", "reproduce", "fakea", "--seed", "1", "--seeds", "2", "--out", str(out)]) == 0
    assert len(fakes) == 2


def test_a_failing_unit_keeps_the_other_systems_and_exits_1(tmp_path, fakes, capsys):
    out = tmp_path / "rep"
    code = main(["--quiet", "reproduce", "fakea", "fakeb", "--seed", "10", "--seeds", "2", "--out", str(out)])
    assert code == 1
    payload = json.loads((out / "claims.json").read_text())
    assert payload["systems"]["fakea"]["status"] == "ok"
    assert payload["systems"]["fakeb"]["status"] == "error" and "seed 11" in payload["systems"]["fakeb"]["error"]
    fakes.clear()  # a re-run redoes only the failed unit
    main(["--quiet", "reproduce", "fakea", "fakeb", "--seed", "10", "--seeds", "2", "--out", str(out)])
    assert fakes == [("fakeb", 11)]


def test_dev_seeds_are_flagged(tmp_path, fakes):
    out = tmp_path / "rep"
    assert main(["--quiet", "reproduce", "fakea", "--seed", "6", "--seeds", "2", "--out", str(out)]) == 0
    assert json.loads((out / "claims.json").read_text())["systems"]["fakea"]["dev_seeds_used"] == [7]
    assert "development seeds among the claim seeds: [7]" in (out / "summary.md").read_text()


def test_a_failing_check_exits_1(tmp_path, monkeypatch):
    def reproduce(profile, seed, out_dir):
        return [Measurement("fakec", "bound", "x", "ours", 2.0, "bound", 1.0, Relation("<="), seed, 0.0, kind="check")]

    spec = SystemSpec("fakec", "fake", "0", object, {}, None, None, reproduce, 1.0)
    monkeypatch.setitem(SYSTEMS, "fakec", spec)
    assert main(["--quiet", "reproduce", "fakec", "--seeds", "2", "--out", str(tmp_path)]) == 1


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main(["reproduce", "nosuch", "--out", str(tmp_path)]) == 2
    assert main(["reproduce", "qae", "--seeds", "0", "--out", str(tmp_path)]) == 2
    assert "--seeds" in capsys.readouterr().err
    (tmp_path / "file").write_text("x")
    assert main(["reproduce", "qae", "--out", str(tmp_path / "file")]) == 2


def test_killed_reproduction_resumes_without_redoing_finished_systems(tmp_path):
    """`tenfold reproduce qae harmonize` killed while harmonize runs: the re-run reuses qae's seeds."""
    out = tmp_path / "rep"
    cmd = [sys.executable, "-m", "tenfold", "--quiet", "reproduce", "qae", "harmonize", "--profile", "smoke",
           "--seeds", "1", "--out", str(out)]
    env = {**os.environ, "MPLBACKEND": "Agg"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 300
        while not (out / "harmonize").exists():  # qae finished, harmonize started
            assert proc.poll() is None, "the reproduction ended before it could be killed"
            assert time.monotonic() < deadline
            time.sleep(0.2)
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(timeout=60)
    assert json.loads((out / "claims.json").read_text())["systems"].keys() == {"qae"}  # written after qae
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    payload = json.loads((out / "claims.json").read_text())
    assert payload["systems"]["qae"]["cached_seeds"] == [1000], r.stderr[-2000:]
    assert payload["systems"]["harmonize"]["cached_seeds"] == [] and payload["systems"]["harmonize"]["status"] == "ok"
    assert "qae: ok" in r.stdout and "from the cache" in r.stdout
