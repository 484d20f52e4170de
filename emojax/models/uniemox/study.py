"""UniEmoX results table on the built-in data: four pretraining variants x two transfers x seeds.

    python -m emojax.models.uniemox.study --workdir=workdirs/uniemox_study --seeds=0,1,2 \
        [--out=docs_table.md] [--set=KEY=VALUE ...]

Per seed: the CLIP teacher (``clip_teacher.py``), then three pretrainings (``pretrain.py``:
``mae`` = no guidance, ``scene`` = guidance with the scene view only, ``full`` = UniEmoX), then
``finetune.py`` and ``linear_probe.py`` from each of them and from scratch (``scratch``: no
``init_from``). Every run is an ordinary workdir (``WORKDIR/seed<S>/<run>``; re-running resumes
or skips finished runs). Reported: top-1 accuracy on the WHOLE test split (mean +- std over
seeds) at the best-validation checkpoint (the paper's protocol) and at the final one, as two
Markdown tables, with a reference row: a linear probe on the frozen teacher's image
embedding (:func:`teacher_probe_top1`, L-BFGS: what the guidance can transfer). ``--set`` overrides
apply to every config that has the key (e.g. ``--set=train.num_steps=100`` for a smoke run).
``--variants=mae,scene`` trains only those runs, so that two processes can share one seed's
runs (each on its own core); the teacher is trained just before the first guided pretraining,
so start the second process once it exists.
"""

from __future__ import annotations

import argparse
import os
from importlib import resources

import numpy as np

VARIANTS = {
    "scratch": None,
    "mae": {"model.w_image": 0.0, "model.w_prompt": 0.0},
    "scene": {"model.views": ("scene",)},
    "full": {},
}
GUIDED = ("scene", "full")  # the pretrainings that read the CLIP teacher
TRANSFERS = ("finetune", "linear_probe")


def _config(stage: str, root: str, seed: int, overrides: dict):
    from emojax.train import apply_overrides, load_config

    config = load_config(str(resources.files("emojax") / "configs" / "uniemox" / f"{stage}.py"))
    config.stages_root = root
    config.seed = seed
    return apply_overrides(config, overrides, skip_missing=True)  # the keys this stage has


SELECTIONS = ("best_validation", "final")  # which checkpoint of a transfer run is tested


def best_validation_step(workdir: str, metric: str = "eval/top1") -> int:
    """The kept checkpoint with the highest validation ``metric`` in ``metrics.jsonl`` (ties:
    the earliest): the paper's "top-1 at the best validation epoch"."""
    import json

    from emojax.train.checkpoint import checkpoint_steps

    with open(os.path.join(workdir, "metrics.jsonl")) as f:
        rows = [json.loads(line) for line in f if line.strip()]
    scores = {int(r["step"]): float(r[metric]) for r in rows if metric in r}
    kept = [s for s in checkpoint_steps(os.path.join(workdir, "checkpoints")) if s in scores]
    if not kept:
        raise FileNotFoundError(f"{workdir}: no kept checkpoint has a {metric} in metrics.jsonl")
    return max(kept, key=lambda s: (scores[s], -s))


def _test_top1(config, workdir: str) -> dict[str, float]:
    """Whole-test-split top-1 of the run's best-validation and final checkpoints
    (:data:`SELECTIONS`); kept per step in ``WORKDIR/test_top1.json`` so that assembling the
    table again (another seed added) does not evaluate finished runs again."""
    import json

    from emojax.train import evaluate_split, train_to_end

    train_to_end(config, workdir)
    cache = os.path.join(workdir, "test_top1.json")
    kept = {}
    if os.path.exists(cache):
        with open(cache) as f:
            kept = json.load(f)
    steps = {"best_validation": best_validation_step(workdir), "final": config.train.num_steps}
    for step in steps.values():
        if str(step) not in kept:
            kept[str(step)] = float(evaluate_split(config, workdir, "test", step=step)["top1"])
    with open(cache, "w") as f:
        json.dump(kept, f)
    return {selection: float(kept[str(step)]) for selection, step in steps.items()}


def run_seed(
    root: str, seed: int, overrides: dict, variants: tuple[str, ...] = tuple(VARIANTS)
) -> dict[tuple[str, str], dict[str, float]]:
    """The runs of one seed's ``variants``; {(variant, transfer): {selection: test top-1}}."""
    from emojax.train import train_to_end

    results = {}
    for variant in variants:
        changes = VARIANTS[variant]
        if variant in GUIDED:  # trained (or found finished) just before the first run reading it
            teacher = _config("clip_teacher", root, seed, overrides)
            train_to_end(teacher, os.path.join(root, "clip_teacher"))
        if changes is not None:
            pre = _config("pretrain", root, seed, {**overrides, **changes})
            # its teacher: root/clip_teacher
            train_to_end(pre, os.path.join(root, f"pretrain_{variant}"))
        for transfer in TRANSFERS:
            config = _config(transfer, root, seed, overrides)
            config.init_from.path = (
                "" if changes is None else os.path.join(root, f"pretrain_{variant}")
            )
            results[variant, transfer] = _test_top1(
                config, os.path.join(root, f"{transfer}_{variant}")
            )
    return results


