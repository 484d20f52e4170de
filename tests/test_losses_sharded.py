"""clip_loss_sharded / siglip_loss_ring on 8 fake CPU devices: equal to the dense loss, memory."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from emojax.losses import clip_loss, clip_loss_sharded, siglip_loss, siglip_loss_ring

AUTO = jax.sharding.AxisType.Auto
# torch/NumPy references and sharded runs round differently, and by CPU (AVX2 vs AVX-512
# kernels): a few ULPs of the O(1) losses and their gradients; formula bugs are >= 1e-3
ATOL = 2e-5
RTOL = 1e-5

# (mesh shape, mesh axis names, loss axis, column chunk)
MESHES = [
    ((8,), ("data",), "data", 1024),
    ((4, 2), ("data", "model"), "data", 3),
    ((4, 2), ("data", "model"), ("data", "model"), 4),
    ((2, 4), ("data", "model"), "model", 1024),
]


def _mesh(shape, names, devices=None):
    return jax.make_mesh(shape, names, axis_types=(AUTO,) * len(shape), devices=devices)


@pytest.fixture(scope="module")
def data():
    kx, ky = jax.random.split(jax.random.key(0))
    return jax.random.normal(kx, (48, 16)), jax.random.normal(ky, (48, 16))


def _clip_dense(x, y, s, b):
    return clip_loss(x, y, s, bias=b)


def _siglip_dense(x, y, s, b):
    return siglip_loss(x, y, s, b)


def _assert_same(got, want):
    np.testing.assert_allclose(got[0], want[0], atol=ATOL, rtol=RTOL)
    for g, w in zip(got[1], want[1], strict=True):
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


@pytest.mark.parametrize("shape,names,axis,chunk", MESHES)
def test_clip_sharded_equals_dense(data, shape, names, axis, chunk):
    x, y = data
    mesh = _mesh(shape, names)
    want = jax.value_and_grad(_clip_dense, argnums=(0, 1, 2, 3))(x, y, 2.5, 0.3)

    def sharded(x, y, s, b):
        return clip_loss_sharded(x, y, s, bias=b, mesh=mesh, axis_name=axis, chunk_size=chunk)

    got = jax.jit(jax.value_and_grad(sharded, argnums=(0, 1, 2, 3)))(x, y, 2.5, 0.3)
    _assert_same(got, want)


@pytest.mark.parametrize("shape,names,axis,chunk", MESHES)
def test_siglip_ring_equals_dense(data, shape, names, axis, chunk):
    x, y = data
    mesh = _mesh(shape, names)
    want = jax.value_and_grad(_siglip_dense, argnums=(0, 1, 2, 3))(x, y, 2.0, -3.0)

    def ring(x, y, s, b):
        return siglip_loss_ring(x, y, s, b, mesh=mesh, axis_name=axis, chunk_size=chunk)

    got = jax.jit(jax.value_and_grad(ring, argnums=(0, 1, 2, 3)))(x, y, 2.0, -3.0)
    _assert_same(got, want)


@pytest.mark.parametrize("n", [2, 4, 8])
def test_gradient_not_scaled_by_device_count(data, n):
    """The classic all-gather bug multiplies gradients by the device count: compare at several n."""
    x, y = data
    mesh = _mesh((n,), ("data",), devices=jax.devices()[:n])
    want = jax.grad(_clip_dense, argnums=(0, 1))(x, y, 2.0, 0.0)
    got = jax.jit(jax.grad(lambda a, b: clip_loss_sharded(a, b, 2.0, mesh=mesh), argnums=(0, 1)))(
        x, y
    )
    for g, w in zip(got, want, strict=True):
        ratio = float(jnp.linalg.norm(g) / jnp.linalg.norm(w))
        assert abs(ratio - 1.0) < 1e-4, f"gradient norm ratio {ratio} at {n} devices"  # bug: n
        np.testing.assert_allclose(g, w, atol=ATOL, rtol=RTOL)


def test_sharded_inputs_and_installed_mesh(data):
    """Globally sharded inputs, mesh taken from jax.set_mesh; outputs keep the row sharding."""
    x, y = data
    mesh = _mesh((8,), ("data",))
    rows = NamedSharding(mesh, P("data"))
    xs, ys = jax.device_put(x, rows), jax.device_put(y, rows)
    want = jax.value_and_grad(_siglip_dense, argnums=(0, 1))(x, y, 1.0, -2.0)
    with jax.set_mesh(mesh):
        fn = jax.jit(jax.value_and_grad(lambda a, b: siglip_loss_ring(a, b, 1.0, -2.0), (0, 1)))
        got = fn(xs, ys)
    _assert_same(got, want)
    assert got[1][0].sharding.spec == P("data")


def test_sharded_bad_inputs(data):
    x, y = data
    mesh = _mesh((8,), ("data",))
    with pytest.raises(ValueError, match="not divisible by the 8 devices"):
        clip_loss_sharded(x[:44], y[:44], 2.0, mesh=mesh)
    with pytest.raises(ValueError, match="'batch' is not a mesh axis"):
        siglip_loss_ring(x, y, 2.0, -10.0, mesh=mesh, axis_name="batch")
    with pytest.raises(ValueError, match="no mesh"):
        clip_loss_sharded(x, y, 2.0)
    with pytest.raises(ValueError, match="batch size mismatch"):
        siglip_loss_ring(x, y[:40], 2.0, -10.0, mesh=mesh)
    with pytest.raises(ValueError, match="chunk_size must be >= 1"):
        clip_loss_sharded(x, y, 2.0, mesh=mesh, chunk_size=0)


def _temp_bytes(fn, mesh, batch, dim=64):
    rows = jax.ShapeDtypeStruct((batch, dim), jnp.float32, sharding=NamedSharding(mesh, P("data")))
    scalar = jax.ShapeDtypeStruct((), jnp.float32, sharding=NamedSharding(mesh, P()))
    compiled = (
        jax.jit(jax.value_and_grad(fn, argnums=(0, 1, 2))).lower(rows, rows, scalar).compile()
    )
    return compiled.memory_analysis().temp_size_in_bytes


def test_memory_linear_in_local_batch():
    """Per-device temp memory of fwd+bwd: ~2x when the local batch doubles (dense GSPMD: ~4x)."""
    mesh = _mesh((8,), ("data",))
    cases = {
        "clip_sharded": lambda x, y, s: clip_loss_sharded(x, y, s, mesh=mesh, chunk_size=128),
        "siglip_ring": lambda x, y, s: siglip_loss_ring(x, y, s, -10.0, mesh=mesh, chunk_size=128),
        "clip_dense": lambda x, y, s: clip_loss(x, y, s),
        "siglip_dense": lambda x, y, s: siglip_loss(x, y, s, -10.0),
    }
    local = (512, 1024)
    ratios = {}
    for name, fn in cases.items():
        small, big = (_temp_bytes(fn, mesh, 8 * b) for b in local)
        ratios[name] = big / small
    assert ratios["clip_sharded"] < 2.3, ratios
    assert ratios["siglip_ring"] < 2.3, ratios
    assert ratios["clip_dense"] > 3.5, ratios
    assert ratios["siglip_dense"] > 3.5, ratios
