"""Training of maskfocal (arXiv 2212.11542): run directory, resume after a kill, loss drops, DDP with 2 ranks,
and the quick-profile reproduction (slow)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.maskfocal.config import PROFILES, Config
from tenfold.systems.maskfocal.data import load_data
from tenfold.systems.maskfocal.evaluate import evaluate
from tenfold.systems.maskfocal.loss import build_cls_loss
from tenfold.systems.maskfocal.model import build_model
from tenfold.systems.maskfocal.train import batch_targets, collate, loss_terms, total_loss, train


def _cfg(**overrides) -> Config:
    return make_config(Config, PROFILES, "smoke", overrides)


@pytest.mark.parametrize("detector", ["centernet", "fcos"])
def test_smoke_run_directory_and_evaluate(tmp_path, detector):
    metrics = train(_cfg(**{"model.detector": detector}), tmp_path)
    for name in ("config.json", "metrics.jsonl", "summary.json", "checkpoints/last.pt", "data/train.json",
                 "data/train_points.csv"):
        assert (tmp_path / name).exists(), name
    assert metrics["steps"] == 8 and metrics["final_loss"] < metrics["first_loss"]
    again = evaluate(_cfg(**{"model.detector": detector}), tmp_path)
    assert again["mae"] == metrics["mae"] and again["tau"] == metrics["tau"]


def test_resume_after_kill_continues_the_same_trajectory(tmp_path, monkeypatch):
    straight = train(_cfg(), tmp_path / "straight")
    real_log = RunDir.log_metrics

    def killed_at_step_5(self, record):
        if record.get("step") == 5:
            raise KeyboardInterrupt  # a kill between the checkpoint at step 4 and the next one at step 6
        real_log(self, record)

    monkeypatch.setattr(RunDir, "log_metrics", killed_at_step_5)
    with pytest.raises(KeyboardInterrupt):
        train(_cfg(), tmp_path / "killed")
    monkeypatch.setattr(RunDir, "log_metrics", real_log)
    run = RunDir(tmp_path / "killed")
    assert run.load_checkpoint()["step"] == 4
    assert not run.summary_path.exists()  # nothing half-written
    resumed = train(_cfg(), tmp_path / "killed")
    assert [r["step"] for r in run.read_metrics()] == list(range(1, 9))
    # model, Adam and scheduler state restored and the same sample order: bitwise the uninterrupted run
    assert resumed["weights_sha256"] == straight["weights_sha256"]
    assert resumed["mae"] == straight["mae"]


@pytest.fixture(scope="module")
def smoke_data(tmp_path_factory):
    return load_data(_cfg(), tmp_path_factory.mktemp("smoke-data"), ("train",))["train"]


@pytest.mark.parametrize("detector,loss", [("centernet", "native"), ("centernet", "mfl"), ("fcos", "native"),
                                           ("fcos", "mfl")])
def test_loss_drops_on_one_fixed_batch(smoke_data, detector, loss):
    cfg = _cfg(**{"model.detector": detector, "loss.cls_loss": loss})
    torch.manual_seed(0)
    model = build_model(cfg.model)
    opt = torch.optim.Adam(model.parameters(), lr=5e-3)
    idx = [0, 1]
    images = smoke_data.batch(idx)
    tgt = collate(cfg, batch_targets(cfg, smoke_data, idx, tuple(images.shape[-2:])), torch.device("cpu"))
    mfl = build_cls_loss(cfg.loss)
    losses = []
    for _ in range(12):
        terms = loss_terms(cfg, model, images, tgt, mfl)
        assert set(terms) == ({"loss_cls", "loss_size", "loss_offset"} if detector == "centernet"
                              else {"loss_cls", "loss_centerness", "loss_box"})
        loss_v = total_loss(cfg, terms)
        opt.zero_grad()
        loss_v.backward()
        opt.step()
        losses.append(float(loss_v.detach()))
    assert losses[-1] < 0.8 * losses[0]


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_cpu_ranks_finish_with_identical_weights(tmp_path):
    """torchrun --nproc_per_node 2 (gloo, loopback only) on the smoke profile: both ranks log the sha256 of their
    final weights; they must be equal, and only rank 0 writes the run directory."""
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()),
           "-m", "tenfold", "train", "maskfocal", "--profile", "smoke", "--out", str(out),
           "--set", "model.detector=fcos"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-4000:]
    hashes = dict(re.findall(r"rank (\d)/2 final weights sha256 ([0-9a-f]{64})", log))
    assert set(hashes) == {"0", "1"}, log[-4000:]
    assert hashes["0"] == hashes["1"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["world_size"] == 2 and summary["weights_sha256"] == hashes["0"]
    steps = [r["step"] for r in RunDir(out).read_metrics()]
    assert steps == list(range(1, 9))  # one writer: every step logged once
    assert not list(tmp_path.glob("**/rank*"))


DDP_GRADIENT_SCRIPT = r"""
import copy, json, sys
from pathlib import Path
import torch
from tenfold.core import distributed as D
from tenfold.core.config import make_config
from tenfold.systems.maskfocal.config import PROFILES, Config
from tenfold.systems.maskfocal.data import load_data
from tenfold.systems.maskfocal.loss import build_cls_loss
from tenfold.systems.maskfocal.model import build_model
from tenfold.systems.maskfocal.train import batch_targets, collate, loss_terms, total_loss

