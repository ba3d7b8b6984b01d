"""Issue 17: inputs follow the model's device (a model loaded onto CUDA got CPU inputs and crashed after training).

No GPU in CI: the models live on the `meta` device, where an op mixing a meta weight with a CPU input raises just as
CUDA would; every output must come back on the model's device.
"""

import pytest
import torch

from tenfold.systems.fctl.patching import model_device, segment_logits
from tenfold.systems.fctl.stages import build_stage_model, predict_logits, stage_predict


def _on_meta(cfg, stage):
    with torch.device("meta"):
        return build_stage_model(cfg, stage, {}, pretrained=False).eval()


@pytest.mark.parametrize("stage", ["local", "single0", "all", "global"])
def test_stage_predict_feeds_the_model_its_own_device(smoke_cfg, stage):
    if stage not in smoke_cfg.train.stages and stage != "global":
        pytest.skip(f"stage {stage} not in the smoke profile")
    model = _on_meta(smoke_cfg, stage)
    assert model_device(model).type == "meta"
    size = smoke_cfg.data.patch_size * 2
    out = stage_predict(model, stage, torch.rand(3, size, size), smoke_cfg, tta=False)  # CPU image in
    assert out.device.type == "meta" and out.shape == (smoke_cfg.data.num_classes, size, size)


def test_cpu_input_to_a_meta_model_fails_without_the_move(smoke_cfg):
    """The check above can fail: the same model given CPU tensors directly raises (what CUDA did)."""
    model = _on_meta(smoke_cfg, "local")
    p = smoke_cfg.data.patch_size
    with pytest.raises((RuntimeError, NotImplementedError)):
        model(torch.rand(1, 3, p, p), [])
        assert False  # pragma: no cover


def test_predict_logits_and_segment_logits_default_to_the_model_device(smoke_cfg):
    model = _on_meta(smoke_cfg, "all")
    size = smoke_cfg.data.patch_size * 2
    assert predict_logits(model, torch.rand(3, size, size), smoke_cfg, tta=False).device.type == "meta"
    factors = tuple(getattr(model, "factors", smoke_cfg.model.context_factors))
    canvas = segment_logits(torch.rand(3, size, size), model, smoke_cfg.data.patch_size, smoke_cfg.data.min_overlap,
                            factors, smoke_cfg.data.num_classes)
    assert canvas.device.type == "meta"
    assert model_device(lambda x: x).type == "cpu"
