"""MCN results table on the built-in clips: the seed's study (pair sets, several spaces) and the
ablations, over seeds, beside baselines measured on the same test split.

    python -m benchmarks.mcn_study [--configs default no_cluster ...] [--seeds 0 1 2] \
        [--root workdirs/mcn_study] [--steps N] [--json PATH] [--markdown PATH] [--quick]

For each config ``C`` (``configs/mcn/C.py``) and seed ``S`` it trains ``ROOT/C_sS`` (a trained
workdir is resumed, i.e. reused as it is) and evaluates its newest checkpoint on every clip of
the test split: zero-shot text -> clip retrieval with ``score = t . (v + a)``, R@1/5/10 and
median rank (pessimistic ties), the same evaluator as ``emojax eval``. Baseline rows:

  chance         a random scorer (R@K = K / N, median rank (N + 1) / 2)
  ridge probe    ridge regression from the caption's five word vectors (concatenated, 5 x 384)
                 to the standardised video features and to the audio's per-bin mean and std
                 over time, fitted on the training clips; score = pred_v . v + pred_a . a.
                 A linear read-out of the same inputs MCN sees: what the words can tell about
                 the renderings without any training of towers.

``--quick`` (tests): one seed, few steps, 2,000 training clips for the probe.
"""

from __future__ import annotations

import argparse
import json
import os
import time

import numpy as np

STUDY = ("default", "no_cluster", "no_recon", "pairs_vt_va", "pairs_va_all", "multispace")
KEYS = ("t2va_R@1", "t2va_R@5", "t2va_R@10", "t2va_median_rank")


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--configs", nargs="+", default=list(STUDY))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--root", default="workdirs/mcn_study")
    p.add_argument("--steps", type=int, default=None, help="override train.num_steps")
    p.add_argument("--probe-train", type=int, default=20_000, help="training clips for the probe")
    p.add_argument("--set", action="append", default=[], help="config override KEY=VALUE")
    p.add_argument("--quick", action="store_true")
    p.add_argument("--json", default=None)
    p.add_argument("--markdown", default=None)
    return p.parse_args(argv)


def load_study_config(name: str, seed: int, steps: int | None, overrides: list[str]):
    from emojax.train import load_config
    from emojax.train.config import parse_overrides

    path = os.path.join(os.path.dirname(__file__), "..", "emojax", "configs", "mcn", f"{name}.py")
    config = load_config(os.path.normpath(path), parse_overrides(overrides))
    with config.unlocked():
        config.seed = seed
        if steps is not None:
            config.train.num_steps = steps
            config.train.eval_every = 0
            config.train.save_every = 0
    return config


def run_config(name: str, seed: int, args) -> dict:
    """Train (or reuse) ROOT/name_sSEED and evaluate it on the whole test split."""
    from emojax.train import evaluate_split, train_to_end

    config = load_study_config(name, seed, args.steps, args.set)
    workdir = os.path.join(args.root, f"{name}_s{seed}")
    start = time.perf_counter()
    train_to_end(config, workdir)
    metrics = evaluate_split(config, workdir, "test")
    metrics["seconds"] = time.perf_counter() - start
    return metrics


def _clips(config, split: str, limit: int | None) -> dict[str, np.ndarray]:
    from emojax.data import senses
    from emojax.models.mcn.data import SensesAsClips
    from emojax.models.mcn.method import _senses_sizes, _word_table

    d = config.data
    source = senses.load_source(split, d.data_dir or None, **_senses_sizes(d))
    mapper = SensesAsClips(_word_table(d.minilm_path or None), config.model.video_dim, d.data_seed)
    count = len(source) if limit is None else min(limit, len(source))
    clips = [mapper.map(source[i]) for i in range(count)]
    return {key: np.stack([c[key] for c in clips]) for key in ("video", "audio", "text")}


def _probe_features(clips) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    text = clips["text"].reshape(len(clips["text"]), -1)
    audio = np.concatenate([clips["audio"].mean(1), clips["audio"].std(1)], axis=1)
    return text, clips["video"], audio


def ridge_probe(train_clips, test_clips, ridge: float = 100.0) -> dict[str, float]:
    """The ridge-probe row: text -> standardised (video, audio) on train, retrieval on test."""
    from emojax.metrics.retrieval import ranks_of_targets

    x, video, audio = _probe_features(train_clips)
    x_test, video_test, audio_test = _probe_features(test_clips)
    mean = x.mean(0)
    x, x_test = x - mean, x_test - mean
    gram = x.T @ x + ridge * np.eye(x.shape[1])
    score = np.zeros((len(x_test), len(x_test)))
    for target, target_test in ((video, video_test), (audio, audio_test)):
        mu, sd = target.mean(0), target.std(0) + 1e-6
        weights = np.linalg.solve(gram, x.T @ ((target - mu) / sd))
        score += (x_test @ weights) @ ((target_test - mu) / sd).T
    ranks = ranks_of_targets(score)
    metrics = {f"t2va_R@{k}": float(np.mean(ranks <= k)) for k in (1, 5, 10)}
    metrics["t2va_median_rank"] = float(np.median(ranks))
    return metrics


def chance(num_items: int) -> dict[str, float]:
    return {
        "t2va_R@1": 1 / num_items,
        "t2va_R@5": 5 / num_items,
        "t2va_R@10": 10 / num_items,
        "t2va_median_rank": (num_items + 1) / 2,
    }


def summarise(rows: dict[str, list[dict]]) -> dict[str, dict[str, tuple[float, float]]]:
    """name -> key -> (mean, std over seeds)."""
    out = {}
    for name, runs in rows.items():
        out[name] = {
            key: (float(np.mean([r[key] for r in runs])), float(np.std([r[key] for r in runs])))
            for key in KEYS
        }
    return out


def markdown(summary, seeds: dict[str, int], num_test: int) -> str:
    lines = [
        f"| model (test split, {num_test} clips) | seeds | R@1 | R@5 | R@10 | median rank |",
        "|---|---|---|---|---|---|",
    ]
    for name, stats in summary.items():
        cells = []
        for key in KEYS:
            mean, std = stats[key]
            digits = 1 if key.endswith("rank") else 4
            cells.append(
                f"{mean:.{digits}f} ± {std:.{digits}f}" if seeds[name] > 1 else f"{mean:.{digits}f}"
            )
        lines.append(f"| {name} | {seeds[name]} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.quick:
        args.seeds = args.seeds[:1]
        args.steps = args.steps or 4
        args.probe_train = min(args.probe_train, 2000)
    rows: dict[str, list[dict]] = {}
    first = load_study_config(args.configs[0], 0, None, args.set)
    test_clips = _clips(first, "test", None)
    num_test = len(test_clips["text"])
    rows["chance"] = [chance(num_test)]
    rows["ridge probe (text -> video, audio)"] = [
        ridge_probe(_clips(first, "train", args.probe_train), test_clips)
    ]
    for name in args.configs:
        for seed in args.seeds:
            metrics = run_config(name, seed, args)
            rows.setdefault(f"MCN {name}", []).append(metrics)
            print(
                f"{name} seed {seed}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in KEYS),
                flush=True,
            )
    summary = summarise(rows)
    table = markdown(summary, {name: len(runs) for name, runs in rows.items()}, num_test)
    print(table)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"rows": rows, "summary": summary, "args": vars(args)}, f, indent=2)
    return summary


if __name__ == "__main__":
    main()
