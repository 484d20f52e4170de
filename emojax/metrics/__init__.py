"""Whole-split evaluation metrics, computed on the host over every example of a split.

Classification (``accuracy``, ``f1_score`` with ``average="weighted"|"macro"|"micro"``,
``confusion_matrix``), multi-label (``multilabel_f1``), retrieval (``recall_at_k``,
``median_rank``, ``retrieval_metrics``) and the streaming building block ``ExampleBuffer``
(accumulates per-example outputs of padded batches, keeping only the rows a validity mask marks).
All functions take NumPy arrays and return Python floats / NumPy arrays; they agree with
scikit-learn where it has the same metric (tested).
"""

from emojax.metrics.accumulate import ExampleBuffer
from emojax.metrics.classification import (
    accuracy,
    confusion_matrix,
    f1_score,
    multilabel_f1,
    per_class_f1,
)
from emojax.metrics.retrieval import median_rank, ranks_of_targets, recall_at_k, retrieval_metrics

__all__ = [
    "ExampleBuffer",
    "accuracy",
    "confusion_matrix",
    "f1_score",
    "median_rank",
    "multilabel_f1",
    "per_class_f1",
    "ranks_of_targets",
    "recall_at_k",
    "retrieval_metrics",
]
