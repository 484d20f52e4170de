"""`make quickstart`: build the default data, train EmoSense on it, test, write a report.

    python -m emojax.quickstart --workdir=workdirs/quickstart [--steps=N] [--config=PATH]

Steps: build ``emojax_senses`` (first use only) -> train ``configs/emosense/default.py``
(checkpoints, metrics.jsonl, TensorBoard events in the workdir) -> evaluate on the word-disjoint
test split -> report.md, report.json and PNG plots in WORKDIR/report/.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
import time

from absl import app, flags

DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), "..", "configs", "emosense", "default.py")

_WORKDIR = flags.DEFINE_string("workdir", "workdirs/quickstart", "run directory")
_CONFIG = flags.DEFINE_string("config", DEFAULT_CONFIG, "config file (get_config())")
_STEPS = flags.DEFINE_integer("steps", None, "override train.num_steps")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: the config's / TFDS')")
_EVAL_ONLY = flags.DEFINE_bool("eval_only", False, "only (re)write the report of a trained workdir")
_HEAD = flags.DEFINE_enum("head", None, ["entmax_bisect", "softmax"], "override the head")


def load_config(path: str):
    """``get_config()`` of a config file, with a clear error for a bad path."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"config file {path!r} not found (expected a .py with get_config)")
    spec = importlib.util.spec_from_file_location("emojax_quickstart_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    if not hasattr(module, "get_config"):
        raise AttributeError(f"config file {path!r} defines no get_config()")
    return module.get_config()


def evaluate_and_report(config, workdir: str, *, prototype_examples: int = 4000) -> dict:
    """Test-split metrics + plots of a trained workdir; returns the metrics."""
    from emojax.models.emosense import evaluation as ev
    from emojax.models.emosense import report as rep

    method, model, variables = ev.restore_variables(config, workdir)
    train_pred = ev.predict(method, model, variables, "train", limit=prototype_examples)
    prototypes = ev.emotion_prototypes(train_pred["emotion_embedding"], train_pred["label"])
    test_pred = ev.predict(method, model, variables, "test")
    metrics = ev.test_metrics(test_pred, prototypes, config.model.head_normalizer)
    metrics.update(ev.zero_shot_metrics(method, model, variables, test_pred, "test"))
    from emojax.models.emosense.compose import SENSES, learned_weights

    weights = learned_weights(variables["params"]["compose"])
    metrics.update({f"sense_weight_{s}": float(w) for s, w in zip(SENSES, weights, strict=True)})

    out = os.path.join(workdir, "report")
    os.makedirs(out, exist_ok=True)
    plots = {
        "training curves": rep.plot_training_curves(
            rep.read_metrics(os.path.join(workdir, "metrics.jsonl")),
            os.path.join(out, "training_curves.png"),
        ),
        "confusion matrix": rep.plot_confusion(
            test_pred["label"],
            test_pred["emotion_logits"].argmax(axis=1),
            os.path.join(out, "confusion_matrix.png"),
            "emotion head on the test split (row-normalised)",
        ),
        "embedding map": rep.plot_embedding_map(
            test_pred["sense_embedding"],
            test_pred["emotion_embedding"],
            test_pred["label"],
            prototypes,
            os.path.join(out, "embedding_map.png"),
        ),
    }
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(metrics, f, indent=2)
    rep.write_markdown(os.path.join(out, "report.md"), metrics, plots)
    return metrics


def main(argv):
    del argv
    from emojax.parallel import retain_freed_host_memory

    retain_freed_host_memory()  # before JAX starts its CPU backend (see its docstring)
    from emojax.data import senses
    from emojax.train import train

    workdir = os.path.abspath(_WORKDIR.value)
    config = load_config(_CONFIG.value)
    with config.unlocked():
        if _STEPS.value is not None:
            config.train.num_steps = _STEPS.value
        if _DATA_DIR.value is not None:
            config.data.data_dir = _DATA_DIR.value
        if _HEAD.value is not None:
            config.model.head_normalizer = _HEAD.value
        if not config.data.cache_dir:
            config.data.cache_dir = os.path.join(workdir, "cache")
    d = config.data
    start = time.perf_counter()
    print("[1/3] dataset emojax_senses (built on first use) ...", flush=True)
    senses.get_builder(
        d.data_dir or None,
        seed=d.data_seed,
        num_train=d.num_train,
        num_validation=d.num_validation,
        num_test=d.num_test,
    )
    if _EVAL_ONLY.value:
        print(f"[2/3] --eval_only: using the checkpoints in {workdir}", flush=True)
    else:
        print(
            f"[2/3] training EmoSense for {config.train.num_steps} steps in {workdir}", flush=True
        )
        train(config, workdir)
    print("[3/3] evaluating on the word-disjoint test split and writing the report", flush=True)
    metrics = evaluate_and_report(config, workdir)
    report = os.path.join(workdir, "report")
    print("\ntest metrics:")
    for key, value in metrics.items():
        print(f"  {key:<22} {value:.4f}" if isinstance(value, float) else f"  {key:<22} {value}")
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Outputs in {workdir}:")
    print("  checkpoints/        Orbax checkpoints (resume: run the same command again)")
    print("  metrics.jsonl       training and validation metrics per step")
    print(f"  tensorboard/        TensorBoard events (tensorboard --logdir {workdir})")
    print(
        "  report/report.md    summary; PNG plots: "
        + ", ".join(sorted(f for f in os.listdir(report) if f.endswith(".png")))
    )
    sys.stdout.flush()


if __name__ == "__main__":
    app.run(main)
