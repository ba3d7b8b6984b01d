"""Staged training: accumulation, stage initialisation, resume, config validation (spec section 3)."""

import json

import numpy as np
import pytest
import torch

from tenfold.core.config import ConfigError, make_config, override
from tenfold.systems.fctl.config import PROFILES, Config
from tenfold.systems.fctl.loss import loss_terms
from tenfold.systems.fctl.stages import build_stage_model, load_split, stage_path
from tenfold.systems.fctl.train import image_samples, train, train_step


def _tiny(smoke_cfg, **kw):
    base = {"train.stages": ("local", "single0"), "data.num_train": 1, "data.num_val": 1, "data.num_test": 1,
            "eval.test_batch": 16}
    return override(smoke_cfg, {**base, **kw})


def test_accumulation_equals_one_step_on_the_summed_loss(smoke_cfg):
    cfg = override(smoke_cfg, {"train.sub_batch": 7, "train.use_augment": False, "data.num_train": 2})
    images = load_split(cfg, "train")
    torch.manual_seed(0)
    model = build_stage_model(cfg, "single0", {})
    train_step(cfg, model, "single0", images, [0, 1], np.random.default_rng(0), torch.device("cpu"))
    acc = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    total = 0
    for i in (0, 1):
        for local, ctx, lbl in image_samples(cfg, "single0", images, i, model.factors):
            total = total + loss_terms(model(local, ctx), lbl, cfg.train.focal_gamma)["loss"]
    total.backward()
    for n, p in model.named_parameters():
        if n in acc:
            torch.testing.assert_close(acc[n], p.grad, rtol=1e-4, atol=1e-6)


def test_stage_initialisation_from_previous_stages(smoke_cfg):
    cfg = smoke_cfg
    local = build_stage_model(cfg, "local", {}).state_dict()
    single = build_stage_model(cfg, "single0", {"local": local})
    torch.testing.assert_close(single.trunk.state_dict()["head.weight"], local["trunk.head.weight"])
    enc0 = single.context_encoders[0].state_dict()
    torch.testing.assert_close(enc0["stem.0.weight"], local["trunk.encoder.stem.0.weight"])
    s0 = single.state_dict()
    with torch.no_grad():
        s0["lcf.branches.0.gamma"].fill_(0.25)
    s1 = build_stage_model(cfg, "single1", {"local": local}).state_dict()
    full = build_stage_model(cfg, "all", {"local": local, "single0": s0, "single1": s1})
    assert full.lcf.branches[1].gamma.item() == 0.25  # the x2 branch comes from stage 1 [code]
    assert full.lcf.branches[0].gamma.item() == 0.0 and full.lcf.branches[2].gamma.item() == 0.0  # fresh
    assert full.factors == (2.0, 3.0) and not any(p.requires_grad for p in full.context_encoders.parameters())


def test_train_resumes_from_the_last_checkpoint(tmp_path, smoke_cfg):
    cfg = _tiny(smoke_cfg, **{"train.epochs_per_stage": 2})
    out = train(cfg, tmp_path, stop_after_epochs=1)  # kill-equivalent after one epoch
    assert out == {"stopped": True, "stage": "local"}
    ckpt = torch.load(tmp_path / "checkpoints" / "last.pt", weights_only=False)
    assert ckpt["stage"] == "local" and ckpt["epoch"] == 1
    out = train(cfg, tmp_path, stop_after_epochs=2)  # finishes local (1 epoch), then single0 epoch 1
    assert out["stage"] == "single0"
    summary = train(cfg, tmp_path)
    records = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"]) for r in records] == [("local", 1), ("local", 2), ("single0", 1),
                                                           ("single0", 2)]  # continued, never restarted
    assert stage_path(tmp_path, "single0").exists() and "val_miou_single0" in summary
    assert (tmp_path / "summary.json").exists()


def test_smoke_train_then_evaluate(tmp_path, smoke_cfg):
    from tenfold.systems.fctl.evaluate import evaluate

    cfg = _tiny(smoke_cfg, **{"train.stages": ("local", "single0", "single1", "all")})
    summary = train(cfg, tmp_path)
    assert set(summary["all_gammas"]) == {f"lcf.branches.{i}.gamma" for i in range(3)}
    res = evaluate(cfg, tmp_path)
    assert set(res) >= {"local", "all", "miou"} and np.isfinite(res["miou"])
    assert res["all"]["peak_memory_mb"] > 0


