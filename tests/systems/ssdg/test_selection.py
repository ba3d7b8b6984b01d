"""The evolving intermediate domain, the labeled flag and the no-leak invariant (spec components 10, 11; section 7).
"""

import numpy as np
import pytest
import torch

from tenfold.core.config import make_config
from tenfold.systems.ssdg.config import PROFILES, Config
from tenfold.systems.ssdg.data import (labeled_set, load_task, released_path_split, tasks, unlabeled_set,
                                       union)
from tenfold.systems.ssdg.generalization import split_by_flag
from tenfold.systems.ssdg.intermediate_domain import select_from_probs
from tenfold.systems.ssdg.train import CyclicSSDG, run_cyclic


def _probs(conf: list[float], labels: list[int], c: int = 3) -> torch.Tensor:
    p = torch.zeros(len(conf), c)
    for i, (q, y) in enumerate(zip(conf, labels)):
        p[i] = (1 - q) / (c - 1)
        p[i, y] = q
    return p


def test_selection_hand_example():
    # batch of 10; peers agree on samples 0..5 (labels equal), disagree on 6..9.
    la = [0, 1, 2, 0, 1, 2, 0, 1, 2, 0]
    lb = la[:6] + [1, 2, 0, 1]
    pa = _probs([0.5, 0.9, 0.6, 0.95, 0.7, 0.4, 0.99, 0.99, 0.99, 0.99], la)
    pb = _probs([0.6] * 10, lb)
    idx, y = select_from_probs(pa, pb, ratio=0.4, criterion="confidence", batch=128)
    # floor(0.4 * 6) = 2 kept: the two most confident agreeing ones, samples 3 (0.95) and 1 (0.9), peer a's labels
    assert idx.tolist() == [1, 3] and y.tolist() == [la[1], la[3]]
    # per batch of 5: batch 1 agrees on 0..4 -> floor(2.0) = 2 (3, 1); batch 2 agrees on 5 only -> floor(0.4) = 0
    idx, _ = select_from_probs(pa, pb, ratio=0.4, criterion="confidence", batch=5)
    assert idx.tolist() == [1, 3]


def test_oracle_needs_labels_and_reads_them():
    la = [0, 1, 2, 0, 1, 2]
    pa = _probs([0.5, 0.9, 0.6, 0.95, 0.7, 0.4], la)
    with pytest.raises(ValueError, match="oracle"):
        select_from_probs(pa, pa, criterion="oracle")
    truth = np.array([0, 2, 2, 1, 1, 2])  # peer a is wrong on samples 1 and 3
    idx, _ = select_from_probs(pa, pa, ratio=0.4, criterion="oracle", oracle_labels=truth)
    # CE against the truth: the correct, confident ones win: samples 4 (0.7) and 2 (0.6)
    assert idx.tolist() == [2, 4]
    # the label-free criteria ignore any labels: the same selection whatever the truth
    a = select_from_probs(pa, pa, ratio=0.4, criterion="confidence")[0]
    assert a.tolist() == [1, 3]


@pytest.mark.parametrize("lab,unl", [("art", "clipart"), ("mnist", "mnist_m"), ("photo", "photo_web")])
def test_flag_not_path_decides_labeled(lab, unl, tmp_path):
    img = np.zeros((3, 4, 4, 3), np.uint8)
    root = f"/data/{lab}_root"  # a parent directory containing the labeled domain's name
    ds = union([labeled_set(lab, img, np.array([0, 1, 2]), 0, [f"{root}/{lab}/{i}.jpg" for i in range(3)]),
                unlabeled_set(unl, img, 1, [f"{root}/{unl}/{i}.jpg" for i in range(3)])])
    t_idx, q_idx = split_by_flag(torch.as_tensor(ds.is_labeled))
    assert t_idx.tolist() == [0, 1, 2] and q_idx.tolist() == [3, 4, 5]
    # the released path-substring test counts every pseudo-labeled sample as ground truth (Bug 2)
    assert released_path_split(ds.paths, lab).all()


def test_affected_released_tasks_listed():
    """Office-Home (art, clipart, product, real_world) and Digits-DG (mnist, mnist_m, svhn, syn): the tasks whose
    unlabeled domains contain the labeled domain's name are exactly the art2* / mnist2* ones with clipart / mnist_m
    unlabeled; the flag is unaffected by names."""
    hit = []
    for doms in (("art", "clipart", "product", "real_world"), ("mnist", "mnist_m", "svhn", "syn")):
        for l, us, t in tasks(doms):
            if any(l in u for u in us):
                hit.append(f"{l}2{t}")
    assert hit == ["art2product", "art2real_world", "mnist2svhn", "mnist2syn"]


def _tiny_cfg():
    return make_config(Config, PROFILES, "smoke", {"seed": 3, "data.n_per_domain": 48, "train.batch_size": 16,
                                                  "train.dg_epochs": 1})


def _run(cfg, permute: bool):
    task = load_task(cfg)
    if permute:  # poison the hidden ground truth of the unlabeled domains
        rng = np.random.default_rng(5)
        task.hidden_truth = {k: (rng.permutation(v) + 3) % 10 for k, v in task.hidden_truth.items()}
    torch.manual_seed(cfg.seed)
    res = run_cyclic(cfg, task, None, torch.device("cpu"))
    res["truth"] = task.hidden_truth
    return res


def test_no_leak_selection_and_weights_ignore_the_hidden_labels():
    cfg = _tiny_cfg()
    a, b = _run(cfg, False), _run(cfg, True)
    ta, tb = a["trainer"], b["trainer"]
    for (ia, ya), (ib, yb) in zip(ta.inter, tb.inter):
        assert np.array_equal(ia, ib) and np.array_equal(ya, yb)
    for k, v in ta.dg.a.state_dict().items():
        assert torch.equal(v, tb.dg.a.state_dict()[k]), k
    for k, v in a["final_model"].items():
        assert torch.equal(v, b["final_model"][k])
    # the poisoning took effect: every hidden label array differs
    assert all(not np.array_equal(a["truth"][k], b["truth"][k]) for k in a["truth"])


def test_warm_start_same_objects_and_reselection():
    cfg = _tiny_cfg()
    task = load_task(cfg)
    tr = CyclicSSDG(cfg, task.train, task.unlabeled, task.val, 10)
    ids = (id(tr.mcd[0].net), id(tr.mcd[0].opt_f), id(tr.dg.a), id(tr.dg.opt_a))
    tr.train_cycle()
    s0 = tr.select()
    assert len(tr.pseudo[0]) == len(task.unlabeled[0])  # Phase 1 labels every sample, no threshold
    tr.train_cycle()
    s1 = tr.select()
    assert ids == (id(tr.mcd[0].net), id(tr.mcd[0].opt_f), id(tr.dg.a), id(tr.dg.opt_a))
    assert tr.mcd[0].opt_f.state  # optimizer state carried over (warm start)
    # I_k is re-selected from scratch: at most ratio x |D_Uk|, never the union of the two cycles' sets
    n = len(task.unlabeled[0])
    assert len(s1["inter_idx"][0]) <= 0.4 * n + 1e-9
    pool = tr.labeled_pool(0)
    assert len(pool) == len(task.train) + len(s1["inter_idx"][0])
    assert not pool.is_labeled[len(task.train):].any()  # intermediate samples keep the pseudo flag
