"""The jitted train and eval steps (pure functions of state and a global batch).

Gradient accumulation scans over ``grad_accum_steps`` micro-batches inside one step rather
than wrapping the optimizer in ``optax.MultiSteps``: one call = one optimizer update, so
step numbers, the learning-rate schedule, logging, checkpoints and the data position all
count updates, and the compiled step keeps one micro-batch of activations alive.
Row ``r`` of the global batch goes to micro-batch ``r % k``, so every micro-batch stays
evenly sharded over the batch axes without moving data.
"""

from __future__ import annotations

from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding, PartitionSpec

from emojax.models.base import Method
from emojax.train.state import TrainState


def split_micro_batches(batch, num_micro: int, sharding: NamedSharding | None):
    """[B, ...] -> [num_micro, B // num_micro, ...]; micro-batch m holds rows r % num_micro == m."""

    def split(x):
        x = x.reshape((x.shape[0] // num_micro, num_micro) + x.shape[1:]).swapaxes(0, 1)
        if sharding is not None:
            spec = PartitionSpec(None, *sharding.spec)
            x = jax.lax.with_sharding_constraint(x, NamedSharding(sharding.mesh, spec))
        return x

    return jax.tree.map(split, batch)


def _where_tree(pred, new, old):
    return jax.tree.map(lambda n, o: jnp.where(pred, n, o), new, old)


def unpack_loss_aux(aux) -> tuple[dict, dict, object]:
    """(metrics, mutable collections, outputs-for-extra-state) of a loss's aux tuple."""
    if not isinstance(aux, tuple) or len(aux) not in (2, 3):
        raise TypeError(
            "Method.loss must return (loss, (metrics, collections)) or "
            f"(loss, (metrics, collections, outputs)); got aux {type(aux).__name__}"
        )
    metrics, collections = aux[0], aux[1]
    return metrics, collections, (aux[2] if len(aux) == 3 else None)


def loss_variables(params, model_state, frozen, extra) -> dict:
    """What the loss sees: params, mutable collections, and "frozen"/"extra" when present."""
    variables = {"params": params, **model_state}
    if jax.tree.leaves(frozen):
        variables["frozen"] = frozen
    if jax.tree.leaves(extra):
        variables["extra"] = extra
    return variables


def mask_frozen_grads(method: Method, grads):
    """Zero the gradients of parameters the method does not train. The mask is static, so XLA
    drops the computation of those gradients, and the gradient norm counts trained ones only."""
    mask = method.trainable(grads)
    return jax.tree.map(lambda g, t: g if bool(t) else jnp.zeros_like(g), grads, mask)


def make_train_step(
    method: Method,
    model: nn.Module,
    tx: optax.GradientTransformation,
    schedule: optax.Schedule,
    *,
    seed: int,
    grad_accum_steps: int = 1,
    batch_sharding: NamedSharding | None = None,
) -> Callable[[TrainState, dict, object], tuple[TrainState, dict]]:
    """``step(state, batch, frozen) -> (state, metrics)``; the update (and the extra-state
    update) is applied only if the loss and the gradient norm are finite (else ``skipped``
    counts it; the loop decides stop/skip)."""

    def grads_of(params, model_state, extra, frozen, batch, rng):
        def loss_fn(p):
            variables = loss_variables(p, model_state, frozen, extra)
            loss, aux = method.loss(model, variables, batch, rng, train=True)
            return loss, unpack_loss_aux(aux)

        (loss, (metrics, new_state, outputs)), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            params
        )
        return (
            loss,
            metrics,
            {**model_state, **new_state},
            outputs,
            mask_frozen_grads(method, grads),
        )

    def step(state: TrainState, batch, frozen=None) -> tuple[TrainState, dict]:
        frozen = {} if frozen is None else frozen
        # built inside the trace from the static seed: no host-to-device transfer per call
        rng = jax.random.fold_in(jax.random.key(seed + 1), state.step)
        if grad_accum_steps == 1:
            loss, metrics, model_state, outputs, grads = grads_of(
                state.params, state.model_state, state.extra, frozen, batch, rng
            )
            outputs = [outputs]
        else:
            micro = split_micro_batches(batch, grad_accum_steps, batch_sharding)

            def body(carry, xs):
                grad_sum, model_state = carry
                index, micro_batch = xs
                loss, metrics, model_state, outputs, grads = grads_of(
                    state.params,
                    model_state,
                    state.extra,
                    frozen,
                    micro_batch,
                    jax.random.fold_in(rng, index),
                )
                grad_sum = jax.tree.map(jnp.add, grad_sum, grads)
                return (grad_sum, model_state), (loss, metrics, outputs)

            zeros = jax.tree.map(jnp.zeros_like, state.params)
            xs = (jnp.arange(grad_accum_steps), micro)
            (grad_sum, model_state), (losses, metrics, stacked) = jax.lax.scan(
                body, (zeros, state.model_state), xs
            )
            grads = jax.tree.map(lambda g: g / grad_accum_steps, grad_sum)
            loss = jnp.mean(losses)
            metrics = jax.tree.map(jnp.mean, metrics)
            outputs = [jax.tree.map(lambda x, i=i: x[i], stacked) for i in range(grad_accum_steps)]
        grad_norm = optax.global_norm(grads)
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        extra = state.extra
        if outputs[0] is not None:
            extra_key = jax.random.fold_in(rng, 0x5EED)
            for index, micro_outputs in enumerate(outputs):
                extra = method.update_extra_state(
                    extra, micro_outputs, step=state.step, rng=jax.random.fold_in(extra_key, index)
                )
        new = state.replace(
            step=state.step + 1,
            params=_where_tree(finite, params, state.params),
            opt_state=_where_tree(finite, opt_state, state.opt_state),
            model_state=_where_tree(finite, model_state, state.model_state),
            skipped=state.skipped + (~finite).astype(jnp.int32),
            extra=_where_tree(finite, extra, state.extra),
        )
        metrics = {
            **metrics,
            "loss": loss,
            "grad_norm": grad_norm,
            "learning_rate": schedule(state.step),
            "finite": finite,
        }
        return new, metrics

    return step
