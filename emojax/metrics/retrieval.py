"""Retrieval metrics over a whole split: query i's correct item is item i (NumPy, host side).

Ties are broken pessimistically: an item scoring exactly as high as the target ranks before it,
so a constant scorer gets rank N, not 1.
"""

from __future__ import annotations

import numpy as np


def ranks_of_targets(scores: np.ndarray, targets: np.ndarray | None = None) -> np.ndarray:
    """``[Q]`` 1-based rank of each query's target among ``scores[q, :]`` (``[Q, N]``).

    ``targets[q]`` is the target column (default ``q``: the paired item).
    """
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be [queries, items], got shape {scores.shape}")
    queries = scores.shape[0]
    if targets is None:
        if scores.shape[1] < queries:
            raise ValueError(f"{queries} queries but only {scores.shape[1]} items to pair with")
        targets = np.arange(queries)
    targets = np.asarray(targets, dtype=np.int64)
    target_scores = scores[np.arange(queries), targets]
    # the target itself counts once, so the best possible rank is 1
    return np.sum(scores >= target_scores[:, None], axis=1)


def recall_at_k(scores: np.ndarray, k: int, targets: np.ndarray | None = None) -> float:
    """Fraction of queries whose target is among the top ``k`` items."""
    ranks = ranks_of_targets(scores, targets)
    return float(np.mean(ranks <= k)) if ranks.size else 0.0


def median_rank(scores: np.ndarray, targets: np.ndarray | None = None) -> float:
    """Median 1-based rank of the targets (lower is better)."""
    ranks = ranks_of_targets(scores, targets)
    return float(np.median(ranks)) if ranks.size else 0.0


def retrieval_metrics(
    queries: np.ndarray, items: np.ndarray, ks=(1, 5, 10), prefix: str = ""
) -> dict[str, float]:
    """R@k for each k and the median rank of ``queries [N, D] . items [N, D]^T`` scores."""
    scores = np.asarray(queries, np.float64) @ np.asarray(items, np.float64).T
    ranks = ranks_of_targets(scores)
    out = {f"{prefix}R@{k}": float(np.mean(ranks <= k)) for k in ks}
    out[f"{prefix}median_rank"] = float(np.median(ranks))
    return out
