"""Phase 3 of `ssdg` (Lin et al., "Semi-Supervised Domain Generalization with Evolving Intermediate Domain",
arXiv 2111.10221): the evolving intermediate domain (spec component 10).

Both peers run over D_Uk in fixed order (test transform, batches of 128); per batch the indices where their
argmax labels agree are ranked by a per-sample score and the lowest floor(ratio * n_agree) are kept, labelled
with peer a's argmax. The kept set I_k^{r+1} is re-selected from scratch each cycle and joins D_L as the next
MCD round's labeled pool.

Scores (`criterion`), lower = more reliable:
  "confidence"       (default) CE of peer a against its own argmax = -log max_c p_a(c|x)   [label-free]
  "mean_confidence"  -(max_c p_a + max_c p_b) / 2                                          [label-free]
  "mcd_agreement"    CE of peer a against the Phase-1 MCD pseudo label                     [label-free]
  "oracle"           CE of peer a against the stored GROUND TRUTH: the released code's leak (Bug 1); raises
                     unless `oracle_labels` is passed explicitly; reported only as an oracle row.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from tenfold.systems.ssdg.data import DomainSet, predict_probs

LABEL_FREE = ("confidence", "mean_confidence", "mcd_agreement")


def reliability_score(pa: torch.Tensor, pb: torch.Tensor, criterion: str, mcd_labels: np.ndarray | None = None,
                      oracle_labels: np.ndarray | None = None, eps: float = 1e-12) -> torch.Tensor:
    """Per-sample score [N] (lower = kept first) from the peers' probabilities [N, C]."""
    if criterion == "confidence":
        return -torch.log(pa.max(dim=1).values + eps)
    if criterion == "mean_confidence":
        return -(pa.max(dim=1).values + pb.max(dim=1).values) / 2
    if criterion == "mcd_agreement":
        if mcd_labels is None:
            raise ValueError("criterion 'mcd_agreement' needs the Phase-1 MCD pseudo labels")
        return -torch.log(pa[torch.arange(len(pa)), torch.as_tensor(mcd_labels)] + eps)
    if criterion == "oracle":
        if oracle_labels is None:
            raise ValueError("criterion 'oracle' reads the unlabeled domain's ground truth (the released leak); "
                             "pass oracle_labels explicitly: it is an oracle ablation, never the method")
        return -torch.log(pa[torch.arange(len(pa)), torch.as_tensor(oracle_labels)] + eps)
    raise ValueError(f"criterion must be one of {LABEL_FREE + ('oracle',)}, got {criterion!r}")


def select_from_probs(pa: torch.Tensor, pb: torch.Tensor, ratio: float = 0.4, criterion: str = "confidence",
                      batch: int = 128, mcd_labels: np.ndarray | None = None,
                      oracle_labels: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(kept indices, peer a's labels for them) from the peers' probabilities [N, C], batch by batch."""
    if criterion == "oracle" and oracle_labels is None:
        raise ValueError("criterion 'oracle' needs oracle_labels passed explicitly (it reads ground truth)")
    score = reliability_score(pa, pb, criterion, mcd_labels, oracle_labels)
    ya, yb = pa.argmax(1), pb.argmax(1)
    kept: list[np.ndarray] = []
    for s in range(0, len(pa), batch):
        agree = torch.nonzero(ya[s:s + batch] == yb[s:s + batch], as_tuple=True)[0]
        n_keep = int(math.floor(ratio * len(agree) + 1e-9))  # Design choice: floor per batch
        order = torch.argsort(score[s:s + batch][agree], stable=True)[:n_keep]
        kept.append((agree[order] + s).numpy())
    idx = np.sort(np.concatenate(kept)).astype(np.int64) if kept else np.zeros(0, np.int64)
    return idx, ya[idx].numpy().astype(np.int64)


def select_intermediate_domain(peers: Sequence[torch.nn.Module], dataset: DomainSet, ratio: float = 0.4,
                               criterion: str = "confidence", oracle_labels: np.ndarray | None = None,
                               mcd_labels: np.ndarray | None = None, batch: int = 128,
                               device: torch.device | str = "cpu") -> tuple[np.ndarray, np.ndarray]:
    """I_k^{r+1}: (indices into `dataset`, peer a's labels). `dataset` carries no ground truth (labels -1)."""
    if criterion == "oracle" and oracle_labels is None:
        raise ValueError("criterion 'oracle' needs oracle_labels passed explicitly (it reads ground truth)")
    pa = predict_probs(peers[0], dataset.images, batch, device)
    pb = predict_probs(peers[1], dataset.images, batch, device)
    return select_from_probs(pa, pb, ratio, criterion, batch, mcd_labels, oracle_labels)
