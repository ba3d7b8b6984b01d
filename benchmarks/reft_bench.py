"""RefT inference and training speed with and without the two references, and the masked cross-attention against
torch's scaled_dot_product_attention.

Paper: Han et al., "Reference Twice: A Simple and Unified Baseline for Few-Shot Instance Segmentation", arXiv
2301.01156 (system `reft`, TinyMask2Former of spec component 1 + the references of spec components 2-5).

Command:  flock /tmp/tenfold-train.lock .venv/bin/python benchmarks/reft_bench.py [--repeats 5] [--profile quick]
          [--threads 1]; `--tiny` (= --profile smoke --repeats 1) runs in seconds.
Expected: ~15 s at the quick profile with --repeats 3 (~25 s at the default 5) on the shared 2-core machine,
          one thread; ~4 s with --tiny.

What is timed (the profile's model and fine-tuning sizes, fresh random weights, one torch thread unless
--threads; median of `--repeats` after one warm-up; the arms, and ours vs SDPA, are timed in turns). Arms =
reproduce.ARMS, built with train.build_model: reft (both references), finetune (Mask2Former + ft-full: no
reference module), no_feature (query link only), no_link (feature-level reference only).
    inference       train.predict_samples on `--images` test images (batch 16): forward with the references +
                    instance_inference; images/s. The references (train.references_for on the K-shot set, K =
                    reproduce.ablation_shots) are built once outside the timed call, as in evaluation, and timed
                    on their own ("support encode").
    train step      train.fit for `train.support_refresh_steps` steps (the fine-tuning call of train.finetune:
                    ft_lr, ft_batch_size, K-shot set, all parameters trainable as finetune does for K > 5; the
                    smoke K = 2 would freeze the backbone there), divided by the step count.
                    Deviation: train.py has no one-step function, so the smallest real unit is one `fit` call;
                    per step it includes 1/steps of the call's set-up (SetCriterion, AdamW, sampler) and, for
                    the arms with a reference, of one episodic support re-encode (as in training: one re-encode
                    every support_refresh_steps steps).
    masked attn     the decoder's masked cross-attention core, reference.attention (explicit
                    softmax(q k^T / sqrt(d), blocked -> -inf) v, what DecoderLayer.cross runs) vs
                    F.scaled_dot_product_attention with the boolean mask ~blocked (True = attend), forward
                    only, at the profile's decoder sizes (batch ft_batch_size, keys of the 1/8 level) and at
                    Mask2Former's COCO sizes (one image, 100 queries, 8 heads x 32, 1/8 of 800 x 1088). Every
                    4th query row is fully blocked before RefT.predict's rule ("a fully masked row attends
                    everywhere": blocked & ~blocked.all(-1)) is applied; both functions get the ruled mask.
                    Printed: max |ours - SDPA|, max |ruled full rows - unmasked attention|, and the NaN rows of
                    each function on the raw (unruled) mask (torch 2.14's CPU SDPA returns zero rows there).
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from timing import interleaved_medians

from tenfold.core.config import make_config
from tenfold.systems.reft import shapes
from tenfold.systems.reft.config import PROFILES, Config
from tenfold.systems.reft.data import kshot_set, load_data
from tenfold.systems.reft.reference import attention
from tenfold.systems.reft.reproduce import ARMS
from tenfold.systems.reft.train import build_model, fit, predict_samples, references_for

LABELS = {"reft": "reft (both references)", "finetune": "finetune (no reference)",
          "no_feature": "no_feature (query link only)", "no_link": "no_link (feature ref. only)"}


def sdpa(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, blocked: torch.Tensor) -> torch.Tensor:
    """torch's fused attention; its boolean attn_mask is True where a query MAY attend, ours True = blocked."""
    return F.scaled_dot_product_attention(q, k, v, attn_mask=~blocked)


def attention_inputs(b: int, heads: int, n: int, hw: int, dh: int, seed: int = 0):
    """q [B, h, N, dh], k = v [B, h, hw, dh] (memory), the raw blocked mask [B, 1, N, hw] (every 4th row fully
    blocked) and the mask after RefT.predict's rule (fully blocked rows unmasked)."""
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(b, heads, n, dh, generator=g)
    k, v = torch.randn(b, heads, hw, dh, generator=g), torch.randn(b, heads, hw, dh, generator=g)
    raw = torch.rand(b, n, hw, generator=g) < 0.5
    raw[:, ::4] = True  # the previous layer's mask covers no key for these queries
    ruled = raw & ~raw.all(-1, keepdim=True)  # model.RefT.predict: a fully masked row attends everywhere
    return q, k, v, raw[:, None], ruled[:, None]  # [B, 1, N, hw]: same mask for every head (MultiHeadAttention)


