"""Configs of drumlm (arXiv 2301.01162): profiles validate, JSON round trip, bad values name their field."""

from __future__ import annotations

import pytest

from tenfold.core.config import ConfigError, from_dict, make_config, to_dict
from tenfold.systems.drumlm.config import DEV_SEEDS, PROFILES, Config
from tenfold.systems.drumlm.model import DrumTransformer, DrumTransformerConfig


@pytest.mark.parametrize("profile", sorted(PROFILES))
def test_profiles_validate_and_round_trip(profile: str) -> None:
    cfg = make_config(Config, PROFILES, profile)
    assert from_dict(Config, to_dict(cfg)) == cfg
    assert not set(DEV_SEEDS) & {1000, 1001, 1002}


def test_smoke_builds_model_c() -> None:
    c = make_config(Config, PROFILES, "smoke").model_c
    model = DrumTransformer(DrumTransformerConfig(num_layers=c.num_layers, d_model=c.d_model, num_heads=c.num_heads,
                                                  d_ff=c.d_ff, context_length=c.context_length, dropout=c.dropout))
    assert len(model.blocks) == 1


@pytest.mark.parametrize("key, value, field", [
    ("data.source", "wav", "data.source"), ("data.mode", "jazz", "data.mode"), ("data.num_train", 0, "data.num_train"),
    ("data.window_bars", 2, "data.window_bars"), ("model_c.num_heads", 3, "model_c.d_model"),
    ("model_c.dropout", 1.0, "model_c.dropout"), ("eval.kmeans", "lloyd", "eval.kmeans"),
    ("data.source", "gmd", "data.gmd_root")])
def test_bad_values_name_the_field(key: str, value: object, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_config(Config, PROFILES, "quick", {key: value})
