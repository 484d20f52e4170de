"""Joyful's model selection (test score at the best-dev checkpoint) and results table.

The paper reports the test weighted F1 at the epoch with the best dev weighted F1. With
``data.report_test`` the validation evaluator scores the test split at every evaluation (same
checkpoint), so ``metrics.jsonl`` holds both; :func:`select_best_dev` picks the row with the best
dev ``eval/weighted_f1`` (the first one on ties) and returns its test metrics.

    python -m emojax.models.joyful.report --seeds 0 1 2 [--steps 500] [--workdir DIR]

trains the default config and its baselines/ablations (:data:`RUNS`) for each seed and prints
the markdown table of docs/joyful.md (mean +- std over seeds of test weighted F1 / accuracy at
the best-dev checkpoint), plus the majority-class baseline on the same test split.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

# name -> (config file in emojax/configs/joyful, what it is)
RUNS = {
    "joyful": ("default.py", "Joyful (code fusion + graph + contrast), the default"),
    "paper": ("paper.py", "the paper's variant: paper fusion, weights 0.3 / 0.06, Katz view"),
    "no_contrast": ("no_contrast.py", "without the graph contrastive loss"),
    "no_fusion_loss": ("no_fusion_loss.py", "without the fusion reconstruction loss"),
    "cogmen": ("cogmen.py", "COGMEN-style: raw concat, context + graph, no fusion AE, no contrast"),
    "no_context": ("no_context.py", "per-utterance model: fusion + classifier, no context/graph"),
}


def select_best_dev(rows: list[dict], metric: str = "eval/weighted_f1") -> dict:
    """The best-dev evaluation row of ``metrics.jsonl`` rows, as ``{"best_dev_step",
    "best_dev_<m>", "test_at_best_dev_<m>"}``; ``{}`` when no row has ``metric``."""
    evals = [r for r in rows if metric in r]
    if not evals:
        return {}
    best = max(evals, key=lambda r: (r[metric], -r["step"]))
    out = {"best_dev_step": int(best["step"])}
    for key, value in best.items():
        if key.startswith("eval/test_"):
            out["test_at_best_dev_" + key.removeprefix("eval/test_")] = float(value)
        elif key.startswith("eval/") and key != "eval/num_examples":
            out["best_dev_" + key.removeprefix("eval/")] = float(value)
    return out


def quickstart_report(config, workdir: str, out_dir: str, test_metrics: dict):
    """``QUICKSTART_REPORT`` hook: the best-dev selection from ``WORKDIR/metrics.jsonl``."""
    from emojax.train.report import read_metrics
    from emojax.train.workdir import as_path

    del config, out_dir, test_metrics
    return select_best_dev(read_metrics(as_path(workdir) / "metrics.jsonl")), {}


def majority_baseline(config) -> dict[str, float]:
    """Weighted F1 / accuracy on the whole test split of always predicting the most frequent
    training label (single-label data)."""
    from emojax.metrics.classification import accuracy, f1_score
    from emojax.models import get_method

    method = get_method(config.method)(config)
    train = method.data_source("train")
    test = method.data_source("test")
    labels = np.concatenate([np.asarray(train[i]["label"]) for i in range(len(train))])
    y = np.concatenate([np.asarray(test[i]["label"]) for i in range(len(test))])
    pred = np.full_like(y, np.bincount(labels).argmax())
    c = config.model.num_classes
    return {"weighted_f1": f1_score(y, pred, c), "accuracy": accuracy(y, pred)}


def _config_path(name: str) -> str:
    from importlib import resources

    return str(resources.files("emojax") / "configs" / "joyful" / name)


def run_results(seeds, steps: int | None, workdir: str, overrides: dict | None = None) -> dict:
    """Trains every run of :data:`RUNS` for every seed (resuming finished ones) and returns
    ``{run: {"weighted_f1": [...], "accuracy": [...]}}`` (test at best dev), plus
    ``"majority"``."""
    from emojax.train import load_config, train_to_end
    from emojax.train.report import read_metrics

    results = {}
    for name, (file, _) in RUNS.items():
        scores = {"weighted_f1": [], "accuracy": []}
        for seed in seeds:
            config = load_config(_config_path(file), overrides)
            with config.unlocked():
                config.seed = seed
                if steps:
                    config.train.num_steps = steps
            run_dir = os.path.join(workdir, f"{name}_seed{seed}")
            train_to_end(config, run_dir)
            best = select_best_dev(read_metrics(os.path.join(run_dir, "metrics.jsonl")))
            scores["weighted_f1"].append(best["test_at_best_dev_weighted_f1"])
            scores["accuracy"].append(best["test_at_best_dev_accuracy"])
        results[name] = scores
    config = load_config(_config_path("default.py"), overrides)
    from emojax.train.config import validate_config

    results["majority"] = {k: [v] for k, v in majority_baseline(validate_config(config)).items()}
    return results


def table(results: dict) -> str:
    """Markdown rows ``| run | wF1 mean +- std | acc mean +- std | seeds |`` (in %)."""
    lines = ["| model | test weighted F1 | test accuracy | seeds |", "| --- | --- | --- | --- |"]
    for name, scores in results.items():
        cells = []
        for key in ("weighted_f1", "accuracy"):
            v = 100 * np.asarray(scores[key])
            cells.append(f"{v.mean():.2f} +- {v.std():.2f}" if len(v) > 1 else f"{v.mean():.2f}")
        label = RUNS[name][1] if name in RUNS else "majority class (train prior)"
        lines.append(f"| {name}: {label} | {cells[0]} | {cells[1]} | {len(scores['accuracy'])} |")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--workdir", default="workdirs/joyful_results")
    parser.add_argument("--data_dir", default="", help="cache of the built-in dialogues")
    parser.add_argument("--json", default="", help="also write the raw scores here")
    args = parser.parse_args(argv)
    overrides = {"data.data_dir": args.data_dir} if args.data_dir else None
    results = run_results(args.seeds, args.steps, args.workdir, overrides)
    print(table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
