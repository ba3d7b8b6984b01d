"""Defenses of `doorping` evaluated against victims trained on the distilled sets (spec 2, component 11).

Paper: Backdoor Attacks Against Dataset Distillation (arXiv 2301.01197); the paper's list of defenses is not
available (spec "Status"), so these are design choices, implemented here (ART's versions need its own
classifier wrappers and training loops; see README):
    neural_cleanse  Wang et al. (S&P 2019): per class, the smallest mask m and pattern p with
                    f((1 - m) x + m p) = class; anomaly index = |median - L1(m_t)| / (1.4826 MAD); flagged > 2
    strip_entropy   Gao et al. (ACSAC 2019): entropy of the prediction on an input superimposed (0.5 / 0.5) with
                    random clean images; triggered inputs keep low entropy; detection AUROC
    fine_prune      Liu et al. (RAID 2018): prune the last conv layer's channels least active on clean data,
                    then fine-tune on the defender's clean data (swept over `defense.prune_fractions`)
    activation_clustering  Chen et al. (SafeAI 2019): per class, 2-means on the penultimate activations (PCA to
                    at most 10 dims, as ART's `nb_dims=10`); a class is flagged when its smaller cluster holds
                    < 0.35 of the class (ART's `size_threshold`) and the silhouette score is > 0.1
    spectral_signature  Tran et al. (NeurIPS 2018): per class, the outlier score of each sample is its squared
                    projection on the top right-singular vector of the centred activations; per class the
                    spectral ratio sigma_1^2 / sum sigma_i^2; flagged when its (high-side) anomaly index > 2
Design choice: ART (adversarial-robustness-toolbox 1.20.1) is not used. It would install beside our pins (a
`pip install --dry-run` adds only it and `six`), but it is not a declared dependency of tenfold (pyproject.toml is
outside this system) and it wraps every victim in its own classifier API; the two data-scanning defenses are
written here with sklearn's KMeans and silhouette_score (README, "Defenses").
"""

from __future__ import annotations

import copy

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def median(x: torch.Tensor) -> torch.Tensor:
    """The standard median: the mean of the two middle values for an even count (torch.median takes the lower)."""
    return torch.quantile(x.double(), 0.5).to(x.dtype)


def anomaly_index(norms: torch.Tensor) -> torch.Tensor:
    """Per-class anomaly index of the mask L1 norms: |x - median| / (1.4826 * MAD) (Neural Cleanse), with the
    standard median in both places (10 classes: the mean of the 5th and 6th values)."""
    med = median(norms)
    mad = median((norms - med).abs()) * 1.4826
    return (norms - med).abs() / (mad + 1e-12)


def flag_scores(norms: torch.Tensor) -> torch.Tensor:
    """The anomaly index of classes whose norm is below the median, 0 for the others: Neural Cleanse flags a class
    iff its score exceeds 2 (only anomalously *small* triggers are suspicious). Rows and flags both use this."""
    return torch.where(norms < median(norms), anomaly_index(norms), torch.zeros_like(norms))


def high_flag_scores(values: torch.Tensor) -> torch.Tensor:
    """The anomaly index of values above the median, 0 for the others (for statistics where *large* is
    suspicious, e.g. the spectral ratio)."""
    return torch.where(values > median(values), anomaly_index(values), torch.zeros_like(values))


def neural_cleanse(net: nn.Module, x: torch.Tensor, num_classes: int, steps: int = 300, lam: float = 0.01,
                   lr: float = 0.1, generator: torch.Generator | None = None) -> dict:
    """Reverse-engineer a trigger per class on clean images x (N, C, H, W); returns norms and anomaly indices."""
    net.eval()
    for p in net.parameters():
        p.requires_grad_(False)
    c, h, w = x.shape[1:]
    lo, hi = float(x.min()), float(x.max())
    norms = []
    for target in range(num_classes):
        mask_raw = torch.zeros(1, 1, h, w, device=x.device, requires_grad=True)
        pat_raw = torch.randn(1, c, h, w, generator=generator).to(x.device).requires_grad_(True)
        opt = torch.optim.Adam([mask_raw, pat_raw], lr=lr, betas=(0.5, 0.9))
        y = torch.full((len(x),), target, device=x.device)
        for _ in range(steps):
            m = torch.sigmoid(mask_raw)
            pattern = lo + (hi - lo) * torch.sigmoid(pat_raw)  # keep the pattern inside the data's range
            loss = F.cross_entropy(net((1 - m) * x + m * pattern), y) + lam * m.sum()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        norms.append(float(torch.sigmoid(mask_raw.detach()).sum()))
    for p in net.parameters():
        p.requires_grad_(True)
    norms_t = torch.tensor(norms)
    idx, score = anomaly_index(norms_t), flag_scores(norms_t)
    # A class is flagged when its norm is anomalously *small* (below the median) with index > 2.
    flagged = [k for k in range(num_classes) if score[k] > 2]
    return {"mask_l1": norms, "anomaly_index": idx.tolist(), "flag_score": score.tolist(), "flagged": flagged}


