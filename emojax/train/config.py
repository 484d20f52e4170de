"""The trainer's config sections: defaults, and validation with errors that name the key.

A run config has ``method``, ``seed``, ``model`` (the method's own keys), ``data`` (the keys
below plus the method's), and the trainer sections ``optimizer``, ``mesh``, ``train``, ``eval``.
Missing trainer keys take the defaults below; unknown trainer keys and wrong types fail at start.
"""

from __future__ import annotations

import difflib

import ml_collections

from emojax.models import REGISTRY

# stages_root: the folder of a multi-stage method's runs (emojax quickstart sets it); a stage's
# config derives paths such as init_from.path from it with an ml_collections.FieldReference.
TOP_LEVEL = (
    "method",
    "seed",
    "model",
    "data",
    "optimizer",
    "mesh",
    "train",
    "eval",
    "init_from",
    "stages_root",
)
OPTIMIZERS = ("adamw", "adam", "sgd", "lion", "lamb", "adafactor")
SCHEDULES = ("cosine", "linear", "constant")
NAN_POLICIES = ("stop", "skip")
COMPUTE_DTYPES = ("float32", "bfloat16", "float16")


def engine_defaults() -> ml_collections.ConfigDict:
    """Every trainer key with its default (see docs/training.md)."""
    c = ml_collections.ConfigDict()
    c.data = dict(global_batch_size=32, shuffle_seed=0, worker_count=0, num_epochs=None)
    c.optimizer = dict(
        name="adamw",
        learning_rate=1e-3,
        schedule="cosine",
        warmup_steps=0,
        end_learning_rate_factor=0.0,
        b1=0.9,
        b2=0.999,
        eps=1e-8,
        momentum=0.9,
        weight_decay=0.0,
        grad_clip_norm=0.0,
        grad_accum_steps=1,
    )
    c.mesh = dict(data=-1, fsdp=1, tensor=1)
    c.train = dict(
        num_steps=1000,
        log_every=50,
        eval_every=0,
        save_every=500,
        keep_last=3,
        keep_best_metric="",
        keep_best_mode="min",
        nan_policy="stop",
        compute_dtype="float32",
    )
    # num_batches 0: every example of the split (a positive value caps it, for quick checks).
    c.eval = dict(split="validation", num_batches=0)
    # Weights from another run when this one has no checkpoint yet (emojax/train/init_from.py).
    c.init_from = dict(path="", step=-1, subtrees=("params",), dont_load=())
    return c


# Keys whose default is None but whose value, when set, must have this type.
OPTIONAL_TYPES = {("data", "num_epochs"): int}


class ConfigError(ValueError):
    """A config problem, with the offending key in the message."""


def _suggest(key: str, known) -> str:
    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _check_type(path: str, value, default, optional_type) -> None:
    expected = type(default) if default is not None else optional_type
    if expected is None or (value is None and default is None):
        return
    if expected is float and isinstance(value, int) and not isinstance(value, bool):
        return  # an int is a fine float
    if expected is tuple and isinstance(value, list):
        return
    if isinstance(value, bool) != (expected is bool) or not isinstance(value, expected):
        raise ConfigError(
            f"config.{path} must be {expected.__name__}, got {type(value).__name__} {value!r}"
        )


def _merge_section(config, name: str, defaults, *, open_section: bool) -> None:
    """Fill missing keys of ``config[name]`` from ``defaults``; reject unknown ones unless the
    section also holds method keys (``data``)."""
    if name not in config:
        with config.unlocked():
            config[name] = ml_collections.ConfigDict()
    section = config[name]
    if not isinstance(section, ml_collections.ConfigDict):
        raise ConfigError(f"config.{name} must be a ConfigDict, got {type(section).__name__}")
    for key in section.keys():
        if key in defaults:
            _check_type(
                f"{name}.{key}", section[key], defaults[key], OPTIONAL_TYPES.get((name, key))
            )
        elif not open_section:
            raise ConfigError(
                f"unknown key config.{name}.{key}{_suggest(key, defaults)}; "
                f"known keys: {sorted(defaults)}"
            )
    with section.unlocked():
        for key, value in defaults.items():
            if key not in section:
                section[key] = value


def _check_choice(path: str, value, choices) -> None:
    if value not in choices:
        raise ConfigError(f"config.{path}={value!r} is not one of {list(choices)}")


