"""The generic run report: metrics.jsonl reader, training-curve plot, markdown summary."""

from __future__ import annotations

import json
import os


def read_metrics(path: str) -> list[dict]:
    """Lines of a trainer metrics.jsonl (one dict per logged step)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path} not found: train first (it is written by the trainer)")
    with open(path) as f:
        return [json.loads(line) for line in f if line.strip()]


def plot_training_curves(rows: list[dict], path: str, max_eval_curves: int = 8) -> str:
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
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_markdown(path: str, method: str, metrics: dict, plots: dict[str, str]) -> str:
    """report.md: the test metrics as a table, then the plots."""
    lines = [f"# {method}: quickstart report", "", "Test split, every example:", ""]
    lines += ["| metric | value |", "| --- | --- |"]
    lines += [
        f"| {k} | {v:.4f} |" if isinstance(v, float) else f"| {k} | {v} |"
        for k, v in sorted(metrics.items())
    ]
    lines += ["", *[f"![{name}]({os.path.basename(p)})" for name, p in plots.items()]]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return path
