"""`tenfold predict doorping`: scan a distilled (or any small) data set for a backdoor with the defenses.

Paper: Backdoor Attacks Against Dataset Distillation (Liu et al., NDSS 2023, arXiv 2301.01197). The user is the
victim of the threat model: it receives a small synthetic set S and wants to know, before training on it, whether
a class carries a backdoor. Steps:
 1. read the run: config.json of a `tenfold train doorping` run (data set, architecture, victim and defense
    settings);
 2. read the input set: a `.pt` file {images (N, C, H, W) finite float in the run's normalised space, labels (N,)
    int in [0, K)} (the `synset.pt` format `train` writes), checked against the run's data shape before anything
    is written;
 3. train one fresh victim on it with the run's victim schedule (Design choice: one victim, from the victim stream
    of the run's seed; the scan is about the data, not the spread over victims);
 4. per class: Neural Cleanse mask norm, anomaly index and flag score (defender's clean training images of the
    run's data set); STRIP entropy of the class's input images blended with those clean images (low = suspicious);
    activation clustering (smaller-cluster share, silhouette) and spectral signatures (spectral ratio, flag
    score) on the victim's penultimate activations of the input set;
 5. write them to the output `.json` (README "predict").
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from tenfold.core.errors import InputError
from tenfold.core.runs import RunDir, atomic_write_text, load_tensors
from tenfold.systems.doorping.config import Config
from tenfold.systems.doorping.defense import (activation_clustering, neural_cleanse, penultimate, spectral_signature,
                                              strip_entropy)
from tenfold.systems.doorping.evaluate import _tensor
from tenfold.systems.doorping.victims import (check_network_fits, defender_data, load_for_config, network_builder,
                                              streams, train_victim)

INPUT_FORM = "a .pt file {images: float (N, C, H, W), labels: int (N,)} as `tenfold train doorping` writes synset.pt"


def read_input(path: Path, shape: tuple[int, int, int], num_classes: int) -> dict[str, torch.Tensor]:
    """The input set, checked: finite float images of the run's (C, H, W), integer labels in [0, K)."""
    if path.suffix != ".pt":
        raise InputError(f"--input {path}: expected {INPUT_FORM}, got a {path.suffix or 'suffix-less'} file")
    obj = load_tensors(path, INPUT_FORM)
    images = _tensor(obj, "images", path, (None, *shape), "float")
    labels = _tensor(obj, "labels", path, (len(images),), "int")
    if len(labels) == 0 or int(labels.min()) < 0 or int(labels.max()) >= num_classes:
        raise InputError(f"{path}: field 'labels' must be classes in [0, {num_classes - 1}] (at least one image)")
    return {"images": images.float(), "labels": labels.long()}


def scan(cfg: Config, data, syn: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Steps 3-4: one victim on `syn`, then every defense's per-class statistics."""
    gens = streams(cfg.seed)
    net = network_builder(cfg, data, cfg.model.arch)(gens["victims"])
    losses = train_victim(net, syn["images"], syn["labels"], cfg.victim, gens["victims"],
                          augment=cfg.distill.method == "dsa")
    cx, _ = defender_data(cfg, data)
    dc, k = cfg.defense, data.num_classes
    nc = neural_cleanse(net, cx, k, dc.nc_steps, dc.nc_lambda, generator=gens["defense"])
    ent = strip_entropy(net, syn["images"], cx, dc.strip_overlays, gens["defense"])
    feats = penultimate(net, syn["images"])
    ac = activation_clustering(feats, syn["labels"], k)
    ss = spectral_signature(feats, syn["labels"], k)
    classes = []
    for c in range(k):
        members = syn["labels"] == c
        classes.append({
            "class": c, "count": int(members.sum()),
            "nc_mask_l1": nc["mask_l1"][c], "nc_anomaly_index": nc["anomaly_index"][c],
            "nc_flag_score": nc["flag_score"][c], "nc_flagged": c in nc["flagged"],
            "strip_entropy": float(ent[members].mean()) if bool(members.any()) else float("nan"),
            "ac_smaller_size": ac["ac_smaller_size"][c], "ac_silhouette": ac["ac_silhouette"][c],
            "ac_flagged": c in ac["ac_flagged"], "ss_ratio": ss["ss_ratio"][c],
            "ss_flag_score": ss["ss_flag_score"][c], "ss_flagged": c in ss["ss_flagged"]})
    return {"victim_loss_first": losses[0], "victim_loss_last": losses[-1], "classes": classes,
            "flagged": {"neural_cleanse": nc["flagged"], "activation_clustering": ac["ac_flagged"],
                        "spectral_signatures": ss["ss_flagged"]}}


def predict(run_dir: Path, input_path: Path, output_path: Path) -> dict[str, Any]:
    """Scan `input_path` with the defenses configured in `run_dir`; write the per-class report to `output_path`."""
    run = RunDir(run_dir)
    if not run.config_path.is_file():
        raise InputError(f"{run.config_path}: not found; --run must be a directory written by `tenfold train "
                         "doorping`")
    if Path(output_path).suffix != ".json":
        raise InputError(f"--output {output_path}: expected a .json file")
    cfg = run.read_config(Config)
    data = load_for_config(cfg)
    check_network_fits(cfg, data)
    syn = read_input(Path(input_path), data.shape, data.num_classes)
    result = {"run": str(run_dir), "input": str(input_path), "num_images": len(syn["labels"]), **scan(cfg, data, syn)}
    atomic_write_text(Path(output_path), json.dumps(result, indent=2, allow_nan=True) + "\n")
    return {"output": str(output_path), "flagged": result["flagged"]}
