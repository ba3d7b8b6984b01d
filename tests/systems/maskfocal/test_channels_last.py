"""Detectors of maskfocal (arXiv 2212.11542) on channels_last input: the training step that crashed in oneDNN.

A (B, 3, H, W) batch with channels_last strides (np.stack of (3, H, W) views of HWC images, as the benchmark
built it) sent every conv to oneDNN's NHWC kernels; the backward-weights of the half-width trunk's 1x1 stride-2
shortcut (8 -> 16 channels) then wrote past its workspace and killed the process at 128^2, batch 1 (oneDNN 3.12
in torch 2.14.1, uxlfoundation/oneDNN#6035; model.Trunk.forward). The steps run in a subprocess so that a crash
fails the test instead of killing pytest.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from tenfold.systems.maskfocal.model import CenterNetLite

ROOT = Path(__file__).resolve().parents[3]

STEP_SCRIPT = r"""
import sys
import torch
from torch.testing import assert_close
from tenfold.systems.maskfocal.data import normalise
from tenfold.systems.maskfocal.model import CenterNetLite, FCOSLite

torch.set_num_threads(1)
torch.manual_seed(0)
model = CenterNetLite((8, 16, 32, 64), 16, 2) if sys.argv[1] == "centernet" else FCOSLite((8, 16, 32, 64), 16)
hwc = torch.randint(0, 256, (1, 128, 128, 3), dtype=torch.uint8)  # crashed; 96^2 did not
grads = []
for images in (hwc.permute(0, 3, 1, 2), hwc.permute(0, 3, 1, 2).contiguous()):  # channels_last, then NCHW
    model.zero_grad()
    out = model(normalise(images))
    sum(v.square().mean() for k, v in out.items() if k != "points").backward()
    grads.append(model.trunk.stages[1].short[0].weight.grad.clone())  # the 1x1 stride-2 conv, 8 -> 16
assert hwc.permute(0, 3, 1, 2).is_contiguous(memory_format=torch.channels_last)  # the first input
assert_close(grads[0], grads[1], rtol=0, atol=0)  # the same NCHW computation whatever the input strides
print("step ok")
"""


@pytest.mark.parametrize("detector", ["centernet", "fcos"])
def test_train_step_on_channels_last_batch_finishes(detector):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-c", STEP_SCRIPT, detector], env=env, capture_output=True, text=True,
                          timeout=120)
    # A negative return code is the signal that killed it (-11 SIGSEGV, -6 SIGABRT on heap corruption).
    assert proc.returncode == 0, f"return code {proc.returncode}\n{proc.stderr[-3000:]}"
    assert "step ok" in proc.stdout


def test_trunk_runs_nchw_for_channels_last_input():
    # Forward only (the crash was in backward): every FPN map comes out NCHW-contiguous, not channels_last.
    torch.manual_seed(0)
    m = CenterNetLite((8, 16, 32, 64), 16, 2)
    x = torch.randn(1, 3, 64, 64).contiguous(memory_format=torch.channels_last)
    f = m.trunk(x)[2]
    assert f.shape == (1, 16, 32, 32)
    assert f.is_contiguous() and not f.is_contiguous(memory_format=torch.channels_last)


def test_benchmark_detector_rows_finish_at_the_crashing_size():
    """benchmarks/maskfocal_bench.py at 128^2, batch 1 (the smallest size that crashed), one repeat."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, str(ROOT / "benchmarks" / "maskfocal_bench.py"), "--repeats", "1", "--batch", "1",
           "--image-size", "128", "--threads", "1"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=180, cwd=ROOT)
    assert proc.returncode == 0, f"return code {proc.returncode}\n{proc.stderr[-3000:]}"
    lines = proc.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("detector training step")) + 1
    rows = [line.rsplit(None, 1) for line in lines[start:] if line.strip()]
    assert [name.strip() for name, _ in rows] == ["centernet + native", "centernet + mfl", "fcos + native",
                                                 "fcos + mfl"]
    assert all(float(ips) > 0 for _, ips in rows)
