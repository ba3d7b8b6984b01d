"""A scikit-learn style estimator for `rulenet` (spec 4.3 "API"), besides the CLI.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693.
Design choice: `RuleNetClassifier.fit(obs_df, items_df, rules)` takes the real-data format of spec 4.3 (a long
observation table and an item table as pandas DataFrames, rules as text) and runs the same staged training as
`tenfold train rulenet` (train.train_model) on a contiguous train / validation split of the items; `predict`,
`predict_proba`, `explain(item_id)` and `export_rules()` use the learned hard rules.

    clf = RuleNetClassifier(profile="quick", overrides={"train.joint_epochs": 10})
    clf.fit(obs_df, items_df, rules_text)
    clf.predict(obs_df2, items_df2); clf.explain(item_id); print(clf.export_rules())
    clf.save("my-model"); clf2 = RuleNetClassifier.load("my-model")   # JSON + torch weights_only, no pickle
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

from tenfold.core.config import ConfigError, from_dict, make_config, to_dict
from tenfold.core.errors import InputError
from tenfold.core.runs import atomic_write_bytes, atomic_write_text, load_tensors
from tenfold.systems.rulenet import data as D
from tenfold.systems.rulenet.config import PROFILES, Config
from tenfold.systems.rulenet.export import explain_item, export_rules, raw_features


class RuleNetClassifier:
    """fit / predict / predict_proba / explain / export_rules over DataFrames (spec 4.3)."""

    def __init__(self, profile: str = "quick", overrides: dict[str, Any] | None = None, seed: int = 0) -> None:
        self.profile, self.overrides, self.seed = profile, dict(overrides or {}), seed
        self.model_ = None

    def fit(self, obs_df, items_df, rules: str, label_column: str = "label", validation: Any = None
            ) -> "RuleNetClassifier":
        """Train on the tables.

        validation=None: the last `data.val_fraction + data.test_fraction` items (in table order) are held out
        (validation for early stopping and the export's support / precision; test for `test_f1_`).
        validation=(obs_val_df, items_val_df): every item of the tables trains; the validation tables select the
        epoch and `test_f1_` is their F1. validation="none": every item trains for the fixed epoch count (the last
        epoch is kept) and `test_f1_` is the training F1.
        """
        from tenfold.systems.rulenet.train import train_model

        if not (validation is None or validation == "none" or (isinstance(validation, tuple) and len(validation) == 2)):
            raise InputError(f"RuleNetClassifier.fit: validation must be None, 'none' or (obs_df, items_df); got "
                             f"{type(validation).__name__}")
        with tempfile.TemporaryDirectory(prefix="rulenet-fit-") as tmp:
            tmp = Path(tmp)
            obs_path, items_path, rules_path = tmp / "obs.parquet", tmp / "items.parquet", tmp / "rules.txt"
            D.frames_to_items(obs_df, items_df, label_column)  # validate before writing anything
            obs_df.to_parquet(obs_path)
            items_df.to_parquet(items_path)
            rules_path.write_text(rules)
            holdout: dict[str, Any] = {}
            if isinstance(validation, tuple):
                D.frames_to_items(validation[0], validation[1], label_column, "validation observations",
                                  "validation items")
                validation[0].to_parquet(tmp / "val_obs.parquet")
                validation[1].to_parquet(tmp / "val_items.parquet")
                holdout = {"data.val_observations": str(tmp / "val_obs.parquet"),
                           "data.val_items": str(tmp / "val_items.parquet"), "data.test_fraction": 0.0}
            elif validation == "none":
                holdout = {"data.val_fraction": 0.0, "data.test_fraction": 0.0, "train.select_best": False}
            cfg = make_config(Config, PROFILES, self.profile, {
                **self.overrides, **holdout, "seed": self.seed, "data.observations": str(obs_path),
                "data.items": str(items_path), "data.rules": str(rules_path), "data.label_column": label_column})
            metrics, model, ctx = train_model(cfg, tmp / "run")
        self.cfg_, self.model_, self.label_column = cfg, model, label_column
        self.ruleset_, self.chan_ = ctx["ruleset"], ctx["chan"]
        self.test_f1_ = metrics["f1"]
        self.classes_ = list(ctx["ruleset"].classes)
        self._val, self._exported = ctx["prepared"]["val"], None
        return self

    def _prepared(self, obs_df, items_df):
        from tenfold.systems.rulenet.pipeline import prepare, promote_numeric_static

        if self.model_ is None:
            raise InputError("RuleNetClassifier: call fit() before predict / explain")
        items_df = items_df.copy()
        if self.label_column not in items_df.columns:
            items_df[self.label_column] = self.classes_[-1]  # unlabelled prediction: a placeholder label
        data = D.frames_to_items(obs_df, items_df, self.label_column, classes=tuple(self.classes_))
        data = promote_numeric_static(data, [c for c in self.model_.channels if c not in data.channels], "items")
        return prepare(data, *self.chan_, self.ruleset_, self.cfg_)

    def predict(self, obs_df, items_df) -> np.ndarray:
        """Class labels from the learned hard rules."""
        from tenfold.systems.rulenet.pipeline import predict

        pred = predict(self.model_, self._prepared(obs_df, items_df), self.cfg_)["pred"].numpy()
        return np.asarray(self.classes_)[pred]

    def predict_proba(self, obs_df, items_df) -> np.ndarray:
        """(N, 2) [P(first rule class), 1 - P] from the soft rule score (a ranking score for PR-AUC only: the
        decision is the hard rules')."""
        from tenfold.systems.rulenet.pipeline import predict

        score = predict(self.model_, self._prepared(obs_df, items_df), self.cfg_)["score"].numpy()
        return np.stack([score, 1 - score], 1)

    def key_features(self, obs_df, items_df) -> dict[str, np.ndarray]:
        """The rules' input columns (key features in original units + static attributes) per item."""
        from tenfold.systems.rulenet.pipeline import predict

        p = self._prepared(obs_df, items_df)
        return raw_features(self.model_, predict(self.model_, p, self.cfg_)["k"], p.data.static)

    def explain(self, item_id: Any, obs_df, items_df) -> dict[str, Any]:
        """The rule that fired for `item_id` and its most / least trusted observations."""
        from tenfold.systems.rulenet.pipeline import predict

        p = self._prepared(obs_df, items_df)
        where = np.flatnonzero(p.data.item_ids == item_id)
        if not where.size:
            raise InputError(f"explain: item_id {item_id!r} is not in the item table")
        i = int(where[0])
        out = predict(self.model_, p, self.cfg_)
        pi = out["pi"][i] if out["pi"].shape[1] else torch.zeros(0)
        return explain_item(self.model_, out["k"][i], pi, {k: v[i] for k, v in p.data.static.items()})

    def export_rules(self) -> str:
        """The learned rule set as text (re-parses to the same hard decision function)."""
        from tenfold.systems.rulenet.pipeline import predict

        if self._val is None:  # a loaded estimator: the export saved with it (validation support included)
            return self._exported
        out = predict(self.model_, self._val, self.cfg_)
        raw = raw_features(self.model_, out["k"], self._val.data.static)
        return export_rules(self.model_, raw, self._val.tensors["labels"].numpy())

    # Design choice (issue 20): a fitted estimator is a folder of two files, JSON (config, rules text, channels,
    # classes, the export) and `weights.pt` read back with torch.load(weights_only=True): loading an untrusted
    # folder cannot run code (no pickle of Python objects); the rules text goes through the same parser as a
    # rules file, and the weights must fit the rebuilt model and be finite (pipeline.load_model_state).
    FORMAT = "tenfold-rulenet-estimator/1"

    def save(self, folder: str | Path) -> Path:
        """Write `estimator.json` and `weights.pt` into `folder` (created); returns the folder."""
        if self.model_ is None:
            raise InputError("RuleNetClassifier: call fit() before save()")
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        meta = {"format": self.FORMAT, "config": to_dict(self.cfg_), "rules": self.ruleset_.text(),
                "channels": list(self.model_.channels), "classes": self.classes_, "label_column": self.label_column,
                "num_quality": int(self.model_.assessor.layers[0].w_self.in_features - len(self.model_.channels)),
                "test_f1": self.test_f1_, "profile": self.profile, "seed": self.seed,
                "exported_rules": self.export_rules()}
        import io

        buf = io.BytesIO()
        torch.save(self.model_.state_dict(), buf)
        atomic_write_bytes(folder / "weights.pt", buf.getvalue())
        atomic_write_text(folder / "estimator.json", json.dumps(meta, indent=1) + "\n")
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> "RuleNetClassifier":
        """Rebuild a fitted estimator from `save`'s folder; a damaged or foreign folder is an InputError."""
        from tenfold.systems.rulenet.model import RuleNet
        from tenfold.systems.rulenet.pipeline import load_model_state
        from tenfold.systems.rulenet.rules import parse_rules

        folder = Path(folder)
        path = folder / "estimator.json"
        try:
            meta = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(meta, dict) or meta.get("format") != cls.FORMAT:
                raise ValueError(f"format {meta.get('format') if isinstance(meta, dict) else None!r}")
            cfg = from_dict(Config, meta["config"])
            rs = parse_rules(meta["rules"], source=str(path))
            channels = tuple(str(c) for c in meta["channels"])
            nq = int(meta["num_quality"])
        except (OSError, ValueError, KeyError, TypeError, ConfigError) as err:
            raise InputError(f"{path}: not a saved RuleNetClassifier ({type(err).__name__}: {err}); expected the "
                             f"folder RuleNetClassifier.save wrote") from None
        feats = rs.numeric_features
        d = len(channels)
        model = RuleNet(rs, channels, torch.zeros(d), torch.ones(d), {f: 0.0 for f in feats}, {f: 1.0 for f in feats},
                        nq, cfg.model.hidden, cfg.model.num_layers)  # statistics come from the weights below
        load_model_state(model, load_tensors(folder / "weights.pt", "the weights RuleNetClassifier.save wrote"),
                         folder / "weights.pt")
        clf = cls(meta.get("profile", "quick"), {}, int(meta.get("seed", 0)))
        clf.cfg_, clf.model_, clf.label_column = cfg, model, str(meta["label_column"])
        clf.ruleset_, clf.chan_ = rs, (model.chan_mean.clone(), model.chan_std.clone())
        clf.classes_, clf.test_f1_ = list(rs.classes), float(meta["test_f1"])
        clf._val, clf._exported = None, str(meta["exported_rules"])
        return clf
