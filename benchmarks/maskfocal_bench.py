"""Loss and detector throughput of `maskfocal`: Mask Focal Loss vs the CenterNet focal loss vs torchvision's
sigmoid focal loss (time per batch), and CenterNetLite / FCOSLite training images/s with each loss.

Paper: Zhong, Wang, Liu, Wu, Deng, "Mask Focal Loss: A unifying framework for dense crowd counting with canonical
object detection networks", arXiv 2212.11542 (system `maskfocal`, specs/maskfocal.md sections 2.3-2.6).

Command:  python benchmarks/maskfocal_bench.py [--repeats 20] [--image-size 128] [--batch 8] [--threads 2]
          [--device cpu|cuda]
Expected: about 10-20 s on the shared 2 CPU cores (11.0 s with --threads 1 under load after issue 19; 10.2 s at
          the defaults before it).

What is measured (one run, side by side):
    loss rows      forward + backward of one classification loss on a (batch, 1, H/4, W/4) logit map with a
                   SynthCrowd-like heatmap target (200 heads per image); median over --repeats after 3 warm-ups.
                   torchvision = torchvision.ops.sigmoid_focal_loss(reduction="sum") / N_pos on the binary box map
                   (the FCOS/RetinaNet host loss); centernet = loss.centernet_focal_loss; mfl = loss.MaskFocalLoss
                   (box mask, weighted) and mfl-soft.
    detector rows  one full training step (forward, loss dict, backward, Adam step) of CenterNetLite / FCOSLite
                   at the quick profile's width with the native loss and with MFL; images/s = batch / median step
                   time; targets are built once beforehand (train.py keeps them in its target cache), so they
                   are not timed.
# Design choice: medians, not means, because the 2-core machine is shared and timings have long tails.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch


def _time(fn, repeats: int, sync) -> float:
    for _ in range(3):
        fn()
    out = []
    for _ in range(repeats):
        sync()
        t0 = time.perf_counter()
        fn()
        sync()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def loss_rows(args, device, sync) -> list[tuple[str, float]]:
    from torchvision.ops import sigmoid_focal_loss

    from tenfold.systems.maskfocal.heatmap import centernet_targets
    from tenfold.systems.maskfocal.loss import MaskFocalLoss, centernet_focal_loss

    rng = np.random.default_rng(0)
    size = args.image_size
    tg = []
    for _ in range(args.batch):
        c = rng.uniform(0, size, (200, 2))
        s = rng.uniform(2, 12, (200, 1))
        tg.append(centernet_targets(np.clip(np.concatenate([c - s / 2, c + s / 2], 1), 0, size), (size, size), 4))
    Y = torch.tensor(np.stack([t["heatmap"] for t in tg]), device=device)  # (B, 1, H/4, W/4)
    M = torch.tensor(np.stack([t["mask_box"] for t in tg]), device=device)
    T = torch.tensor(np.stack([t["box_map"] for t in tg]), device=device)
    z = torch.randn(Y.shape, device=device, requires_grad=True)
    heads = float(len(tg) * 200)
    fns = {
        "torchvision sigmoid_focal_loss": lambda: (sigmoid_focal_loss(z, T, 0.25, 2, "sum") / T.sum()).backward(),
        "centernet_focal_loss": lambda: centernet_focal_loss(z, Y, num_heads=heads).backward(),
        "MaskFocalLoss (box, weighted)": lambda: MaskFocalLoss()(z, Y, M).backward(),
        "MaskFocalLoss (box, soft)": lambda: MaskFocalLoss(variant="soft")(z, Y, M).backward(),
    }
    return [(name, _time(fn, args.repeats, sync)) for name, fn in fns.items()]


def detector_rows(args, device, sync) -> list[tuple[str, float]]:
    from tenfold.core.config import make_config
    from tenfold.systems.maskfocal.config import PROFILES, Config
    from tenfold.systems.maskfocal.data import make_synth_crowd
    from tenfold.systems.maskfocal.heatmap import centernet_targets, fcos_targets
    from tenfold.systems.maskfocal.loss import build_cls_loss
    from tenfold.systems.maskfocal.model import build_model
    from tenfold.systems.maskfocal.train import collate, loss_terms, total_loss

    frames = make_synth_crowd(0, args.batch, args.image_size, 20, 320)
    # (B, H, W, 3) -> (B, 3, H, W) uint8 in NCHW memory, as HeadSet.batch gives training. Stacking (3, H, W)
    # views of the HWC images kept their channels_last strides: the step then timed oneDNN's NHWC kernels, one
    # of which crashed (model.Trunk.forward).
    images = torch.from_numpy(np.stack([f.image for f in frames])).permute(0, 3, 1, 2).contiguous().to(device)
    rows = []
    for det in ("centernet", "fcos"):
        for loss in ("native", "mfl"):
            cfg = make_config(Config, PROFILES, "quick", {"model.detector": det, "loss.cls_loss": loss,
                                                          "data.image_size": args.image_size})
            boxes = [f.boxes[(f.visibility >= 0.2) & (f.boxes[:, 2] > f.boxes[:, 0])] for f in frames]
            hw = (args.image_size, args.image_size)
            m = cfg.model
            tg = ([centernet_targets(b, hw, m.output_stride) for b in boxes] if det == "centernet" else
                  [fcos_targets(b, hw, m.fcos_strides, m.fcos_size_split, m.center_sampling_radius) for b in boxes])
            torch.manual_seed(0)
            model = build_model(m).to(device)
            opt = torch.optim.Adam(model.parameters(), lr=1e-3)
            tgt = collate(cfg, tg[:args.batch], device)  # the batch's targets in batch order
            mfl = build_cls_loss(cfg.loss)

            def step():
                loss_v = total_loss(cfg, loss_terms(cfg, model, images, tgt, mfl))
                opt.zero_grad()
                loss_v.backward()
                opt.step()

            rows.append((f"{det} + {loss}", args.batch / _time(step, max(3, args.repeats // 4), sync)))
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--repeats", type=int, default=20)
    p.add_argument("--image-size", type=int, default=128)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--device", default="cpu")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    print(f"maskfocal benchmark: device {device}, threads {args.threads}, batch {args.batch}, "
          f"image {args.image_size}^2, torch {torch.__version__}")
    print(f"\n{'classification loss (fwd + bwd)':40s} {'ms / batch':>12s}")
    for name, t in loss_rows(args, device, sync):
        print(f"{name:40s} {1000 * t:12.3f}")
    print(f"\n{'detector training step':40s} {'images / s':>12s}")
    for name, ips in detector_rows(args, device, sync):
        print(f"{name:40s} {ips:12.1f}")


if __name__ == "__main__":
    main()
