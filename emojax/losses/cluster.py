"""MCN multimodal clustering: on-device cosine k-means over a feature queue + CE to the centroids.

The official MCN update rule (Chen et al., ICCV 2021; code brian7685/Multimodal-Clustering-Network,
``train_tri_kmeans.py`` with ``fast_pytorch_kmeans.KMeans(mode="cosine")``), step by step:

1. ``fused = (v + a + t) / 3``, detached (:func:`fuse`).
2. The k-means set is ``queue + fused`` once the FIFO queue (40,960 rows) is full, the batch
   alone before that.
3. Every ``refit_every`` (20) steps: Lloyd iterations from the previous centroids (from a fresh
   initialisation at a reset), cosine assignment, centroids = UNNORMALISED means of their
   members; stop after ``max_iter`` (100) iterations or when ``sum ||C_new - C||^2 <= tol``
   (1e-4). The batch's labels are the assignment of the last iteration.
   Between refits: labels = nearest centroid by cosine.
4. Centroids reset at each epoch start (here: every ``reset_every`` steps, 0 = never; the
   first step always initialises).
5. ``fused`` is pushed into the queue (after the k-means: the batch is never in the queue it is
   clustered with).
6. Loss per modality ``CE(x C^T - 0.001 onehot(y), y)``, averaged over modalities
   (:func:`cluster_loss`; ``fused_only=True``: one CE on the fused embedding).

Where this module departs from the reference, on purpose:

* Initialisation is k-means++ (D^2 sampling with the cosine distance ``1 - cos``) on device,
  not K uniformly random points (``init="random"`` gives those).
* Empty clusters: the reference sets them to the zero vector (its ``c_grad[c_grad != c_grad] = 0``),
  whose cosine is NaN. Here, after each Lloyd update, the i-th empty cluster (in index order)
  is re-seeded with the i-th FARTHEST valid point (largest ``1 - cos`` to its assigned
  centroid in that iteration) — sklearn's relocation rule, deterministic.
* The queue is a ring buffer with a write pointer rather than a shifted array (the same rows,
  another order: k-means does not depend on row order; no 1 GiB copy per step). MCN pushes
  only 16 of the 32 clips of each video (2,048 of 4,096 rows): pass that subset as ``push``.

Everything runs under ``jax.jit``: the refit is a ``lax.cond`` on the step counter (one compiled
step serves every step), Lloyd iterations a ``lax.while_loop`` of two matmuls each
(``[N, D] x [D, K]`` for the assignment, ``[K, N] x [N, D]`` for the sums; no ``[N, K, D]``
temporary, no normalised copy of the queue: row norms are applied to the ``[N, K]`` scores).
Sharded over the data axes (queue rows split across devices, logical axis ``"queue"``), the
assignment is local and the centroid sums / counts are global reductions GSPMD inserts.

State (:class:`KMeansState`, a NamedTuple pytree; checkpointed with the train state):
``centroids [K, D]`` (logical ``("clusters", None)``), ``queue [Q, D]`` (``("queue", None)``),
``queue_ptr``, ``queue_count`` and ``step`` (int32 scalars).

Use in a Method (the k-means of a step feeds that step's loss, as in the reference)::

    def init_extra_state(self, rng):
        return kmeans_init(256, dim, 40_960, partitioned=True)

    def loss(self, model, variables, batch, rng, *, train):
        emb = ...  # {"video": v, "audio": a, "text": t}
        fused = fuse(emb)
        state, labels = kmeans_step(variables["extra"], fused, rng, push=fused[:0])
        l_clu = cluster_loss(emb, state.centroids, assignments=labels)
        return total, (metrics, {}, {"centroids": state.centroids, "push": fused})

    def update_extra_state(self, extra, outputs, *, step, rng):  # once per micro-batch
        state = kmeans_push(extra._replace(centroids=outputs["centroids"]), outputs["push"])
        return state._replace(step=step + 1)

(``return total, (metrics, {}, state)`` with a plain ``kmeans_step`` and ``update_extra_state``
returning ``outputs`` is the same without gradient accumulation; with it, only the last
micro-batch's rows would reach the queue.)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from emojax.losses._common import check_finite, check_rank, l2_normalize

__all__ = [
    "KMeansState",
    "cluster_loss",
    "cosine_inertia",
    "fuse",
    "kmeans_assign",
    "kmeans_fit",
    "kmeans_init",
    "kmeans_plusplus",
    "kmeans_push",
    "kmeans_step",
    "kmeans_update",
]


class KMeansState(NamedTuple):
    """Online k-means state (a pytree).

    centroids: [K, D] float32 unnormalised means; queue: [Q, D] float32 ring buffer;
    queue_ptr: next row written; queue_count: rows filled (<= Q); step: updates done (int32).
    """

    centroids: jax.Array
    queue: jax.Array
    queue_ptr: jax.Array
    queue_count: jax.Array
    step: jax.Array


def kmeans_init(
    num_clusters: int = 256, dim: int = 6144, queue_size: int = 40_960, *, partitioned: bool = False
) -> KMeansState:
    """Zero centroids (the first :func:`kmeans_step` initialises them) and an empty queue.

    ``partitioned``: box ``queue`` as ``nn.LogicallyPartitioned(.., ("queue", None))`` and
    ``centroids`` as ``("clusters", None)`` for a Method's ``init_extra_state``.
    """
    for name, value in (("num_clusters", num_clusters), ("dim", dim), ("queue_size", queue_size)):
        if not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an int >= 1, got {value!r}")
    if queue_size < num_clusters:
        raise ValueError(
            f"queue_size={queue_size} is smaller than num_clusters={num_clusters}: the queue "
            "must hold at least one point per cluster (need queue_size >= num_clusters; MCN: "
            "40,960 rows for K = 256)"
        )
    zero = jnp.zeros((), jnp.int32)
    centroids = jnp.zeros((num_clusters, dim), jnp.float32)
    queue = jnp.zeros((queue_size, dim), jnp.float32)
    if partitioned:
        centroids = nn.LogicallyPartitioned(centroids, ("clusters", None))
        queue = nn.LogicallyPartitioned(queue, ("queue", None))
    return KMeansState(centroids, queue, zero, zero, zero)


def fuse(embeddings: Mapping[str, jax.Array]) -> jax.Array:
    """Detached mean of the modality embeddings, [batch, dim] (MCN's fused (v + a + t) / 3)."""
    return jax.lax.stop_gradient(_mean_embedding(embeddings))


def _mean_embedding(embeddings):
    return jnp.mean(jnp.stack([e.astype(jnp.float32) for e in embeddings.values()]), axis=0)


def _inv_norm(x):
    """1 / ||x|| per row, 0 for zero rows (their cosine is defined as 0)."""
    sq = jnp.sum(x * x, axis=1)
    return jnp.where(sq > 0, jax.lax.rsqrt(jnp.where(sq > 0, sq, 1.0)), 0.0)


def kmeans_assign(centroids: jax.Array, points: jax.Array) -> jax.Array:
    """Nearest centroid by cosine similarity: int32 [N]. centroids: [K, D], points: [N, D].

    Rows are not normalised (a positive row scale does not change the argmax); ties go to the
    lowest index.
    """
    scores = points.astype(jnp.float32) @ l2_normalize(centroids).T
    return jnp.argmax(scores, axis=1).astype(jnp.int32)


# -- blocks: the k-means set is [queue; batch] without concatenating the (sharded) queue ---------


class _Block(NamedTuple):
    x: jax.Array  # [n, D] float32 (raw rows)
    inv: jax.Array  # [n] 1 / ||x||
    valid: jax.Array  # [n] float32 0/1


def _blocks(points, valid) -> list[_Block]:
    if not isinstance(points, (list, tuple)):
        points, valid = [points], [valid]
    if valid is None:
        valid = [None] * len(points)
    out = []
    for x, v in zip(points, valid, strict=True):
        x = jnp.asarray(x).astype(jnp.float32)
        v = jnp.ones(x.shape[:1], jnp.float32) if v is None else jnp.asarray(v)
        v = jnp.broadcast_to(v.astype(jnp.float32), x.shape[:1])
        out.append(_Block(x, _inv_norm(x), v))
    return out


def _gather_rows(blocks: list[_Block], idx: jax.Array) -> jax.Array:
    """Rows ``idx`` (int [M], indices into the concatenation of the blocks) -> [M, D]."""
    out, start = None, 0
    for b in blocks:
        n = b.x.shape[0]
        local = jnp.clip(idx - start, 0, n - 1)
        rows = jnp.take(b.x, local, axis=0)
        inside = ((idx >= start) & (idx < start + n))[:, None]
        out = rows if out is None else jnp.where(inside, rows, out)
        start += n
    return out


def _sums_by_matmul() -> bool:
    """Centroid sums as ``one_hot(labels)^T @ X`` on accelerators (MXU / tensor cores, and
    deterministic: no float atomics); a ``segment_sum`` scatter-add on CPU (K times fewer flops,
    ~15 % faster per Lloyd iteration at 40,960 x 1024, K = 256)."""
    return jax.default_backend() != "cpu"


def _stats(blocks: list[_Block], centroids: jax.Array):
    """One assignment pass: (labels per block, best cos per block, sums [K, D], counts [K])."""
    k = centroids.shape[0]
    cn = l2_normalize(centroids)
    labels, best, sums, counts = [], [], 0.0, 0.0
    for b in blocks:
        scores = b.x @ cn.T  # [n, K]: row-scaled cosines
        lab = jnp.argmax(scores, axis=1).astype(jnp.int32)
        if _sums_by_matmul():
            onehot = jax.nn.one_hot(lab, k, dtype=jnp.float32) * b.valid[:, None]
            sums = sums + onehot.T @ b.x  # [K, D], a global reduction when the rows are sharded
            counts = counts + jnp.sum(onehot, axis=0)
        else:  # a scatter-add of N x D (not K N D) flops; invalid rows get id K (dropped)
            ids = jnp.where(b.valid > 0, lab, k)
            sums = sums + jax.ops.segment_sum(b.x, ids, k)
            counts = counts + jax.ops.segment_sum(b.valid, ids, k)
        labels.append(lab)
        best.append(jnp.max(scores, axis=1) * b.inv)
    return labels, best, sums, counts


def _reseed_empty(blocks, best, centroids, counts):
    """The i-th empty centroid (index order) <- the i-th farthest valid point (max 1 - cos)."""
    k = centroids.shape[0]
    empty = counts == 0
    dist = jnp.concatenate(
        [jnp.where(b.valid > 0, 1.0 - s, -jnp.inf) for b, s in zip(blocks, best, strict=True)]
    )
    n_top = min(k, dist.shape[0])
    _, far = jax.lax.top_k(dist, n_top)  # [n_top] farthest first
    rank = jnp.clip(jnp.cumsum(empty) - 1, 0, n_top - 1)
    seeds = _gather_rows(blocks, far[rank])
    return jnp.where(empty[:, None], seeds, centroids)


def kmeans_fit(
    points,
    init_centroids: jax.Array,
    valid=None,
    *,
    max_iter: int = 100,
    tol: float | None = 1e-4,
    reseed_empty: bool = True,
    return_labels: bool = False,
):
    """Lloyd iterations of cosine k-means with unnormalised-mean centroids (MCN's rule).

    Args:
      points: [N, D] rows, or a list of blocks ``[[N1, D], [N2, D], ...]`` (clustered as their
        concatenation without building it: the queue and the batch).
      init_centroids: [K, D] starting centroids.
      valid: bool/0-1 [N] (or a list, one per block, each may be a scalar); default all valid.
      max_iter: at most this many iterations (>= 1).
      tol: stop once ``sum ||C_new - C||^2 <= tol`` (``fast_pytorch_kmeans``); ``None``: run
        exactly ``max_iter`` iterations.
      reseed_empty: re-seed empty clusters from the farthest points (module docstring); False
        keeps an empty cluster's previous centroid.
      return_labels: also return the last iteration's assignment (one int32 array per block,
        or one array for a single block), computed against the centroids before that
        iteration's update, as ``fit_predict`` returns it.

    Returns the centroids [K, D] (and the labels).
    """
    blocks = _blocks(points, valid)
    check_rank("init_centroids", init_centroids, 2, "[clusters, dim]")
    if init_centroids.shape[1] != blocks[0].x.shape[1]:
        raise ValueError(
            f"init_centroids are {init_centroids.shape[1]}-d, the points {blocks[0].x.shape[1]}-d"
        )
    if max_iter < 1:
        raise ValueError(f"max_iter must be >= 1, got {max_iter}")
    tol_value = -jnp.inf if tol is None else float(tol)
    c0 = jnp.asarray(init_centroids, jnp.float32)
    labels0 = [jnp.zeros(b.x.shape[:1], jnp.int32) for b in blocks]

    def cond(carry):
        i, _, err, _ = carry
        return (i < max_iter) & (err > tol_value)

    def body(carry):
        i, c, _, _ = carry
        labels, best, sums, counts = _stats(blocks, c)
        new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts, 1.0)[:, None], c)
        if reseed_empty:
            new = jax.lax.cond(
                jnp.any(counts == 0),
                lambda: _reseed_empty(blocks, best, new, counts),
                lambda: new,
            )
        err = jnp.sum((new - c) ** 2)
        return i + 1, new, err, labels

    carry = (jnp.zeros((), jnp.int32), c0, jnp.asarray(jnp.inf, jnp.float32), labels0)
    _, centroids, _, labels = jax.lax.while_loop(cond, body, carry)
    if not return_labels:
        return centroids
    return centroids, (labels if isinstance(points, (list, tuple)) else labels[0])


