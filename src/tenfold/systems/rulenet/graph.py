"""`ObservationGraph`: the graph whose nodes are observations (spec component 1).

Paper: Li et al., "Deep Explainable Learning with Graph Based Data Assessing and Rule Reasoning", arXiv 2211.04693:
"treats the data as a graph whose nodes are observations, with edges encoding correlations among observations".
Reconstruction (design choice, specs/rulenet.md component 1):
    intra (default): the M observations of one item are linked by kNN in standardised observation space,
        k = min(6, M - 1), symmetrised, plus (m, m +- 1) when time-ordered;
        e_mn = exp(-||o_m - o_n||^2 / sigma^2), sigma = median pairwise distance within the item;
        dense adjacency (B, M_max, M_max), zero on padded rows / columns.
    knn_rows: every row is one observation and the kNN graph links similar rows across the data set.
"""

from __future__ import annotations

import torch
from torch import Tensor


def build_observation_graph(obs: Tensor, mask: Tensor, k: int = 6, time_ordered: bool = True) -> Tensor:
    """Dense weighted adjacency of the intra-item observation graph.

    Args:
        obs: (B, M, d) standardised observations.
        mask: (B, M) bool, False on padding.
        k: neighbours per node before symmetrising (clipped to M_i - 1 per item).
        time_ordered: also link (m, m + 1) (observations are in time order).
    Returns:
        (B, M, M) non-negative symmetric weights, zero diagonal, zero on padded rows / columns.
    """
    B, M, _ = obs.shape
    valid = mask[:, :, None] & mask[:, None, :]  # (B, M, M)
    eye = torch.eye(M, dtype=torch.bool, device=obs.device)[None]
    dist = torch.cdist(obs, obs)  # (B, M, M)
    pair = valid & ~eye
    # sigma = median pairwise distance within each item (padding and the diagonal excluded)
    big = torch.where(pair, dist, torch.full_like(dist, float("nan")))
    sigma = torch.nanmedian(big.reshape(B, M * M), dim=1).values  # (B,)
    sigma = torch.nan_to_num(sigma, nan=1.0).clamp_min(1e-6)
    weight = torch.exp(-dist.pow(2) / sigma[:, None, None].pow(2))
    kk = max(min(k, M - 1), 0)
    adj = torch.zeros(B, M, M, dtype=torch.bool, device=obs.device)
    if kk > 0:
        ranked = torch.where(pair, dist, torch.full_like(dist, float("inf")))
        nn_idx = ranked.topk(kk, dim=2, largest=False).indices  # (B, M, kk)
        adj.scatter_(2, nn_idx, True)
    if time_ordered and M > 1:
        adj[:, torch.arange(M - 1), torch.arange(1, M)] = True
    adj = adj | adj.transpose(1, 2)  # symmetrise
    adj = adj & pair  # drop links to padding (topk over inf picks padded nodes when M_i - 1 < k)
    return torch.where(adj, weight, torch.zeros_like(weight))


def knn_rows_graph(x: Tensor, k: int = 6, chunk: int = 4096, method: str = "index") -> tuple[Tensor, Tensor]:
    """knn_rows mode: each row is an observation; returns neighbour indices (N, k) and weights (N, k).

    Weights exp(-d^2 / sigma^2) with sigma the median neighbour distance.
    Args:
        method: "index" (default): a kd-tree / ball-tree index (scikit-learn `NearestNeighbors`), about
            O(N log N) for the low-dimensional rows here; "exact": chunked `torch.cdist` top-k, O(N^2) time and
            O(chunk N) memory (the reference the index is tested against). Design choice (issue 20): the full
            profile's 10^6 rows are out of reach of the O(N^2) search (README benchmark).
    """
    n = x.shape[0]
    kk = min(k, n - 1)
    if method == "index":
        from sklearn.neighbors import NearestNeighbors

        xs = x.detach().double().cpu().numpy()
        dist, ind = NearestNeighbors(n_neighbors=kk + 1).fit(xs).kneighbors(xs)  # (N, kk + 1), self included
        not_self = ind != torch.arange(n).numpy()[:, None]
        # drop each row's own entry (the first not-self kk of the kk + 1; a duplicate row may come before self)
        order = torch.as_tensor(not_self).float().argsort(dim=1, descending=True, stable=True)[:, :kk]
        idx_t = torch.as_tensor(ind).gather(1, order)
        dst_t = torch.as_tensor(dist, dtype=x.dtype).gather(1, order)
        idx_t, dst_t = _sort_rows(idx_t, dst_t)
    elif method == "exact":
        idx, dst = [], []
        for s in range(0, n, chunk):
            d = torch.cdist(x[s:s + chunk], x)  # (c, N)
            d[torch.arange(d.shape[0]), torch.arange(s, s + d.shape[0])] = float("inf")  # no self loop
            v, i = d.topk(kk, dim=1, largest=False)
            idx.append(i)
            dst.append(v)
        idx_t, dst_t = torch.cat(idx), torch.cat(dst)
    else:
        raise ValueError(f"knn_rows_graph: method must be 'index' or 'exact', got {method!r}")
    sigma = dst_t.median().clamp_min(1e-6)
    return idx_t, torch.exp(-dst_t.pow(2) / sigma**2)


def _sort_rows(idx: Tensor, dst: Tensor) -> tuple[Tensor, Tensor]:
    """Order each row's neighbours by distance (as topk does)."""
    o = dst.argsort(dim=1, stable=True)
    return idx.gather(1, o), dst.gather(1, o)


def row_normalise(adj: Tensor) -> Tensor:
    """A_hat = A / rowsum(A) (rows without edges stay zero). (B, M, M) -> (B, M, M)."""
    return adj / adj.sum(-1, keepdim=True).clamp_min(1e-12)
