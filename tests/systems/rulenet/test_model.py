"""rulenet modules: rule network semantics (hand-computed), assessment invariants, graph (spec section 7)."""

from __future__ import annotations

import math

import pytest
import torch
from torch.testing import assert_close

from tenfold.systems.rulenet.graph import build_observation_graph, knn_rows_graph, row_normalise
from tenfold.systems.rulenet.model import DataAssessingModel, RuleNetwork, assessment_weights, key_features
from tenfold.systems.rulenet.rules import parse_rules

SIG1 = 1 / (1 + math.exp(-1))  # sigma(1) = 0.7311


def _net(text: str, mean: float = 0.0, std: float = 1.0) -> RuleNetwork:
    rs = parse_rules(text)
    feats = rs.numeric_features
    return RuleNetwork(rs, {f: mean for f in feats}, {f: std for f in feats})


def test_soft_atom_values_hand_computed():
    # f > theta at f = theta -> sigma(0) = 0.5; at f = theta + tau s_f -> sigma(1) = 0.7311;
    # f < theta at the same point -> sigma(-1) = 0.2689.  theta = 3, s_f = 2, tau = 0.5 -> tau s_f = 1.
    net = _net("default : ok\nfail : f > 3\nfail : f < 3", mean=1.0, std=2.0)
    f = torch.tensor([[3.0], [4.0]], dtype=torch.float64)
    a = net.soft_atoms(f, torch.zeros(2, 2), tau=0.5)
    assert_close(a, torch.tensor([[0.5, 0.5], [SIG1, 1 - SIG1]], dtype=torch.float64))


def test_interval_and_negation_soft_values():
    # interval [0, 2] at f = 1, tau s_f = 1: sigma(1) sigma(1) = 0.5345; negation: 1 - 0.5345.
    net = _net("default : ok\nfail : f in [0, 2]\nfail : !(f in [0, 2])")
    a = net.soft_atoms(torch.tensor([[1.0]], dtype=torch.float64), torch.zeros(1, 2), tau=1.0)
    assert_close(a, torch.tensor([[SIG1**2, 1 - SIG1**2]], dtype=torch.float64))


def test_hard_atom_flips_exactly_at_theta_strict_vs_non_strict():
    net = _net("default : ok\nfail : f > 3\nfail : f >= 3\nfail : f < 3\nfail : f <= 3")
    f = torch.tensor([[3.0], [3.0000000001]], dtype=torch.float64)
    a = net.hard_atoms(f, torch.zeros(2, 4))
    assert a.tolist() == [[0.0, 1.0, 0.0, 1.0], [1.0, 1.0, 0.0, 0.0]]


def test_conjunction_with_gates_hand_computed():
    # atoms (0.9, 0.2), gates (1, 0.5) -> (1 - 0.1)(1 - 0.5 * 0.8) = 0.9 * 0.6 = 0.54; a gate of 0 -> factor 1.
    net = _net("default : ok\nfail : x > 0 & y > 0")
    atoms = torch.tensor([[0.9, 0.2]], dtype=torch.float64)
    with torch.no_grad():
        net.gates.copy_(torch.tensor([1.0, 0.5]))
    c, _ = net.combine(atoms, hard=False)
    assert_close(c, torch.tensor([[0.54]], dtype=torch.float64))
    with torch.no_grad():
        net.gates.copy_(torch.tensor([1.0, 0.0]))
    c, _ = net.combine(atoms, hard=False)
    assert_close(c, torch.tensor([[0.9]], dtype=torch.float64))


def test_noisy_or_hand_computed():
    # c = (0.8, 0.5), w = (1, 0.5) -> 1 - (1 - 0.8)(1 - 0.25) = 1 - 0.2 * 0.75 = 0.85
    net = _net("default : ok\nfail : x > 0\nfail : y > 0")
    with torch.no_grad():
        net.rule_weights.copy_(torch.tensor([1.0, 0.5]))
    _, P = net.combine(torch.tensor([[0.8, 0.5]], dtype=torch.float64), hard=False)
    assert_close(P, torch.tensor([[0.85]], dtype=torch.float64))
    # hard: w >= 0.5 counts as 1, so one firing rule -> P = 1; the decision is the rule class (index 0)
    c, P = net.combine(torch.tensor([[0.0, 1.0]], dtype=torch.float64), hard=True)
    assert P.item() == 1.0 and net.hard_decision(c).tolist() == [0]
    with torch.no_grad():
        net.rule_weights.copy_(torch.tensor([1.0, 0.4]))  # w < 0.5: the rule is disabled
    c, _ = net.combine(torch.tensor([[0.0, 1.0]], dtype=torch.float64), hard=True)
    assert net.hard_decision(c).tolist() == [1]


