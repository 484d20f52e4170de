"""Optax optimizer from ``config.optimizer``: schedule, clipping, decoupled weight decay.

Chain: ``clip_by_global_norm`` (if ``grad_clip_norm`` > 0) -> the optimizer with its
learning-rate schedule; weight decay is applied only to parameters whose name is ``kernel``
/ ``embedding`` / ``*_weight`` with at least 2 dimensions (no decay on biases, norm scales,
temperatures). Gradient accumulation is not an optax wrapper here: the train step scans
over micro-batches (see :mod:`emojax.train.step`).
"""

from __future__ import annotations

import jax
import ml_collections
import optax

NO_DECAY_NAMES = ("bias", "scale", "log_scale", "embedding_norm")


def learning_rate_schedule(opt: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
    """Linear warmup from 0 to ``learning_rate`` over ``warmup_steps``, then cosine / linear
    decay to ``learning_rate * end_learning_rate_factor`` at ``num_steps``, or constant."""
    peak, warmup = float(opt.learning_rate), int(opt.warmup_steps)
    end = peak * float(opt.end_learning_rate_factor)
    decay_steps = max(num_steps - warmup, 1)
    if opt.schedule == "constant":
        after = optax.constant_schedule(peak)
    elif opt.schedule == "cosine":
        after = optax.cosine_decay_schedule(peak, decay_steps, alpha=end / peak if peak else 0.0)
    elif opt.schedule == "linear":
        after = optax.linear_schedule(peak, end, decay_steps)
    else:
        raise ValueError(f"config.optimizer.schedule={opt.schedule!r}: use cosine/linear/constant")
    if warmup == 0:
        return after
    return optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])


def weight_decay_mask(params):
    """True for the leaves that get weight decay: matrices/conv kernels, not biases or norms."""

    def decays(path, leaf) -> bool:
        name = str(getattr(path[-1], "key", getattr(path[-1], "name", path[-1])))
        return leaf.ndim >= 2 and name not in NO_DECAY_NAMES

    return jax.tree_util.tree_map_with_path(decays, params)


def _base_optimizer(opt, schedule) -> optax.GradientTransformation:
    wd = float(opt.weight_decay)
    mask = weight_decay_mask if wd else None
    if opt.name == "adamw":
        return optax.adamw(schedule, opt.b1, opt.b2, opt.eps, weight_decay=wd, mask=mask)
    if opt.name == "lion":
        return optax.lion(schedule, opt.b1, opt.b2, weight_decay=wd, mask=mask)
    if opt.name == "lamb":
        return optax.lamb(schedule, opt.b1, opt.b2, opt.eps, weight_decay=wd, mask=mask)
    if opt.name == "adafactor":
        return optax.adafactor(schedule, weight_decay_rate=wd or None, weight_decay_mask=mask)
    if opt.name == "adam":
        base = optax.adam(schedule, opt.b1, opt.b2, opt.eps)
    elif opt.name == "sgd":
        base = optax.sgd(schedule, momentum=opt.momentum or None)
    else:
        raise ValueError(f"config.optimizer.name={opt.name!r} is not supported")
    if not wd:
        return base
    # Coupled L2 decay for adam/sgd (added to the gradient before the optimizer).
    return optax.chain(optax.add_decayed_weights(wd, mask), base)


def make_optimizer(
    opt: ml_collections.ConfigDict, num_steps: int, trainable=None
) -> tuple[optax.GradientTransformation, optax.Schedule]:
    """The optimizer and its learning-rate schedule (the schedule is logged each step).

    ``trainable``: optional ``params -> bool pytree``; parameters marked False are frozen with
    ``optax.multi_transform`` + ``optax.set_to_zero`` (no update, no optimizer state, no weight
    decay).
    """
    schedule = learning_rate_schedule(opt, num_steps)
    parts = []
    if opt.grad_clip_norm:
        parts.append(optax.clip_by_global_norm(float(opt.grad_clip_norm)))
    parts.append(_base_optimizer(opt, schedule))
    tx = optax.chain(*parts)
    if trainable is not None:
        tx = optax.multi_transform(
            {"trained": tx, "frozen": optax.set_to_zero()},
            lambda params: jax.tree.map(
                lambda t: "trained" if bool(t) else "frozen", trainable(params)
            ),
        )
    return tx, schedule
