"""EmoSense report: PNG plots (training curves, emotion confusion matrix, 2-D map of sense and
emotion embeddings) and a markdown summary, written into a workdir."""

from __future__ import annotations

import json
import os

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from emojax.data.lexicon import EMOTIONS  # noqa: E402

COLOURS = plt.get_cmap("tab10").colors[: len(EMOTIONS)]


def read_metrics(path: str) -> list[dict]:
    """Lines of a trainer metrics.jsonl (one dict per logged step)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: train first (it is written by the trainer)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(rows: list[dict], path: str) -> str:
    """Train loss terms and eval metrics against the step."""
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    train_keys = ["loss"] + sorted(
        {k for r in rows for k in r if k.startswith("loss_") and not k.startswith("eval/")}
    )
    for key in train_keys:
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax_loss.plot(*zip(*pts, strict=True), label=key)
    pts = [(r["step"], r["eval/loss"]) for r in rows if "eval/loss" in r]
    if pts:
        ax_loss.plot(*zip(*pts, strict=True), "k--o", label="eval/loss (validation)")
    ax_loss.set(title="loss", xlabel="step", yscale="log")
    ax_loss.legend(fontsize=7)
    for key in ("eval/head_r1", "eval/head_r5", "eval/head_alpha", "eval/view_alpha"):
        pts = [(r["step"], r[key]) for r in rows if key in r]
        if pts:
            ax_eval.plot(*zip(*pts, strict=True), marker="o", label=key)
    ax_eval.set(title="validation: head recall@k and learned alphas", xlabel="step")
    if ax_eval.lines:
        ax_eval.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def confusion_matrix(labels: np.ndarray, predicted: np.ndarray, n: int = len(EMOTIONS)):
    """Row-normalised confusion matrix [n, n] (row: true label, column: prediction)."""
    counts = np.zeros((n, n), np.float64)
    np.add.at(counts, (labels, predicted), 1.0)
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


def write_markdown(path: str, metrics: dict, plots: dict[str, str], extra: str = "") -> str:
    lines = ["# EmoSense-MMC report", "", "Test split (word-disjoint) metrics:", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in metrics.items()
    ]
    lines += ["", *[f"![{name}]({os.path.basename(p)})" for name, p in plots.items()]]
    if extra:
        lines += ["", extra]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
