"""The train state and its sharded initialisation (``eval_shape`` -> shardings -> jitted init)."""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from emojax.models.base import Method
from emojax.parallel import (
    LOGICAL_AXIS_RULES,
    mirror_shardings,
    replicated,
    strip_boxes,
    tree_shardings,
)


class TrainState(flax.struct.PyTreeNode):
    """Everything a step changes. ``step``: completed updates; ``skipped``: non-finite steps
    whose update was not applied (``train.nan_policy="skip"``)."""

    step: jax.Array
    params: Any
    opt_state: Any
    model_state: Any  # non-parameter collections, e.g. {"batch_stats": ...}
    skipped: jax.Array
    extra: Any = flax.struct.field(default_factory=dict)  # the method's state outside the gradient


def _zeros_batch(method: Method, batch_size: int):
    return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), method.example_batch(batch_size))


def init_boxed(method: Method, model: nn.Module, tx: optax.GradientTransformation, rng, batch_size):
    """Initial state with params still wrapped in Flax partitioning boxes (for eval_shape)."""
    variables = dict(method.init_variables(model, rng, _zeros_batch(method, batch_size)))
    params = variables.pop("params")
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        opt_state=tx.init(strip_boxes(params)),
        model_state=variables,
        skipped=jnp.zeros((), jnp.int32),
        extra=method.init_extra_state(jax.random.fold_in(rng, 1)),
    )


def state_shardings(abstract_boxed: TrainState, mesh: jax.sharding.Mesh, rules=LOGICAL_AXIS_RULES):
    """NamedShardings for every leaf of the (unboxed) state."""
    params_shardings = tree_shardings(abstract_boxed.params, mesh, rules)
    params_abstract = strip_boxes(abstract_boxed.params)
    return TrainState(
        step=replicated(mesh),
        params=params_shardings,
        opt_state=mirror_shardings(
            abstract_boxed.opt_state, params_abstract, params_shardings, mesh
        ),
        model_state=tree_shardings(abstract_boxed.model_state, mesh, rules),
        skipped=replicated(mesh),
        extra=tree_shardings(abstract_boxed.extra, mesh, rules),
    )


def sharded_init(method, model, tx, mesh, seed: int, batch_size: int, rules=LOGICAL_AXIS_RULES):
    """(init_fn, abstract_state, shardings): ``init_fn()`` builds the state directly sharded.

    ``abstract_state`` is the unboxed state's ShapeDtypeStructs carrying their shardings
    (the restore target for Orbax).
    """

    def init():
        return strip_boxes(init_boxed(method, model, tx, jax.random.key(seed), batch_size))

    with nn.logical_axis_rules(rules):
        boxed = jax.eval_shape(
            lambda: init_boxed(method, model, tx, jax.random.key(seed), batch_size)
        )
        shardings = state_shardings(boxed, mesh, rules)
    abstract = jax.tree.map(
        lambda leaf, sharding: jax.ShapeDtypeStruct(leaf.shape, leaf.dtype, sharding=sharding),
        strip_boxes(boxed),
        shardings,
    )
    return jax.jit(init, out_shardings=shardings), abstract, shardings