def test_loss_drops_on_one_fixed_batch(smoke_cfg):
    cfg = override(smoke_cfg, {"train.use_augment": False})
    images = load_split(cfg, "train")
    torch.manual_seed(0)
    model = build_stage_model(cfg, "local", {})
    local, ctx, lbl = next(image_samples(cfg, "local", images, 0, ()))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(15):
        opt.zero_grad()
        loss = loss_terms(model(local, ctx), lbl, 3.0)["loss"]
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize("key,value,needle", [
    ("data.patch_size", 4, "data.patch_size"),
    ("train.stages", "local,bogus", "train.stages"),
    ("model.context_factors", "0.5", "model.context_factors"),
    ("train.sub_batch", 0, "train.sub_batch"),
])
def test_config_errors_name_the_field(key, value, needle):
    with pytest.raises(ConfigError, match=needle):
        make_config(Config, PROFILES, "smoke", {key: value})


def test_real_source_without_root_is_an_input_error(smoke_cfg):
    from tenfold.core.errors import InputError

    with pytest.raises(InputError, match="data.root"):
        load_split(override(smoke_cfg, {"data.source": "deepglobe"}), "train")


# The issue measured the L2 term 54-182x stronger relative to the loss than under the official accumulation; Adam
# without weight decay is invariant to the loss scale, with it the decay wins by that factor. 1/100 models it.
LOSS_SCALE = 0.01


def _context_path_after_steps(cfg, steps=30, loss_scale=LOSS_SCALE):
    """Train stage `single0` from gamma = 0 for `steps` Adam steps on one image, the loss scaled by `loss_scale`;
    -> (|W_v| before, after, |gamma|)."""
    from tenfold.systems.fctl.train import build_optimizer

    cfg = override(cfg, {"train.use_augment": False})
    images = load_split(cfg, "train")
    torch.manual_seed(0)
    model = build_stage_model(cfg, "single0", {})
    value = model.lcf.branches[0].value.weight
    gamma = model.lcf.branches[0].gamma
    assert float(gamma.detach()) == 0.0
    before = float(value.abs().mean())
    opt = build_optimizer(model, cfg.train)
    batches = list(image_samples(cfg, "single0", images, 0, model.factors))
    for _ in range(steps):
        opt.zero_grad()
        for local, ctx, lbl in batches:
            (loss_scale * torch.nn.functional.cross_entropy(model(local, ctx), lbl)).backward()
        opt.step()
    return before, float(value.abs().mean()), abs(float(gamma))


def test_context_path_grows_from_gamma_zero_under_the_default_optimiser(smoke_cfg):
    """Issue 17: with weight decay on W_v while gamma = 0, Adam shrank |W_v| ~100x in 20 steps and gamma stalled."""
    before, after, gamma = _context_path_after_steps(smoke_cfg)
    assert after > before, (before, after)  # measured: 0.0080 -> 0.0159
    assert gamma > 5 * smoke_cfg.train.lr, gamma  # Adam moves gamma by up to lr per step while V carries signal


def test_the_official_single_decay_group_collapses_the_value_weights(smoke_cfg):
    """The same run with the code's decay on the context path too: |W_v| shrinks (the bug this guards)."""
    cfg = override(smoke_cfg, {"train.context_weight_decay": smoke_cfg.train.weight_decay})
    before, after, _ = _context_path_after_steps(cfg)
    _, after_default, _ = _context_path_after_steps(smoke_cfg)
    # Measured: 0.0080 -> 0.0043 in 30 steps with the official group, -> 0.0164 without decay on the context path.
    assert after < 0.6 * before and after < 0.5 * after_default, (before, after, after_default)


def test_validation_is_logged_every_val_every_epochs_and_after_the_last(tmp_path, smoke_cfg):
    cfg = _tiny(smoke_cfg, **{"train.stages": ("local",), "train.epochs_per_stage": 5, "train.val_every": 2})
    train(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records if "val_miou" in r] == [2, 4, 5]
    assert all(0 <= r["val_miou"] <= 100 for r in records if "val_miou" in r)