def test_thresholds_initialise_at_expert_values_in_original_units():
    net = _net("default : ok\nfail : f > 10 & g in [1, 5]", mean=2.0, std=4.0)
    # theta_std = (10 - 2) / 4 = 2; interval (1 - 2) / 4 = -0.25, (5 - 2) / 4 = 0.75
    assert_close(net.theta.detach(), torch.tensor([[2.0, 0.0], [-0.25, 0.75]], dtype=torch.float64))
    assert_close(net.thresholds_original()[:, 0], torch.tensor([10.0, 1.0], dtype=torch.float64))


def _toy_batch(B=3, M=5, d=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    obs = torch.randn(B, M, d, generator=g)
    mask = torch.ones(B, M, dtype=torch.bool)
    mask[0, 3:] = False  # item 0 has 3 observations
    adj = row_normalise(build_observation_graph(obs, mask, k=2))
    return obs, mask, adj


def test_assessment_permutation_invariance_padding_and_batch_of_one():
    torch.manual_seed(0)
    gnn = DataAssessingModel(2, hidden=8, num_layers=2)
    obs, mask, adj = _toy_batch()
    pi = assessment_weights(gnn(obs, adj, mask), mask)
    assert torch.all(pi[0, 3:] == 0)  # padded observations get pi = 0
    assert_close(pi.sum(-1), torch.ones(3))
    k = key_features(pi, obs)
    perm = torch.tensor([4, 2, 0, 1, 3])
    obs_p, mask_p = obs[1:, perm], mask[1:, perm]
    adj_p = row_normalise(build_observation_graph(obs_p, mask_p, k=2, time_ordered=False))
    adj_u = row_normalise(build_observation_graph(obs[1:], mask[1:], k=2, time_ordered=False))
    pi_u = assessment_weights(gnn(obs[1:], adj_u, mask[1:]), mask[1:])
    pi_p = assessment_weights(gnn(obs_p, adj_p, mask_p), mask_p)
    assert_close(pi_p, pi_u[:, perm])  # pi permutes with the observations
    assert_close(key_features(pi_p, obs_p), key_features(pi_u, obs[1:]))  # k unchanged
    one = assessment_weights(gnn(obs[:1], adj[:1], mask[:1]), mask[:1])
    assert_close(one, pi[:1])  # batch of one equals batched
    assert_close(k[0], (pi[0, :3, None] * obs[0, :3]).sum(0))


def test_hard_assessment_keeps_top_half_uniform():
    s = torch.tensor([[3.0, 1.0, 2.0, 0.0]])
    pi = assessment_weights(s, torch.ones(1, 4, dtype=torch.bool), hard=True, keep_fraction=0.5)
    assert_close(pi, torch.tensor([[0.5, 0.0, 0.5, 0.0]]))


def test_graph_weights_hand_computed_and_padding():
    # three 1-d observations at 0, 1, 3 (+ one padded): distances 1, 3, 2; sigma = median(1, 3, 2) = 2;
    # k = 1 -> nearest: 0-1, 1-0, 3-1 (dist 2); with time order also (0,1), (1,2); symmetrised: edges 0-1, 1-2.
    obs = torch.tensor([[[0.0], [1.0], [3.0], [9.0]]])
    mask = torch.tensor([[True, True, True, False]])
    adj = build_observation_graph(obs, mask, k=1, time_ordered=True)
    e01, e12 = math.exp(-1 / 4), math.exp(-4 / 4)
    expected = torch.tensor([[[0, e01, 0, 0], [e01, 0, e12, 0], [0, e12, 0, 0], [0, 0, 0, 0]]], dtype=torch.float32)
    assert_close(adj, expected)


@pytest.mark.parametrize("method", ["index", "exact"])
def test_knn_rows_graph_matches_a_loop(method):
    x = torch.tensor([[0.0], [1.0], [5.0], [5.5]])
    idx, w = knn_rows_graph(x, k=1, method=method)
    assert idx[:, 0].tolist() == [1, 0, 3, 2]
    # neighbour distances 1, 1, 0.5, 0.5 -> sigma = their median; torch takes the lower middle value, 0.5
    sigma = float(torch.tensor([1.0, 1.0, 0.5, 0.5]).median())
    assert_close(w[:, 0], torch.exp(-torch.tensor([1.0, 1.0, 0.25, 0.25]) / sigma**2))


def test_gradient_reaches_every_trainable_parameter():
    net = _net("default : ok\nfail : x > 0 & y in [0, 1]\nfail : !(x < 2)")
    net.gates.requires_grad_(True)
    feats = torch.tensor([[0.3, 0.5], [1.5, -0.2]], dtype=torch.float64)
    _, P = net.combine(net.soft_atoms(feats, torch.zeros(2, 3), tau=1.0), hard=False)
    net.logits(P).sum().backward()
    for name, p in net.named_parameters():
        assert p.grad is not None and torch.any(p.grad != 0), name


def _rulenet(text: str):
    from tenfold.systems.rulenet.model import RuleNet

    rs = parse_rules(text)
    chans = ("x", "y")
    return RuleNet(rs, chans, torch.zeros(2), torch.ones(2), {f: 0.0 for f in rs.numeric_features},
                   {f: 1.0 for f in rs.numeric_features}, num_quality=0, hidden=4, num_layers=1)


def test_rule_with_every_atom_gated_off_is_reported_in_export_and_explain():
    # rule 2 (y > 0 & x < 5) has both atoms gated off (g = 0.2, 0.1 < 0.5): it is off, and both the export and
    # explain() say why; rule 1 keeps w = 1 and its atom, so x = 1 > 0 fires it.
    from tenfold.systems.rulenet.export import explain_item, export_rules, learned_ruleset

    model = _rulenet("default : ok\nfail : x > 0\nfail : y > 0 & x < 5\n")
    with torch.no_grad():
        model.rules.gates.copy_(torch.tensor([1.0, 0.2, 0.1], dtype=torch.float64))
    rs, report = learned_ruleset(model)
    assert len(rs.rules) == 1 and [it["disabled_reason"] for it in report] == ["", "all atoms gated off (g < 0.5)"]
    text = export_rules(model)
    assert "# disabled (all atoms gated off (g < 0.5)): fail : y > 0.0 & x < 5.0" in text
    ex = explain_item(model, torch.tensor([1.0, 1.0]), torch.zeros(0), {})
    assert ex["prediction"] == "fail" and ex["rule"] == "fail : x > 0.0"
    assert ex["disabled_rules"] == [{"rule": "fail : y > 0.0 & x < 5.0", "reason": "all atoms gated off (g < 0.5)"}]
    # the hard decision agrees: y = 1 > 0 alone does not fire the gated-off rule (x = -1 fails rule 1) -> ok
    c, _ = model.rules.combine(model.rules.hard_atoms(torch.tensor([[-1.0, 1.0]], dtype=torch.float64),
                                                      torch.zeros(1, 3)), hard=True)
    assert model.rules.hard_decision(c).tolist() == [1]


def test_knn_rows_index_equals_the_exact_cdist_search():
    # the kd-tree index (default) and the O(N^2) chunked cdist give the same neighbours, in the same order, and
    # the same weights, on continuous random rows (no distance ties); chunk 97 exercises the chunk borders
    x = torch.randn(600, 5, generator=torch.Generator().manual_seed(3))
    i1, w1 = knn_rows_graph(x, k=6, method="index")
    i2, w2 = knn_rows_graph(x, k=6, chunk=97, method="exact")
    assert torch.equal(i1, i2) and i1.shape == (600, 6) and not (i1 == torch.arange(600)[:, None]).any()
    assert_close(w1, w2, atol=1e-5, rtol=1e-5)
