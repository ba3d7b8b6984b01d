"""`tenfold predict rulenet`: apply a trained run's hard rules to a user's own items (issue 20, spec 4.3).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693.

    tenfold predict rulenet --run RUN --input obs.csv --output preds.csv
    tenfold predict rulenet --run RUN --input FOLDER  --output preds.csv   # FOLDER/obs.* and FOLDER/items.*

Steps:
 1. read the run: config.json and the final checkpoint (weights_only), whose `predictor` field (written by train)
    holds what the model was built from: the rules text, the channel names in order, the classes, the number of
    quality channels and the label column;
 2. read the observation table (and the item table, when there is one) with data.py's reader: the same CSV /
    Parquet formats, the same checks, plus: every trained channel present, the same number of quality channels,
    every static attribute a category atom tests present;
 3. the model's data assessing GNN and key features, then the learned hard rules (the printed decision function);
 4. write one CSV row per item: item_id, prediction, the soft score of the first rule class (a ranking score; the
    decision is the hard rules'), and the learned rules that fired (`;`-separated, in file order).
Design choice: the CLI has one `--input`; the item table is `items.csv` / `items.parquet` beside the observation
file (or in the folder). Without one, items have no static attributes (a rule that tests one is refused).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.config import Config
from tenfold.systems.rulenet.export import learned_ruleset, raw_features
from tenfold.systems.rulenet.model import RuleNet
from tenfold.systems.rulenet.pipeline import (PREDICTOR_FIELDS, load_model_state, predict as predict_items, prepare,
                                              promote_numeric_static)
from tenfold.systems.rulenet.rules import RuleSet, atom_hard, compute_features, parse_rules

TABLE_SUFFIXES = (".csv", ".parquet", ".pq")


def load_run(run_dir: Path) -> tuple[Config, RuleNet, dict[str, Any]]:
    """(config, model with the trained weights, predictor meta) of a finished run; InputError naming the file."""
    run = RunDir(run_dir)
    cfg = run.read_config(Config)
    ckpt = run.load_checkpoint()
    path = run.checkpoint_path
    if ckpt is None or ckpt.get("kind") != "final":
        raise InputError(f"{path}: no final checkpoint; expected a run trained to the end by `tenfold train rulenet`")
    meta = ckpt.get("predictor")
    if not isinstance(meta, dict) or any(k not in meta for k in PREDICTOR_FIELDS):
        raise InputError(f"{path}: field 'predictor' missing or incomplete (needs {', '.join(PREDICTOR_FIELDS)}); "
                         f"expected a run trained by this version of `tenfold train rulenet` (train it again)")
    rs = parse_rules(str(meta["rules"]), source=f"{path} (predictor.rules)")
    channels = tuple(str(c) for c in meta["channels"])
    feats = rs.numeric_features
    d = len(channels)
    # the channel and feature statistics are buffers: they come from the checkpoint's weights below
    model = RuleNet(rs, channels, torch.zeros(d), torch.ones(d), {f: 0.0 for f in feats}, {f: 1.0 for f in feats},
                    int(meta["num_quality"]), cfg.model.hidden, cfg.model.num_layers)
    load_model_state(model, ckpt.get("model"), path)
    return cfg, model, meta


def input_tables(input_path: Path) -> tuple[Path, Path | None]:
    """(observation table, item table or None) from a file or a folder holding obs.* [and items.*]."""
    input_path = Path(input_path)
    if input_path.is_dir():
        obs = [input_path / f"obs{s}" for s in TABLE_SUFFIXES if (input_path / f"obs{s}").is_file()]
        if not obs:
            raise InputError(f"--input {input_path}: no obs.csv / obs.parquet in the folder; expected the long "
                             f"observation table (item_id, obs_idx, channels) as obs.csv or obs.parquet")
        folder, obs_path = input_path, obs[0]
    else:
        folder, obs_path = input_path.parent, input_path
    items = [folder / f"items{s}" for s in TABLE_SUFFIXES if (folder / f"items{s}").is_file()]
    return obs_path, (items[0] if items else None)


def read_items(obs_path: Path, items_path: Path | None, meta: dict[str, Any]) -> D.ItemData:
    """The user's tables as ItemData in the trained channel order; labels are placeholders when absent."""
    import pandas as pd

    obs_df = D._read_table(obs_path, "observations")
    channels, label = list(meta["channels"]), str(meta["label_column"])
    items_df = D._read_table(items_path, "items") if items_path is not None else None
    in_obs = [c for c in channels if c in obs_df.columns]
    promoted = channels[len(in_obs):]  # numeric static attributes come last (pipeline.promote_numeric_static)
    item_cols = set(items_df.columns) if items_df is not None else set()
    missing = [c for c in channels if c not in obs_df.columns and c not in item_cols]
    if missing or in_obs != channels[:len(in_obs)]:
        raise InputError(f"{obs_path}: missing channel column {(missing or promoted)[0]!r}; expected the channels "
                         f"the run was trained on: {', '.join(channels)} (numeric static attributes in the item "
                         f"table)")
    order = "obs_idx" if "obs_idx" in obs_df.columns else "timestamp"
    quality = [c for c in obs_df.columns if str(c).startswith("quality")]
    if len(quality) != int(meta["num_quality"]):
        raise InputError(f"{obs_path}: {len(quality)} quality column(s) {quality}; expected {meta['num_quality']} "
                         f"(columns starting with 'quality', as in the training data)")
    keep = [c for c in ("item_id", order) if c in obs_df.columns] + in_obs + quality
    if items_df is None:
        if "item_id" not in obs_df.columns:
            raise InputError(f"{obs_path}: missing column 'item_id'; expected item_id, obs_idx or timestamp, channels")
        items_df = pd.DataFrame({"item_id": obs_df["item_id"].drop_duplicates().to_numpy()})
    # Design choice: labels are never read here; a placeholder class fills the column so the reader's checks apply.
    items_df = items_df.copy()
    items_df[label] = meta["classes"][-1]
    data = D.frames_to_items(obs_df[keep], items_df, label, obs_name=str(obs_path),
                             items_name=str(items_path or f"{obs_path} (item ids)"), classes=tuple(meta["classes"]))
    return promote_numeric_static(data, promoted, str(items_path))