def test_deepglobe_stage_order_is_expressed_and_checked(smoke_cfg):
    """Spec 3, DeepGlobe branch [code]: local -> medium (x3) -> global (whole-image model) -> all; the global
    context of `all` is the frozen encoder of the separately trained whole-image model, not of a single stage."""
    from tenfold.systems.fctl.config import DEEPGLOBE, DEEPGLOBE_STAGES

    cfg = override(smoke_cfg, DEEPGLOBE)
    assert cfg.train.stages == ("local", "single0", "global", "all") == DEEPGLOBE_STAGES
    assert cfg.model.context_factors == (3.0, 0.0) and cfg.model.use_centered_qk
    torch.manual_seed(0)
    local = build_stage_model(cfg, "local", {}).state_dict()
    medium = build_stage_model(cfg, "single0", {"local": local}).state_dict()
    whole = build_stage_model(cfg, "global", {}).state_dict()
    with torch.no_grad():
        medium["lcf.branches.0.gamma"].fill_(0.25)
        whole["trunk.encoder.stem.0.weight"].fill_(0.5)  # tell the three encoders apart
    full = build_stage_model(cfg, "all", {"local": local, "single0": medium, "global": whole})
    assert full.factors == (3.0, 0.0)  # x3 ("medium") and the global context
    torch.testing.assert_close(full.context_encoders[1].state_dict()["stem.0.weight"],
                               whole["trunk.encoder.stem.0.weight"])  # global context <- stage "global"
    torch.testing.assert_close(full.context_encoders[0].state_dict()["stem.0.weight"],
                               medium["context_encoders.0.stem.0.weight"])  # x3 context <- "medium"
    torch.testing.assert_close(full.trunk.state_dict()["head.weight"], medium["trunk.head.weight"])
    assert full.lcf.branches[1].gamma.item() == 0.25 and full.lcf.branches[2].gamma.item() == 0.0
    assert not any(p.requires_grad for p in full.context_encoders.parameters())  # context and global nets frozen
    with pytest.raises(ConfigError, match="'global' must come before"):
        override(cfg, {"train.stages": ("local", "single0", "all", "global")})
    with pytest.raises(ConfigError, match="global context"):  # no single stage for the global factor
        override(cfg, {"train.stages": ("local", "single1", "global", "all")})


def test_long_stages_give_every_arm_the_trunk_epochs_of_lcf(smoke_cfg):
    """Issue 17: local -> single0 -> all trains LCF's trunk 3 stages; "<stage>_long" continues the others to that."""
    from tenfold.systems.fctl.stages import stage_epochs, trunk_epochs

    cfg = override(smoke_cfg, {"train.epochs_per_stage": 2})
    assert [stage_epochs(cfg, s) for s in ("local", "local_long", "single1_long", "global_long", "all")] == \
        [2, 4, 2, 4, 2]
    arms = ("local_long", "single0_long", "single1_long", "global_long", "all", "all_ale")
    assert [trunk_epochs(cfg, s) for s in arms] == [6] * 6
    assert trunk_epochs(cfg, "local") == 2 and trunk_epochs(cfg, "single0") == 4
    with pytest.raises(ConfigError, match="must come before"):
        override(cfg, {"train.stages": ("local_long", "local")})


def test_long_stage_continues_the_finished_weights(tmp_path, smoke_cfg):
    cfg = _tiny(smoke_cfg, **{"train.stages": ("local", "local_long"), "train.val_every": 0})
    torch.manual_seed(3)
    local = build_stage_model(cfg, "local", {}).state_dict()
    cont = build_stage_model(cfg, "local_long", {"local": local}).state_dict()
    for name, value in local.items():
        torch.testing.assert_close(cont[name], value)
    train(cfg, tmp_path)
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [(r["stage"], r["epoch"], r["step"]) for r in records] == [("local", 1, 1), ("local_long", 1, 2),
                                                                       ("local_long", 2, 3)]


def test_context_lr_mult_scales_only_the_context_group(smoke_cfg):
    from tenfold.systems.fctl.train import build_optimizer

    cfg = override(smoke_cfg, {"train.context_lr_mult": 10.0})
    model = build_stage_model(cfg, "single0", {})
    opt = build_optimizer(model, cfg.train)
    trunk, ctx = opt.param_groups
    assert trunk["lr"] == cfg.train.lr and ctx["lr"] == pytest.approx(10 * cfg.train.lr)
    assert ctx["weight_decay"] == 0.0 and trunk["weight_decay"] == cfg.train.weight_decay
    names = {id(p): n for n, p in model.named_parameters()}
    assert all(names[id(p)].startswith("trunk.") for p in trunk["params"])
    assert {names[id(p)].split(".")[0] for p in ctx["params"]} == {"lcf", "context_encoders"}
    with pytest.raises(ConfigError, match="context_lr_mult"):
        override(smoke_cfg, {"train.context_lr_mult": 0.0})