def kmeans_plusplus(key: jax.Array, points, num_clusters: int, valid=None) -> jax.Array:
    """k-means++ seeds [K, D] (raw rows of ``points``) with the cosine distance ``1 - cos``.

    The first seed is a uniformly random valid row; each next one a valid row drawn with
    probability proportional to ``D(x)^2``, ``D(x)`` = its cosine distance to the nearest seed
    so far (uniform over the valid rows when every distance is 0). ``points``/``valid`` as in
    :func:`kmeans_fit`. On device: a ``fori_loop`` of K matrix-vector products.
    """
    if num_clusters < 1:
        raise ValueError(f"num_clusters must be >= 1, got {num_clusters}")
    blocks = _blocks(points, valid)
    v = jnp.concatenate([b.valid for b in blocks]) > 0
    n, d = v.shape[0], blocks[0].x.shape[1]

    def draw(key, weights):
        logits = jnp.where(
            v & (weights > 0), jnp.log(jnp.where(weights > 0, weights, 1.0)), -jnp.inf
        )
        uniform = jnp.where(v, 0.0, -jnp.inf)
        logits = jnp.where(jnp.any(jnp.isfinite(logits)), logits, uniform)
        return jnp.argmax(logits + jax.random.gumbel(key, (n,), jnp.float32))

    def cos_to(row):
        r = row * _inv_norm(row[None])[0]
        return jnp.concatenate([(b.x @ r) * b.inv for b in blocks])

    keys = jax.random.split(key, num_clusters)
    first = _gather_rows(blocks, draw(keys[0], jnp.ones((n,), jnp.float32))[None])[0]
    seeds = jnp.zeros((num_clusters, d), jnp.float32).at[0].set(first)
    mind = jnp.maximum(1.0 - cos_to(first), 0.0)

    def body(j, carry):
        seeds, mind = carry
        row = _gather_rows(blocks, draw(keys[j], mind * mind)[None])[0]
        return seeds.at[j].set(row), jnp.minimum(mind, jnp.maximum(1.0 - cos_to(row), 0.0))

    seeds, _ = jax.lax.fori_loop(1, num_clusters, body, (seeds, mind))
    return seeds


