"""The public ops and losses never read a device array on the host (issue 15: no host sync).

Inputs are placed on the device first (``jax.device_put``, outside the guards). Jitted, the whole
call (compile included) runs under ``jax.transfer_guard("disallow")``: nothing moves either way.
Eagerly, ``jax.transfer_guard_device_to_host("disallow")`` is the guard: any ``bool()``,
``float()``, ``np.asarray`` or ``.item()`` on a device value (a host sync) raises on GPU / TPU.
Host-to-device is not guarded eagerly because every eager op with a Python-number operand
(``x * 2``) is such a transfer in JAX, sync-free.

On CPU, reading a device array is zero-copy and the transfer guard never fires, so the tests
also forbid host reads directly: inputs are replicated over two CPU devices (such arrays have no
zero-copy buffer, every read goes through ``ArrayImpl._value`` / ``__array__``) and those two
entry points raise inside the guarded blocks. The validation design is in
``emojax/ops/_validate.py``.
"""

import contextlib

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.array import ArrayImpl
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emojax import losses, ops
from emojax.nn.graph import GCNConv, RGCNConv

rng = np.random.RandomState(0)


def _f32(*shape):
    return rng.randn(*shape).astype(np.float32)


B, D, C = 6, 8, 5
HOST = {
    "x": _f32(4, C),
    "alpha": np.asarray([[1.2], [1.5], [2.0], [1.7]], np.float32),
    "labels": np.asarray([0, 3, 1, 4], np.int32),
    "ea": _f32(B, D),
    "eb": _f32(B, D),
    "ec": _f32(B, D),
    "centroids": _f32(3, D),
    "log_scale": np.float32(2.0),
    "bias": np.float32(-1.0),
    "node_mask": np.arange(B) < 5,
    "student": _f32(B, C),
    "teacher": _f32(B, C),
    "probs": rng.rand(B, C).astype(np.float32),
    "hard": (rng.rand(B, C) > 0.5).astype(np.float32),
    "pred": _f32(2, 4, 12),
    "target": _f32(2, 4, 12),
    "patch_mask": np.asarray([[1, 0, 1, 0], [0, 1, 1, 1]], np.float32),
}


def _kmeans_refit(fused, queue, centroids):
    """A k-means refit from given centroids on a full queue of 12 rows + the batch."""
    ints = (jnp.int32(0), jnp.int32(12), jnp.int32(1))
    state = losses.KMeansState(centroids, jnp.concatenate([queue, fused]), *ints)
    return losses.kmeans_step(state, fused, jax.random.key(0), refit_every=1)[0].centroids


CASES = {
    "sparsemax": (ops.sparsemax, ("x",)),
    "entmax15": (ops.entmax15, ("x",)),
    "entmax_bisect(array alpha)": (ops.entmax_bisect, ("x", "alpha")),
    "softmax": (ops.softmax, ("x",)),
    "sparsemax_loss": (ops.sparsemax_loss, ("x", "labels")),
    "entmax15_loss": (ops.entmax15_loss, ("x", "labels")),
    "entmax_bisect_loss": (
        lambda x, t, a: ops.entmax_bisect_loss(x, t, a),
        ("x", "labels", "alpha"),
    ),
    "raw_from_alpha": (lambda a: ops.raw_from_alpha(a, max_alpha=2.5), ("alpha",)),
    "l2_normalize": (ops.l2_normalize, ("ea",)),
    "clip_loss": (
        lambda a, b, s, bias: losses.clip_loss(a, b, s, bias=bias),
        ("ea", "eb", "log_scale", "bias"),
    ),
    "siglip_loss": (losses.siglip_loss, ("ea", "eb", "log_scale", "bias")),
    "mms_loss": (lambda a, b, c: losses.mms_loss({"v": a, "t": b, "a": c}), ("ea", "eb", "ec")),
    "cluster_loss": (
        lambda a, b, c: losses.cluster_loss({"v": a, "t": b}, c, normalize=True),
        ("ea", "eb", "centroids"),
    ),
    "kmeans_step": (lambda f, q, c: _kmeans_refit(f, q, c), ("ea", "eb", "centroids")),
    "graph_contrastive_loss": (
        lambda a, b, m: losses.graph_contrastive_loss(a, b, temperature=0.5, node_mask=m),
        ("ea", "eb", "node_mask"),
    ),
    "distill_loss(hinton)": (losses.distill_loss, ("student", "teacher")),
    "distill_loss(anp)": (
        lambda s, p, y: losses.distill_loss(s, p, y, method="anp", alpha=0.5),
        ("student", "probs", "hard"),
    ),
    "mae_loss": (losses.mae_loss, ("pred", "target", "patch_mask")),
    "reconstruction_loss": (
        lambda p, t: losses.reconstruction_loss({"v": p}, {"v": t}),
        ("pred", "target"),
    ),
}


