"""rulenet data: the AI4I-style generator (spec 4.1) and the real-format reader (spec 4.3)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from tenfold.core.errors import InputError
from tenfold.systems.rulenet.data import (SHIFTS, TRUE_RULES, frames_to_items, items_to_frames, load_tables,
                                          make_latent, make_machining)
from tenfold.systems.rulenet.rules import parse_rules, predict_hard


def _mode_counts() -> dict[str, float]:
    counts = {k: [] for k in ("HDF", "PWF", "OSF", "TWF", "RNF")}
    for seed in (0, 1):
        lat = make_latent(10_000, np.random.default_rng(seed))
        for k in counts:
            counts[k].append(int(lat[k].sum()))
    return {k: float(np.mean(v)) for k, v in counts.items()}


def test_failure_mode_counts_per_10k_within_tolerances():
    # spec 4.1 targets 115 / 95 / 98 / 46 / 19 (HDF / PWF / OSF / TWF / RNF); HDF, OSF, TWF within +-40 %, RNF
    # (a count of ~19) within +-60 %. PWF is the documented deviation (README: ~150 per 10k with the spec's linear
    # rpm model): its band is pinned to that value, 150 +- 25 (about 3 Poisson sd of a mean of two counts of
    # 150: sqrt(150 / 2) = 8.7), not widened around the spec's 95; the spec's band is the strict xfail below.
    mean = _mode_counts()
    assert 115 * 0.6 <= mean["HDF"] <= 115 * 1.4, mean
    assert 125 <= mean["PWF"] <= 175, mean
    assert 98 * 0.6 <= mean["OSF"] <= 98 * 1.4, mean
    assert 46 * 0.6 <= mean["TWF"] <= 46 * 1.4, mean
    assert 19 * 0.4 <= mean["RNF"] <= 19 * 1.6, mean


@pytest.mark.xfail(strict=True, reason="documented deviation: PWF ~150 per 10k, not the spec's 95 (README)")
def test_pwf_count_matches_the_spec_within_40_percent():
    # if the generator is ever fixed this passes, the strict xfail fails, and the README's deviation must go
    assert 95 * 0.6 <= _mode_counts()["PWF"] <= 95 * 1.4


def test_marginals_and_rpm_torque_correlation():
    lat = make_latent(20_000, np.random.default_rng(3))
    assert abs(np.corrcoef(lat["rpm"], lat["torque"])[0, 1] - (-0.88)) < 0.03  # spec 4.1: corr ~ -0.88
    assert abs(lat["rpm"].mean() - 1539) < 15 and abs(lat["rpm"].std() - 179) < 10
    assert abs(lat["T_air"].std() - 2.0) < 1e-9  # AR(1) normalised to std 2 K
    grades, n = np.unique(lat["grade"], return_counts=True)
    np.testing.assert_allclose(n / n.sum(), [0.2, 0.5, 0.3], atol=0.015)  # H, L, M


def test_sensor_model_corruption_and_quality():
    d = make_machining(2000, seed=5)
    assert d.obs.shape == (2000, 16, 5) and d.quality.shape == (2000, 16, 1)
    frac = d.corrupt.float().mean().item()
    assert abs(frac - 2 / 7) < 0.02  # Beta(2, 5) mean 0.286
    q = d.quality[..., 0]
    assert abs(q[~d.corrupt].mean().item()) < 0.05 and abs(q[d.corrupt].mean().item() - 1.5) < 0.05
    # clean observations scatter around the latent state with the spec's sd (rpm: 15)
    lat_rpm = torch.as_tensor(d.latent["rpm"], dtype=torch.float32)[:, None].expand(-1, 16)
    resid = (d.obs[..., 2] - lat_rpm)[~d.corrupt]
    assert abs(resid.std().item() - 15.0) < 0.5


@pytest.mark.parametrize("shift", SHIFTS)
def test_shifted_sets_keep_the_labelling_rules(shift):
    d = make_machining(3000, seed=11, shift=shift)
    raw = {k: d.latent[k] for k in d.latent} | {"grade": d.static["grade"]}
    covered = predict_hard(parse_rules(TRUE_RULES), raw) == 0  # labels recomputed from the latents
    labels = d.labels.numpy() == 0
    assert np.all(labels[covered])  # every rule-covered item is a failure
    assert np.all(covered[labels & ~(d.modes["TWF"] | d.modes["RNF"])])  # other failures are TWF / RNF only
    assert d.obs.shape[1] == (8 if shift == "M=8" else 16)


def test_shifts_change_inputs():
    base = make_machining(3000, 1)
    assert make_machining(3000, 1, shift="air+3K").latent["T_air"].mean() - base.latent["T_air"].mean() == \
        pytest.approx(3.0)
    assert make_machining(3000, 1, shift="torque mu 46").latent["torque"].mean() > 45
    assert np.mean(make_machining(3000, 1, shift="mix H-heavy").static["grade"] == "H") > 0.45


def _frames():
    d = make_machining(30, seed=2)
    obs, items = items_to_frames(d)
    return d, obs, items


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_read_long_tables_round_trip_with_variable_m(tmp_path, suffix):
    d, obs, items = _frames()
    obs = obs[~((obs.item_id == 3) & (obs.obs_idx >= 10))]  # item 3 has only 10 observations
    obs = obs.sample(frac=1.0, random_state=0)  # rows in any order
    op, ip = tmp_path / f"obs.{suffix}", tmp_path / f"items.{suffix}"
    (obs.to_csv(op, index=False), items.to_csv(ip, index=False)) if suffix == "csv" else \
        (obs.to_parquet(op), items.to_parquet(ip))
    got = load_tables(op, ip)
    assert got.obs.shape == (30, 16, 5) and got.channels == ("T_air", "T_proc", "rpm", "torque", "wear")
    assert got.mask[3].sum() == 10 and torch.all(got.obs[3, 10:] == 0)
    torch.testing.assert_close(got.obs[0], d.obs[0])
    torch.testing.assert_close(got.quality[5], d.quality[5])
    assert got.classes == ("failure", "ok") and torch.equal(got.labels, d.labels)
    assert list(got.static["grade"]) == list(d.static["grade"])


@pytest.mark.parametrize("mutate,needle", [
    (lambda o, i: (o.drop(columns=["item_id"]), i), "missing column 'item_id'"),
    (lambda o, i: (o, i.drop(columns=["label"])), "missing column 'label'"),
    (lambda o, i: (o.assign(rpm=o.rpm.astype(str) + "x"), i), "column 'rpm' must be numeric"),
    (lambda o, i: (o.assign(rpm=o.rpm.where(o.index != 7)), i), "column 'rpm' has the value nan at data row 8"),
    (lambda o, i: (o[o.item_id != 4], i), "item(s) without observations, e.g. item_id 4"),
    (lambda o, i: (o, i.iloc[1:]), "is not in the item table"),
])
def test_bad_tables_give_clear_errors(mutate, needle):
    _, obs, items = _frames()
    o, i = mutate(obs, items)
    with pytest.raises(InputError) as err:
        frames_to_items(o, i)
    assert needle in str(err.value)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(InputError, match="observations file .*nope.csv: not found"):
        load_tables(tmp_path / "nope.csv", tmp_path / "items.csv")
    bad = tmp_path / "bad.parquet"
    bad.write_text("not parquet")
    (tmp_path / "items.csv").write_text("item_id,label\n1,ok\n")
    with pytest.raises(InputError, match="bad.parquet: cannot be read .*expected a Parquet table"):
        load_tables(bad, tmp_path / "items.csv")
    assert isinstance(pd.DataFrame(), pd.DataFrame)
