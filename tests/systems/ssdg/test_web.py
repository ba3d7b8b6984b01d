"""The web (open-set) treatments of `ssdg` (spec component 14; arXiv 2111.10221, official web scripts)."""

import numpy as np
import pytest

from tenfold.core.config import make_config
from tenfold.systems.ssdg.config import PROFILES, Config
from tenfold.systems.ssdg.data import load_task
from tenfold.systems.ssdg.train import CyclicSSDG, web_labels_of


def _web(treatment):
    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 40, "data.web": True,
                                                  "train.web_treatment": treatment, "seed": 2})
    task = load_task(cfg)
    return cfg, task, CyclicSSDG(cfg, task.train, task.unlabeled, task.val, 10, "cpu", web_labels_of(task))


def test_web_task_replaces_the_unlabeled_domains_and_hides_the_truth():
    cfg, task, _ = _web("refined")
    assert task.unlabeled_names == ["W"] and task.labeled == "P" and task.target_name == "T"
    assert (task.unlabeled[0].labels == -1).all() and not task.unlabeled[0].is_labeled.any()
    crawl, truth = task.web_labels["W"], task.hidden_truth["W"]
    assert crawl.min() >= 0 and crawl.max() <= 9  # every crawl label is a class, out-of-class images included
    assert (truth == -1).any() and (crawl != truth).any()  # open set and noisy: crawl labels are not the truth


@pytest.mark.parametrize("treatment", ["retained", "ignored", "refined"])
def test_treatments_use_crawl_labels_or_mcd_as_specified(treatment):
    _, task, tr = _web(treatment)
    crawl = task.web_labels["W"]
    rec0 = tr.train_cycle()
    tr.select()
    mcd_after_0 = tr.mcd[0].image_passes
    rec1 = tr.train_cycle()
    if treatment == "retained":  # crawl labels in every cycle, no MCD ever
        assert np.array_equal(rec0["pseudo_labels"][0], crawl) and np.array_equal(rec1["pseudo_labels"][0], crawl)
        assert tr.mcd[0].image_passes == 0
    elif treatment == "refined":  # crawl labels in cycle 0, MCD from cycle 1 on
        assert np.array_equal(rec0["pseudo_labels"][0], crawl) and mcd_after_0 == 0
        assert tr.mcd[0].image_passes > 0
    else:  # ignored: the web domain is plain unlabeled data, MCD from cycle 0
        assert mcd_after_0 > 0
    assert tr.dg.image_passes > 0


def test_close_set_trainer_has_no_web_labels():
    cfg = make_config(Config, PROFILES, "smoke", {"data.n_per_domain": 40})
    task = load_task(cfg)
    assert web_labels_of(task) is None and task.web_labels == {}
