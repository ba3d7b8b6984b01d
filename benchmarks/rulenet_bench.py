"""Throughput benchmark of `rulenet` vs the deep ensemble and the GBDT peer: items/s for training and inference.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
(system `rulenet`, specs/rulenet.md sections 5 and 8).

Command:  python benchmarks/rulenet_bench.py [--items 4000] [--repeats 3] [--threads 2]
Expected: about 1-2 minutes on 2 CPU cores at the defaults.
Command:  python benchmarks/rulenet_bench.py --knn 10000,100000,1000000 [--threads 2]
          the knn_rows graph (k = 6 over 5-channel rows): the kd-tree index vs the O(N^2) chunked cdist, seconds
          (cdist only up to --knn-exact-max rows, 100k by default: it is quadratic); one run each.

What is measured (same generated items, M = 16 observations of 5 channels + 1 quality channel, for every model):
    rulenet train   one joint-phase epoch (link=search: GNN + rule network + search linking), items / s
    rulenet graft   one joint-phase epoch with link=graft, items / s
    ensemble train  one epoch of ONE deep-ensemble member (GNN encoder + MLP 64-64) x 5 members, items / s
    GBDT train      HistGradientBoostingClassifier.fit on summary statistics (incl. computing them), items / s
    inference       hard-rule prediction (rulenet), averaged 5-member probabilities (ensemble), GBDT predict_proba,
                    each including its feature computation, on the same test items, items / s
The graph construction (cdist + top-k per item) is part of the data preparation and reported separately.
Each timing is the median of --repeats runs after one warm-up; wall-clock via time.perf_counter.
"""

from __future__ import annotations

import argparse
import time

import torch
from timing import median_seconds

from tenfold.core.config import make_config
from tenfold.systems.rulenet.baselines import (EnsembleMember, fit_deep_ensemble, make_peers, static_onehot,
                                               summary_stats, train_member)
from tenfold.systems.rulenet.config import PROFILES, Config
from tenfold.systems.rulenet.linking import GradientLinkingSearch
from tenfold.systems.rulenet.pipeline import predict, prepare_run
from tenfold.systems.rulenet.train import make_optimizer, run_epoch




def knn_bench(sizes: list[int], exact_max: int) -> None:
    """Seconds of knn_rows_graph (k = 6) at each size, index vs exact, on standard-normal 5-channel rows."""
    from tenfold.systems.rulenet.graph import knn_rows_graph

    knn_rows_graph(torch.randn(100, 5), 6, method="index")  # warm-up: the scikit-learn import is not timed
    print("rows\tindex_s\texact_s\tratio")
    for n in sizes:
        x = torch.randn(n, 5, generator=torch.Generator().manual_seed(0))
        t0 = time.perf_counter()
        knn_rows_graph(x, 6, method="index")
        t_index = time.perf_counter() - t0
        t_exact = float("nan")
        if n <= exact_max:
            t0 = time.perf_counter()
            knn_rows_graph(x, 6, method="exact")
            t_exact = time.perf_counter() - t0
        print(f"{n}\t{t_index:.2f}\t{t_exact:.2f}\t{t_exact / t_index:.1f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--items", type=int, default=4000)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--knn", type=str, default="", help="comma-separated row counts: the knn_rows graph benchmark")
    ap.add_argument("--knn-exact-max", type=int, default=100_000)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.knn:
        knn_bench([int(v) for v in args.knn.split(",")], args.knn_exact_max)
        return
    n = args.items
    cfg = make_config(Config, PROFILES, "quick", {"data.num_train": n, "data.num_val": 1000, "data.num_test": n})
    t0 = time.perf_counter()
    ctx = prepare_run(cfg)
    prep_s = time.perf_counter() - t0
    model, tr, te = ctx["model"], ctx["prepared"]["train"], ctx["prepared"]["test"]
    opt = make_optimizer(model, cfg)
    gen = torch.Generator().manual_seed(0)
    searcher = GradientLinkingSearch(cfg.train.eta0, cfg.train.num_doublings, cfg.train.projection_steps)
    rows = []
    for link in ("search", "graft"):
        c = make_config(Config, PROFILES, "quick", {"data.num_train": n, "train.link": link})
        s = median_seconds(lambda c=c: run_epoch("joint", model, tr, opt, c, 0.3, gen, searcher), args.repeats)
        rows.append((f"rulenet train (link={link})", n / s))
    rows.append(("rulenet inference (hard rules)", n / median_seconds(lambda: predict(model, te, cfg), args.repeats)))
    levels = {"grade": ["H", "L", "M"]}
    onehot = static_onehot(tr, levels)
    dim_in = tr.tensors["obs"].shape[-1] + tr.tensors["quality"].shape[-1]
    member = EnsembleMember(dim_in, onehot.shape[1])
    s = median_seconds(lambda: train_member(member, tr, onehot, 1, cfg.train.batch_size, 1e-3, gen), args.repeats)
    rows.append(("deep ensemble train (5 members)", n / (5 * s)))
    ens = fit_deep_ensemble(tr, ctx["prepared"]["val"], 5, 1, 0)
    rows.append(("deep ensemble inference (5 members)", n / median_seconds(lambda: ens.predict(te), args.repeats)))
    gbdt = make_peers(tr, 0)[0]
    s = median_seconds(lambda: gbdt.estimator.fit(summary_stats(tr, gbdt.levels), (tr.tensors["labels"].numpy() == 0)),
              args.repeats)
    rows.append(("GBDT train (HistGB, summary stats)", n / s))
    gbdt.threshold = 0.5
    rows.append(("GBDT inference", n / median_seconds(lambda: gbdt.predict(te), args.repeats)))
    print(f"rulenet benchmark: {n} items, M = 16, {args.threads} threads, median of {args.repeats}; "
          f"data preparation (generate {n + 1000 + n} items, graphs): {prep_s:.1f} s")
    print(f"{'model':42s} {'items/s':>10s}")
    for name, ips in rows:
        print(f"{name:42s} {ips:10.0f}")
    base = dict(rows)
    print(f"rulenet/ensemble training speed ratio: {base['rulenet train (link=search)'] / base['deep ensemble train (5 members)']:.2f}")
    print(f"rulenet/ensemble inference speed ratio: "
          f"{base['rulenet inference (hard rules)'] / base['deep ensemble inference (5 members)']:.2f}")


if __name__ == "__main__":
    main()