def prediction_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy (nats) of softmax(logits), (N, K) -> (N,)."""
    logp = F.log_softmax(logits, -1)
    return -(logp.exp() * logp).sum(-1)


@torch.no_grad()
def strip_entropy(net: nn.Module, inputs: torch.Tensor, clean_pool: torch.Tensor, overlays: int,
                  generator: torch.Generator, max_blends: int = 1024) -> torch.Tensor:
    """Mean entropy over `overlays` blends 0.5 x + 0.5 x_clean for each input (N,) (STRIP).

    The N x overlays blends go through the net in chunks of at most `max_blends` (all at once needed ~75 GB for the
    first activation at the full profile's size); the result does not depend on the chunk size.
    """
    net.eval()
    idx = torch.randint(0, len(clean_pool), (len(inputs), overlays), generator=generator).to(clean_pool.device)
    per_chunk = max(1, max_blends // overlays)  # inputs per chunk
    out = []
    for start in range(0, len(inputs), per_chunk):
        sl = slice(start, start + per_chunk)
        blends = 0.5 * inputs[sl, None] + 0.5 * clean_pool[idx[sl]]  # (n, overlays, C, H, W)
        ent = prediction_entropy(net(blends.flatten(0, 1)))  # (n * overlays,)
        out.append(ent.reshape(-1, overlays).mean(1))  # (n * overlays,) -> (n, overlays) -> (n,)
    return torch.cat(out)


def strip_auroc(entropy_clean: torch.Tensor, entropy_triggered: torch.Tensor) -> float:
    """AUROC of "low entropy = triggered" (0.5 = chance: STRIP cannot tell them apart)."""
    from sklearn.metrics import roc_auc_score

    scores = torch.cat([-entropy_clean, -entropy_triggered]).cpu().numpy()
    labels = np.r_[np.zeros(len(entropy_clean)), np.ones(len(entropy_triggered))]
    return float(roc_auc_score(labels, scores))


def last_conv(net: nn.Module) -> nn.Conv2d:
    return [m for m in net.modules() if isinstance(m, nn.Conv2d)][-1]


def fine_prune(net: nn.Module, x: torch.Tensor, y: torch.Tensor, fraction: float, epochs: int,
               lr: float = 0.01, generator: torch.Generator | None = None) -> tuple[nn.Module, list[int]]:
    """Prune the `fraction` of last-conv channels with the lowest mean activation on x, then fine-tune."""
    pruned = copy.deepcopy(net)
    conv = last_conv(pruned)
    acts: list[torch.Tensor] = []
    handle = conv.register_forward_hook(lambda _m, _i, out: acts.append(F.relu(out).mean((0, 2, 3))))
    pruned.eval()
    with torch.no_grad():
        pruned(x)
    handle.remove()
    order = torch.argsort(acts[0])  # ascending mean activation: dormant channels first
    dead = order[: int(fraction * len(order))]
    keep = torch.ones(conv.out_channels, device=conv.weight.device)
    keep[dead] = 0
    with torch.no_grad():
        conv.weight.mul_(keep.view(-1, 1, 1, 1))
        conv.bias.mul_(keep)
    conv.weight.register_hook(lambda g: g * keep.view(-1, 1, 1, 1))  # pruned channels stay at zero
    conv.bias.register_hook(lambda g: g * keep)
    opt = torch.optim.SGD(pruned.parameters(), lr=lr, momentum=0.9)
    pruned.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=generator).to(x.device)
        for start in range(0, len(x), 64):
            idx = perm[start:start + 64]
            loss = F.cross_entropy(pruned(x[idx]), y[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return pruned, dead.tolist()


@torch.no_grad()
def penultimate(net: nn.Module, x: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """The activations of the last hidden layer (after its ReLU), (N, hidden): ConvNet / ConvNetMini's FC-192,
    AlexNet's FC-192 (the layer DOORPING's neuron lives in)."""
    net.eval()
    feats: list[torch.Tensor] = []
    handle = net.fc1.register_forward_hook(lambda _m, _i, out: feats.append(F.relu(out)))
    try:
        for i in range(0, len(x), batch):
            net(x[i:i + batch])
    finally:
        handle.remove()
    return torch.cat(feats)


def kmeans2_stats(feats: np.ndarray, seed: int = 0, dims: int = 10) -> dict:
    """2-means on one class's activations (n, D) after PCA to min(dims, n - 1, D) dims.

    Returns the relative size of the smaller cluster and the silhouette score (nan with < 3 samples or one
    non-empty cluster: nothing to cluster).
    """
    from sklearn.cluster import KMeans
    from sklearn.decomposition import PCA
    from sklearn.metrics import silhouette_score

    n = len(feats)
    if n < 3:
        return {"smaller_size": float("nan"), "silhouette": float("nan")}
    k = min(dims, n - 1, feats.shape[1])
    z = PCA(n_components=k, random_state=seed).fit_transform(feats) if feats.shape[1] > k else feats
    labels = KMeans(n_clusters=2, n_init=10, random_state=seed).fit_predict(z)
    counts = np.bincount(labels, minlength=2)
    if counts.min() == 0:
        return {"smaller_size": 0.0, "silhouette": float("nan")}
    return {"smaller_size": float(counts.min() / n), "silhouette": float(silhouette_score(z, labels))}


def activation_clustering(feats: torch.Tensor, labels: torch.Tensor, num_classes: int, size_threshold: float = 0.35,
                          silhouette_threshold: float = 0.1, seed: int = 0) -> dict:
    """Activation clustering per class on activations (N, D) with labels (N,): stats and flagged classes."""
    f, y = feats.double().cpu().numpy(), labels.cpu().numpy()
    stats = [kmeans2_stats(f[y == c], seed) for c in range(num_classes)]
    flagged = [c for c, s in enumerate(stats) if s["smaller_size"] < size_threshold
               and s["silhouette"] > silhouette_threshold]  # a nan compares False: never flagged
    return {"ac_smaller_size": [s["smaller_size"] for s in stats], "ac_silhouette": [s["silhouette"] for s in stats],
            "ac_flagged": flagged}


def spectral_scores(feats: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Outlier scores ((r_i - mean) . v)^2 of one class's activations (n, D), v the top right-singular vector of
    the centred matrix, and the spectral ratio sigma_1^2 / sum_i sigma_i^2 (1 when one direction holds all the
    variance; nan for a class without spread)."""
    centred = feats.double() - feats.double().mean(0, keepdim=True)
    if len(feats) < 2 or float(centred.abs().sum()) == 0:
        return torch.zeros(len(feats), dtype=torch.float64), float("nan")
    _, sv, vh = torch.linalg.svd(centred, full_matrices=False)
    scores = (centred @ vh[0]) ** 2  # (n,)
    return scores, float(sv[0] ** 2 / (sv ** 2).sum())


def spectral_signature(feats: torch.Tensor, labels: torch.Tensor, num_classes: int) -> dict:
    """Spectral signatures per class: the spectral ratio, its high-side flag score (> 2 = flagged) and the largest
    per-sample outlier score divided by the class's mean score."""
    ratios, peak = [], []
    for c in range(num_classes):
        scores, ratio = spectral_scores(feats[labels == c].cpu())
        ratios.append(ratio)
        peak.append(float(scores.max() / scores.mean()) if len(scores) and float(scores.mean()) > 0 else float("nan"))
    r = torch.tensor(ratios, dtype=torch.float64)
    ok = torch.isfinite(r)
    score = torch.zeros_like(r)
    if int(ok.sum()) >= 3:
        score[ok] = high_flag_scores(r[ok])
    return {"ss_ratio": ratios, "ss_flag_score": score.tolist(), "ss_peak_score": peak,
            "ss_flagged": [c for c in range(num_classes) if score[c] > 2]}
