"""``emojax quickstart [METHOD]``: a method's default config on its built-in data, end to end.

    emojax quickstart [METHOD] [--workdir=DIR] [--steps=N] [--config=PATH] [--data_dir=DIR]
    make quickstart METHOD=emosense

Steps: the method builds its built-in dataset if missing (``Method.prepare_data``) -> trains the
packaged config ``emojax/configs/<METHOD>/default.py`` (checkpoints, metrics.jsonl, TensorBoard
events in the workdir; re-running resumes) -> evaluates the test split with the method's
evaluators (the same code as ``emojax eval``) -> writes WORKDIR/report/ (report.md, report.json,
training curves, plus the method's own plots when its package declares ``QUICKSTART_REPORT``).
Configs ship inside the package, so this works after a plain ``pip install``.

Multi-stage methods (a teacher, then pretraining, then transfer) declare in their package
``QUICKSTART_STAGES = ("stage_a", "stage_b", ...)``: config files
``emojax/configs/<METHOD>/<stage>.py`` run in that order, each in ``WORKDIR/<stage>`` (data,
train, test evaluation, report). A stage config finds the others through its ``stages_root``
field (an ``ml_collections.FieldReference`` that paths such as ``init_from.path`` are derived
from); quickstart sets it to WORKDIR. ``--stages=a,b`` runs a subset (e.g. re-run the last
stage); ``--set`` applies to every stage whose config has the key.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import sys
import tempfile
import time
from importlib import resources

from absl import app, flags

DEFAULT_METHOD = "emosense"

_WORKDIR = flags.DEFINE_string(
    "workdir", None, "run directory (default workdirs/quickstart/METHOD)"
)
_CONFIG = flags.DEFINE_string("config", None, "config file (default: the method's packaged one)")
_STEPS = flags.DEFINE_integer("steps", None, "override train.num_steps")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir (default: the config's / TFDS')")
_EVAL_ONLY = flags.DEFINE_bool("eval_only", False, "only (re)write the report of a trained workdir")
_SET = flags.DEFINE_multi_string(
    "set", [], "config override KEY=VALUE (Python literal), repeatable"
)
_STAGES = flags.DEFINE_list(
    "stages", None, "multi-stage methods: run only these stages (default: all, in order)"
)
_RETAIN_HOST_MEMORY = flags.DEFINE_bool(
    "retain_host_memory", False, "glibc: keep freed host memory (XLA:CPU speed-up; see docs)"
)


def declared_stages(method: str) -> tuple[str, ...]:
    """The ``QUICKSTART_STAGES`` of ``emojax.models.<method>`` (empty for one-config methods)."""
    try:
        package = importlib.import_module(f"emojax.models.{method}")
    except ImportError:
        return ()
    return tuple(getattr(package, "QUICKSTART_STAGES", ()))


def packaged_configs() -> dict[str, str]:
    """Method name -> path of its packaged default config (``configs/<m>/default.py`` or
    ``configs/<m>.py``; for a multi-stage method, its first stage's config)."""
    root = resources.files("emojax") / "configs"
    found = {}
    for entry in root.iterdir():
        stages = declared_stages(entry.name) if entry.is_dir() else ()
        if stages and (entry / f"{stages[0]}.py").is_file():
            found[entry.name] = str(entry / f"{stages[0]}.py")
        elif entry.is_dir() and (entry / "default.py").is_file():
            found[entry.name] = str(entry / "default.py")
        elif entry.name.endswith(".py") and not entry.name.startswith("_"):
            found[entry.name[:-3]] = str(entry)
    return found


def default_config_path(method: str) -> str:
    configs = packaged_configs()
    if method not in configs:
        raise FileNotFoundError(
            f"no packaged default config for method {method!r}; available: {sorted(configs)} "
            "(or pass --config=PATH)"
        )
    return configs[method]


def stage_configs(method: str, config_path: str | None = None) -> list[tuple[str, str]]:
    """[(stage name, config path)] in run order; one unnamed stage for a one-config method or
    an explicit ``--config``."""
    stages = () if config_path else declared_stages(method)
    if not stages:
        return [("", config_path or default_config_path(method))]
    root = resources.files("emojax") / "configs" / method
    missing = [name for name in stages if not (root / f"{name}.py").is_file()]
    if missing:
        raise FileNotFoundError(
            f"{method}: QUICKSTART_STAGES names configs not in {root}: {missing}"
        )
    return [(name, str(root / f"{name}.py")) for name in stages]


def _has_key(config, key: str) -> bool:
    node = config
    for name in key.split("."):
        if not hasattr(node, "keys") or name not in node:
            return False
        node = node[name]
    return True


def build_config(
    method: str,
    config_path: str | None,
    workdir: str,
    *,
    stages_root: str | None = None,
    only_existing_keys: bool = False,
):
    """The config to run: loaded, ``--set``/``--steps``/``--data_dir`` applied, ``stages_root``
    set (multi-stage methods). An unknown ``--set`` key is an error; with ``only_existing_keys``
    it is skipped (a multi-stage run applies ``--set`` to the stages that have the key)."""
    from emojax.train import apply_overrides, load_config
    from emojax.train.config import parse_overrides

    path = config_path or default_config_path(method)
    overrides = parse_overrides(_SET.value)
    config = apply_overrides(load_config(path), overrides, skip_missing=only_existing_keys)
    with config.unlocked():
        if stages_root is not None and "stages_root" in config:
            config.stages_root = stages_root
        if _STEPS.value is not None:
            config.train.num_steps = _STEPS.value
        if _DATA_DIR.value is not None:
            config.data.data_dir = _DATA_DIR.value
        if "cache_dir" in config.data and not config.data.cache_dir:
            config.data.cache_dir = os.path.join(workdir, "cache")
    return config


def _method_package(config) -> object | None:
    from emojax.models import REGISTRY

    target = REGISTRY.get(config.method, config.method)
    module = target.split(":")[0]
    package = module.rsplit(".", 1)[0] if module.startswith("emojax.models.") else module
    try:
        return importlib.import_module(package)
    except ImportError:
        return None


def write_report(config, workdir: str, metrics: dict) -> tuple[str, dict]:
    """report.json, report.md and training_curves.png (+ the method's plots and metrics) in
    WORKDIR/report; returns the report directory and all the metrics."""
    from emojax.train.report import plot_training_curves, read_metrics, write_markdown
    from emojax.train.workdir import as_path, is_local, upload_files

    target = as_path(workdir) / "report"
    if is_local(target):
        out = os.fspath(target)
        os.makedirs(out, exist_ok=True)
    else:  # a URL workdir: the report (and the method's plots) are made locally, then uploaded
        out = tempfile.mkdtemp(prefix="emojax-report-")
    plots = {
        "training curves": plot_training_curves(
            read_metrics(as_path(workdir) / "metrics.jsonl"),
            os.path.join(out, "training_curves.png"),
        )
    }
    package = _method_package(config)
    hook = getattr(package, "QUICKSTART_REPORT", None)
    if hook:
        module, function = hook.split(":")
        extra_metrics, extra_plots = getattr(importlib.import_module(module), function)(
            config, workdir, out, metrics
        )
        metrics = {**metrics, **extra_metrics}
        plots.update(extra_plots)
    with open(os.path.join(out, "report.json"), "w") as f:
        json.dump(metrics, f, indent=2, sort_keys=True)
    write_markdown(os.path.join(out, "report.md"), config.method, metrics, plots)
    if not is_local(target):
        upload_files(out, target)
        shutil.rmtree(out, ignore_errors=True)
    return str(target), metrics


def _selected_stages(method: str) -> list[tuple[str, str]]:
    stages = stage_configs(method, _CONFIG.value)
    if _STAGES.value:
        names = [name for name, _ in stages]
        unknown = sorted(set(_STAGES.value) - set(names))
        if unknown:
            raise app.UsageError(f"--stages: {unknown} not among {method}'s stages {names}")
        stages = [(name, path) for name, path in stages if name in _STAGES.value]
    overrides = [item.split("=", 1)[0] for item in _SET.value]
    if len(stages) > 1:
        from emojax.train import load_config

        configs = [load_config(path) for _, path in stages]
        for key in overrides:
            if not any(_has_key(config, key) for config in configs):
                raise app.UsageError(f"--set {key}: no stage of {method} has that config key")
    return stages


def _run_stage(method: str, stage: str, config_path: str, root: str, label: str) -> dict:
    """Data, training, whole-split test evaluation and report of one config; returns its test
    metrics."""
    from emojax.models import get_method
    from emojax.train import evaluate_split, train_to_end

    workdir = os.path.join(root, stage) if stage else root
    config = build_config(
        method, config_path, workdir, stages_root=root, only_existing_keys=bool(stage)
    )
    name = f"{method}/{stage}" if stage else method
    print(f"[1/4]{label} {name}: built-in data (built on first use) ...", flush=True)
    get_method(config.method)(config).prepare_data()
    if _EVAL_ONLY.value:
        print(f"[2/4]{label} --eval_only: using the checkpoints in {workdir}", flush=True)
    else:
        print(
            f"[2/4]{label} training {name} for {config.train.num_steps} steps in {workdir}",
            flush=True,
        )
        train_to_end(config, workdir)
    print(f"[3/4]{label} evaluating every example of the test split", flush=True)
    metrics = evaluate_split(config, workdir, "test")
    print(f"[4/4]{label} writing the report", flush=True)
    _, metrics = write_report(config, workdir, metrics)
    return metrics


def _print_metrics(title: str, metrics: dict) -> None:
    print(f"\n{title}")
    for key, value in sorted(metrics.items()):
        print(f"  {key:<28} {value:.4f}" if isinstance(value, float) else f"  {key:<28} {value}")


def _main(argv):
    if len(argv) > 2:
        raise app.UsageError(f"expected at most one METHOD, got {argv[1:]}")
    method = argv[1] if len(argv) == 2 else DEFAULT_METHOD
    if _RETAIN_HOST_MEMORY.value:  # before JAX starts its CPU backend
        from emojax.parallel import retain_freed_host_memory

        retain_freed_host_memory()
    from emojax.train.workdir import as_path

    # a local path made absolute, or a URL (gs://bucket/run) kept as given
    root = os.fspath(as_path(_WORKDIR.value or os.path.join("workdirs", "quickstart", method)))
    stages = _selected_stages(method)
    start = time.perf_counter()
    results = {}
    from emojax.train import PreemptedError

    try:
        for index, (stage, config_path) in enumerate(stages):
            label = f" (stage {index + 1}/{len(stages)}: {stage})" if stage else ""
            results[stage] = _run_stage(method, stage, config_path, root, label)
    except PreemptedError as err:  # the next stage must not start from an unfinished run
        sys.exit(f"quickstart {method}: {err}")
    for stage, metrics in results.items():
        _print_metrics(f"test metrics{f' of stage {stage}' if stage else ''}:", metrics)
    print(f"\ndone in {time.perf_counter() - start:.0f} s. Outputs in {root}:")
    prefix = "<stage>/" if stages[0][0] else ""
    print(f"  {prefix}checkpoints/        Orbax checkpoints (resume: run the same command again)")
    print(f"  {prefix}metrics.jsonl       training and validation metrics per step")
    print(f"  {prefix}tensorboard/        TensorBoard events (tensorboard --logdir {root})")
    for stage, _ in stages:
        report = as_path(os.path.join(root, stage) if stage else root) / "report"
        pngs = ", ".join(sorted(p.name for p in report.iterdir() if p.name.endswith(".png")))
        print(f"  {stage + '/' if stage else ''}report/report.md    summary; PNG plots: {pngs}")
    sys.stdout.flush()


def main(command: str = "quickstart", argv: list[str] | None = None) -> None:
    """Entry point of ``emojax quickstart`` (``emojax.cli``) and ``python -m emojax.quickstart``."""
    del command
    from absl import logging

    argv = list(sys.argv if argv is None else argv)
    if any(arg in ("-h", "--help", "--helpshort") for arg in argv[1:]):
        print(__doc__)
        print(flags.FLAGS.module_help(sys.modules[__name__]))
        print(
            f"\n  methods with a packaged default config: {', '.join(sorted(packaged_configs()))}"
        )
        sys.exit(0)

    logging.set_verbosity(logging.WARNING)
    app.run(_main, argv=argv)


if __name__ == "__main__":
    main()
