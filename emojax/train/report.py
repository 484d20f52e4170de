"""The generic run report: metrics.jsonl reader, training-curve plot, markdown summary.

Paths may be URLs (``gs://...``): everything is read and written through ``etils.epath``."""

from __future__ import annotations

import json
import os

from emojax.train.workdir import as_path


def read_metrics(path: str | os.PathLike) -> list[dict]:
    """Lines of a trainer metrics.jsonl (one dict per logged step)."""
    path = as_path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path} not found: train first (it is written by the trainer)")
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def plot_training_curves(rows: list[dict], path: str | os.PathLike, max_eval_curves: int = 8):
    """Train loss (and its ``loss_*`` terms) and the eval metrics against the step (PNG)."""
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(11, 4))
    train_keys = ["loss"] + sorted({k for r in rows for k in r if k.startswith("loss_")})
    for key in train_keys:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax_loss.plot(*zip(*points, strict=True), label=key)
    eval_keys = sorted(
        {k for r in rows for k in r if k.startswith("eval/") and k != "eval/num_examples"}
    )
    for key in eval_keys[:max_eval_curves]:
        points = [(r["step"], r[key]) for r in rows if key in r]
        if points:
            ax_eval.plot(*zip(*points, strict=True), marker="o", label=key)
    ax_loss.set(title="training loss", xlabel="step")
    if all(r.get("loss", 1) > 0 for r in rows):
        ax_loss.set_yscale("log")
    ax_loss.legend(fontsize=7)
    ax_eval.set(title="evaluation (whole split)", xlabel="step")
    if ax_eval.lines:
        ax_eval.legend(fontsize=7)
    fig.tight_layout()
    with as_path(path).open("wb") as f:
        fig.savefig(f, format="png", dpi=110)
    plt.close(fig)
    return path


def write_markdown(path: str | os.PathLike, method: str, metrics: dict, plots: dict[str, str]):
    """report.md: the test metrics as a table, then the plots."""
    lines = [f"# {method}: quickstart report", "", "Test split, every example:", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in sorted(metrics.items())
    ]
    lines += ["", *[f"![{name}]({os.path.basename(p)})" for name, p in plots.items()]]
    as_path(path).write_text("\n".join(lines) + "\n")
    return path
