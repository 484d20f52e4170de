"""Config validation, optimizer construction, workdir and CLI errors (all fast, no training)."""

import os
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from emojax.train import (
    ConfigError,
    WorkdirError,
    apply_overrides,
    learning_rate_schedule,
    load_config,
    make_optimizer,
    validate_config,
    weight_decay_mask,
)
from emojax.train.loop import prepare_workdir

ROOT = Path(__file__).parents[1]
SMOKE = str(ROOT / "configs" / "smoke.py")


def smoke(**overrides):
    return load_config(SMOKE, overrides)


def test_validate_fills_trainer_defaults_and_keeps_method_keys():
    config = smoke()
    with config.unlocked():
        del config.train["keep_last"]
    valid = validate_config(config)
    assert valid.train.keep_last == 3 and valid.data.dim_a == 24 and valid.mesh.data == -1


def set_raw(config, section, key, value):
    """Set a value bypassing ConfigDict's type lock (as a config file written that way would)."""
    if section is None:
        config[key] = value
        return
    raw = config[section].to_dict()
    raw[key] = value
    config[section] = ml_collections.ConfigDict(raw)


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        (
            "train",
            "num_step",
            3,
            r"unknown key config\.train\.num_step \(did you mean 'num_steps'\?\)",
        ),
        (None, "trian", {}, r"unknown top-level key config\.trian"),
        (
            "optimizer",
            "learning_rate",
            "1e-3",
            r"config\.optimizer\.learning_rate must be float, got str",
        ),
        ("train", "num_steps", 2.5, r"config\.train\.num_steps must be int, got float"),
        ("train", "nan_policy", "ignore", r"config\.train\.nan_policy='ignore' is not one of"),
        ("optimizer", "name", "adamx", r"config\.optimizer\.name='adamx'"),
        (
            None,
            "method",
            "two_towers",
            r"config\.method='two_towers' is not a registered method \(did you mean 'two_tower'",
        ),
        ("train", "num_steps", 0, r"config\.train\.num_steps must be > 0"),
        (
            "optimizer",
            "grad_accum_steps",
            5,
            r"global_batch_size=32 must be divisible by config\.optimizer\.grad_accum_steps=5",
        ),
        ("data", "num_epochs", "2", r"config\.data\.num_epochs must be int"),
    ],
)
def test_bad_config_names_the_key(section, key, value, message):
    config = smoke()
    with config.unlocked():
        set_raw(config, section, key, value)
    with pytest.raises(ConfigError, match=message):
        validate_config(config)


def test_load_config_overrides_and_their_errors():
    assert smoke(**{"train.num_steps": 7}).train.num_steps == 7
    with pytest.raises(ConfigError, match="did you mean 'num_steps'"):
        smoke(**{"train.num_step": 7})
    with pytest.raises(ConfigError, match="train.num_steps"):
        smoke(**{"train.num_steps": "seven"})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config("configs/nope.py")


def test_apply_overrides_can_skip_keys_another_stage_has():
    config = smoke()
    shared = {"train.num_steps": 5, "model.no_such_key": 1, "teacher.path": "x"}
    assert apply_overrides(config, shared, skip_missing=True) is config
    assert config.train.num_steps == 5 and "teacher" not in config
    with pytest.raises(ConfigError, match="no section 'teacher'"):
        apply_overrides(smoke(), {"teacher.path": "x"})
    with pytest.raises(ConfigError, match="unknown key"):
        apply_overrides(smoke(), {"model.no_such_key": 1})


def test_warmup_then_cosine_and_linear_schedules():
    opt = smoke(**{"optimizer.warmup_steps": 10, "optimizer.learning_rate": 1.0}).optimizer
    cosine = learning_rate_schedule(opt, 110)
    np.testing.assert_allclose(
        [cosine(0), cosine(5), cosine(10), cosine(60), cosine(110)],
        [0.0, 0.5, 1.0, 0.5, 0.0],
        atol=1e-6,
    )
    with opt.unlocked():
        opt.schedule, opt.end_learning_rate_factor = "linear", 0.1
    linear = learning_rate_schedule(opt, 110)
    np.testing.assert_allclose([linear(10), linear(60), linear(110)], [1.0, 0.55, 0.1], atol=1e-6)


def test_weight_decay_skips_biases_norms_and_temperatures():
    params = {
        "dense": {"kernel": jnp.ones((3, 4)), "bias": jnp.ones(4)},
        "norm": {"scale": jnp.ones(4)},
        "log_scale": jnp.ones(()),
    }
    mask = weight_decay_mask(params)
    assert mask == {
        "dense": {"kernel": True, "bias": False},
        "norm": {"scale": False},
        "log_scale": False,
    }
    opt = smoke(
        **{
            "optimizer.weight_decay": 0.5,
            "optimizer.learning_rate": 0.1,
            "optimizer.warmup_steps": 0,
            "optimizer.schedule": "constant",
        }
    ).optimizer
    tx, _ = make_optimizer(opt, 10)
    zeros = jax.tree.map(jnp.zeros_like, params)
    updates, _ = tx.update(zeros, tx.init(params), params)
    new = optax.apply_updates(params, updates)
    np.testing.assert_allclose(new["dense"]["kernel"], 1 - 0.1 * 0.5)  # decayed
    np.testing.assert_allclose(new["dense"]["bias"], 1.0)  # not decayed


@pytest.mark.parametrize("name", ["adamw", "adam", "sgd", "lion", "lamb", "adafactor"])
def test_every_optimizer_makes_a_finite_update(name):
    opt = smoke(**{"optimizer.name": name, "optimizer.weight_decay": 0.1}).optimizer
    tx, _ = make_optimizer(opt, 10)
    params = {"w": jnp.ones((4, 4)), "b": jnp.ones(4)}
    grads = jax.tree.map(lambda p: 0.1 * p, params)
    updates, _ = tx.update(grads, tx.init(params), params)
    assert all(bool(jnp.all(jnp.isfinite(u))) for u in jax.tree.leaves(updates))


def test_unwritable_workdir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "a_file"
    blocker.write_text("not a directory")
    with pytest.raises(WorkdirError, match=r"cannot write to workdir .*a_file/run.*--workdir"):
        prepare_workdir(blocker / "run")
    if os.geteuid() != 0:  # root ignores permission bits
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        with pytest.raises(WorkdirError, match="cannot write to workdir"):
            prepare_workdir(locked / "run")


def run_cli(*args, timeout=120):
    return subprocess.run(
        [sys.executable, "-m", "emojax.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=ROOT,
        env={**os.environ, "JAX_PLATFORMS": "cpu"},
    )


@pytest.mark.slow
def test_cli_reports_bad_overrides_and_help(tmp_path):
    bad_key = run_cli(
        "train", f"--config={SMOKE}", f"--workdir={tmp_path}", "--config.train.num_step=3"
    )
    assert bad_key.returncode == 1
    assert "num_step" in bad_key.stderr and "Did you mean" in bad_key.stderr
    assert "Traceback" not in bad_key.stderr
    bad_type = run_cli(
        "train", f"--config={SMOKE}", f"--workdir={tmp_path}", "--config.train.num_steps=many"
    )
    assert bad_type.returncode == 1 and "config.train.num_steps" in bad_type.stderr
    helped = run_cli("eval", "--help")
    assert helped.returncode == 0 and "--workdir" in helped.stdout and "--config" in helped.stdout
