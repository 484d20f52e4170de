"""Checkpointer retention (keep-last + keep-best), async saves and tmp clean-up (no training)."""

import jax.numpy as jnp
import numpy as np

from emojax.train import Checkpointer
from emojax.train.checkpoint import read_state


def test_keeps_the_last_n_plus_the_best(tmp_path):
    checkpointer = Checkpointer(tmp_path, keep_last=2, best_metric="eval/loss", best_mode="min")
    eval_losses = {1: 0.9, 2: 0.2, 3: 0.5, 4: 0.7, 5: 0.6}
    for step, loss in eval_losses.items():
        checkpointer.save(
            step, {"w": jnp.full((3,), step, jnp.float32)}, metrics={"eval/loss": loss}
        )
    checkpointer.wait()
    assert checkpointer.all_steps() == [2, 4, 5]  # best (0.2 at step 2) + the last two
    checkpointer.close()
    np.testing.assert_array_equal(read_state(tmp_path, step=2)["w"], [2, 2, 2])


def test_keep_best_max_and_saves_without_metrics(tmp_path):
    checkpointer = Checkpointer(tmp_path, keep_last=1, best_metric="eval/acc", best_mode="max")
    checkpointer.save(1, {"w": jnp.ones(2)}, metrics={"eval/acc": 0.9})
    checkpointer.save(2, {"w": jnp.ones(2)}, metrics={"eval/acc": 0.1})
    checkpointer.save(3, {"w": jnp.ones(2)})  # no eval at this step: kept only while newest
    checkpointer.save(4, {"w": jnp.ones(2)})
    checkpointer.wait()
    assert checkpointer.all_steps() == [1, 4]
    checkpointer.close()


def test_leftover_temporary_directories_are_removed_at_start(tmp_path):
    leftover = tmp_path / "12.orbax-checkpoint-tmp-99"
    (leftover / "state").mkdir(parents=True)
    checkpointer = Checkpointer(tmp_path)
    assert checkpointer.all_steps() == []  # never offered for restore
    # Orbax removes them in the background from start-up; the first save waits for it.
    checkpointer.save(1, {"w": jnp.ones(2)})
    checkpointer.wait()
    assert not leftover.exists() and checkpointer.all_steps() == [1]
    checkpointer.close()