out = Path(sys.argv[1])
ctx = D.setup("cpu")
cpu = torch.device("cpu")
result = {}
for det, loss, norm in [("centernet", "mfl", "mask_weight"), ("centernet", "native", "native"),
                        ("fcos", "native", "native"), ("fcos", "mfl", "native")]:
    cfg = make_config(Config, PROFILES, "smoke", {"model.detector": det, "loss.cls_loss": loss, "loss.norm": norm})
    data = load_data(cfg, out, ("train",), ctx)["train"]
    hw = data.padded_hw(range(len(data)))
    mfl = build_cls_loss(cfg.loss)
    by_count = [int(i) for i in data.counts.argsort(kind="stable")]
    batch = [by_count[0], by_count[-1], by_count[1], by_count[-2]]  # rank 0: the two sparsest, rank 1: densest
    mine = D.shard_indices(batch, 4, ctx)[0]  # this rank's half of the global batch
    grads = {}
    for mode in ("global", "local"):  # "local": per-rank normalisers (collate without the process group)
        torch.manual_seed(0)
        model = build_model(cfg.model)
        ref = copy.deepcopy(model)
        ddp = D.wrap(model, ctx)
        tgt = collate(cfg, batch_targets(cfg, data, mine, hw), cpu, ctx if mode == "global" else None, mfl)
        total_loss(cfg, loss_terms(cfg, ddp, data.batch(mine), tgt, mfl)).backward()  # DDP averages
        grads[mode] = torch.cat([p.grad.flatten() for p in model.parameters()])
    whole = collate(cfg, batch_targets(cfg, data, batch, hw), cpu, None, mfl)  # one process, the whole batch
    total_loss(cfg, loss_terms(cfg, ref, data.batch(batch), whole, mfl)).backward()
    g = torch.cat([p.grad.flatten() for p in ref.parameters()])
    result[f"{det}-{loss}-{norm}"] = {m: float((v - g).norm() / g.norm()) for m, v in grads.items()}
if ctx.is_main:
    (out / "grads.json").write_text(json.dumps(result))
D.teardown(ctx)
"""


def test_ddp_global_normalisers_give_the_single_process_gradient(tmp_path):
    """2 gloo ranks, each with half of a global batch of 4: with the normalisers summed over ranks and the
    terms scaled by the world size (train.collate), DDP's averaged gradient equals one process's gradient on the
    whole batch; with per-rank normalisers (the test's negative control) it does not, since the halves hold
    different numbers of heads."""
    script = tmp_path / "ddp_grads.py"
    script.write_text(DDP_GRADIENT_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo", "MASTER_ADDR": "127.0.0.1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--nnodes", "1",
           "--master_addr", "127.0.0.1", "--master_port", str(_free_port()), str(script), str(tmp_path)]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=240)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    result = json.loads((tmp_path / "grads.json").read_text())
    assert len(result) == 4
    for name, err in result.items():
        assert err["global"] < 1e-4, (name, err)  # float rounding only
        assert err["local"] > 1e-3, (name, err)


@pytest.fixture(scope="module")
def quick_rows(tmp_path_factory):
    """The quick profile once (~3-5 min on 2 cores, dev seed 0), shared by the slow tests below."""
    from tenfold.systems.maskfocal.reproduce import reproduce

    out = tmp_path_factory.mktemp("mf-quick")
    return reproduce("quick", 0, out), out


@pytest.mark.slow
def test_quick_reproduction_rows(quick_rows):
    """Every claim row has finite numbers and a reference; the scale check holds; the plots exist."""
    rows, out = quick_rows
    # 2 detectors x 8 rows, MFL(radius) + MFL(soft), 3 FCOS decomposition rows, 2 point-GT rows, 1 scale check
    assert len(rows) == 22
    assert all(np.isfinite(r.method_value) and np.isfinite(r.baseline_value) for r in rows)  # no empty bucket
    assert [r.verdict for r in rows if r.kind == "check"] == ["holds"]
    assert (out / "count_scatter.png").exists() and (out / "detections_dense.png").exists()
    assert all(r.reference and np.isfinite(r.reference_value) for r in rows if r.metric.startswith(("MAE (", "RMSE")))


def _spec_check(rows, det):
    """The spec's slow check: MFL's test MAE below the native loss's, for one detector."""
    row = next(r for r in rows if r.metric == "MAE (test)" and r.method == f"{det}-mfl"
               and r.baseline == f"{det}-native")
    assert row.method_value < row.baseline_value, (row.claim, row.method_value, row.baseline_value)


@pytest.mark.slow
def test_spec_slow_check_fcos(quick_rows):
    _spec_check(quick_rows[0], "fcos")


# Measured (issue 19): at the quick scale where MFL(box) differs from CenterNet's loss, MFL's MAE is above the
# native loss's on dev seed 0 (13.92 vs 12.97) and the claim seeds' row is inconclusive (README claim table). The
# spec's check fails here; strict, so a change that makes it pass is seen.
@pytest.mark.slow
@pytest.mark.xfail(strict=True, reason="the spec's check does not hold for CenterNetLite at this scale (README)")
def test_spec_slow_check_centernet(quick_rows):
    _spec_check(quick_rows[0], "centernet")
