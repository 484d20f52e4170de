"""Reconstruction loss (MCN): per-modality MSE of a decoder's output to the pre-projection features.

    L_rec = sum_m mean((f'_m - f_m)^2)

MCN weights the sum by 50 in the total objective (the weight is the caller's).
"""

from __future__ import annotations

from collections.abc import Mapping

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite


def reconstruction_loss(
    reconstructions: Mapping[str, jax.Array],
    targets: Mapping[str, jax.Array],
    *,
    reduction: str = "sum",
    detach_targets: bool = True,
) -> jax.Array:
    """Per-modality MSE, summed (or averaged) over modalities; scalar float32.

    Args:
      reconstructions: modality -> [batch, feat] decoder outputs.
      targets: modality -> [batch, feat] original (pre-gating) features; same keys and shapes.
      reduction: "sum" (MCN) or "mean" over modalities.
      detach_targets: stop gradients into the targets (they are the encoder's input).
    """
    if set(reconstructions) != set(targets):
        raise ValueError(
            f"modalities differ: reconstructions has {sorted(reconstructions)}, "
            f"targets has {sorted(targets)}"
        )
    if not reconstructions:
        raise ValueError("reconstruction_loss needs at least one modality")
    if reduction not in ("sum", "mean"):
        raise ValueError(f'reduction must be "sum" or "mean", got {reduction!r}')
    losses = []
    for name in reconstructions:
        r, t = reconstructions[name], targets[name]
        if r.shape != t.shape:
            raise ValueError(f"{name}: reconstruction shape {r.shape} != target shape {t.shape}")
        check_finite(**{f"reconstructions[{name}]": r, f"targets[{name}]": t})
        t = jax.lax.stop_gradient(t) if detach_targets else t
        losses.append(jnp.mean(jnp.square(r.astype(jnp.float32) - t.astype(jnp.float32))))
    total = jnp.sum(jnp.stack(losses))
    return total if reduction == "sum" else total / len(losses)