def compare_attention(name: str, shape: tuple[int, int, int, int, int], repeats: int) -> str:
    b, heads, n, hw, dh = shape
    q, k, v, raw, ruled = attention_inputs(*shape)
    ours, ref = attention(q, k, v, ruled), sdpa(q, k, v, ruled)
    full = raw[:, 0].all(-1)  # [B, N] rows that were fully blocked
    dense = attention(q, k, v)  # no mask at all
    full_diff = (ours - dense).transpose(1, 2)[full].abs().max()  # ruled full rows == unmasked attention
    nan_ours = int(attention(q, k, v, raw).isnan().any(-1).sum())
    unruled = sdpa(q, k, v, raw)
    nan_sdpa, zero_sdpa = int(unruled.isnan().any(-1).sum()), int((unruled == 0).all(-1).sum())
    med = interleaved_medians({"ours": lambda: attention(q, k, v, ruled), "sdpa": lambda: sdpa(q, k, v, ruled)},
                              repeats)
    t_ours, t_sdpa = med["ours"], med["sdpa"]
    return (f"  {name}: B {b}, {heads} heads x {dh}, {n} queries, {hw} keys, {float(ruled.float().mean()):.0%} "
            f"blocked\n"
            f"    ours (reference.attention) {t_ours * 1e3:8.3f} ms   SDPA {t_sdpa * 1e3:8.3f} ms   "
            f"ours / SDPA {t_ours / t_sdpa:5.2f}\n"
            f"    max |ours - SDPA| {float((ours - ref).abs().max()):.1e}; fully blocked rows after the rule: "
            f"max |ours - unmasked| {float(full_diff):.1e}; without the rule, NaN rows (of {heads * b * n}): "
            f"ours {nan_ours}, SDPA {nan_sdpa} "
            f"(SDPA all-zero rows {zero_sdpa})")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--profile", default="quick", choices=("smoke", "quick", "full"))
    ap.add_argument("--tiny", action="store_true", help="= --profile smoke --repeats 1 (seconds)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--images", type=int, default=32, help="test images per timed inference call")
    args = ap.parse_args()
    if args.tiny:
        args.profile, args.repeats, args.images = "smoke", 1, 8
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    base = make_config(Config, PROFILES, args.profile, {"seed": 0})
    # Design choice: only the test split is timed; the base-training split is cut to a few images (not used).
    cfg = make_config(Config, PROFILES, args.profile, {"seed": 0, "data.num_base_train": base.train.batch_size,
                                                       "data.num_test": args.images})
    k_shots, steps = cfg.reproduce.ablation_shots, cfg.train.support_refresh_steps
    m, t = cfg.model, cfg.train
    with tempfile.TemporaryDirectory() as tmp:
        data = load_data(cfg, Path(tmp))
    kshot = kshot_set(data, "fsis", k_shots, 0)
    num_classes = len(data.split.all_ids)
    px = shapes.PRESETS[cfg.data.preset].image_size
    models, refs = {}, {}
    for arm, (method, switches) in ARMS.items():
        torch.manual_seed(0)
        models[arm] = build_model(cfg, num_classes, method, switches).eval()
        refs[arm] = references_for(models[arm], data, kshot)  # built once, as in evaluation (None: finetune)
    encode = interleaved_medians({arm: (lambda a=arm: references_for(models[a], data, kshot))
                                  for arm in ARMS if refs[arm] is not None}, args.repeats)
    infer = interleaved_medians({arm: (lambda a=arm: predict_samples(models[a], refs[a], data.test,
                                                                      data.class_ids)) for arm in ARMS},
                                args.repeats)
    train = interleaved_medians({arm: (lambda a=arm: fit(models[a], cfg, data, kshot, steps, t.ft_lr,
                                                         t.ft_batch_size, np.random.default_rng(0)))
                                 for arm in ARMS}, args.repeats)
    rows = [(arm, len(data.test) / infer[arm], train[arm] / steps, encode.get(arm)) for arm in ARMS]

    support = sum(len(s.category_ids) for s in kshot)
    print(f"reft {args.profile}, {args.threads} thread(s), torch {torch.__version__}, median of {args.repeats} "
          f"after 1 warm-up, arms timed in turns; {px} px, {num_classes} classes, K = {k_shots} ({support} "
          f"support instances), hidden {m.hidden_dim}, {m.num_queries} queries, {m.dec_layers} layers")
    print(f"  {'arm':30s} {'inference img/s':>16s} {'train step ms':>14s} {'support encode ms':>18s}")
    ref_infer, ref_train = len(data.test) / infer["finetune"], train["finetune"] / steps  # no reference module
    for arm, ips, step, enc in rows:
        enc_s = f"{enc * 1e3:18.1f}" if enc is not None else f"{'-':>18s}"
        print(f"  {LABELS[arm]:30s} {ips:9.1f} ({ips / ref_infer:4.2f}x) {step * 1e3:7.1f} ({step / ref_train:4.2f}x)"
              f" {enc_s}")
    print(f"  (x = relative to finetune; train step = fit({steps} steps, batch {t.ft_batch_size}) / {steps}, "
          f"support re-encode and set-up amortised; inference batch 16 on {len(data.test)} images, references "
          f"built once outside)")
    print("masked cross-attention forward (fp32):")
    hw = (-(-px // 32) * 32 // 8) ** 2  # keys of the 1/8 level of the padded image
    print(compare_attention("profile decoder", (t.ft_batch_size, m.num_heads, m.num_queries, hw,
                                                m.hidden_dim // m.num_heads), args.repeats))
    print(compare_attention("Mask2Former COCO", (1, 8, 100, math.ceil(800 / 8) * math.ceil(1088 / 8), 32),
                            args.repeats))
    print(f"wall {time.perf_counter() - t0:.1f} s")


if __name__ == "__main__":
    main()