def _put(tree):
    """On the device: replicated over two devices where there are two (see the module docs)."""
    devices = jax.devices()[:2]
    if len(devices) < 2:
        return jax.device_put(tree)
    mesh = jax.sharding.Mesh(np.asarray(devices), ("replica",))
    return jax.device_put(tree, NamedSharding(mesh, P()))


@contextlib.contextmanager
def no_host_sync(jitted: bool):
    """Transfer guards, plus: reading a device array on the host raises (the CPU stand-in)."""

    def host_read(self, *args, **kwargs):
        raise RuntimeError(f"host read of a device array {self.aval} (a host sync)")

    guard = jax.transfer_guard if jitted else jax.transfer_guard_device_to_host
    with pytest.MonkeyPatch.context() as mp, guard("disallow"):
        mp.setattr(ArrayImpl, "_value", property(host_read))
        mp.setattr(ArrayImpl, "__array__", host_read)
        yield


def test_the_detector_catches_host_reads():
    x = _put(np.ones(3, np.float32))
    reads = (np.asarray, lambda a: bool(a.all()), lambda a: int(a[0]), lambda a: a.sum().item())
    for read in reads:
        with pytest.raises(Exception, match="host read|[Dd]isallowed"), no_host_sync(False):
            read(x > 0)


@pytest.fixture(scope="module")
def device():
    return _put(HOST)


@pytest.mark.parametrize("name", list(CASES))
def test_public_ops_and_losses_do_not_sync(name, device):
    fn, keys = CASES[name]
    args = [device[k] for k in keys]
    with no_host_sync(jitted=False):
        eager = jax.block_until_ready(fn(*args))
    with no_host_sync(jitted=True):
        jitted = jax.block_until_ready(jax.jit(fn)(*args))
    want = fn(*[HOST[k] for k in keys])  # host inputs: the checked path gives the same values
    np.testing.assert_allclose(np.asarray(eager), np.asarray(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jitted), np.asarray(want), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("name", ["clip_loss", "entmax_bisect_loss", "graph_contrastive_loss"])
def test_jitted_gradients_do_not_sync(name, device):
    fn, keys = CASES[name]
    args = [device[k] for k in keys]
    with no_host_sync(jitted=True):
        jax.block_until_ready(jax.jit(jax.grad(lambda a, *rest: jnp.sum(fn(a, *rest))))(*args))


class _Graph(nn.Module):
    @nn.compact
    def __call__(self, x, edge_index, edge_type):
        h = GCNConv(4)(x, edge_index)
        return RGCNConv(3, num_relations=2)(h, edge_index, edge_type)


def test_index_checks_do_not_sync():
    """check_indices (graph node / relation ids; BERT and CLIP token ids use the same helper)."""
    x = _f32(5, 3)
    edge_index = np.asarray([[0, 1, 2, 3], [1, 2, 3, 4]], np.int32)
    edge_type = np.asarray([0, 1, 1, 0], np.int32)
    model = _Graph()
    variables = model.init(jax.random.key(0), x, edge_index, edge_type)
    want = model.apply(variables, x, edge_index, edge_type)
    dev = _put((variables, x, edge_index, edge_type))
    with no_host_sync(jitted=False):
        eager = jax.block_until_ready(model.apply(*dev))
    with no_host_sync(jitted=True):
        jitted = jax.block_until_ready(jax.jit(model.apply)(*dev))
    np.testing.assert_allclose(np.asarray(eager), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.asarray(jitted), want, rtol=1e-4, atol=1e-5)  # jit vs eager