def cosine_inertia(points: jax.Array, centroids: jax.Array) -> jax.Array:
    """``sum_i (1 - max_k cos(x_i, c_k))`` over the rows of ``points`` [N, D]; float32 scalar."""
    x = jnp.asarray(points, jnp.float32)
    best = jnp.max(x @ l2_normalize(centroids).T, axis=1) * _inv_norm(x)
    return jnp.sum(1.0 - best)


def _unbox(x):
    return x.unbox() if isinstance(x, nn.LogicallyPartitioned) else x


def kmeans_step(
    state: KMeansState,
    fused: jax.Array,
    key: jax.Array,
    *,
    push: jax.Array | None = None,
    refit_every: int = 20,
    reset_every: int = 0,
    max_iter: int = 100,
    tol: float | None = 1e-4,
    init: str = "kmeans++",
) -> tuple[KMeansState, jax.Array]:
    """One MCN clustering step: labels for ``fused`` [B, D] and the new state (module docstring).

    Args:
      state: the :class:`KMeansState` before this step (boxes are unboxed).
      fused: [B, D] fused embeddings of this step (detached here).
      key: PRNG key for the (re-)initialisation.
      push: rows pushed into the queue after the step (default ``fused``; MCN: 16 of 32 clips).
      refit_every: refit when ``(step mod reset_every) mod refit_every == 0`` (MCN: 20).
      reset_every: re-initialise the centroids every this many steps (an epoch; 0: only at
        step 0).
      max_iter, tol: Lloyd stopping rule (:func:`kmeans_fit`; MCN: 100, 1e-4).
      init: "kmeans++" (:func:`kmeans_plusplus`) or "random" (K distinct uniformly random valid
        rows, the reference's rule).

    Returns ``(new_state, labels int32 [B])``; ``new_state.centroids`` are the centroids the
    loss of this step uses.
    """
    centroids, queue = _unbox(state.centroids), _unbox(state.queue)
    check_rank("fused", fused, 2, "[batch, dim]")
    (k, d), (q, dq) = centroids.shape, queue.shape
    b = fused.shape[0]
    if fused.shape[1] != d or dq != d:
        raise ValueError(
            f"fused embeddings are {fused.shape[1]}-d, the k-means state is {d}-d "
            f"(centroids {centroids.shape}, queue {queue.shape})"
        )
    if k < 1 or q < k:
        raise ValueError(f"the queue ({q} rows) must hold at least K = {k} >= 1 rows")
    if refit_every < 1 or reset_every < 0:
        raise ValueError(
            f"refit_every must be >= 1 and reset_every >= 0, got {refit_every}, {reset_every}"
        )
    if init not in ("kmeans++", "random"):
        raise ValueError(f'init must be "kmeans++" or "random", got {init!r}')
    push = fused if push is None else push
    check_rank("push", push, 2, "[rows, dim]")
    if push.shape[1] != d or push.shape[0] > q:
        raise ValueError(f"push is {push.shape}; need [rows <= {q}, {d}]")
    check_finite(fused=fused, push=None if push is fused else push)

    x = jax.lax.stop_gradient(jnp.asarray(fused)).astype(jnp.float32)
    step = state.step
    local = step % reset_every if reset_every else step
    reset = (step == 0) | (local == 0 if reset_every else False)
    refit = (local % refit_every == 0) | reset
    full = (state.queue_count >= q).astype(jnp.float32)
    points, valid = [queue, x], [full, jnp.ones((b,), jnp.float32)]

    def initial():
        if init == "kmeans++":
            return kmeans_plusplus(key, points, k, valid)
        v = jnp.concatenate([jnp.full((q,), full > 0), jnp.ones((b,), bool)])
        score = jnp.where(v, jax.random.uniform(key, v.shape), -1.0)
        return _gather_rows(_blocks(points, valid), jax.lax.top_k(score, k)[1])

    def do_refit():
        start = jax.lax.cond(reset, initial, lambda: centroids)
        c, labels = kmeans_fit(points, start, valid, max_iter=max_iter, tol=tol, return_labels=True)
        return c, labels[1]

    new_centroids, labels = jax.lax.cond(
        refit, do_refit, lambda: (centroids, kmeans_assign(centroids, x))
    )
    new_state = kmeans_push(state._replace(centroids=new_centroids, queue=queue), push)
    return new_state._replace(step=(step + 1).astype(jnp.int32)), labels


