"""Baselines and peers of `rulenet` (spec component 11, section 6 ablations, section 8 peers).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693
("comparable accuracy to a decent deep ensemble"). Design choices:
    DeepEnsemble   5 members (Lakshminarayanan et al. 2017), each the same GNN encoder as rulenet's assessor,
                   masked mean + max pooling over observations, static attributes one-hot, MLP 64-64 head;
                   independent seeds; averaged probabilities; the decision threshold is chosen on validation
                   (F1-optimal), which helps the black box, not us. In `reproduce` each member early-stops on
                   validation BCE within rulenet's epoch budget (issue 20: equal budgets).
    GBDT peer      scikit-learn HistGradientBoostingClassifier on per-item summary statistics (mean, median,
                   std, min, max of every channel, quality mean, static one-hot), threshold chosen on validation.
    imodels peer   FIGSClassifier (interpretable rule / tree sums) on the same statistics, when installed.
The pooled-rule and frozen-GNN ablations are rulenet configs (model.pooling, train.link = none), see reproduce.py.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from tenfold.systems.rulenet.model import DataAssessingModel
from tenfold.systems.rulenet.pipeline import Prepared, f1_positive

log = logging.getLogger("tenfold.rulenet")


def static_onehot(p: Prepared, levels: dict[str, list[str]]) -> torch.Tensor:
    """(N, sum of levels) one-hot of the static categorical attributes."""
    cols = [torch.as_tensor(np.asarray(p.data.static[k]).astype(str) == lv, dtype=torch.float32)
            for k, lvs in levels.items() for lv in lvs]
    return torch.stack(cols, 1) if cols else torch.zeros(len(p), 0)


class EnsembleMember(nn.Module):
    """GNN encoder -> masked mean and max pooling (B, 2h) + static one-hot -> MLP -> failure logit (B,)."""

    def __init__(self, dim_in: int, dim_static: int, hidden: int = 32, num_layers: int = 2, head: int = 64) -> None:
        super().__init__()
        self.encoder = DataAssessingModel(dim_in, hidden, num_layers)
        self.head = nn.Sequential(nn.Linear(2 * hidden + dim_static, head), nn.ReLU(), nn.Linear(head, head),
                                  nn.ReLU(), nn.Linear(head, 1))

    def forward(self, batch: dict[str, torch.Tensor], onehot: torch.Tensor) -> torch.Tensor:
        x = torch.cat([batch["obs"], batch["quality"]], -1)  # (B, M, d + q)
        h = self.encoder.encode(x, batch["adj"])  # (B, M, h)
        m = batch["mask"][..., None].float()
        mean = (h * m).sum(1) / m.sum(1).clamp_min(1)  # (B, h)
        mx = h.masked_fill(m == 0, -1e9).max(1).values  # (B, h)
        return self.head(torch.cat([mean, mx, onehot], -1)).squeeze(-1)  # (B, 1) -> (B,)


class DeepEnsemble:
    """M independently initialised members; `predict_proba` averages the members' probabilities."""

    def __init__(self, members: list[EnsembleMember], levels: dict[str, list[str]]) -> None:
        self.members, self.levels, self.threshold = members, levels, 0.5
        self.history: list[dict[str, Any]] = []

    @torch.no_grad()
    def member_probas(self, p: Prepared, batch_size: int = 4096) -> torch.Tensor:
        """(num_members, N) failure probabilities."""
        onehot = static_onehot(p, self.levels)
        out = []
        for m in self.members:
            m.eval()
            out.append(torch.cat([torch.sigmoid(m({k: v[s:s + batch_size] for k, v in p.tensors.items()},
                                                  onehot[s:s + batch_size])) for s in range(0, len(p), batch_size)]))
        return torch.stack(out)

    def predict_proba(self, p: Prepared) -> np.ndarray:
        return self.member_probas(p).mean(0).numpy()

    def predict(self, p: Prepared) -> np.ndarray:
        """Class index (0 = failure) at the validation-chosen threshold."""
        return np.where(self.predict_proba(p) >= self.threshold, 0, 1)


# Design choice: the black-box baselines get an F1-optimal decision threshold chosen on validation (rulenet's
# decision is its rules'); this favours the baselines.
def best_threshold(scores: np.ndarray, labels: np.ndarray) -> float:
    """The F1-optimal decision threshold on validation scores (failure = class 0)."""
    grid = np.unique(np.quantile(scores, np.linspace(0.5, 0.999, 200)))
    f1s = [f1_positive(np.where(scores >= t, 0, 1), labels) for t in grid]
    return float(grid[int(np.argmax(f1s))])


def _bce(member: EnsembleMember, p: Prepared, onehot: torch.Tensor, batch_size: int = 4096) -> float:
    """Mean BCE of one member on a split (the early-stopping criterion)."""
    target = (p.tensors["labels"] == 0).float()
    member.eval()
    with torch.no_grad():
        z = torch.cat([member({k: v[s:s + batch_size] for k, v in p.tensors.items()}, onehot[s:s + batch_size])
                       for s in range(0, len(p), batch_size)])
    return float(nn.functional.binary_cross_entropy_with_logits(z, target))


