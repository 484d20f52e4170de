"""EmoSense's part of the quickstart report (``QUICKSTART_REPORT`` in ``__init__.py``).

The generic report (``emojax.train.report``: report.md, report.json, training curves) is
written by ``emojax quickstart``; :func:`quickstart_report` adds the zero-shot identifier
scores, the learned sense weights, the emotion confusion matrix and the 2-D embedding map.
"""

from __future__ import annotations

import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emojax import metrics  # noqa: E402
from emojax.data.lexicon import EMOTIONS  # noqa: E402

COLOURS = plt.get_cmap("tab10").colors[: len(EMOTIONS)]


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int = len(EMOTIONS)):
    """Row-normalised confusion matrix [n, n] (row: true label, column: prediction)."""
    counts = metrics.confusion_matrix(labels, predicted, n).astype(np.float64)
    return counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)


def plot_confusion(labels: np.ndarray, predicted: np.ndarray, path: str, title: str) -> str:
    matrix = confusion_matrix(labels, predicted)
    fig, ax = plt.subplots(figsize=(6, 5.2))
    im = ax.imshow(matrix, cmap="Blues", vmin=0, vmax=1)
    ax.set_xticks(range(len(EMOTIONS)), EMOTIONS, rotation=45, ha="right")
    ax.set_yticks(range(len(EMOTIONS)), EMOTIONS)
    for i in range(len(EMOTIONS)):
        for j in range(len(EMOTIONS)):
            ax.text(
                j,
                i,
                f"{matrix[i, j]:.2f}",
                ha="center",
                va="center",
                fontsize=7,
                color="white" if matrix[i, j] > 0.5 else "black",
            )
    ax.set(xlabel="predicted (argmax of the emotion head)", ylabel="label", title=title)
    fig.colorbar(im, ax=ax, fraction=0.046)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def pca_2d(x: np.ndarray, fit_on: np.ndarray | None = None) -> np.ndarray:
    """Project rows of x onto the top-2 principal axes of ``fit_on`` (default x)."""
    base = x if fit_on is None else fit_on
    mean = base.mean(axis=0)
    _, _, vt = np.linalg.svd(base - mean, full_matrices=False)
    return (x - mean) @ vt[:2].T


def plot_embedding_map(
    sense_embeddings: np.ndarray,
    emotion_embeddings: np.ndarray,
    labels: np.ndarray,
    prototypes: np.ndarray,
    path: str,
    max_points: int = 1500,
) -> str:
    """2-D PCA map (fitted on both sets) of unit sense (dots) and emotion (crosses) embeddings,
    coloured by label; stars are the emotion prototypes."""
    unit = lambda x: x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    s, e = unit(sense_embeddings[:max_points]), unit(emotion_embeddings[:max_points])
    lab = labels[:max_points]
    both = np.concatenate([s, e])
    ps, pe, pp = pca_2d(s, both), pca_2d(e, both), pca_2d(prototypes, both)
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(EMOTIONS):
        m = lab == c
        ax.scatter(ps[m, 0], ps[m, 1], s=6, alpha=0.5, color=COLOURS[c], label=name)
        ax.scatter(pe[m, 0], pe[m, 1], s=10, alpha=0.5, marker="x", color=COLOURS[c])
        ax.scatter(*pp[c], s=260, marker="*", color=COLOURS[c], edgecolor="black", zorder=5)
    ax.set(
        title="senses (dots) and faces' emotions (x) in the shared space, PCA",
        xlabel="PC 1",
        ylabel="PC 2",
    )
    ax.legend(fontsize=7, markerscale=2, loc="best")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def quickstart_report(config, workdir: str, out_dir: str, test_metrics: dict):
    """``QUICKSTART_REPORT`` hook: (extra metrics, plots) for the test split of ``workdir``.

    Extra metrics: zero-shot identifier scores (sight / sound / touch against the test split's
    word-disjoint vocabulary) and the learned sense weights. Plots: the head's confusion matrix
    and the PCA map of sense / emotion embeddings with the train-split emotion prototypes.
    """
    from emojax.models.emosense import evaluation as ev
    from emojax.models.emosense.compose import SENSES, learned_weights

    del test_metrics  # the trainer's evaluation of the same split (EmoSenseEvaluator)
    method, model, variables, pred, prototypes = ev.split_outputs(config, workdir, "test")
    extra = ev.zero_shot_metrics(method, model, variables, pred, "test")
    weights = learned_weights(variables["params"]["compose"])
    extra.update({f"sense_weight_{s}": float(w) for s, w in zip(SENSES, weights, strict=True)})
    plots = {
        "confusion matrix": plot_confusion(
            pred["label"],
            pred["emotion_logits"].argmax(axis=1),
            os.path.join(out_dir, "confusion_matrix.png"),
            "emotion head on the test split (row-normalised)",
        ),
        "embedding map": plot_embedding_map(
            pred["sense_embedding"],
            pred["emotion_embedding"],
            pred["label"],
            prototypes,
            os.path.join(out_dir, "embedding_map.png"),
        ),
    }
    return extra, plots
