"""Thresholds of the sparse mappings solved on a small candidate set, without sorting.

A sparse mapping's threshold depends only on the entries in its support, which are few of a long
row's largest ones. So each row (length d) is cut into G interleaved groups and, in one cheap
arithmetic pass (a reduction whose combiner merges sorted lists), the KEEP largest values of every
group are kept: KEEP * G candidates, about 8 to 64 times fewer than d. The mapping's own solver
finds the threshold on them; the result is exact as soon as every group's smallest kept value gets
probability 0 (all values left out of that group are no larger, so they get 0 too, and the
threshold equation is the same on the candidates as on the whole row). Rows failing that check
(a group holding KEEP or more support entries, or alpha near 1 where outputs are dense) are
solved again on their full rows, gathered in small chunks.

The full passes are then: one for the candidates, one for the output. Rows shorter than
MIN_LENGTH take the full-row path directly (the compaction would not pay).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import jax
import jax.numpy as jnp

from emojax.ops import _common

KEEP = 4  # values kept per group: a power of 2 (bitonic merging)
MIN_LENGTH = 256
_FACTORS = (8, 4, 2)  # group-merging factors; XLA:CPU vectorises small reductions only
_TARGET_GROUPS = 32  # at least this many groups (fewer groups: more rows fail the check)
_GROUPS_PER_LENGTH = 1 / 256  # and at least d / 256 groups: supports grow with d


def plan(d: int) -> tuple[int, tuple[int, ...]] | None:
    """Static plan for rows of length d: (padded length, reduction factors), or None (too short).

    The padded length is d rounded up to a multiple of 64 (padding is -inf); the product of the
    factors is the group size, chosen so that at least max(32, d / 256) groups remain.
    """
    if d < MIN_LENGTH:
        return None
    padded = -(-d // 64) * 64
    groups = max(_TARGET_GROUPS, math.ceil(d * _GROUPS_PER_LENGTH))
    factors: list[int] = []
    size = padded
    while True:
        factor = next((f for f in _FACTORS if size % f == 0 and size // f >= groups), None)
        if factor is None:
            break
        factors.append(factor)
        size //= factor
    return (padded, tuple(factors)) if factors else None


def _sort_bitonic(seq: list[jax.Array]) -> list[jax.Array]:
    """A bitonic sequence of 2^k arrays -> the same values sorted descending, elementwise."""
    seq = list(seq)
    step = len(seq) // 2
    while step:
        for i in range(len(seq)):
            if (i // step) % 2 == 0:
                seq[i], seq[i + step] = (
                    jnp.maximum(seq[i], seq[i + step]),
                    jnp.minimum(seq[i], seq[i + step]),
                )
        step //= 2
    return seq


def _merge_top(a: tuple, b: tuple) -> tuple:
    """Two descending KEEP-lists (tuples of arrays) -> the KEEP largest of both, descending."""
    return tuple(_sort_bitonic([jnp.maximum(a[k], b[KEEP - 1 - k]) for k in range(KEEP)]))


def top_values(x: jax.Array, factors: tuple[int, ...]) -> list[jax.Array]:
    """x: [R, n] -> KEEP arrays [R, n / prod(factors)], the k-th largest value of each group.

    Group g holds the entries g + G * j (interleaved). Each factor is one variadic reduction over
    a middle axis of size <= 8 (vectorised well by XLA:CPU; larger ones are not).
    """
    rows = x.shape[0]
    neg = jnp.array(-jnp.inf, x.dtype)
    tops = [x] + [jnp.full_like(x, neg)] * (KEEP - 1)
    for factor in factors:
        size = tops[0].shape[-1] // factor
        operands = tuple(t.reshape(rows, factor, size) for t in tops)
        tops = list(jax.lax.reduce(operands, (neg,) * KEEP, _merge_top, (1,)))
    return tops


Solver = Callable[..., jax.Array]


def _full_rows(x, params, solve: Solver, total: Solver, start=None):
    m, valid = _common.row_max(x)
    u = _common.shift(x, m, valid)
    c = solve(u, *params, start=start)
    return m, c, total(u, c, *params)


def _fix_rows(x, params, m, c, z, bad, solve: Solver, total: Solver):
    """Solve the rows flagged bad on their full rows, a gathered chunk at a time.

    A chunk is 1/64 of the rows (at least 8): a loop over small chunks keeps the temporaries
    small (a full-size fallback branch made every call slower on XLA:CPU, taken or not) and runs
    zero times when no row failed. Each row starts from its candidate threshold, a lower bound.
    """
    rows = x.shape[0]
    chunk = min(rows, max(8, rows // 64))

    def body(state):
        c, z, bad = state
        (index,) = jnp.nonzero(bad[:, 0], size=chunk, fill_value=rows)
        # unused slots repeat the last row (a real row converges as fast as any); dropped below
        pick = lambda a: jnp.take(a, index, axis=0, mode="clip")  # noqa: E731
        _, c_new, z_new = _full_rows(pick(x), tuple(map(pick, params)), solve, total, pick(c))
        return (
            c.at[index].set(c_new, mode="drop"),
            z.at[index].set(z_new, mode="drop"),
            bad.at[index].set(False, mode="drop"),
        )

    c, z, _ = jax.lax.while_loop(lambda state: jnp.any(state[2]), body, (c, z, bad))
    return m, c, z


def threshold(x: jax.Array, params: tuple, *, solve: Solver, outside: Solver, total: Solver):
    """Threshold of a sparse mapping on every row.

    x: [R, d] (-inf = excluded); params: per-row arrays [R, 1] (e.g. alpha - 1) passed on.
    solve(u, *params, start) -> c [r, 1]: the mapping's solver on rows u [r, n] whose max is 0,
      started from a lower bound ``start`` ([r, 1]) or its own when None.
    outside(v, c, *params) -> bool [r, G]: v (shifted like u) gets probability 0 at c.
    total(u, c, *params) -> [r, 1]: the sum of the unnormalised output at c (its normaliser).
    Returns (m, c, z), each [R, 1]: the row max (0 on rows with no finite entry), c and total.
    """
    layout = plan(x.shape[-1])
    if layout is None or x.shape[0] == 0:
        return _full_rows(x, params, solve, total)
    padded, factors = layout
    x = jnp.pad(x, ((0, 0), (0, padded - x.shape[-1])), constant_values=-jnp.inf)
    tops = top_values(x, factors)
    m, valid = _common.row_max(tops[0])
    u = _common.shift(jnp.concatenate(tops, axis=-1), m, valid)
    c = solve(u, *params, start=None)
    z = total(u, c, *params)
    smallest_kept = _common.shift(tops[-1], m, valid)
    bad = valid & ~jnp.all(outside(smallest_kept, c, *params), axis=-1, keepdims=True)
    return _fix_rows(x, params, m, c, z, bad, solve, total)


def rowwise(fn: Callable) -> Callable:
    """fn(x [R, d], *params [R, 1]) -> tuple of [R, 1] arrays; under vmap, batch dims become rows.

    Without this, a batched vmap would make the fallback loop's condition batched.
    """
    batched = jax.custom_batching.custom_vmap(fn)

    @batched.def_vmap
    def _rule(axis_size, in_batched, *args):
        args = [
            a if b else jnp.broadcast_to(a, (axis_size,) + a.shape)
            for a, b in zip(args, in_batched, strict=True)
        ]
        outs = batched(*(a.reshape((-1,) + a.shape[2:]) for a in args))
        outs = tuple(o.reshape((axis_size, -1) + o.shape[1:]) for o in outs)
        return outs, (True,) * len(outs)

    return functools.wraps(fn)(batched)
