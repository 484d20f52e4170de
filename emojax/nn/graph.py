"""Graph layers on padded arrays: GCN, relational GCN, graph transformer convolution.

Convention (the same as ``torch_geometric`` with ``flow="source_to_target"``, plus padding):

- ``x: [N, F]`` node features. Several graphs (e.g. the dialogues of a batch) are stored as one
  disjoint union: their nodes concatenated, padded to a fixed ``N``.
- ``edge_index: [2, E]`` int; ``edge_index[0]`` is the source ``j``, ``edge_index[1]`` the
  target ``i``; a message goes from ``j`` to ``i``. Padded to a fixed ``E``.
- ``edge_type: [E]`` int in ``[0, num_relations)`` (RGCN only).
- ``edge_mask: [E]`` bool, False for padding edges (their indices must still be valid, e.g. 0).
- ``node_mask: [N]`` bool (optional), False for padding nodes; their outputs are set to 0.

Shapes never depend on the data, so every layer jits once per ``(N, E)`` bucket.
"""

from __future__ import annotations

import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from emojax.nn._checks import check_indices
from emojax.nn.transformer import dense

Dtype = Any


def _edge_mask(edge_index: jax.Array, edge_mask: jax.Array | None, num_nodes: int) -> jax.Array:
    if edge_index.ndim != 2 or edge_index.shape[0] != 2:
        raise ValueError(f"edge_index must be [2, E] (sources, targets), got {edge_index.shape}")
    check_indices("edge_index", edge_index, num_nodes, "node ids, N = x.shape[0]")
    num_edges = edge_index.shape[1]
    if edge_mask is None:
        return jnp.ones((num_edges,), bool)
    if edge_mask.shape != (num_edges,):
        raise ValueError(f"edge_mask must be [E] = [{num_edges}], got {edge_mask.shape}")
    return edge_mask.astype(bool)


def _add_bias(module: nn.Module, out: jax.Array) -> jax.Array:
    """``out: [N, features] + bias``, the zero-initialised ``bias [module.features]`` param created
    on ``module`` (call from its ``@nn.compact`` method)."""
    bias = module.param(
        "bias",
        nn.with_logical_partitioning(nn.initializers.zeros_init(), ("mlp",)),
        (module.features,),
        jnp.float32,
    )
    return out + bias.astype(out.dtype)


def _apply_node_mask(out: jax.Array, node_mask: jax.Array | None) -> jax.Array:
    if node_mask is None:
        return out
    if node_mask.shape != out.shape[:1]:
        raise ValueError(f"node_mask must be [N] = [{out.shape[0]}], got {node_mask.shape}")
    return jnp.where(node_mask[:, None], out, 0)


def segment_softmax(
    logits: jax.Array, segments: jax.Array, num_segments: int, mask: jax.Array
) -> jax.Array:
    """Softmax of ``logits: [E, ...]`` over the entries sharing a segment id ``segments: [E]``;
    entries with ``mask`` False get weight 0 and take no part."""
    masked = jnp.where(mask.reshape(mask.shape + (1,) * (logits.ndim - 1)), logits, -jnp.inf)
    seg_max = jax.ops.segment_max(masked, segments, num_segments)
    seg_max = jnp.where(jnp.isfinite(seg_max), seg_max, 0.0)
    e = jnp.exp(masked - seg_max[segments])
    total = jax.ops.segment_sum(e, segments, num_segments)
    return e / jnp.where(total > 0, total, 1.0)[segments]


def gcn_norm(edge_index, edge_mask, num_nodes, edge_weight=None, fill_value=1.0):
    """Symmetric GCN normalisation with one self loop per node (``add_remaining_self_loops``).

    Returns ``(edge_norm [E], loop_norm [N])``: the coefficient of each (non-loop) edge and of each
    node's self loop in ``D^-1/2 (A + I) D^-1/2``. An existing self-loop edge sets the loop weight
    (as in torch_geometric) instead of adding a second loop.
    """
    src, dst = edge_index[0], edge_index[1]
    w = jnp.ones(src.shape, jnp.float32) if edge_weight is None else edge_weight.astype(jnp.float32)
    w = jnp.where(edge_mask, w, 0.0)
    is_loop = edge_mask & (src == dst)
    loop_weight = jnp.full((num_nodes,), fill_value, jnp.float32)
    loop_weight = loop_weight.at[jnp.where(is_loop, dst, num_nodes)].set(w, mode="drop")
    w = jnp.where(is_loop, 0.0, w)
    deg = jax.ops.segment_sum(w, dst, num_nodes) + loop_weight
    dinv = jnp.where(deg > 0, jax.lax.rsqrt(jnp.maximum(deg, 1e-30)), 0.0)
    return dinv[src] * w * dinv[dst], dinv * loop_weight * dinv


