"""Masked-margin softmax (MCN, Chen et al. ICCV 2021), summed over modality pairs.

For a pair (a, b) of aligned batches: ``S = x_a x_b^T`` (no normalisation, no temperature by
default), ``S <- S - delta I`` (the margin is taken off the positives), and

    L_ab = CE(S, arange) + CE(S^T, arange)           (each CE a batch mean)

The total is the sum over the chosen pairs. MCN contrasts (text, video), (audio, text) and
(audio, video) with delta = 0.001.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite, check_pair, l2_normalize


def masked_margin_softmax(x: jax.Array, y: jax.Array, *, margin: float = 0.001) -> jax.Array:
    """MMS for one pair; x, y: [batch, dim] (used as given). Scalar float32."""
    check_pair(x, y, "x", "y")
    s = x.astype(jnp.float32) @ y.astype(jnp.float32).T
    s = s - margin * jnp.eye(s.shape[0], dtype=jnp.float32)
    diag = jnp.diagonal(s)
    rows = jnp.mean(jax.nn.logsumexp(s, axis=1) - diag)
    cols = jnp.mean(jax.nn.logsumexp(s, axis=0) - diag)
    return rows + cols


def mms_loss(
    embeddings: Mapping[str, jax.Array],
    *,
    pairs: Sequence[tuple[str, str]] | str = "all",
    margin: float = 0.001,
    normalize: bool = False,
    scale: float = 1.0,
) -> jax.Array:
    """Sum of masked-margin softmax losses over modality pairs; scalar float32.

    Args:
      embeddings: modality name -> [batch, dim] joint-space embeddings (aligned rows).
      pairs: "all" (every unordered pair, in insertion order) or named pairs, e.g.
        ``[("video", "text"), ("video", "audio")]``.
      margin: delta subtracted from the positive similarities (MCN: 0.001).
      normalize: L2-normalise first (MCN: no).
      scale: multiply similarities by this (MCN: 1).
    """
    if not isinstance(embeddings, Mapping) or len(embeddings) < 2:
        raise ValueError("embeddings must map at least two modality names to [batch, dim] arrays")
    if isinstance(pairs, str):
        if pairs != "all":
            raise ValueError(f'pairs must be "all" or a list of (name, name) pairs, got {pairs!r}')
        pairs = list(itertools.combinations(embeddings, 2))
    pairs = list(pairs)
    if not pairs:
        raise ValueError("pairs is empty: name at least one (a, b) modality pair")
    check_finite(**{str(k): v for k, v in embeddings.items()})
    total = jnp.zeros((), jnp.float32)
    for a, b in pairs:
        if a not in embeddings or b not in embeddings:
            raise ValueError(f"pair {(a, b)} names a modality not in {list(embeddings)}")
        check_pair(embeddings[a], embeddings[b], a, b)
        xa, xb = embeddings[a], embeddings[b]
        if normalize:
            xa, xb = l2_normalize(xa), l2_normalize(xb)
        total = total + masked_margin_softmax(scale * xa.astype(jnp.float32), xb, margin=margin)
    return total
