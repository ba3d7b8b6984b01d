"""Modules of `rulenet`: the data assessing GNN, key-feature extraction and the expert rule network.

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693.
All mechanisms are reconstructions (specs/rulenet.md section 2, every item a design choice):
    component 2  h^{l+1}_m = ReLU(LN(W_self h^l_m + W_nb sum_n A_hat_mn h^l_n));  s_m = w^T h^L_m + b
                 pi_m = softmax_m(s_m / tau_a); hard: top ceil(rho M) uniform          -> DataAssessingModel,
                                                                                          assessment_weights
    component 3  k_i = sum_m pi_m o_{i,m}                                              -> key_features
    component 4  g(k): derived features declared with the rules                        -> RuleNetwork.features
    component 6  soft atom sigma(sgn (f - theta) / (tau s_f)); interval; negation 1 - a;
                 c_r = prod_a (1 - g_a (1 - a));  P_c = 1 - prod_r (1 - w_r c_r);  z_c = logit P_c + b_c
                 hard: 1[f op theta], AND over gates >= 0.5, OR over w_r >= 0.5        -> RuleNetwork
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from tenfold.systems.rulenet.rules import RuleSet, compute_features

NEG_INF = -1e9
# Design choice: P is squeezed into [eps, 1 - eps] before the logit (eps = 0.01), so a hard 0/1 output has a
# finite loss and a finite grafted gradient (at most 1 / eps).
EPS_P = 0.01  # P is squeezed into [eps, 1 - eps] before the logit, so a hard 0/1 output has a finite loss


class SAGELayer(nn.Module):
    """One GraphSAGE-mean message-passing layer with LayerNorm (spec component 2)."""

    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.w_self = nn.Linear(dim_in, dim_out)
        self.w_nb = nn.Linear(dim_in, dim_out, bias=False)
        self.norm = nn.LayerNorm(dim_out)

    def forward(self, h: Tensor, adj_hat: Tensor) -> Tensor:
        # h (B, M, h_in), adj_hat (B, M, M) row-normalised -> (B, M, h_out)
        return torch.relu(self.norm(self.w_self(h) + self.w_nb(adj_hat @ h)))


class DataAssessingModel(nn.Module):
    """GNN over the observation graph; returns reliability logits s (B, M), -1e9 on padding."""

    def __init__(self, dim_in: int, hidden: int = 32, num_layers: int = 2) -> None:
        super().__init__()
        dims = [dim_in] + [hidden] * num_layers
        self.layers = nn.ModuleList(SAGELayer(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(hidden, 1)

    def encode(self, x: Tensor, adj_hat: Tensor) -> Tensor:
        h = x
        for layer in self.layers:
            h = layer(h, adj_hat)
        return h  # (B, M, hidden)

    def forward(self, x: Tensor, adj_hat: Tensor, mask: Tensor) -> Tensor:
        s = self.head(self.encode(x, adj_hat)).squeeze(-1)  # (B, M, 1) -> (B, M)
        return s.masked_fill(~mask, NEG_INF)


def assessment_weights(s: Tensor, mask: Tensor, tau_a: float = 1.0, hard: bool = False,
                       keep_fraction: float = 0.5) -> Tensor:
    """pi (B, M): softmax_m(s_m / tau_a) over valid observations; hard = top ceil(rho M_i), uniform."""
    if not hard:
        return torch.softmax(s.masked_fill(~mask, NEG_INF) / tau_a, dim=-1) * mask
    m_i = mask.sum(-1)  # (B,)
    keep = torch.ceil(keep_fraction * m_i).clamp_min(1)  # (B,)
    rank = s.masked_fill(~mask, NEG_INF).argsort(-1, descending=True).argsort(-1)  # (B, M): 0 = most trusted
    sel = (rank < keep[:, None]) & mask
    return sel.float() / sel.sum(-1, keepdim=True).float()


def key_features(pi: Tensor, obs: Tensor) -> Tensor:
    """k_i = sum_m pi_m o_{i,m}: (B, M) x (B, M, d) -> (B, d) (spec component 3)."""
    return torch.einsum("bm,bmd->bd", pi, obs)


def median_pool(obs: Tensor, mask: Tensor) -> Tensor:
    """Per-channel median of the valid observations, (B, M, d) -> (B, d) (the rule-only phase's features)."""
    x = obs.masked_fill(~mask[..., None], float("nan"))
    return torch.nanmedian(x, dim=1).values


def mean_pool(obs: Tensor, mask: Tensor) -> Tensor:
    w = mask.float() / mask.float().sum(-1, keepdim=True)
    return key_features(w, obs)


class RuleNetwork(nn.Module):
    """Expert-structured rule network with trainable thresholds, gates, rule weights and class biases.

    Structure (never trained): atom -> rule membership (R, A), rule -> class membership (C_r, R), formulas.
    Parameters: theta (A, 2) in feature-std units (col 0 = threshold or interval lo, col 1 = interval hi);
    gates (A,), rule weights (R,) in [0, 1]; class biases (C_r,). C_r = number of rule classes (the default
    class has logit 0).
    """

    def __init__(self, ruleset: RuleSet, feat_mean: dict[str, float], feat_std: dict[str, float]) -> None:
        super().__init__()
        self.ruleset = ruleset
        atoms = [a for _, a in ruleset.atoms]
        rule_of = [r for r, _ in ruleset.atoms]
        self.feature_names = ruleset.numeric_features
        rule_classes = ruleset.classes[:-1] if ruleset.default == ruleset.classes[-1] else ruleset.classes
        A, R, C = len(atoms), len(ruleset.rules), len(rule_classes)
        mu = torch.tensor([feat_mean[f] for f in self.feature_names], dtype=torch.float64)
        sd = torch.tensor([feat_std[f] for f in self.feature_names], dtype=torch.float64)
        self.register_buffer("feat_mean", mu)
        self.register_buffer("feat_std", sd)
        fidx = [self.feature_names.index(a.feature) if a.kind != "cat" else 0 for a in atoms]
        self.register_buffer("atom_feature", torch.tensor(fidx, dtype=torch.long))
        kind = [{"cmp": 0, "interval": 1, "cat": 2}[a.kind] for a in atoms]
        self.register_buffer("atom_kind", torch.tensor(kind, dtype=torch.long))
        sgn = [(1.0 if a.op in (">", ">=") else -1.0) if a.kind == "cmp" else 0.0 for a in atoms]
        self.register_buffer("atom_sign", torch.tensor(sgn, dtype=torch.float64))
        self.register_buffer("atom_strict", torch.tensor([a.op in ("<", ">") for a in atoms]))
        self.register_buffer("atom_negated", torch.tensor([a.negated for a in atoms]))
        member = torch.zeros(R, A, dtype=torch.bool)
        member[rule_of, torch.arange(A)] = True
        self.register_buffer("atom_to_rule", member)  # (R, A)
        r2c = torch.zeros(C, R, dtype=torch.bool)
        for r, rule in enumerate(ruleset.rules):
            r2c[rule_classes.index(rule.label), r] = True
        self.register_buffer("rule_to_class", r2c)  # (C, R)
        theta = torch.zeros(A, 2, dtype=torch.float64)
        for a, atom in enumerate(atoms):
            if atom.kind != "cat":
                f = fidx[a]
                theta[a, 0] = (atom.lo - mu[f]) / sd[f]
                theta[a, 1] = (atom.hi - mu[f]) / sd[f] if atom.kind == "interval" else 0.0
        self.register_buffer("theta_expert", theta.clone())
        self.theta = nn.Parameter(theta)
        self.gates = nn.Parameter(torch.ones(A, dtype=torch.float64))
        self.rule_weights = nn.Parameter(torch.tensor([r.weight for r in ruleset.rules], dtype=torch.float64))
        self.class_bias = nn.Parameter(torch.zeros(C, dtype=torch.float64))
        self.rule_classes = rule_classes

    # -- features -------------------------------------------------------------------------------
    def features(self, raw: dict[str, Tensor]) -> Tensor:
        """Key features and derived features g(k) in original units, (B, F) float64."""
        env = compute_features(self.ruleset, {k: v.double() for k, v in raw.items()})
        return torch.stack([env[f] for f in self.feature_names], dim=1)

    def thresholds_original(self) -> Tensor:
        """theta in original units, (A, 2) float64: mu_f + s_f theta (what export prints)."""
        f = self.atom_feature
        return self.feat_mean[f, None] + self.feat_std[f, None] * self.theta.detach()

    # -- atoms ----------------------------------------------------------------------------------
    def soft_atoms(self, feats: Tensor, cat: Tensor, tau: float) -> Tensor:
        """(B, F) original units, (B, A) category tests -> (B, A) soft truth values."""
        z = (feats[:, self.atom_feature] - self.feat_mean[self.atom_feature]) / self.feat_std[self.atom_feature]
        cmp = torch.sigmoid(self.atom_sign * (z - self.theta[:, 0]) / tau)
        interval = torch.sigmoid((z - self.theta[:, 0]) / tau) * torch.sigmoid((self.theta[:, 1] - z) / tau)
        a = torch.where(self.atom_kind == 0, cmp, torch.where(self.atom_kind == 1, interval, cat.double()))
        return torch.where(self.atom_negated, 1 - a, a)

    def hard_atoms(self, feats: Tensor, cat: Tensor) -> Tensor:
        """1[f op theta] in original units (bit-identical to the exported text's semantics), (B, A) float64."""
        th = self.thresholds_original()
        f = feats[:, self.atom_feature]
        lo, hi = th[:, 0], th[:, 1]
        gt = torch.where(self.atom_strict, f > lo, f >= lo)
        lt = torch.where(self.atom_strict, f < lo, f <= lo)
        cmp = torch.where(self.atom_sign > 0, gt, lt)
        interval = (f >= lo) & (f <= hi)
        a = torch.where(self.atom_kind == 0, cmp, torch.where(self.atom_kind == 1, interval, cat.bool()))
        return torch.where(self.atom_negated, ~a, a).double()

    # -- rules and classes ------------------------------------------------------------------------
    def combine(self, atoms: Tensor, hard: bool) -> tuple[Tensor, Tensor]:
        """Atoms (B, A) -> rule activations c (B, R) and class probabilities P (B, C_r)."""
        g = (self.gates >= 0.5).double() if hard else self.gates
        w = (self.rule_weights >= 0.5).double() if hard else self.rule_weights
        factor = 1 - g * (1 - atoms)  # (B, A)
        c = torch.where(self.atom_to_rule[None], factor[:, None, :], torch.ones_like(factor[:, None, :])).prod(-1)
        keep = 1 - w * c  # (B, R)
        P = 1 - torch.where(self.rule_to_class[None], keep[:, None, :], torch.ones_like(keep[:, None, :])).prod(-1)
        return c, P  # (B, R), (B, C_r)

    def logits(self, P: Tensor) -> Tensor:
        """z_c = logit(P_c) + b_c, with P squeezed into [eps, 1 - eps]: (B, C_r) -> (B, C_r)."""
        p = EPS_P + (1 - 2 * EPS_P) * P
        return torch.log(p) - torch.log1p(-p) + self.class_bias

    # Design choice (spec 5 allows per-class OR-scores or an ordered list): for several rule classes the first
    # firing rule in file order decides; a binary task is the same as "any rule fires".
    # Deviation (soft/hard mismatch, issue 20): multi-class training optimises per-class noisy-OR + CE
    # (loss.rule_loss), not this order; labelled, not aligned. A rule whose atoms are all gated off is off (never
    # an empty conjunction that always fires); export and explain name it (export.learned_ruleset).
    def hard_decision(self, c_hard: Tensor) -> Tensor:
        """Class index (into ruleset.classes) per item: first firing enabled rule in file order, else default."""
        has_atom = (self.atom_to_rule & (self.gates >= 0.5)[None]).any(1)  # (R,): a rule with no atom is off
        fires = (c_hard > 0.5) & ((self.rule_weights >= 0.5) & has_atom)[None]  # (B, R)
        cls_of_rule = self.rule_to_class.float().argmax(0)  # (R,)
        first = torch.where(fires.any(1), fires.float().argmax(1), torch.zeros(len(fires), dtype=torch.long))
        default = self.ruleset.classes.index(self.ruleset.default)
        return torch.where(fires.any(1), cls_of_rule[first], torch.full_like(first, default))

    def clip_(self) -> None:
        """Clip w and g to [0, 1] after each optimiser step (spec component 6)."""
        with torch.no_grad():
            self.gates.clamp_(0, 1)
            self.rule_weights.clamp_(0, 1)


class RuleNet(nn.Module):
    """Data assessing model + key features + rule network (the whole rulenet model)."""

    def __init__(self, ruleset: RuleSet, channels: tuple[str, ...], chan_mean: Tensor, chan_std: Tensor,
                 feat_mean: dict[str, float], feat_std: dict[str, float], num_quality: int,
                 hidden: int = 32, num_layers: int = 2) -> None:
        super().__init__()
        self.channels = channels
        self.register_buffer("chan_mean", chan_mean.double())  # (d,)
        self.register_buffer("chan_std", chan_std.double())  # (d,)
        self.assessor = DataAssessingModel(len(channels) + num_quality, hidden, num_layers)
        self.rules = RuleNetwork(ruleset, feat_mean, feat_std)

    def raw_from_k(self, k_std: Tensor, static: dict[str, Any] | None = None) -> dict[str, Tensor]:
        """Key features in standardised units (B, d) -> {channel: (B,) original units, float64}."""
        k = self.chan_mean + self.chan_std * k_std.double()  # (B, d)
        return {c: k[:, i] for i, c in enumerate(self.channels)}

    def assess(self, batch: dict[str, Tensor], hard: bool = False, keep_fraction: float = 0.5,
               tau_a: float = 1.0) -> tuple[Tensor, Tensor, Tensor]:
        """Reliability logits s (B, M), weights pi (B, M), key features k_std (B, d)."""
        x = torch.cat([batch["obs"], batch["quality"]], dim=-1)  # (B, M, d + q)
        s = self.assessor(x, batch["adj"], batch["mask"])
        pi = assessment_weights(s, batch["mask"], tau_a, hard, keep_fraction)
        return s, pi, key_features(pi, batch["obs"])


def feature_stats(feats: np.ndarray, names: list[str]) -> tuple[dict[str, float], dict[str, float]]:
    """Training mean and std of each rule feature (used to standardise thresholds), (N, F) -> dicts."""
    mu = feats.mean(0)
    sd = np.maximum(feats.std(0), 1e-9)
    return ({n: float(m) for n, m in zip(names, mu)}, {n: float(s) for n, s in zip(names, sd)})


def logit(p: float) -> float:
    return math.log(p) - math.log1p(-p)