def kmeans_push(state: KMeansState, rows: jax.Array) -> KMeansState:
    """``state`` with ``rows`` [N <= Q, D] (detached) written into the queue at its pointer;
    centroids and step unchanged. :func:`kmeans_step` pushes with it; a Method that runs
    ``kmeans_step(..., push=rows[:0])`` in its loss pushes here, once per micro-batch."""
    queue = _unbox(state.queue)
    q = queue.shape[0]
    check_rank("rows", rows, 2, "[rows, dim]")
    if rows.shape[1] != queue.shape[1] or rows.shape[0] > q:
        raise ValueError(f"rows are {rows.shape}; need [rows <= {q}, {queue.shape[1]}]")
    p = jax.lax.stop_gradient(jnp.asarray(rows)).astype(jnp.float32)
    index = (state.queue_ptr + jnp.arange(p.shape[0], dtype=jnp.int32)) % q
    return state._replace(
        queue=queue.at[index].set(p, unique_indices=True),
        queue_ptr=((state.queue_ptr + p.shape[0]) % q).astype(jnp.int32),
        queue_count=jnp.minimum(state.queue_count + p.shape[0], q).astype(jnp.int32),
    )


def kmeans_update(state: KMeansState, fused: jax.Array, key: jax.Array, **options) -> KMeansState:
    """:func:`kmeans_step` without the labels (the new state only)."""
    return kmeans_step(state, fused, key, **options)[0]