def train_member(member: EnsembleMember, train: Prepared, onehot: torch.Tensor, epochs: int, batch_size: int,
                 lr: float, gen: torch.Generator, val: Prepared | None = None, val_onehot: torch.Tensor | None = None,
                 patience: int = 3) -> dict[str, Any]:
    """Adam on BCE for at most `epochs` epochs. With `val`: early stopping on the validation BCE (Design choice,
    issue 20: the same epoch budget as rulenet and a best-validation-epoch selection): the best epoch's weights are
    kept, and training stops after `patience` epochs without a new best. Returns the convergence history."""
    opt = torch.optim.Adam(member.parameters(), lr=lr)
    target = (train.tensors["labels"] == 0).float()
    hist: dict[str, Any] = {"train_loss": [], "val_loss": [], "best_epoch": epochs}
    best, best_state, since = float("inf"), None, 0
    for epoch in range(epochs):
        member.train()
        perm = torch.randperm(len(train), generator=gen)
        total, nb = 0.0, 0
        for s in range(0, len(perm), batch_size):
            idx = perm[s:s + batch_size]
            batch = {k: v[idx] for k, v in train.tensors.items()}
            loss = nn.functional.binary_cross_entropy_with_logits(member(batch, onehot[idx]), target[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            total, nb = total + float(loss.detach()), nb + 1
        hist["train_loss"].append(total / max(nb, 1))
        if val is None:
            continue
        vl = _bce(member, val, val_onehot)
        hist["val_loss"].append(vl)
        if vl < best:
            best, best_state, since, hist["best_epoch"] = vl, copy.deepcopy(member.state_dict()), 0, epoch + 1
        else:
            since += 1
            if since >= patience:
                break
    if best_state is not None:
        member.load_state_dict(best_state)
    hist["epochs_trained"] = len(hist["train_loss"])
    return hist


def fit_deep_ensemble(train: Prepared, val: Prepared, num_members: int, epochs: int, seed: int, hidden: int = 32,
                      num_layers: int = 2, head: int = 64, batch_size: int = 256, lr: float = 1e-3,
                      patience: int | None = None) -> DeepEnsemble:
    """`epochs` is the epoch budget of each member; with `patience` each member early-stops on validation BCE
    (`train_member`); the histories are kept in `ensemble.history`."""
    levels = {k: sorted(set(np.asarray(v).astype(str).tolist())) for k, v in train.data.static.items()}
    onehot, val_onehot = static_onehot(train, levels), static_onehot(val, levels)
    dim_in = train.tensors["obs"].shape[-1] + train.tensors["quality"].shape[-1]
    members, history = [], []
    for j in range(num_members):
        torch.manual_seed(seed * 1000 + j)  # independent initialisation per member
        member = EnsembleMember(dim_in, onehot.shape[1], hidden, num_layers, head)
        history.append(train_member(member, train, onehot, epochs, batch_size, lr,
                                    torch.Generator().manual_seed(seed * 1000 + j),
                                    val if patience else None, val_onehot, patience or 0))
        members.append(member)
    ens = DeepEnsemble(members, levels)
    ens.history = history
    ens.threshold = best_threshold(ens.predict_proba(val), val.tensors["labels"].numpy())
    return ens


# ------------------------------------------------------------------------------------------- peers

def summary_stats(p: Prepared, levels: dict[str, list[str]]) -> np.ndarray:
    """Per-item summary statistics of the (original-unit) observations, (N, 5 d + q + levels)."""
    obs = p.data.obs.double()
    if obs.shape[1] != p.tensors["mask"].shape[1]:  # knn_rows view: use the view's standardised nodes
        obs = p.tensors["obs"].double()
    mask = p.tensors["mask"] if obs.shape[1] == p.tensors["mask"].shape[1] else p.data.mask
    m = mask[..., None]
    nan = obs.masked_fill(~m, float("nan"))
    mean = torch.nanmean(nan, 1)
    med = torch.nanmedian(nan, 1).values
    std = torch.sqrt(torch.nanmean((nan - mean[:, None]) ** 2, 1))
    mn = obs.masked_fill(~m, float("inf")).min(1).values
    mx = obs.masked_fill(~m, float("-inf")).max(1).values
    q = p.data.quality.double()
    qmean = (q * p.data.mask[..., None]).sum(1) / p.data.mask.sum(1, keepdim=True).clamp_min(1)
    return np.concatenate([mean, med, std, mn, mx, qmean, static_onehot(p, levels).double()], 1)


class SklearnPeer:
    """A scikit-learn style classifier on summary statistics, with the decision threshold chosen on validation."""

    def __init__(self, name: str, estimator: Any, levels: dict[str, list[str]]) -> None:
        self.name, self.estimator, self.levels, self.threshold = name, estimator, levels, 0.5

    def fit(self, train: Prepared, val: Prepared) -> "SklearnPeer":
        y = (train.tensors["labels"].numpy() == 0).astype(int)
        self.estimator.fit(summary_stats(train, self.levels), y)
        self.threshold = best_threshold(self.predict_proba(val), val.tensors["labels"].numpy())
        return self

    def predict_proba(self, p: Prepared) -> np.ndarray:
        return self.estimator.predict_proba(summary_stats(p, self.levels))[:, 1]

    def predict(self, p: Prepared) -> np.ndarray:
        return np.where(self.predict_proba(p) >= self.threshold, 0, 1)


def make_peers(train: Prepared, seed: int) -> list[SklearnPeer]:
    """GBDT (scikit-learn) always; imodels FIGS when `imodels` is installed (optional peer, skipped otherwise)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    levels = {k: sorted(set(np.asarray(v).astype(str).tolist())) for k, v in train.data.static.items()}
    peers = [SklearnPeer("GBDT (HistGB)", HistGradientBoostingClassifier(random_state=seed), levels)]
    try:
        from imodels import FIGSClassifier
    except ImportError:
        log.info("imodels not installed: the FIGS rule-learner peer is skipped")
    else:
        peers.append(SklearnPeer("imodels FIGS", FIGSClassifier(max_rules=12, random_state=seed), levels))
    return peers
