"""Images per second of each phase of one ssdg cycle, ours versus the official code's structure.

Paper: Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain", Pattern Recognition
2024, arXiv 2111.10221 (system `ssdg`, specs/ssdg.md sections 2, 3 and 5).

Command:  python benchmarks/ssdg_bench.py [--repeats 3] [--threads 1] [--width 32] [--batch 64]
Expected: about a minute on 2 CPU cores.

What is compared (same DigitsCNN, same batch, same random inputs, Adam):
  Phase 1 (MCD step, steps A + B + C with num_steps_f = 4)
    ours      Step A runs F once and both heads on the shared features; Step B runs F under no_grad once for the
              labeled and once for the unlabeled batch.
    official  the released structure: each classifier's forward pass runs F separately (Step A: two backbone
              passes on the labeled batch), Step B rebuilds F's graph (no no_grad; F's grads are discarded).
  Phase 2 (co-teaching step of both peers)
    ours      one forward per peer; each peer's loss reads the other's detached logits; one backward.
    official  a loop per peer: peer j's update runs both peers' forwards again (4 forwards per batch).
  Phase 3 (selection inference over D_Uk): one structure (both peers, eval mode), ours only.
Images/s counts the images of the batch (labeled + unlabeled for Phase 1) per second; ratio = ours / official.
"""

from __future__ import annotations

import argparse

import torch
from timing import median_seconds

from tenfold.systems.ssdg.generalization import peer_losses, split_by_flag
from tenfold.systems.ssdg.loss import classifier_discrepancy, input_mixup, mixup_cross_entropy
from tenfold.systems.ssdg.model import Classifier, DigitsCNN, MCDNet
from tenfold.systems.ssdg.pseudo_labeling import MCDPseudoLabeler


class _T:
    num_steps_f, mixup_alpha, discrepancy = 4, 1.0, "mean"
    optimizer, lr, weight_decay, momentum = "adam", 1e-3, 0.0, 0.9


def official_mcd_step(m: MCDPseudoLabeler, x: torch.Tensor, y: torch.Tensor, xu: torch.Tensor) -> None:
    net, t = m.net, m.t
    xm, ya, yb, lam = input_mixup(x, y, t.mixup_alpha)
    loss = mixup_cross_entropy(net.C1(net.F(xm)), ya, yb, lam) + mixup_cross_entropy(net.C2(net.F(xm)), ya, yb, lam)
    for o in m.optimizers:
        o.zero_grad()
    loss.backward()
    for o in m.optimizers:
        o.step()
    ce = mixup_cross_entropy(net.C1(net.F(xm)), ya, yb, lam) + mixup_cross_entropy(net.C2(net.F(xm)), ya, yb, lam)
    d = classifier_discrepancy(torch.softmax(net.C1(net.F(xu)), 1), torch.softmax(net.C2(net.F(xu)), 1))
    for o in m.optimizers:
        o.zero_grad()
    (ce - d).backward()
    m.opt_c1.step()
    m.opt_c2.step()
    for _ in range(t.num_steps_f):
        fu = net.F(xu)
        d = classifier_discrepancy(torch.softmax(net.C1(fu), 1), torch.softmax(net.C2(fu), 1))
        m.opt_f.zero_grad()
        d.backward()
        m.opt_f.step()


def ours_dg_step(a, b, oa, ob, x, y, flag) -> None:
    t_idx, q_idx = split_by_flag(flag)
    la, lb = a(x), b(x)
    loss = (peer_losses(la, lb, y, t_idx, q_idx, 0.5, 1.0)["loss"]
            + peer_losses(lb, la, y, t_idx, q_idx, 0.5, 1.0)["loss"])
    oa.zero_grad()
    ob.zero_grad()
    loss.backward()
    oa.step()
    ob.step()


def official_dg_step(a, b, oa, ob, x, y, flag) -> None:
    t_idx, q_idx = split_by_flag(flag)
    for j, other, opt in ((a, b, oa), (b, a, ob)):
        lj, lo = j(x), other(x)
        loss = peer_losses(lj, lo, y, t_idx, q_idx, 0.5, 1.0)["loss"]
        opt.zero_grad()
        loss.backward()
        opt.step()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch", type=int, default=64)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    bs = args.batch
    x, xu, y = torch.randn(bs, 3, 32, 32), torch.randn(bs, 3, 32, 32), torch.randint(0, 10, (bs,))
    m = MCDPseudoLabeler(MCDNet(DigitsCNN(width=args.width), 10), _T(), None)
    rows = []
    t_ours = median_seconds(lambda: m.step(x, y, xu), args.repeats)
    t_off = median_seconds(lambda: official_mcd_step(m, x, y, xu), args.repeats)
    rows.append(("Phase 1 MCD step", 2 * bs / t_ours, 2 * bs / t_off))
    a = Classifier(DigitsCNN((1, 2, 3), width=args.width), 10)
    b = Classifier(DigitsCNN((1, 2, 3), width=args.width), 10)
    oa, ob = torch.optim.Adam(a.parameters()), torch.optim.Adam(b.parameters())
    flag = torch.arange(bs) % 3 == 0
    t_ours = median_seconds(lambda: ours_dg_step(a, b, oa, ob, x, y, flag), args.repeats)
    t_off = median_seconds(lambda: official_dg_step(a, b, oa, ob, x, y, flag), args.repeats)
    rows.append(("Phase 2 co-teaching step", bs / t_ours, bs / t_off))
    big = torch.randn(512, 3, 32, 32)

    def infer() -> None:
        with torch.no_grad():
            a.eval()(big), b.eval()(big)

    t_inf = median_seconds(infer, args.repeats)
    rows.append(("Phase 3 selection inference", 512 / t_inf, float("nan")))
    print(f"threads {args.threads}, width {args.width}, batch {bs}, median of {args.repeats}")
    print(f"{'phase':30s} {'ours img/s':>12s} {'official img/s':>15s} {'ratio':>7s}")
    for name, o, f in rows:
        print(f"{name:30s} {o:12.0f} {f:15.0f} {o / f:7.2f}")


if __name__ == "__main__":
    main()