def cluster_loss(
    embeddings: Mapping[str, jax.Array],
    centroids: jax.Array,
    *,
    assignments: jax.Array | None = None,
    margin: float = 0.001,
    normalize: bool = False,
    fused_only: bool = False,
) -> jax.Array:
    """Mean over modalities of ``CE(x C^T - margin onehot(y), y)``; scalar float32.

    Args:
      embeddings: modality name -> [batch, dim] embeddings (aligned rows).
      centroids: [K, dim] k-means centroids (treated as constants).
      assignments: optional int [batch] cluster ids (the labels of :func:`kmeans_step`);
        default: nearest centroid (cosine) of the fused mean.
      margin: delta subtracted from the assigned-centroid logit (MCN: 0.001).
      normalize: L2-normalise the embeddings before the dot product (MCN: no).
      fused_only: one CE on the (not detached) fused mean ``(v + a + t) / 3`` instead of the mean
        of the per-modality CEs (the reference's ``--mean 1`` variant).
    """
    if not isinstance(embeddings, Mapping) or not embeddings:
        raise ValueError("embeddings must map modality names to [batch, dim] arrays")
    check_rank("centroids", centroids, 2, "[clusters, dim]")
    if centroids.shape[0] < 1:
        raise ValueError(f"centroids must hold K >= 1 rows, got shape {centroids.shape}")
    batch = None
    for name, e in embeddings.items():
        check_rank(name, e, 2, "[batch, dim]")
        if e.shape[1] != centroids.shape[1]:
            raise ValueError(f"{name} is {e.shape[1]}-d but centroids are {centroids.shape[1]}-d")
        if batch is not None and e.shape[0] != batch:
            raise ValueError(f"batch size mismatch: {name} has {e.shape[0]} rows, expected {batch}")
        batch = e.shape[0]
    check_finite(centroids=centroids, **{str(k): v for k, v in embeddings.items()})
    c = jax.lax.stop_gradient(jnp.asarray(centroids).astype(jnp.float32))
    if assignments is None:
        assignments = kmeans_assign(c, fuse(embeddings))
    elif assignments.shape != (batch,) or not jnp.issubdtype(assignments.dtype, jnp.integer):
        raise ValueError(f"assignments must be int [batch] = ({batch},), got {assignments.shape}")
    onehot = jax.nn.one_hot(assignments, c.shape[0], dtype=jnp.float32)
    xs: Sequence[jax.Array] = (
        [_mean_embedding(embeddings)] if fused_only else list(embeddings.values())
    )
    losses = []
    for e in xs:
        x = l2_normalize(e) if normalize else e.astype(jnp.float32)
        logits = x @ c.T - margin * onehot
        losses.append(jnp.mean(jax.nn.logsumexp(logits, axis=1) - jnp.sum(onehot * logits, 1)))
    return jnp.mean(jnp.stack(losses))
