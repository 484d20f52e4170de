"""Classification metrics over a whole split (NumPy, host side)."""

from __future__ import annotations

import numpy as np

AVERAGES = ("weighted", "macro", "micro")


def _labels(y_true, y_pred, num_classes: int | None) -> tuple[np.ndarray, np.ndarray, int]:
    y_true = np.asarray(y_true).reshape(-1).astype(np.int64)
    y_pred = np.asarray(y_pred).reshape(-1).astype(np.int64)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has {y_true.shape[0]} labels, y_pred {y_pred.shape[0]}")
    if num_classes is None:
        num_classes = int(max(y_true.max(initial=-1), y_pred.max(initial=-1))) + 1
    for name, y in (("y_true", y_true), ("y_pred", y_pred)):
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise ValueError(f"{name} has labels outside [0, {num_classes}): {np.unique(y)}")
    return y_true, y_pred, num_classes


def confusion_matrix(y_true, y_pred, num_classes: int | None = None) -> np.ndarray:
    """``[C, C]`` int64 counts, rows = true class, columns = predicted class."""
    y_true, y_pred, c = _labels(y_true, y_pred, num_classes)
    return np.bincount(y_true * c + y_pred, minlength=c * c).reshape(c, c)


def accuracy(y_true, y_pred) -> float:
    """Fraction of examples whose predicted label equals the true one (0.0 for no examples)."""
    y_true, y_pred, _ = _labels(y_true, y_pred, None)
    return float(np.mean(y_true == y_pred)) if y_true.size else 0.0


def per_class_f1(confusion: np.ndarray) -> np.ndarray:
    """``[C]`` F1 of each class from a confusion matrix (0 where precision + recall is 0)."""
    tp = np.diag(confusion).astype(np.float64)
    predicted = confusion.sum(axis=0)
    actual = confusion.sum(axis=1)
    denominator = predicted + actual
    return np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)


def f1_score(y_true, y_pred, num_classes: int | None = None, average: str = "weighted") -> float:
    """F1 over a split. ``weighted``: per-class F1 weighted by true-class support (the ERC
    papers' "weighted F1"); ``macro``: unweighted mean over classes that occur in y_true or
    y_pred (scikit-learn's convention); ``micro``: equals accuracy for single-label data."""
    if average not in AVERAGES:
        raise ValueError(f"average={average!r} is not one of {AVERAGES}")
    confusion = confusion_matrix(y_true, y_pred, num_classes)
    total = confusion.sum()
    if total == 0:
        return 0.0
    if average == "micro":
        return float(np.trace(confusion) / total)
    f1 = per_class_f1(confusion)
    support = confusion.sum(axis=1)
    if average == "weighted":
        return float(np.sum(f1 * support) / total)
    present = (support + confusion.sum(axis=0)) > 0
    return float(np.mean(f1[present]))


def multilabel_f1(y_true, y_pred, average: str = "weighted") -> float:
    """F1 of binary indicator matrices ``[N, C]`` (e.g. MOSEI's multi-label emotions):
    per-label binary F1 averaged by label support (``weighted``), uniformly over labels
    (``macro``), or from pooled counts (``micro``)."""
    if average not in AVERAGES:
        raise ValueError(f"average={average!r} is not one of {AVERAGES}")
    y_true = np.asarray(y_true).astype(bool)
    y_pred = np.asarray(y_pred).astype(bool)
    if y_true.shape != y_pred.shape or y_true.ndim != 2:
        raise ValueError(
            f"expected two [N, C] indicator arrays, got {y_true.shape}, {y_pred.shape}"
        )
    tp = (y_true & y_pred).sum(axis=0).astype(np.float64)
    denominator = (y_true.sum(axis=0) + y_pred.sum(axis=0)).astype(np.float64)
    if average == "micro":
        total = denominator.sum()
        return float(2 * tp.sum() / total) if total else 0.0
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    if average == "macro":
        return float(f1.mean()) if f1.size else 0.0
    support = y_true.sum(axis=0)
    return float(np.sum(f1 * support) / support.sum()) if support.sum() else 0.0
