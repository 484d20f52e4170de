"""On-device cosine k-means for MCN (emojax/losses/cluster.py) against an independent NumPy
reference of the official update rule, k-means++, empty clusters, sharding, the loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emojax.losses import (
    KMeansState,
    cluster_loss,
    cosine_inertia,
    kmeans_assign,
    kmeans_fit,
    kmeans_init,
    kmeans_plusplus,
    kmeans_step,
    kmeans_update,
)


def _blobs(n, dim, k, seed=0, noise=0.25, offset=0.0):
    """n rows around k random directions (+ a common offset), shuffled; float32."""
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((k, dim))
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    which = rng.integers(0, k, n)
    x = centres[which] + noise * rng.standard_normal((n, dim)) + offset
    return x.astype(np.float32)


# -- an independent NumPy reference of MCN's train_tri_kmeans.py + fast_pytorch_kmeans ----------


def _np_cos_argmax(x, c):
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cn = c / np.linalg.norm(c, axis=1, keepdims=True)
    return np.argmax(xn @ cn.T, axis=1)


def _np_fit_predict(x, c, max_iter, tol):
    """fast_pytorch_kmeans.KMeans(mode="cosine").fit_predict(x, c): mean of members, error on
    the centroid change, labels of the last iteration (before its update)."""
    c = c.astype(np.float64)
    closest = None
    for _ in range(max_iter):
        closest = _np_cos_argmax(x, c)
        new = np.zeros_like(c)
        for j in range(c.shape[0]):
            members = x[closest == j]
            if len(members):
                new[j] = members.mean(0)
        error = np.sum((new - c) ** 2)
        c = new
        if error <= tol:
            break
    return closest, c


class _NumpyMCN:
    """The training loop's clustering: a shifted FIFO queue, use_the_queue, centroid=None at each
    epoch start, refit when i_batch % refit_every == 0, labels[-bs:]."""

    def __init__(self, queue_size, dim, refit_every, epoch_len, max_iter, tol):
        self.queue = np.zeros((queue_size, dim))
        self.use_the_queue = False
        self.centroid = None
        self.refit_every, self.epoch_len = refit_every, epoch_len
        self.max_iter, self.tol = max_iter, tol
        self.iteration = 0

    def step(self, fused, init):
        i_batch = self.iteration % self.epoch_len
        if i_batch == 0:
            self.use_the_queue, self.centroid = False, None
        bs = fused.shape[0]
        out = fused
        if self.use_the_queue or not np.all(self.queue[-1] == 0):
            self.use_the_queue = True
            out = np.concatenate([self.queue, fused])
        self.queue[bs:] = self.queue[:-bs].copy()
        self.queue[:bs] = fused
        if i_batch % self.refit_every == 0:
            start = init if self.centroid is None else self.centroid
            labels, self.centroid = _np_fit_predict(out, start, self.max_iter, self.tol)
        else:
            labels = _np_cos_argmax(out, self.centroid)
        self.iteration += 1
        return labels[-bs:], self.centroid


@pytest.mark.parametrize("tol", [1e-4, None])
def test_step_matches_numpy_reference_of_the_official_rule(tol):
    k, dim, q, b, refit_every, epoch = 4, 6, 24, 8, 3, 7
    max_iter = 6
    ref = _NumpyMCN(q, dim, refit_every, epoch, max_iter, -1.0 if tol is None else tol)
    state = kmeans_init(k, dim, q)
    step = jax.jit(
        lambda s, x, key: kmeans_step(
            s, x, key, refit_every=refit_every, reset_every=epoch, max_iter=max_iter, tol=tol
        )
    )
    data = _blobs(16 * b, dim, k, seed=1, offset=0.3)
    for i in range(16):
        x = data[i * b : (i + 1) * b]
        key = jax.random.fold_in(jax.random.key(0), i)
        # the reference's (random) initialisation at a reset: the seeds emojax draws
        full = float(state.queue_count >= q)
        init = np.asarray(kmeans_plusplus(key, [state.queue, x], k, [full, 1.0]), np.float64)
        want_labels, want_c = ref.step(x.astype(np.float64), init)
        state, labels = step(state, x, key)
        np.testing.assert_array_equal(labels, want_labels, err_msg=f"step {i}")
        np.testing.assert_allclose(
            state.centroids, want_c, atol=2e-5, rtol=1e-5, err_msg=f"step {i}"
        )
    assert step._cache_size() == 1  # one compiled step served refit, reset and plain steps
    assert int(state.step) == 16 and int(state.queue_count) == q


def test_queue_ring_buffer_and_schedule():
    state = kmeans_init(3, 4, 8)
    assert isinstance(state, KMeansState) and state.centroids.shape == (3, 4)
    rng = np.random.default_rng(0)
    batches = [rng.standard_normal((3, 4)).astype(np.float32) for _ in range(4)]
    step = jax.jit(lambda s, x: kmeans_step(s, x, jax.random.key(0), refit_every=3))
    s1, _ = step(state, batches[0])
    np.testing.assert_array_equal(s1.queue[:3], batches[0])  # raw rows, not normalised
    assert (int(s1.queue_ptr), int(s1.queue_count), int(s1.step)) == (3, 3, 1)
    assert np.all(np.isfinite(s1.centroids)) and np.any(s1.centroids)  # step 0 initialises
    s2, labels = step(s1, batches[1])  # no refit: labels = nearest centroid
    np.testing.assert_array_equal(s2.centroids, s1.centroids)
    np.testing.assert_array_equal(labels, kmeans_assign(s1.centroids, batches[1]))
    s3, _ = step(s2, batches[2])
    assert (int(s3.queue_ptr), int(s3.queue_count)) == (1, 8)  # 9 rows into 8: wrapped
    np.testing.assert_array_equal(s3.queue[0], batches[2][2])
    s4, _ = step(s3, batches[3])  # step 3: refit from the previous centroids
    want = kmeans_fit([s3.queue, batches[3]], s3.centroids, max_iter=100, tol=1e-4)
    np.testing.assert_allclose(s4.centroids, want, atol=1e-5, rtol=1e-5)  # jit vs eager fit
    assert kmeans_update(s3, batches[3], jax.random.key(0), refit_every=3).step == 4


def test_kmeans_plusplus_beats_random_init_on_blobs():
    k, x = 16, _blobs(800, 16, 16, seed=3, noise=0.1)
    seeds_inertia, fit_inertia = {"++": [], "random": []}, {"++": [], "random": []}
    for seed in range(6):
        seeds = kmeans_plusplus(jax.random.key(seed), x, k)
        # every seed is a row of x
        assert all(np.any(np.all(np.isclose(x, s), axis=1)) for s in np.asarray(seeds))
        random_rows = x[np.random.default_rng(seed).choice(len(x), k, replace=False)]
        for name, init in (("++", seeds), ("random", random_rows)):
            seeds_inertia[name].append(float(cosine_inertia(x, init)))
            fitted = kmeans_fit(x, init, max_iter=3, tol=None, reseed_empty=False)
            fit_inertia[name].append(float(cosine_inertia(x, fitted)))
    assert np.mean(seeds_inertia["++"]) < 0.7 * np.mean(seeds_inertia["random"]), seeds_inertia
    assert np.mean(fit_inertia["++"]) < 0.9 * np.mean(fit_inertia["random"]), fit_inertia


def test_kmeans_plusplus_skips_invalid_rows():
    x = _blobs(40, 5, 3, seed=4)
    valid = np.arange(40) < 10
    seeds = np.asarray(kmeans_plusplus(jax.random.key(1), x, 6, valid))
    for s in seeds:
        assert np.any(np.all(np.isclose(x[:10], s), axis=1))


def test_empty_clusters_are_reseeded_from_the_farthest_points():
    x = _blobs(60, 6, 2, seed=5, noise=0.1, offset=1.0)  # all rows in one half-space
    mean = x.mean(0)
    # two centroids that attract the data, two pointing away (empty after the first assignment)
    init = np.stack([x[0], x[1], -mean, -2 * mean]).astype(np.float32)
    got, labels = kmeans_fit(x, init, max_iter=1, return_labels=True)
    assert set(np.asarray(labels).tolist()) <= {0, 1}
    xn = x / np.linalg.norm(x, axis=1, keepdims=True)
    cn = init / np.linalg.norm(init, axis=1, keepdims=True)
    dist = 1 - np.max(xn @ cn.T, axis=1)
    far = np.argsort(-dist, kind="stable")
    np.testing.assert_allclose(got[2], x[far[0]], atol=1e-6)  # first empty <- farthest
    np.testing.assert_allclose(got[3], x[far[1]], atol=1e-6)  # second <- second farthest
    for j in (0, 1):
        np.testing.assert_allclose(got[j], x[np.asarray(labels) == j].mean(0), atol=1e-5)
    kept = kmeans_fit(x, init, max_iter=1, reseed_empty=False)
    np.testing.assert_array_equal(kept[2:], init[2:])
    # later iterations use the re-seeded centroids: no cluster ends empty
    final = kmeans_fit(x, init, max_iter=10, tol=None)
    assert len(set(np.asarray(kmeans_assign(final, x)).tolist())) == 4


def test_sharded_queue_equals_unsharded():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    k, dim, q, b = 4, 8, 64, 16
    data = _blobs(6 * b, dim, k, seed=6, offset=0.2)
    opts = dict(refit_every=2, reset_every=0, max_iter=8, tol=None)
    step = jax.jit(lambda s, x, key: kmeans_step(s, x, key, **opts))
    rows = NamedSharding(mesh, P("data", None))
    rep = NamedSharding(mesh, P())
    plain = kmeans_init(k, dim, q)
    sharded = KMeansState(
        jax.device_put(plain.centroids, rep),
        jax.device_put(plain.queue, rows),
        *(jax.device_put(a, rep) for a in plain[2:]),
    )
    for i in range(6):
        x = data[i * b : (i + 1) * b]
        key = jax.random.fold_in(jax.random.key(2), i)
        plain, want = step(plain, x, key)
        with jax.set_mesh(mesh):
            sharded, got = step(sharded, jax.device_put(x, rows), key)
        np.testing.assert_array_equal(got, want, err_msg=f"step {i}")
        np.testing.assert_allclose(sharded.centroids, plain.centroids, atol=1e-5, rtol=1e-5)
        np.testing.assert_array_equal(sharded.queue, plain.queue)
    assert sharded.queue.sharding.spec[0] == "data"  # the queue stays split over devices


def test_partitioned_init_boxes_the_queue():
    import flax.linen as nn

    state = kmeans_init(4, 8, 16, partitioned=True)
    assert isinstance(state.queue, nn.LogicallyPartitioned)
    assert state.queue.names == ("queue", None) and state.centroids.names == ("clusters", None)
    new, labels = kmeans_step(state, np.ones((4, 8), np.float32), jax.random.key(0))
    assert new.queue.shape == (16, 8) and labels.shape == (4,)


def _np_cluster_loss(emb, c, y, margin=0.001, fused_only=False):
    xs = [np.mean(list(emb.values()), axis=0)] if fused_only else list(emb.values())
    out = []
    for x in xs:
        s = x.astype(np.float64) @ c.T.astype(np.float64)
        s[np.arange(len(y)), y] -= margin
        m = s.max(1, keepdims=True)
        lse = np.log(np.exp(s - m).sum(1)) + m[:, 0]
        out.append(np.mean(lse - s[np.arange(len(y)), y]))
    return np.mean(out)


@pytest.mark.parametrize("fused_only", [False, True])
def test_cluster_loss_matches_numpy(fused_only):
    rng = np.random.default_rng(7)
    emb = {m: rng.standard_normal((10, 6)).astype(np.float32) for m in ("video", "audio", "text")}
    c = (3 * rng.standard_normal((5, 6))).astype(np.float32)
    y = rng.integers(0, 5, 10)
    got = cluster_loss(emb, c, assignments=jnp.asarray(y), fused_only=fused_only)
    np.testing.assert_allclose(
        got, _np_cluster_loss(emb, c, y, fused_only=fused_only), atol=1e-5, rtol=1e-5
    )
    # default labels: nearest centroid of the fused mean
    fused = np.mean(list(emb.values()), axis=0)
    np.testing.assert_allclose(
        cluster_loss(emb, c, fused_only=fused_only),
        _np_cluster_loss(emb, c, _np_cos_argmax(fused, c), fused_only=fused_only),
        atol=1e-5,
        rtol=1e-5,
    )
    if fused_only:  # the fused embedding is not detached in the loss
        g = jax.grad(lambda e: cluster_loss(e, c, assignments=jnp.asarray(y), fused_only=True))(emb)
        assert all(np.any(np.asarray(v)) for v in g.values())


def test_bad_inputs():
    with pytest.raises(ValueError, match="queue_size=3 is smaller than num_clusters=4"):
        kmeans_init(4, 8, 3)
    with pytest.raises(ValueError, match="num_clusters must be an int >= 1"):
        kmeans_init(0, 8, 3)
    with pytest.raises(ValueError, match="num_clusters must be >= 1"):
        kmeans_plusplus(jax.random.key(0), np.ones((4, 2), np.float32), 0)
    state = kmeans_init(3, 4, 8)
    with pytest.raises(ValueError, match="3-d, the k-means state is 4-d"):
        kmeans_step(state, jnp.ones((2, 3)), jax.random.key(0))
    bad = np.ones((2, 4), np.float32)
    bad[1, 2] = np.nan
    with pytest.raises(ValueError, match="fused has 1 non-finite"):
        kmeans_step(state, bad, jax.random.key(0))
    with pytest.raises(ValueError, match="refit_every must be >= 1"):
        kmeans_step(state, np.ones((2, 4), np.float32), jax.random.key(0), refit_every=0)
    with pytest.raises(ValueError, match="max_iter must be >= 1"):
        kmeans_fit(np.ones((4, 4), np.float32), np.ones((2, 4), np.float32), max_iter=0)
    # a small queue built by hand (not through kmeans_init) is refused at the step
    small = KMeansState(jnp.zeros((5, 4)), jnp.zeros((3, 4)), *(jnp.zeros((), jnp.int32),) * 3)
    with pytest.raises(ValueError, match=r"queue \(3 rows\) must hold at least K = 5"):
        kmeans_step(small, np.ones((2, 4), np.float32), jax.random.key(0))
    emb = {"v": np.ones((4, 4), np.float32), "t": np.ones((4, 4), np.float32)}
    with pytest.raises(ValueError, match="centroids are 5-d"):
        cluster_loss(emb, jnp.ones((3, 5)))
    with pytest.raises(ValueError, match="assignments must be int"):
        cluster_loss(emb, jnp.ones((3, 4)), assignments=jnp.zeros((5,), jnp.int32))
