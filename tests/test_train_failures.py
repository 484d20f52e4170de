"""Failure handling in-process: NaN stop/skip, corrupted newest checkpoint, tmp clean-up."""

import json
import shutil
import warnings
from pathlib import Path

import jax
import numpy as np
import pytest

from emojax.data.pipeline import make_data_iterator
from emojax.models import REGISTRY
from emojax.models.smoke.method import TwoTower
from emojax.train import CorruptCheckpointWarning, NonFiniteLossError, load_config, train
from emojax.train.checkpoint import read_state

SMOKE = Path(__file__).parents[1] / "configs" / "smoke.py"
POISONED_STEP = 5


def tiny_config(**overrides):
    base = {
        "train.num_steps": 6,
        "train.log_every": 2,
        "train.eval_every": 0,
        "train.save_every": 3,
        "train.keep_best_metric": "",
        "mesh.data": 8,
    }
    return load_config(str(SMOKE), {**base, **overrides})


def poisoned_index(config) -> int:
    """The first example of the batch at POISONED_STEP (same pipeline as the trainer)."""
    ids = make_data_iterator(
        list(range(config.data.num_train)),
        global_batch_size=config.data.global_batch_size,
        seed=config.data.shuffle_seed,
        num_epochs=None,
        process_index=0,
        process_count=1,
    )
    for _ in range(POISONED_STEP - 1):
        next(ids)
    return int(next(ids)[0])


class PoisonedSource:
    def __init__(self, source, index):
        self.source, self.index = source, index

    def __len__(self):
        return len(self.source)

    def __getitem__(self, i):
        example = self.source[i]
        if i == self.index:
            example = {**example, "a": np.full_like(example["a"], np.nan)}
        return example


class NanTower(TwoTower):
    """two_tower whose training data has one NaN example (seen at POISONED_STEP)."""

    def data_source(self, split):
        source = super().data_source(split)
        return PoisonedSource(source, poisoned_index(self.config)) if split == "train" else source


@pytest.fixture
def nan_method(monkeypatch):
    monkeypatch.setitem(REGISTRY, "nan_tower", f"{__name__}:NanTower")
    return "nan_tower"


@pytest.mark.slow
def test_nan_loss_stops_naming_the_step_and_keeps_checkpoints(nan_method, tmp_path):
    config = tiny_config()
    with config.unlocked():
        config.method = nan_method
    with pytest.raises(NonFiniteLossError, match=rf"NaN/Inf at step {POISONED_STEP} .*step 3"):
        train(config, tmp_path)
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["3"]
    saved = read_state(tmp_path / "checkpoints", step=3)
    assert all(np.isfinite(x).all() for x in _leaves(saved["params"]))


def test_nan_loss_is_skipped_when_configured(nan_method, tmp_path):
    config = tiny_config(**{"train.nan_policy": "skip"})
    with config.unlocked():
        config.method = nan_method
    result = train(config, tmp_path)
    assert result["step"] == 6 and result["skipped_steps"] == 1
    assert np.isfinite(result["loss"])
    final = read_state(tmp_path / "checkpoints")
    assert int(final["skipped"]) == 1
    assert all(np.isfinite(x).all() for x in _leaves(final["params"]))


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


@pytest.mark.slow
def test_corrupted_newest_checkpoint_falls_back_and_tmp_dirs_are_cleaned(tmp_path):
    config = tiny_config()
    train(config, tmp_path)
    checkpoints = tmp_path / "checkpoints"
    expected = read_state(checkpoints, step=6)
    for file in (checkpoints / "6" / "state").rglob("*"):
        if file.is_file():
            file.write_bytes(b"\x00garbage")
    leftover = checkpoints / "9.orbax-checkpoint-tmp-1234567"
    (leftover / "state").mkdir(parents=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = train(config, tmp_path)
    messages = [str(w.message) for w in caught if issubclass(w.category, CorruptCheckpointWarning)]
    assert messages and "checkpoints/6 is unreadable" in messages[0]
    assert not leftover.exists()
    assert any((tmp_path / "checkpoints_corrupt").iterdir())
    assert result["step"] == 6
    # Resumed from step 3 and recomputed 4..6: bitwise the same parameters as before.
    final = read_state(checkpoints, step=6)
    for a, b in zip(_leaves(final["params"]), _leaves(expected["params"]), strict=True):
        np.testing.assert_array_equal(a, b)
    logged = [json.loads(line)["step"] for line in (tmp_path / "metrics.jsonl").open()]
    assert logged == [2, 3, 4, 6]  # lines after the restored step 3 replaced, not duplicated
    shutil.rmtree(tmp_path / "checkpoints_corrupt")


def test_evaluate_and_restore_use_the_newest_checkpoint(tmp_path):
    from emojax.train import evaluate, evaluate_split, restore

    config = tiny_config()
    with pytest.raises(FileNotFoundError, match="train first"):
        evaluate(config, tmp_path / "never_trained")
    train(config, tmp_path)
    restored = restore(config, tmp_path)
    assert restored.step == config.train.num_steps
    assert int(restored.state.step) == config.train.num_steps
    saved = read_state(tmp_path / "checkpoints", restored.step)
    for a, b in zip(
        jax.tree.leaves(jax.device_get(restored.state.params)),
        jax.tree.leaves(saved["params"]),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    metrics = evaluate(config, tmp_path)
    assert metrics["step"] == config.train.num_steps
    assert np.isfinite(metrics["eval/loss"])
    # a kept earlier step (e.g. the best-validation one) on request; a missing one is named
    earlier = evaluate_split(config, tmp_path, "validation", step=3)
    assert earlier["step"] == 3 and earlier["loss"] != metrics["eval/loss"]
    with pytest.raises(FileNotFoundError, match="no checkpoint of step 4 in .*kept: \\[3, 6\\]"):
        evaluate(config, tmp_path, step=4)