def _check_values(c: ml_collections.ConfigDict) -> None:
    _check_choice("optimizer.name", c.optimizer.name, OPTIMIZERS)
    _check_choice("optimizer.schedule", c.optimizer.schedule, SCHEDULES)
    _check_choice("train.nan_policy", c.train.nan_policy, NAN_POLICIES)
    _check_choice("train.compute_dtype", c.train.compute_dtype, COMPUTE_DTYPES)
    _check_choice("train.keep_best_mode", c.train.keep_best_mode, ("min", "max"))
    positive = {
        "data.global_batch_size": c.data.global_batch_size,
        "train.num_steps": c.train.num_steps,
        "train.log_every": c.train.log_every,
        "train.keep_last": c.train.keep_last,
        "optimizer.grad_accum_steps": c.optimizer.grad_accum_steps,
        "optimizer.learning_rate": c.optimizer.learning_rate,
    }
    non_negative = {
        "train.eval_every": c.train.eval_every,
        "train.save_every": c.train.save_every,
        "optimizer.warmup_steps": c.optimizer.warmup_steps,
        "optimizer.weight_decay": c.optimizer.weight_decay,
        "optimizer.grad_clip_norm": c.optimizer.grad_clip_norm,
        "data.worker_count": c.data.worker_count,
        "eval.num_batches": c.eval.num_batches,
    }
    for path, value in positive.items():
        if value <= 0:
            raise ConfigError(f"config.{path} must be > 0, got {value}")
    for path, value in non_negative.items():
        if value < 0:
            raise ConfigError(f"config.{path} must be >= 0, got {value}")
    if c.data.global_batch_size % c.optimizer.grad_accum_steps:
        raise ConfigError(
            f"config.data.global_batch_size={c.data.global_batch_size} must be divisible by "
            f"config.optimizer.grad_accum_steps={c.optimizer.grad_accum_steps}"
        )


def validate_config(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
    """A validated copy of ``config`` with the trainer defaults filled in.

    Raises:
      ConfigError: unknown top-level or trainer key, wrong type, bad value (the key is named).
    """
    if not isinstance(config, ml_collections.ConfigDict):
        raise ConfigError(f"a config must be an ml_collections.ConfigDict, got {type(config)}")
    config = ml_collections.ConfigDict(config.to_dict())  # a private, unlocked copy
    for key in config.keys():
        if key not in TOP_LEVEL:
            raise ConfigError(
                f"unknown top-level key config.{key}{_suggest(key, TOP_LEVEL)}; "
                f"known: {list(TOP_LEVEL)}"
            )
    for key in ("method", "model"):
        if key not in config:
            raise ConfigError(f"config.{key} is missing (see configs/smoke.py for the layout)")
    if ":" not in str(config.method) and config.method not in REGISTRY:
        raise ConfigError(
            f"config.method={config.method!r} is not a registered method"
            f"{_suggest(config.method, REGISTRY)}; "
            f"known: {sorted(REGISTRY)}"
        )
    with config.unlocked():
        config.seed = config.get("seed", 0)
    _check_type("seed", config.seed, 0, None)
    if "stages_root" in config:
        _check_type("stages_root", config.stages_root, "", None)
    defaults = engine_defaults()
    for name in ("data", "optimizer", "mesh", "train", "eval", "init_from"):
        _merge_section(config, name, defaults[name], open_section=(name == "data"))
    _check_values(config)
    return config


def parse_overrides(items) -> dict:
    """``["a.b=VALUE", ...]`` (command-line ``--set``) -> ``{"a.b": value}`` for
    :func:`load_config`; a value is a Python literal, else the string as given."""
    import ast

    overrides = {}
    for item in items:
        key, sep, text = str(item).partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: expected KEY=VALUE, e.g. train.num_steps=10")
        try:
            overrides[key] = ast.literal_eval(text)
        except (ValueError, SyntaxError):
            overrides[key] = text
    return overrides


def load_config(path: str, overrides: dict | None = None) -> ml_collections.ConfigDict:
    """``get_config()`` of a config file, with dotted-key ``overrides`` applied.

    Example: ``load_config("configs/smoke.py", {"train.num_steps": 10})``.
    """
    import importlib.util
    from pathlib import Path

    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"config file {file.absolute()} does not exist")
    spec = importlib.util.spec_from_file_location(f"emojax_config_{file.stem}", file)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return apply_overrides(module.get_config(), overrides or {})


def apply_overrides(
    config: ml_collections.ConfigDict, overrides: dict, *, skip_missing: bool = False
) -> ml_collections.ConfigDict:
    """Sets each dotted ``{"a.b": value}`` of ``overrides`` in ``config`` (in place; returns it).

    An unknown section or key is a :class:`ConfigError` naming it, or, with ``skip_missing``
    (one override list for several stage configs), skipped. A value of the wrong type is a
    ``ConfigError``."""
    for dotted, value in overrides.items():
        *parents, leaf = dotted.split(".")
        node = config
        for name in parents:
            if not hasattr(node, "keys") or name not in node:
                if skip_missing:
                    break
                raise ConfigError(f"override {dotted!r}: config has no section {name!r}")
            node = node[name]
        else:
            if leaf not in node:
                if skip_missing:
                    continue
                raise ConfigError(
                    f"override {dotted!r}: unknown key{_suggest(leaf, node.keys())}; "
                    f"known: {sorted(node.keys())}"
                )
            try:
                node[leaf] = value
            except TypeError as err:
                raise ConfigError(f"override {dotted!r}={value!r}: {err}") from err
    return config
