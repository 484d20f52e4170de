"""MCN multimodal clustering: online cosine k-means on fused embeddings + CE to the centroids.

The k-means state is an explicit pytree (:class:`KMeansState`) updated by pure functions:

* :func:`kmeans_init` — K random unit centroids and an empty queue.
* :func:`kmeans_update` — push the detached, L2-normalised fused embeddings ``(v + a + t) / M``
  into a ring-buffer queue; every ``refit_every`` calls run ``n_iter`` Lloyd iterations of
  cosine k-means on the queue, starting from the previous centroids (MCN: K = 256, refit every
  20 batches). Empty clusters keep their previous centroid.
* :func:`cluster_loss` — assign each fused embedding to its nearest centroid ``y`` and, for each
  modality ``x``, ``CE(x C^T - delta onehot(y), y)`` (margin as in MMS), averaged over modalities.

Reference: Chen et al., "Multimodal Clustering Networks", ICCV 2021.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite, check_rank, l2_normalize


class KMeansState(NamedTuple):
    """Online k-means state. centroids: [K, D] unit rows; queue: [Q, D]; counters: int32 scalars."""

    centroids: jax.Array
    queue: jax.Array
    queue_ptr: jax.Array
    queue_count: jax.Array
    step: jax.Array


def kmeans_init(key: jax.Array, num_clusters: int, dim: int, queue_size: int) -> KMeansState:
    """Random unit centroids [K, D] and an empty queue of ``queue_size`` rows."""
    if num_clusters < 1 or dim < 1 or queue_size < num_clusters:
        raise ValueError(
            f"need num_clusters >= 1, dim >= 1 and queue_size >= num_clusters; got "
            f"num_clusters={num_clusters}, dim={dim}, queue_size={queue_size}"
        )
    centroids = l2_normalize(jax.random.normal(key, (num_clusters, dim), jnp.float32))
    zero = jnp.zeros((), jnp.int32)
    return KMeansState(centroids, jnp.zeros((queue_size, dim), jnp.float32), zero, zero, zero)


def fuse(embeddings: Mapping[str, jax.Array]) -> jax.Array:
    """Detached mean of the modality embeddings, [batch, dim] (MCN's fused (v + a + t) / 3)."""
    stacked = jnp.stack([e.astype(jnp.float32) for e in embeddings.values()])
    return jax.lax.stop_gradient(jnp.mean(stacked, axis=0))


def kmeans_assign(centroids: jax.Array, points: jax.Array) -> jax.Array:
    """Nearest centroid by cosine similarity: int32 [N]. centroids: [K, D], points: [N, D]."""
    return jnp.argmax(l2_normalize(points) @ l2_normalize(centroids).T, axis=1).astype(jnp.int32)


def kmeans_fit(
    centroids: jax.Array, points: jax.Array, valid: jax.Array, n_iter: int = 10
) -> jax.Array:
    """``n_iter`` Lloyd steps of spherical k-means from ``centroids`` on the valid rows.

    centroids: [K, D]; points: [N, D]; valid: bool [N]. Returns unit centroids [K, D].
    """
    points = l2_normalize(points)
    weight = valid.astype(jnp.float32)[:, None]

    def step(_, c):
        assign = jax.nn.one_hot(kmeans_assign(c, points), c.shape[0], dtype=jnp.float32) * weight
        sums = assign.T @ points  # [K, D]
        counts = jnp.sum(assign, axis=0)[:, None]
        return jnp.where(counts > 0, l2_normalize(sums), c)

    return jax.lax.fori_loop(0, n_iter, step, l2_normalize(centroids))


def kmeans_update(
    state: KMeansState, fused: jax.Array, *, refit_every: int = 20, n_iter: int = 10
) -> KMeansState:
    """Enqueue detached fused embeddings [batch, D]; refit every ``refit_every`` calls.

    jit-safe: the refit is a ``lax.cond`` on the step counter.
    """
    check_rank("fused", fused, 2, "[batch, dim]")
    q, d = state.queue.shape
    if fused.shape[1] != d:
        raise ValueError(f"fused embeddings are {fused.shape[1]}-d, the k-means state is {d}-d")
    if fused.shape[0] > q:
        raise ValueError(f"batch {fused.shape[0]} is larger than the queue ({q} rows)")
    fused = l2_normalize(jax.lax.stop_gradient(fused))
    rows = (state.queue_ptr + jnp.arange(fused.shape[0])) % q
    queue = state.queue.at[rows].set(fused)
    count = jnp.minimum(state.queue_count + fused.shape[0], q)
    step = state.step + 1
    valid = jnp.arange(q) < count
    centroids = jax.lax.cond(
        step % refit_every == 0,
        lambda c: kmeans_fit(c, queue, valid, n_iter),
        lambda c: c,
        state.centroids,
    )
    ptr = (state.queue_ptr + fused.shape[0]) % q
    return KMeansState(centroids, queue, ptr.astype(jnp.int32), count.astype(jnp.int32), step)


def cluster_loss(
    embeddings: Mapping[str, jax.Array],
    centroids: jax.Array,
    *,
    assignments: jax.Array | None = None,
    margin: float = 0.001,
    normalize: bool = False,
) -> jax.Array:
    """Mean over modalities of ``CE(x C^T - margin onehot(y), y)``; scalar float32.

    Args:
      embeddings: modality name -> [batch, dim] embeddings (aligned rows).
      centroids: [K, dim] k-means centroids (treated as constants).
      assignments: optional int [batch] cluster ids; default nearest centroid of the fused mean.
      margin: delta subtracted from the assigned-centroid logit (MCN: 0.001).
      normalize: L2-normalise the embeddings before the dot product (MCN: no).
    """
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise ValueError("embeddings must map modality names to [batch, dim] arrays")
    check_rank("centroids", centroids, 2, "[clusters, dim]")
    batch = None
    for name, e in embeddings.items():
        check_rank(name, e, 2, "[batch, dim]")
        if e.shape[1] != centroids.shape[1]:
            raise ValueError(f"{name} is {e.shape[1]}-d but centroids are {centroids.shape[1]}-d")
        if batch is not None and e.shape[0] != batch:
            raise ValueError(f"batch size mismatch: {name} has {e.shape[0]} rows, expected {batch}")
        batch = e.shape[0]
    check_finite(centroids=centroids, **{str(k): v for k, v in embeddings.items()})
    c = jax.lax.stop_gradient(centroids.astype(jnp.float32))
    if assignments is None:
        assignments = kmeans_assign(c, fuse(embeddings))
    elif assignments.shape != (batch,) or not jnp.issubdtype(assignments.dtype, jnp.integer):
        raise ValueError(f"assignments must be int [batch] = ({batch},), got {assignments.shape}")
    onehot = jax.nn.one_hot(assignments, c.shape[0], dtype=jnp.float32)
    losses = []
    for e in embeddings.values():
        x = l2_normalize(e) if normalize else e.astype(jnp.float32)
        logits = x @ c.T - margin * onehot
        losses.append(jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(onehot * logits, 1)))
    return jnp.mean(jnp.stack(losses))
