"""doorping device handling: the path a CUDA run takes, exercised with an explicit torch.device("cpu").

No GPU is needed: `train(cfg, run_dir, device=...)` skips `select_device` and moves the data, S, the triggers
and every network through the same `.to(device)` calls a CUDA run makes; the CPU draws must not change.
"""

from __future__ import annotations

import json

import torch

from tenfold.core.config import make_config
from tenfold.core.runs import RunDir
from tenfold.systems.doorping.config import PROFILES, Config
from tenfold.systems.doorping.data import to_device
from tenfold.systems.doorping.evaluate import evaluate
from tenfold.systems.doorping.train import train

from .conftest import tiny_data


def _cfg(**kw) -> Config:
    base = {"distill.iterations": 2, "victim.epochs": 3, "defense.use_defenses": False}
    return make_config(Config, PROFILES, "smoke", {**base, **kw})


def _tensors(obj) -> list[torch.Tensor]:
    if isinstance(obj, torch.Tensor):
        return [obj]
    if isinstance(obj, dict):
        return [t for v in obj.values() for t in _tensors(v)]
    if isinstance(obj, (list, tuple)):
        return [t for v in obj for t in _tensors(v)]
    return []


def _same_metrics(a: dict, b: dict) -> bool:
    """Equal bit for bit, NaN == NaN (DD victims log no losses), wall-clock times left out."""
    keys = {k for k in a if not k.endswith("_time_s")}
    return keys == {k for k in b if not k.endswith("_time_s")} and all(
        a[k] == b[k] or (a[k] != a[k] and b[k] != b[k]) for k in keys)


def test_to_device_keeps_structure_and_leaves_non_tensors():
    obj = {"a": torch.ones(2), 3: [torch.zeros(1), 1.5, "x"], "t": (torch.arange(2), None)}
    moved = to_device(obj, "cpu")
    assert set(moved) == {"a", 3, "t"} and isinstance(moved[3], list) and isinstance(moved["t"], tuple)
    assert moved[3][1:] == [1.5, "x"] and moved["t"][1] is None
    assert moved["a"] is obj["a"]  # on its own device `.to` is a no-op: CPU results stay bit-identical


def test_image_data_to_moves_every_tensor():
    data = tiny_data()
    assert data.to(torch.device("cpu")) is data and data.device == torch.device("cpu")
    moved = data.to("meta")  # a device other than the CPU, without a GPU
    assert moved.device.type == "meta" and moved.mean.device.type == "meta" and moved.test_y.device.type == "meta"
    assert moved.shape == data.shape and moved.num_classes == data.num_classes


def test_explicit_cpu_device_matches_default_run(tmp_path):
    cfg = _cfg()
    default = train(cfg, tmp_path / "default")
    explicit = train(cfg, tmp_path / "explicit", device=torch.device("cpu"))
    assert _same_metrics(explicit, default)
    for name in ("synset.pt", "trigger.pt"):
        a, b = torch.load(tmp_path / "default" / name), torch.load(tmp_path / "explicit" / name)
        assert len(_tensors(a)) == len(_tensors(b)) > 0
        for x, y in zip(_tensors(a), _tensors(b)):
            torch.testing.assert_close(x, y, rtol=0, atol=0)
    summary = json.loads((tmp_path / "explicit" / "summary.json").read_text())
    assert summary["runtime"]["device"] == "cpu"
    # Artefacts and checkpoints hold CPU tensors only (what a GPU run also writes).
    ckpt = RunDir(tmp_path / "explicit").load_checkpoint()
    saved = [torch.load(tmp_path / "explicit" / n) for n in ("synset.pt", "trigger.pt")]
    assert all(t.device.type == "cpu" for t in _tensors(saved) + _tensors(ckpt))


def test_dd_checkpoint_and_evaluate_with_explicit_device(tmp_path):
    cfg = _cfg(**{"distill.method": "dd", "distill.iterations": 1, "victim.epochs": 2})
    train(cfg, tmp_path, device=torch.device("cpu"))
    syn = torch.load(tmp_path / "synset.pt")
    assert {"images", "labels", "dd"} <= set(syn) and all(t.device.type == "cpu" for t in _tensors(syn))
    first = evaluate(cfg, tmp_path)
    again = evaluate(cfg, tmp_path, device=torch.device("cpu"))
    assert _same_metrics(first, again)
