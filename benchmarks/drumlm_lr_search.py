"""drumlm: the learning-rate search behind the quick profile's train.lr_a / lr_b / lr_c (not a timing benchmark).

Paper: Zhang, Callison-Burch, "Language Models are Drummers", arXiv 2301.01162; spec specs/drumlm.md section 3,
step 2: "B and C each get their own learning rate chosen on dev NLL (from-scratch models need larger rates)".

Every arm gets the same search: the same grid size (3 rates), the same quick-profile steps / batch / data as the
claim runs, selection by dev NLL per drum line. Run on a development seed only (default 1, in drumlm's DEV_SEEDS;
the claim seeds 1000-1002 are never touched) and on dev windows the claim rows do not score
(records["dev"][eval.dev_windows : eval.dev_windows + --select-windows]).

Command:  flock /tmp/tenfold-train.lock .venv/bin/python benchmarks/drumlm_lr_search.py [--seed 1] [--arms A B C]
          [--steps-c N]
Expected: ~15 min on 2 quiet CPU cores (A / B ~70 s per rate, C ~1.5 s per step). Prints one line per (arm, rate)
and the chosen rate per arm.
"""

from __future__ import annotations

import argparse
import math
import tempfile
import time
from pathlib import Path

from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.drumlm.arms import dev_nll, load_arm, load_records
from tenfold.systems.drumlm.config import DEV_SEEDS, PROFILES, Config
from tenfold.systems.drumlm.train import train_arm

GRID = {"A": (3e-5, 1e-4, 3e-4), "B": (3e-4, 1e-3, 3e-3), "C": (3e-4, 1e-3, 3e-3)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", default="quick", choices=["smoke", "quick"], help="smoke: a seconds-long check")
    ap.add_argument("--arms", nargs="+", default=["A", "B", "C"], choices=sorted(GRID))
    ap.add_argument("--select-windows", type=int, default=16)
    ap.add_argument("--steps-c", type=int, default=0, help="override train.steps_c (0 = the quick profile's)")
    args = ap.parse_args()
    if args.seed not in DEV_SEEDS:
        raise SystemExit(f"--seed {args.seed} is not a drumlm development seed {DEV_SEEDS}")
    over: dict[str, object] = {"seed": args.seed}
    if args.steps_c:
        over["train.steps_c"] = args.steps_c
    if args.profile == "smoke":
        over["data.num_dev"] = 6
    base = make_config(Config, PROFILES, args.profile, over)
    _, records = load_records(base)
    lo = base.eval.dev_windows
    select = records["dev"][lo:lo + args.select_windows]
    if not select:
        raise SystemExit("no dev windows beyond the scored ones: raise data.num_dev")
    print(f"seed {args.seed}; selection windows dev[{lo}:{lo + len(select)}]; "
          f"steps A/B {base.train.steps_lm} x {base.train.batch_lm}, C {base.train.steps_c} x {base.train.batch_c}")
    for name in args.arms:
        best = (math.inf, math.nan)
        for lr in GRID[name]:
            cfg = make_config(Config, PROFILES, args.profile, {**over, "train.arms": (name,), f"train.lr_{name.lower()}": lr})
            with tempfile.TemporaryDirectory() as tmp:
                run = RunDir(Path(tmp))
                t0 = time.perf_counter()
                budget = train_arm(cfg, run, name, records["train"], {}, 0)
                nll = dev_nll(load_arm(cfg, Path(tmp), name), select)["nll_per_line"]
            print(f"arm {name} lr {lr:g}: dev NLL / line {nll:.4f} (train loss {budget['final_loss_completion']:.3f}, "
                  f"{time.perf_counter() - t0:.0f} s)", flush=True)
            if nll < best[0]:
                best = (nll, lr)
        print(f"arm {name}: chosen lr {best[1]:g} (dev NLL / line {best[0]:.4f})", flush=True)


if __name__ == "__main__":
    main()
