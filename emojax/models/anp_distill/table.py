"""``emojax anp_table``: the seed's Table 1 and the alpha sweep on the built-in data, over seeds.

    emojax anp_table --root=workdirs/anp_table --seeds=0,1,2 --alphas=0,0.5,1,2
    emojax anp_table --root=... --report_only        # re-read finished runs, rewrite the table

Per seed: the teacher (configs/anp_distill/teacher.py), then the student for every alpha
(alpha 0 = student.py, the ResNet alone; alpha > 0 = distill.py with the seed's teacher), each in
ROOT/seed<s>/<run>; every run is evaluated on the whole test split. Rows: mean +- std over seeds
of accuracy and F1 (binary: of the positive class). Writes ROOT/table.md and ROOT/table.json.
Finished runs are resumed / skipped (their checkpoints are reused).
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np


def _run(config_name: str, workdir: str, seed: int, root: str, overrides: dict) -> dict:
    from importlib import resources

    from emojax.train import evaluate_split, load_config, train_to_end

    path = resources.files("emojax") / "configs" / "anp_distill" / f"{config_name}.py"
    config = load_config(str(path), overrides)
    with config.unlocked():
        config.stages_root = root
        config.seed = seed
        config.data.shuffle_seed = seed
    train_to_end(config, workdir)
    return {k: float(v) for k, v in evaluate_split(config, workdir, "test").items()}


def _row(name: str, runs: list[dict], prefix: str = "") -> str:
    cells = []
    for metric in ("accuracy", "f1"):
        values = np.array([r[prefix + metric] for r in runs]) * (100 if metric == "accuracy" else 1)
        fmt = "{:.2f} ± {:.2f}" if metric == "accuracy" else "{:.3f} ± {:.3f}"
        cells.append(fmt.format(values.mean(), values.std()))
    return f"| {name} | {cells[0]} | {cells[1]} | {len(runs)} |"


def table_markdown(results: dict) -> str:
    """Markdown of Table 1 and the alpha sweep from ``{seed: {run: test metrics}}``."""
    seeds = sorted(results)
    runs = lambda name: [results[s][name] for s in seeds if name in results[s]]  # noqa: E731
    alphas = sorted(
        {float(n[len("alpha_") :]) for s in seeds for n in results[s] if n.startswith("alpha_")}
    )
    lines = ["| model | accuracy (%) | F1 | seeds |", "| --- | --- | --- | --- |"]
    lines.append(_row("ResNet (alpha 0)", runs("alpha_0.0")))
    lines.append(_row("teacher (MR SentiBank, P_SB)", runs("teacher")))
    if runs("alpha_1.0"):
        lines.append(_row("ResNet + distillation (alpha 1)", runs("alpha_1.0")))
    lines += ["", "| alpha | accuracy (%) | F1 | seeds |", "| --- | --- | --- | --- |"]
    for alpha in alphas:
        lines.append(_row(f"{alpha:g}", runs(f"alpha_{alpha}")))
    return "\n".join(lines) + "\n"


def main(command: str = "anp_table", argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog=f"emojax {command}", description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", default="workdirs/anp_table")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--alphas", default="0,0.5,1,2")
    parser.add_argument("--steps", type=int, default=None, help="override train.num_steps")
    parser.add_argument("--report_only", action="store_true")
    args = parser.parse_args(None if argv is None else argv[1:])  # argv[0]: the program name
    root = os.path.abspath(args.root)
    seeds = [int(s) for s in args.seeds.split(",")]
    alphas = [float(a) for a in args.alphas.split(",")]
    overrides = {"train.num_steps": args.steps} if args.steps else {}
    path = os.path.join(root, "table.json")
    results = {}
    if os.path.exists(path):
        results = {int(k): v for k, v in json.load(open(path)).items()}
    if not args.report_only:
        for seed in seeds:
            runs = results.setdefault(seed, {})
            base = os.path.join(root, f"seed{seed}")
            runs["teacher"] = _run("teacher", os.path.join(base, "teacher"), seed, base, overrides)
            for alpha in alphas:
                name = "student" if alpha == 0 else "distill"
                workdir = os.path.join(base, f"alpha_{alpha}")
                runs[f"alpha_{alpha}"] = _run(
                    name, workdir, seed, base, {**overrides, "model.alpha": alpha}
                )
            os.makedirs(root, exist_ok=True)
            with open(path, "w") as f:
                json.dump(results, f, indent=1, sort_keys=True)
    markdown = table_markdown(results)
    with open(os.path.join(root, "table.md"), "w") as f:
        f.write(markdown)
    print(markdown)
