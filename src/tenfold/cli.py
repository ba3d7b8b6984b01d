"""The one command-line entry point: `tenfold` (also `python -m tenfold`).

    tenfold list
    tenfold show <key> [--profile P] [--set k=v ...]
    tenfold train <key> --profile P [--set k=v ...] [--out DIR] [--seed N] [--device D]
    tenfold eval --run DIR
    tenfold smoke [keys...]
    tenfold reproduce [keys...] [--profile quick] [--seed BASE] [--seeds N] [--out DIR] [--force] [--jobs N]
    tenfold predict <key> --run DIR --input PATH --output PATH [--bars N] [--support PATH]
    tenfold report DIR

Exit codes: 0 success; 2 usage or input error (the message names the field or file); 1 a failed run.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Callable

from tenfold.core.claims import format_table
from tenfold.core.config import PROFILE_NAMES, load_config, make_config, parse_set_args, to_dict
from tenfold.core.errors import InputError, RunFailed
from tenfold.core.registry import SystemSpec
from tenfold.core.reproduction import DEFAULT_NUM_SEEDS, DEFAULT_SEED_BASE
from tenfold.core.runtime import LOGGER_NAME, select_device
from tenfold.systems import get_system

# The extra flags of `tenfold predict`: a system takes the ones its `SystemSpec.predict_options` names.
PREDICT_OPTIONS = ("bars", "support")

log = logging.getLogger(LOGGER_NAME)


class UsageError(InputError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that raises instead of exiting, so `main(argv)` is callable in-process."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}")


def _systems() -> dict[str, SystemSpec]:
    from tenfold.systems import SYSTEMS

    return SYSTEMS


def _build_config(spec: SystemSpec, profile: str, sets: list[str] | None, seed: int | None = None,
                  device: str | None = None):
    overrides: dict[str, object] = dict(parse_set_args(sets))
    if seed is not None:
        overrides["seed"] = seed
    if device is not None:
        overrides["device"] = device
    return make_config(spec.config_cls, spec.profiles, profile, overrides)


def cmd_list(args: argparse.Namespace) -> int:
    for key, spec in _systems().items():
        print(f"{key:10s} {spec.title} (arXiv {spec.arxiv})")
    return 0


def cmd_show(args: argparse.Namespace) -> int:
    spec = get_system(args.key)
    cfg = _build_config(spec, args.profile, args.set)
    print(json.dumps(to_dict(cfg), indent=2))
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    spec = get_system(args.key)
    cfg = _build_config(spec, args.profile, args.set, args.seed, args.device)
    select_device(cfg.device)  # a bad device is an input error before anything is written
    out = Path(args.out) if args.out else Path("runs") / f"{spec.key}-{args.profile}"
    check_out_dir(out, "--out")
    log.info("training %s (%s profile) in %s", spec.key, args.profile, out)
    metrics = spec.train(cfg, out)
    # Written last: `eval` needs it, and a run killed before the end is resumed by `train`, not evaluated.
    (out / "run.json").write_text(json.dumps({"system": spec.key, "profile": args.profile}) + "\n")
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def check_out_dir(out: Path, flag: str) -> None:
    """An output folder must be a folder (or not exist yet) whose nearest existing ancestor is writable."""
    if out.exists() and not out.is_dir():
        raise InputError(f"{flag} {out}: exists and is not a directory")
    probe = out
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if not probe.is_dir() or not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{flag} {out}: cannot write there ({probe} is not a writable directory)")


def _run_system(out: Path) -> SystemSpec:
    run_json = out / "run.json"
    if not run_json.exists():
        raise InputError(f"{run_json}: not found; --run must be a directory written by `tenfold train`")
    try:
        key = json.loads(run_json.read_text(encoding="utf-8"))["system"]
    except (json.JSONDecodeError, UnicodeDecodeError, KeyError, TypeError, RecursionError):
        raise InputError(f"{run_json}: field 'system' missing or file not valid UTF-8 JSON") from None
    if not isinstance(key, str):
        raise InputError(f"{run_json}: field 'system' must be a system name, got {key!r}")
    try:
        return get_system(key)
    except ValueError as err:
        raise InputError(f"{run_json}: field 'system': {err}") from None


def cmd_eval(args: argparse.Namespace) -> int:
    out = Path(args.run)
    spec = _run_system(out)
    cfg = load_config(spec.config_cls, out / "config.json")
    metrics = spec.evaluate(cfg, out)
    print(json.dumps(metrics, indent=2, default=str))
    return 0


def cmd_smoke(args: argparse.Namespace) -> int:
    keys = args.keys or list(_systems())
    specs = [get_system(k) for k in keys]
    failed = []
    for spec in specs:
        t0 = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix=f"tenfold-smoke-{spec.key}-") as tmp:
            try:
                cfg = make_config(spec.config_cls, spec.profiles, "smoke")
                spec.train(cfg, Path(tmp))
                metrics = spec.evaluate(cfg, Path(tmp))
                print(f"{spec.key}: ok in {time.perf_counter() - t0:.1f} s  {json.dumps(metrics, default=str)[:300]}")
            except Exception:  # report every system, then fail
                traceback.print_exc()
                print(f"{spec.key}: FAILED after {time.perf_counter() - t0:.1f} s")
                failed.append(spec.key)
    return 1 if failed else 0


def cmd_reproduce(args: argparse.Namespace) -> int:
    from tenfold.core.reproduction import claim_seeds, reproduce

    keys = list(dict.fromkeys(args.keys)) if args.keys else list(_systems())
    for key in keys:
        get_system(key)  # an unknown name is an input error before anything runs
    if args.seeds < 1:
        raise InputError(f"--seeds must be >= 1, got {args.seeds}")
    if args.jobs < 1:
        raise InputError(f"--jobs must be >= 1, got {args.jobs}")
    seeds = claim_seeds(args.seed, args.seeds)
    out = Path(args.out)
    check_out_dir(out, "--out")
    claims, meta = reproduce(keys, args.profile, seeds, out, force=args.force, jobs=args.jobs)
    print(format_table(claims))
    for key, facts in meta["systems"].items():
        cached = f" (seeds {facts['cached_seeds']} from the cache)" if facts["cached_seeds"] else ""
        print(f"{key}: {facts['status']} in {facts['wall_time_s']:.1f} s{cached}")
    print(f"report: {out / 'index.html'}")
    broken_checks = [c for c in claims if c.kind == "check" and c.verdict != "holds"]
    for c in broken_checks:
        print(f"CHECK FAILED (a bug): {c.system}: {c.claim} [{c.metric}] {c.reason}", file=sys.stderr)
    return 1 if broken_checks or any(m["status"] != "ok" for m in meta["systems"].values()) else 0


def cmd_predict(args: argparse.Namespace) -> int:
    spec = get_system(args.key)
    if spec.predict is None:
        offered = sorted(k for k, s in _systems().items() if s.predict is not None)
        raise InputError(f"system {spec.key!r} does not offer predict; systems that do: {', '.join(offered)}")
    run = Path(args.run)
    owner = _run_system(run)
    if owner.key != spec.key:
        raise InputError(f"{run / 'run.json'}: the run was trained by {owner.key!r}, not {spec.key!r}")
    extras = {name: getattr(args, name) for name in PREDICT_OPTIONS if getattr(args, name) is not None}
    for name in extras:
        if name not in spec.predict_options:
            offered = ", ".join(f"--{o}" for o in spec.predict_options) or "none"
            raise InputError(f"--{name}: system {spec.key!r} does not take this option (its options: {offered})")
    if "support" in extras:
        extras["support"] = Path(extras["support"])
        if not extras["support"].exists():
            raise InputError(f"--support {extras['support']}: not found")
    if "bars" in extras and extras["bars"] < 1:
        raise InputError(f"--bars {extras['bars']}: expected a positive number of bars")
    inp, outp = Path(args.input), Path(args.output)
    if not inp.exists():
        raise InputError(f"--input {inp}: not found")
    if outp.exists() and outp.is_dir():
        raise InputError(f"--output {outp}: is a directory; give a file path")
    result = spec.predict(run, inp, outp, **extras)
    print(json.dumps(result, indent=2, default=str))
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    from tenfold.core.report import rerender

    folder = Path(args.dir)
    check_out_dir(folder, "report DIR")
    try:
        paths = rerender(folder)
    except (FileNotFoundError, ValueError, KeyError) as err:
        raise InputError(str(err)) from None
    print(f"report: {paths['html']}")
    return 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "list": cmd_list, "show": cmd_show, "train": cmd_train, "eval": cmd_eval,
    "smoke": cmd_smoke, "reproduce": cmd_reproduce, "predict": cmd_predict, "report": cmd_report,
}


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="tenfold", description=__doc__.split("\n")[0])
    p.add_argument("--quiet", action="store_true", help="no progress bars or info logging")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="list the systems")
    s = sub.add_parser("show", help="print a resolved config")
    s.add_argument("key")
    s.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    s.add_argument("--set", action="append", metavar="KEY=VALUE")
    s = sub.add_parser("train", help="train one system into a run directory (resumes from its checkpoint)")
    s.add_argument("key")
    s.add_argument("--profile", required=True, choices=PROFILE_NAMES)
    s.add_argument("--set", action="append", metavar="KEY=VALUE")
    s.add_argument("--out", help="run directory (default runs/<key>-<profile>)")
    s.add_argument("--seed", type=int, help="overrides the config's seed")
    s.add_argument("--device", help="cpu | cuda | auto (default: the config's, auto = cuda when available)")
    s = sub.add_parser("eval", help="evaluate a run directory written by train")
    s.add_argument("--run", required=True)
    s = sub.add_parser("smoke", help="train + evaluate the smoke profile of each system")
    s.add_argument("keys", nargs="*")
    s = sub.add_parser("reproduce", help="run each paper's claim, method vs baselines, over paired seeds, and "
                       "write the report (resumes: systems already done with the same code are skipped)")
    s.add_argument("keys", nargs="*")
    s.add_argument("--profile", default="quick", choices=PROFILE_NAMES)
    s.add_argument("--seed", type=int, default=DEFAULT_SEED_BASE, help="the first claim seed (default %(default)s)")
    s.add_argument("--seeds", type=int, default=DEFAULT_NUM_SEEDS, help="number of claim seeds (default %(default)s)")
    s.add_argument("--out", default="reports/latest")
    s.add_argument("--force", action="store_true", help="redo every (system, seed), ignoring the cache")
    s.add_argument("--jobs", type=int, default=1,
                   help="run (system, seed) units in this many processes, the cores split between them")
    s = sub.add_parser("predict", help="apply a trained run to your own inputs (in the field's format)")
    s.add_argument("key")
    s.add_argument("--run", required=True, help="a run directory written by `tenfold train`")
    s.add_argument("--input", required=True)
    s.add_argument("--output", required=True)
    s.add_argument("--bars", type=int, help="drumlm: how many bars to generate")
    s.add_argument("--support", help="reft: the support set (COCO JSON with K annotated images per novel class)")
    s = sub.add_parser("report", help="re-render a report directory from its claims.json")
    s.add_argument("dir")
    return p


def main(argv: list[str] | None = None) -> int:
    """Run the CLI in-process and return its exit code."""
    try:
        args = build_parser().parse_args(argv)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except SystemExit as exit_:  # --help
        return int(exit_.code or 0)
    logging.basicConfig(format="%(levelname)s %(name)s: %(message)s")
    logging.getLogger(LOGGER_NAME).setLevel(logging.WARNING if args.quiet else logging.INFO)
    try:
        return COMMANDS[args.command](args)
    except InputError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except RunFailed as err:
        print(f"failed: {err}", file=sys.stderr)
        return 1
    except Exception:
        traceback.print_exc()
        return 1


def main_entry() -> None:
    sys.exit(main())