def teacher_embeddings(config, workdir: str, split: str, batch_size: int = 256):
    """The ``clip_teacher`` run's image embedding of every photo of ``split``:
    ``(features [N, projection_dim] float32, labels [N] int)``."""
    import jax
    import jax.numpy as jnp

    from emojax.models.uniemox.method import clip_config, data_source, teacher_images
    from emojax.nn.clip import CLIP
    from emojax.train.init_from import read_checkpoint

    teacher = clip_config(config.model.teacher)
    params = read_checkpoint(workdir, "params")
    clip = CLIP(teacher)

    @jax.jit
    def encode(images):
        x = teacher_images(images, teacher.vision.image_size)
        return clip.apply({"params": params}, x, method=CLIP.encode_image)

    source = data_source(config, split)
    features, labels = [], []
    for start in range(0, len(source), batch_size):
        examples = [source[i] for i in range(start, min(start + batch_size, len(source)))]
        features.append(np.asarray(encode(jnp.asarray(np.stack([e["image"] for e in examples])))))
        labels.append(np.array([int(e["label"]) for e in examples]))
    return np.concatenate(features).astype(np.float32), np.concatenate(labels)


def softmax_probe_top1(
    train_x, train_y, test_x, test_y, *, iterations: int = 500, l2: float = 5e-5
) -> float:
    """Top-1 on ``test`` of a linear softmax classifier fitted to ``train`` (``[N, d]``, ``[N]``):
    features standardised by the train mean and std, mean cross-entropy + ``l2 / 2 |W|^2``
    (5e-5 = scikit-learn's ``LogisticRegression(C=1)`` at 20,000 rows), L-BFGS (optax)."""
    import jax
    import jax.numpy as jnp
    import optax

    mean, std = train_x.mean(0), train_x.std(0) + 1e-6
    x, xt = jnp.asarray((train_x - mean) / std), jnp.asarray((test_x - mean) / std)
    y, classes = jnp.asarray(train_y), int(max(train_y.max(), test_y.max())) + 1

    def loss(p):
        ce = optax.softmax_cross_entropy_with_integer_labels(x @ p["w"] + p["b"], y).mean()
        return ce + 0.5 * l2 * jnp.sum(p["w"] ** 2)

    solver = optax.lbfgs()
    value_and_grad = optax.value_and_grad_from_state(loss)

    def step(carry, _):
        p, state = carry
        value, grad = value_and_grad(p, state=state)
        updates, state = solver.update(grad, state, p, value=value, grad=grad, value_fn=loss)
        return (optax.apply_updates(p, updates), state), None

    @jax.jit
    def fit(p):
        return jax.lax.scan(step, (p, solver.init(p)), length=iterations)[0][0]

    params = fit({"w": jnp.zeros((x.shape[1], classes)), "b": jnp.zeros((classes,))})
    predicted = np.asarray(jnp.argmax(xt @ params["w"] + params["b"], axis=1))
    return float(np.mean(predicted == test_y))


def teacher_probe_top1(root: str, seed: int, overrides: dict) -> float:
    """The reference row: a linear probe on the frozen teacher's image embedding (train split
    -> whole test split), i.e. what the guidance has to transfer; kept in
    ``ROOT/clip_teacher/test_probe.json``."""
    import json

    workdir = os.path.join(root, "clip_teacher")
    cache = os.path.join(workdir, "test_probe.json")
    if os.path.exists(cache):
        with open(cache) as f:
            return float(json.load(f)["top1"])
    config = _config("clip_teacher", root, seed, overrides)
    top1 = softmax_probe_top1(
        *teacher_embeddings(config, workdir, "train"), *teacher_embeddings(config, workdir, "test")
    )
    with open(cache, "w") as f:
        json.dump({"top1": top1}, f)
    return top1


def _cell(values) -> str:
    values = 100 * np.asarray(values)
    return f"{values.mean():.1f} +- {values.std():.1f}"


def table(
    per_seed: list[dict], teacher: list[float] | None = None, selection: str = "best_validation"
) -> str:
    """Markdown: rows = variants, columns = transfers, cells = mean +- std of top-1 (%) at the
    ``selection`` checkpoint; with ``teacher`` (one probe top-1 per seed) a last reference row."""
    which = "best-validation" if selection == "best_validation" else "final"
    lines = [
        f"Test top-1 accuracy (%) at the {which} checkpoint, whole test split, mean +- std over "
        f"{len(per_seed)} seed(s):",
        "",
        "| pretraining | fine-tune | linear probe |",
        "| --- | --- | --- |",
    ]
    for variant in VARIANTS:
        cells = [_cell([r[variant, t][selection] for r in per_seed]) for t in TRANSFERS]
        lines.append(f"| {variant} | {cells[0]} | {cells[1]} |")
    if teacher:
        lines.append(f"| (CLIP teacher's image embedding) | - | {_cell(teacher)} |")
    return "\n".join(lines)


def main(argv=None) -> str:
    parser = argparse.ArgumentParser(prog="python -m emojax.models.uniemox.study")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument(
        "--variants",
        default=",".join(VARIANTS),
        help="a subset trains only those runs (e.g. two processes sharing one seed); the table "
        "needs all four",
    )
    parser.add_argument("--out", default="")
    parser.add_argument("--set", action="append", default=[], help="KEY=VALUE (Python literal)")
    args = parser.parse_args(argv)
    from emojax.train.config import parse_overrides

    overrides = parse_overrides(args.set)
    variants = tuple(v.strip() for v in args.variants.split(",") if v.strip())
    unknown = sorted(set(variants) - set(VARIANTS))
    if unknown:
        parser.error(f"--variants: unknown {unknown}; choose from {sorted(VARIANTS)}")
    roots = {int(s): os.path.join(args.workdir, f"seed{int(s)}") for s in args.seeds.split(",")}
    per_seed = [run_seed(root, seed, overrides, variants) for seed, root in roots.items()]
    if set(variants) != set(VARIANTS):
        print(f"trained {variants} only; run again with every variant for the table")
        return ""
    teacher = [teacher_probe_top1(root, seed, overrides) for seed, root in roots.items()]
    text = "\n\n".join(table(per_seed, teacher, selection) for selection in SELECTIONS)
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text + "\n")
    return text


if __name__ == "__main__":
    main()