def fired_rules(rs: RuleSet, raw: dict[str, np.ndarray], n: int) -> list[list[str]]:
    """Per item, the text of every learned rule whose atoms all hold (file order)."""
    env = compute_features(rs, raw)
    fired: list[list[str]] = [[] for _ in range(n)]
    for rule in rs.rules:
        hit = np.ones(n, dtype=bool)
        for atom in rule.atoms:
            hit &= np.asarray(atom_hard(atom, env[atom.feature]), dtype=bool)
        for i in np.flatnonzero(hit):
            fired[i].append(f"{rule.label} : {' & '.join(a.text() for a in rule.atoms)}")
    return fired


def predict(run_dir: Path, input_path: Path, output_path: Path) -> dict[str, Any]:
    """Read, check and score every item, then write the CSV in one atomic write."""
    cfg, model, meta = load_run(run_dir)
    obs_path, items_path = input_tables(input_path)
    data = read_items(obs_path, items_path, meta)
    need = {a.feature for _, a in model.rules.ruleset.atoms if a.kind == "cat"} - set(data.static)
    if need:
        where = items_path or obs_path
        raise InputError(f"{where}: missing static attribute column {sorted(need)[0]!r} that the rules test; "
                         f"expected it in the item table (items.csv beside the observations)")
    p = prepare(data, model.chan_mean, model.chan_std, model.rules.ruleset, cfg)
    out = predict_items(model, p, cfg)
    classes = list(meta["classes"])
    pred = np.asarray(classes)[out["pred"].numpy()]
    learned, _ = learned_ruleset(model)
    fired = fired_rules(learned, raw_features(model, out["k"], data.static), len(data))
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["item_id", "prediction", f"score_{classes[0]}", "rules_fired"])
    ids = data.item_ids if data.item_ids is not None else np.arange(len(data))
    for i in range(len(data)):
        w.writerow([ids[i], pred[i], f"{float(out['score'][i]):.6g}", "; ".join(fired[i])])
    atomic_write_text(Path(output_path), buf.getvalue())
    counts = {c: int((pred == c).sum()) for c in classes}
    return {"items": len(data), "output": str(output_path), "predicted": counts}
