"""Machinery shared by the sharded losses: mesh/axis resolution, the ring shift, column chunks.

Both sharded losses (``clip_loss_sharded``, ``siglip_loss_ring``) run the same schedule inside
``jax.shard_map``: every device keeps its local rows ``x_l`` and the column-side batch ``y`` travels
around a ring of the ``n`` devices of the loss axes (``ppermute`` to the next device), each step
touching one ``[b_local, chunk]`` block at a time. A column-side accumulator (column logsumexp in
the forward, ``dL/dy`` in the backward) travels with its chunk and comes home after ``n`` shifts.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
from jax.sharding import AbstractMesh, Mesh
from jax.sharding import PartitionSpec as P

from emojax.losses._common import check_finite, check_pair, check_scalar


def resolve_mesh(mesh: Mesh | AbstractMesh | None) -> Mesh | AbstractMesh:
    """The given mesh, else the one installed with ``jax.set_mesh``."""
    if mesh is None:
        mesh = jax.sharding.get_abstract_mesh()
    if mesh is None or not mesh.axis_names:
        raise ValueError(
            "no mesh: pass mesh=jax.make_mesh(...) or install one with jax.set_mesh(mesh)"
        )
    return mesh


def resolve_axes(mesh, axis_name: str | tuple[str, ...]) -> tuple[tuple[str, ...], int]:
    """Normalise ``axis_name`` to a tuple of mesh axes and return it with the ring size."""
    axes = (axis_name,) if isinstance(axis_name, str) else tuple(axis_name)
    if not axes:
        raise ValueError("axis_name is empty: name the mesh axis (or axes) the batch is split over")
    shape = dict(mesh.shape)
    for a in axes:
        if a not in shape:
            raise ValueError(f"axis {a!r} is not a mesh axis; the mesh has axes {tuple(shape)}")
    n = 1
    for a in axes:
        n *= shape[a]
    return axes, n


def check_divisible(batch: int, n: int, axes: tuple[str, ...]) -> int:
    """Local batch size; raises if the global batch does not split evenly over the ring."""
    if batch % n:
        raise ValueError(
            f"global batch {batch} is not divisible by the {n} devices of mesh axes {axes}; "
            "pad or drop the remainder so every device holds the same number of rows"
        )
    return batch // n


def column_chunk(local_batch: int, chunk_size: int) -> int:
    """Largest divisor of ``local_batch`` that is <= ``chunk_size`` (the block width)."""
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    c = min(chunk_size, local_batch)
    while local_batch % c:
        c -= 1
    return c


def shift(tree, axes: tuple[str, ...], n: int):
    """Send every leaf to the next device of the ring (device i -> i + 1 mod n)."""
    return jax.lax.ppermute(tree, axes, perm=[(i, (i + 1) % n) for i in range(n)])


def varying(tree, axes: tuple[str, ...]):
    """Mark fresh accumulators as device-varying over ``axes`` (loop carries must match)."""
    return jax.tree.map(lambda a: jax.lax.pcast(a, axes, to="varying"), tree)


def zero_grads(x_l: jax.Array, y_l: jax.Array, axes: tuple[str, ...]):
    """Fresh device-varying accumulators: ``((dx [b, D], dscale, dbias), dy [b, D])``, zeros."""
    acc = (jnp.zeros(x_l.shape, jnp.float32), jnp.zeros((), jnp.float32), jnp.zeros(()))
    return varying((acc, jnp.zeros(y_l.shape, jnp.float32)), axes)


def with_positives(grads, x_l, y_l, scale, weight, axes: tuple[str, ...]):
    """Add the gradient of ``-weight * sum_i z_ii`` (the diagonal, ``z_ii = scale <x_i, y_i> +
    bias``) to the blocks' ``(dx, dy, dscale, dbias)`` in O(b D); the scalar ones are summed over
    the ring. Returns the local backward's outputs."""
    dx, dy, ds, db = grads
    dx = dx - weight * scale * y_l
    dy = dy - weight * scale * x_l
    ds = ds - weight * jnp.sum(x_l * y_l)
    db = db - weight * x_l.shape[0]
    return dx, dy, jax.lax.psum(ds, axes), jax.lax.psum(db, axes)


def prepare(x, y, log_scale, bias, mesh, axis_name, chunk_size):
    """Check a ring loss's inputs (``x, y: [batch, dim]``, scalar ``log_scale`` / ``bias``) and
    return ``(mesh, axes, n, chunk)``: the mesh, its ring axes, the ring size, the block width."""
    check_pair(x, y, "x", "y")
    check_scalar("log_scale", log_scale)
    check_scalar("bias", bias)
    check_finite(x=x, y=y, log_scale=log_scale, bias=bias)
    mesh = resolve_mesh(mesh)
    axes, n = resolve_axes(mesh, axis_name)
    local = check_divisible(x.shape[0], n, axes)
    return mesh, axes, n, column_chunk(local, chunk_size)


@functools.lru_cache(maxsize=128)
def ring_loss(
    mesh,
    axes: tuple[str, ...],
    n: int,
    c: int,
    batch: int,
    local_forward,
    local_backward,
    num_saved: int,
):
    """The global ``custom_vjp`` function ``(xn, yn, scale, bias) -> loss`` of a ring loss, built
    once per configuration (ring of ``n`` devices over ``axes``, block width ``c``, global batch).

    Inside ``jax.shard_map`` (``x``/``y`` rows split over ``axes``, scale/bias replicated), with
    ``axes, n, c, batch`` passed as keywords:
    ``local_forward(x_l, y_l, scale, bias) -> (loss, *saved)`` with ``num_saved`` row-split
    vectors kept for the backward pass, and
    ``local_backward(x_l, y_l, scale, bias, *saved, g) -> (dx_l, dy_l, dscale, dbias)``.
    """
    kw = dict(axes=axes, n=n, c=c, batch=batch)
    local_forward = functools.partial(local_forward, **kw)
    local_backward = functools.partial(local_backward, **kw)
    rows, rep = P(axes), P()
    saved = (rows,) * num_saved
    fwd_map = jax.shard_map(
        local_forward, mesh=mesh, in_specs=(rows, rows, rep, rep), out_specs=(rep, *saved)
    )
    bwd_map = jax.shard_map(
        local_backward,
        mesh=mesh,
        in_specs=(rows, rows, rep, rep, *saved, rep),
        out_specs=(rows, rows, rep, rep),
    )

    @jax.custom_vjp
    def core(xn, yn, scale, bias):
        return fwd_map(xn, yn, scale, bias)[0]

    def core_fwd(xn, yn, scale, bias):
        loss, *kept = fwd_map(xn, yn, scale, bias)
        return loss, (xn, yn, scale, bias, *kept)

    def core_bwd(res, g):
        return bwd_map(*res, g)

    core.defvjp(core_fwd, core_bwd)
    return core
