"""GRACE-style graph contrastive loss between two augmented views (Joyful; Zhu et al. 2020).

With ``u = norm(z1)``, ``v = norm(z2)`` and ``theta(a, b) = cos(a, b) / tau``:

    l(u_i) = -log  e^{theta(u_i, v_i)} / ( e^{theta(u_i, v_i)}
                     + sum_{k != i} e^{theta(u_i, v_k)}        (inter-view negatives)
                     + sum_{k != i} e^{theta(u_i, u_k)} )      (intra-view negatives)
    L = (1 / 2N) sum_i ( l(u_i) + l(v_i) )

``intra_view=False`` drops the intra-view term (plain inter-view InfoNCE). Joyful's code uses
tau = 0.2. An optional node mask removes padded nodes from the negatives and from the mean.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from emojax.losses._common import check_finite, check_pair, check_positive, l2_normalize


def _one_direction(u, v, temperature, intra_view, valid):
    n = u.shape[0]
    eye = jnp.eye(n, dtype=bool)
    keep = valid[None, :]
    inter = (u @ v.T) / temperature
    inter = jnp.where(keep, inter, -jnp.inf)
    terms = [inter]
    if intra_view:
        intra = (u @ u.T) / temperature
        terms.append(jnp.where(keep & ~eye, intra, -jnp.inf))
    denom = jax.nn.logsumexp(jnp.concatenate(terms, axis=1), axis=1)
    return denom - jnp.diagonal(inter)


def graph_contrastive_loss(
    z1: jax.Array,
    z2: jax.Array,
    *,
    temperature: float = 0.2,
    intra_view: bool = True,
    node_mask: jax.Array | None = None,
) -> jax.Array:
    """Symmetric GRACE loss between node embeddings of two views; scalar float32.

    Args:
      z1: [nodes, dim] embeddings of view 1 (row i is node i).
      z2: [nodes, dim] embeddings of view 2 (same node order).
      temperature: tau (> 0).
      intra_view: include same-view negatives (GRACE / Joyful) or not.
      node_mask: optional bool [nodes]; False marks padding.
    """
    check_pair(z1, z2, "z1", "z2")
    check_positive("temperature", temperature)
    n = z1.shape[0]
    if node_mask is None:
        valid = jnp.ones((n,), bool)
    else:
        if node_mask.shape != (n,):
            raise ValueError(f"node_mask must have shape [nodes] = ({n},), got {node_mask.shape}")
        valid = node_mask.astype(bool)
    check_finite(z1=z1, z2=z2)
    u, v = l2_normalize(z1), l2_normalize(z2)
    per_node = _one_direction(u, v, temperature, intra_view, valid) + _one_direction(
        v, u, temperature, intra_view, valid
    )
    per_node = jnp.where(valid, per_node, 0.0)
    return jnp.sum(per_node) / (2.0 * jnp.maximum(jnp.sum(valid), 1))