class GCNConv(nn.Module):
    """Graph convolution (Kipf & Welling): ``D^-1/2 (A + I) D^-1/2 X W + b``.

    ``x: [N, F] -> [N, features]``. Params ``lin/kernel [F, features]``, ``bias [features]``.
    """

    features: int
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, edge_index, edge_mask=None, node_mask=None, edge_weight=None):
        mask = _edge_mask(edge_index, edge_mask, x.shape[0])
        edge_norm, loop_norm = gcn_norm(edge_index, mask, x.shape[0], edge_weight)
        lin = dense(self.features, ("embed", "mlp"), dtype=self.dtype, use_bias=False, name="lin")
        h = lin(x)
        src, dst = edge_index[0], edge_index[1]
        messages = edge_norm[:, None].astype(h.dtype) * h[src]
        out = jax.ops.segment_sum(messages, dst, x.shape[0]) + loop_norm[:, None] * h
        if self.use_bias:
            out = _add_bias(self, out)
        return _apply_node_mask(out, node_mask)


class RGCNConv(nn.Module):
    """Relational GCN (Schlichtkrull et al.): ``x_i W_root + sum_r mean_{j in N_r(i)} x_j W_r + b``.

    ``x: [N, F]``, ``edge_type: [E]`` -> ``[N, features]``. Params (torch_geometric names):
    ``weight [R, F, features]`` or, with ``num_bases``, ``weight [B, F, features]`` and
    ``comp [R, B]``; ``root [F, features]``; ``bias [features]``.
    """

    features: int
    num_relations: int
    num_bases: int | None = None
    aggr: str = "mean"
    use_bias: bool = True
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, edge_index, edge_type, edge_mask=None, node_mask=None):
        if self.aggr not in ("mean", "sum"):
            raise ValueError(f"aggr={self.aggr!r}; choose 'mean' or 'sum'")
        mask = _edge_mask(edge_index, edge_mask, x.shape[0])
        if edge_type.shape != mask.shape:
            raise ValueError(f"edge_type must be [E] = {mask.shape}, got {edge_type.shape}")
        check_indices("edge_type", edge_type, self.num_relations, "relation ids")
        n, f, r = x.shape[0], x.shape[1], self.num_relations
        init = nn.initializers.glorot_uniform()
        param = lambda name, shape, axes: self.param(
            name, nn.with_logical_partitioning(init, axes), shape, jnp.float32
        )
        if self.num_bases is None:
            weight = param("weight", (r, f, self.features), ("relations", "embed", "mlp"))
        else:
            bases = param("weight", (self.num_bases, f, self.features), (None, "embed", "mlp"))
            comp = param("comp", (r, self.num_bases), ("relations", None))
            weight = jnp.einsum("rb,bfo->rfo", comp, bases)
        root = param("root", (f, self.features), ("embed", "mlp"))
        xd = x.astype(self.dtype)
        per_relation = jnp.einsum("nf,rfo->nro", xd, weight.astype(self.dtype))  # [N, R, out]
        src, dst = edge_index[0], edge_index[1]
        etype = jnp.clip(edge_type, 0, r - 1)
        messages = per_relation[src, etype] * mask[:, None].astype(self.dtype)
        if self.aggr == "mean":
            key = dst * r + etype
            count = jax.ops.segment_sum(mask.astype(jnp.float32), key, n * r)
            messages = messages / jnp.maximum(count[key], 1.0)[:, None].astype(self.dtype)
        out = jax.ops.segment_sum(messages, dst, n) + xd @ root.astype(self.dtype)
        if self.use_bias:
            out = _add_bias(self, out)
        return _apply_node_mask(out, node_mask)


class TransformerConv(nn.Module):
    """Graph transformer convolution (Shi et al. 2021), torch_geometric ``TransformerConv``
    without edge features or beta gating.

    ``alpha_ij = softmax_j((W_q x_i) . (W_k x_j) / sqrt(C))`` over the incoming edges of ``i``,
    ``out_i = W_skip x_i + sum_j alpha_ij W_v x_j``; heads concatenated (``[N, heads*C]``) or
    averaged (``[N, C]``). Params ``lin_query``, ``lin_key``, ``lin_value``, ``lin_skip``.
    """

    features: int
    heads: int = 1
    concat: bool = True
    root_weight: bool = True
    dropout_rate: float = 0.0
    dtype: Dtype = jnp.float32

    @nn.compact
    def __call__(self, x, edge_index, edge_mask=None, node_mask=None, *, train: bool = False):
        mask = _edge_mask(edge_index, edge_mask, x.shape[0])
        n, h, c = x.shape[0], self.heads, self.features
        linear = functools.partial(dense, axes=("embed", "joined_kv"), dtype=self.dtype)
        proj = lambda name: linear(h * c, name=name)(x)  # noqa: E731
        q, k, v = (proj(name).reshape(n, h, c) for name in ("lin_query", "lin_key", "lin_value"))
        src, dst = edge_index[0], edge_index[1]
        logits = jnp.sum(q[dst] * k[src], axis=-1).astype(jnp.float32) / jnp.sqrt(c)  # [E, H]
        alpha = segment_softmax(logits, dst, n, mask)
        alpha = nn.Dropout(self.dropout_rate, deterministic=not train)(alpha)
        out = jax.ops.segment_sum(alpha[..., None].astype(v.dtype) * v[src], dst, n)  # [N,H,C]
        out = out.reshape(n, h * c) if self.concat else jnp.mean(out, axis=1)
        if self.root_weight:
            out_dim = h * c if self.concat else c
            out = out + linear(out_dim, name="lin_skip")(x)
        return _apply_node_mask(out, node_mask)
